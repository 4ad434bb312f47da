"""Copy-task recall by length: loss and exact match of the whole recalled code (teacher forced).

python runs/tools/copy_eval.py runs/out/e5-copy-shift-curriculum/checkpoint --lengths 512 1024 4096 16384
"""

import argparse

import torch

from infini_attention.checkpoint import load_model
from infini_attention.tasks import CopyTask
from infini_attention.train import TrainConfig, loss_fn


@torch.no_grad()
def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--lengths", nargs="+", type=int, default=[512, 1024, 2048, 4096])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--copy-len", type=int, default=24)
    args = p.parse_args()
    model = load_model(args.checkpoint)
    print(f"{'length':>7} {'loss':>6} {'char acc':>8} {'exact':>6}")
    for length in args.lengths:
        cfg = TrainConfig(
            task="copy", seq_len=length, min_len=length, batch_size=args.batch, copy_len=args.copy_len, seed=123
        )
        ids, labels = CopyTask(cfg, model.config.segment_len).batch(0)
        logits, _ = model(ids)
        loss, count = loss_fn(logits, labels)
        mask = labels != -100
        right = (logits.argmax(-1) == labels) | ~mask
        chars = (right & mask).sum().item() / mask.sum().item()
        exact = right.all(dim=1).float().mean().item()
        print(f"{length:>7} {loss.item() / count:>6.3f} {chars:>8.3f} {exact:>6.2f}")


if __name__ == "__main__":
    main()

"""Copy-task loss split by where the code sat: in the repeat's own segment (local) or earlier (memory).

    python runs/tools/copy_progress.py runs/out/e5-copy-shift-curriculum [--every 100]

Batches are a pure function of the step (tasks.py), so each logged step's sequence length is
recomputed here, and with it whether the code was reachable only through the memory.
"""

import argparse
import json
from pathlib import Path

from infini_attention.tasks import _length, _rng
from infini_attention.train import TrainConfig


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("--every", type=int, default=100)
    args = p.parse_args()
    run = Path(args.run)
    cfg = TrainConfig.from_dict(json.loads((run / "train_config.json").read_text()))
    segment = cfg.model_config().segment_len
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    print(f"{'steps':>11} {'local loss':>10} {'memory loss':>11} {'(n memory)':>10} {'gate':>5}")
    for start in range(0, len(rows), args.every):
        local, memory = [], []
        for r in rows[start : start + args.every]:
            step = r["step"] - 1
            length = max(_length(_rng(cfg.seed, step, 0, 0), cfg, step), 2 * (cfg.copy_len + 14))
            # the code ends ~40 tokens in; the repeat starts at length - (copy_len + 14)
            (memory if (length - cfg.copy_len - 14) // segment > 0 else local).append(r["loss"])
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
        end = rows[min(start + args.every, len(rows)) - 1]
        print(
            f"{rows[start]['step']:>5}-{end['step']:<5} {mean(local):>10.3f} {mean(memory):>11.3f} "
            f"{len(memory):>10} {end.get('gate_mean', float('nan')):>5.2f}"
        )


if __name__ == "__main__":
    main()

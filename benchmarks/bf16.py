"""bf16 autocast vs fp32: speed of a training step and of streaming, beside the loss / perplexity change.

The `small` preset (4 layers, hidden 256, 4 heads of 64, segment 128, byte vocabulary), first
trained briefly in fp32 on this repository's own Python source (so that the loss means something),
then, with the same weights:
- training step: forward + backward of 2 x 2048 tokens (16 segments), fp32 vs bf16 autocast, and
  the loss of that batch in both;
- streaming: 32K held-out bytes under torch.no_grad(), fp32 vs bf16 autocast, and the perplexity.
Under autocast the memory M, z stays float32 (see ops/infini/README.md); only the projections,
FFN and local attention run in bf16. Times interleaved in one process.

    python benchmarks/bf16.py            # ~4 minutes on 2 CPU cores
    python benchmarks/bf16.py --quick    # smoke run: tiny preset, few steps, short inputs
"""

from __future__ import annotations

import argparse
import math

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch
import torch.nn.functional as F

from infini_attention.models import InfiniTransformer, ModelConfig


def corpus() -> torch.Tensor:
    """The bytes of the repository's Python source, as token ids (byte vocabulary)."""
    files = sorted((bc.REPO / "src").rglob("*.py")) + sorted((bc.REPO / "tests").glob("*.py"))
    data = b"\n".join(f.read_bytes() for f in files)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny preset, few steps, short inputs: a smoke run")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=150)
    args = p.parse_args()
    bc.setup()
    preset = "tiny" if args.quick else "small"
    config = ModelConfig.from_name(preset)
    batch, train_len = (2, 4 * config.segment_len) if args.quick else (2, 2048)
    stream_len = 4096 if args.quick else 32768
    steps, reps = (5, 1) if args.quick else (args.train_steps, args.reps)
    data = corpus()
    held_out, train = data[-stream_len - 1 :], data[: -stream_len - 1]
    print(f"machine: {bc.machine()}")
    print(f"preset {preset}; {steps} fp32 training steps of {batch} x 512 bytes first; corpus {len(data)} bytes")

    model = InfiniTransformer(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def batch_of(length: int) -> torch.Tensor:
        starts = torch.randint(0, len(train) - length - 1, (batch,), generator=gen)
        return torch.stack([train[s : s + length + 1] for s in starts.tolist()])

    for _ in range(steps):
        seq = batch_of(512)
        logits, _ = model(seq[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seq = batch_of(train_len)
    losses = {}

    def train_step(bf16: bool):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, _ = model(seq[:, :-1])
                loss = F.cross_entropy(logits.float().flatten(0, 1), seq[:, 1:].flatten())
            loss.backward()
            model.zero_grad(set_to_none=True)
            losses[bf16] = loss.item()

        return run

    nll = {}

    def stream(bf16: bool):
        @torch.no_grad()
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, _ = model(held_out[None, :-1])
            nll[bf16] = F.cross_entropy(logits[0].float(), held_out[1:]).item()

        return run

    rows = []
    t = bc.interleaved({"fp32": train_step(False), "bf16": train_step(True)}, reps=reps)
    rows.append(
        [
            f"training step ({batch} x {train_len})",
            f"{t['fp32'] * 1e3:.0f}",
            f"{t['bf16'] * 1e3:.0f}",
            f"**{t['fp32'] / t['bf16']:.2f}x**",
            f"loss {losses[False]:.4f} vs {losses[True]:.4f} ({losses[True] - losses[False]:+.4f})",
        ]
    )
    print("  training step: done", flush=True)
    t = bc.interleaved({"fp32": stream(False), "bf16": stream(True)}, reps=reps)
    ppl = {k: math.exp(v) for k, v in nll.items()}
    rows.append(
        [
            f"streaming ({stream_len} tokens)",
            f"{t['fp32'] * 1e3:.0f}",
            f"{t['bf16'] * 1e3:.0f}",
            f"**{t['fp32'] / t['bf16']:.2f}x**",
            f"ppl {ppl[False]:.4f} vs {ppl[True]:.4f} ({100 * (ppl[True] / ppl[False] - 1):+.2f}%)",
        ]
    )
    print()
    print(bc.table(["task", "fp32 ms", "bf16 ms", "speed-up (fp32 / bf16)", "fp32 vs bf16"], rows))


if __name__ == "__main__":
    main()

"""Decoding speed does not depend on how long the prompt was: tokens/s after 1M tokens / after 1K tokens.

The `tiny` preset (random weights, fp32). Each prompt is read once with `prefill`; then
`infini_attention.generate` (greedy) continues from each state in turn, interleaved, always from
the same saved state, and the ratio of decoding speeds is printed. The state after 1M tokens has
the same size as after 1K (memory M, z plus < 1 segment of keys/values), so the ratio should be ~1.

    python benchmarks/decoding.py            # ~2 minutes on 2 CPU cores (the 1M-token prefill)
    python benchmarks/decoding.py --quick    # smoke run: 16K-token long prompt, fewer new tokens
"""

from __future__ import annotations

import argparse
import time

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch

from infini_attention.generate import generate, prefill
from infini_attention.models import InfiniTransformer, ModelConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="16K-token long prompt, 64 new tokens: a smoke run")
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    bc.setup()
    long_len = 1 << 14 if args.quick else 1 << 20
    new_tokens, reps = (64, 2) if args.quick else (args.new_tokens, args.reps)
    model = InfiniTransformer(ModelConfig.from_name("tiny")).eval()
    gen = torch.Generator().manual_seed(0)
    print(f"machine: {bc.machine()}")
    states = {}
    for name, length in (("1K", 1024), (f"{long_len >> 10}K" if long_len < 1 << 20 else "1M", long_len)):
        prompt = torch.randint(0, model.config.vocab_size, (1, length), generator=gen)
        start = time.perf_counter()
        logits, state = prefill(model, prompt[:, :-1])
        print(f"  prefill {name}: {time.perf_counter() - start:.1f} s, state {state.nbytes()} bytes", flush=True)
        states[name] = (prompt[:, -1:], state)

    outputs = {}

    def decode(name: str):
        def run():
            last, state = states[name]
            outputs[name] = generate(model, last, new_tokens, state=state, temperature=0)[0]

        return run

    t = bc.interleaved({name: decode(name) for name in states}, reps=reps)
    short, long = states
    rows = [
        [
            name,
            f"{states[name][1].position + 1:,}",
            f"{states[name][1].nbytes():,}",
            f"{new_tokens / t[name]:.0f}",
        ]
        for name in states
    ]
    print()
    print(bc.table(["prompt", "prompt tokens", "state bytes", "tokens/s (greedy)"], rows))
    print()
    print(f"decoding speed after {long} / after {short}: **{t[short] / t[long]:.3f}** ({new_tokens} new tokens)")


if __name__ == "__main__":
    main()

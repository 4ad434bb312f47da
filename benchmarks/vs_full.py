"""Infini-attention vs full causal attention over the whole input: speed and peak memory at 8K-128K tokens.

One attention layer of the `tiny` preset's shape (hidden 64, 4 query heads and 2 key/value heads of
16, segment 64), forward under torch.no_grad(), fp32, one sequence:
- `full`: the layer's projections, RoPE over all positions, then ONE causal SDPA call over the
  whole input (`is_causal=True`, PyTorch's flash kernel on CPU: memory linear in the length,
  time quadratic);
- `infini`: InfiniAttention with the same weights (segment-local SDPA + the compressive memory).
Each (kind, length) runs in a fresh process for its own peak RSS and time. Beyond what is run,
the script prints an analytic estimate of the key/value memory full attention needs for the paper's
12-layer LM (the KV cache of every layer in fp32/bf16), against this machine's RAM.

    python benchmarks/vs_full.py            # ~5 minutes on 2 CPU cores (full attention at 128K)
    python benchmarks/vs_full.py --quick    # smoke run: 2K tokens
"""

from __future__ import annotations

import argparse
import json
import os
import time

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch
import torch.nn.functional as F

from infini_attention.layers.attention import FullAttention, InfiniAttention
from infini_attention.ops.rope import apply_rope, rope_cos_sin

SHAPE = dict(hidden_size=64, num_heads=4, num_key_value_heads=2, head_dim=16, segment_len=64)


def full_causal(layer: FullAttention, x: torch.Tensor) -> torch.Tensor:
    """The whole input in one causal SDPA call (FullAttention's own path takes an explicit L x L mask)."""
    q, k, v = layer._project(x)  # (B, H, L, d), (B, Hkv, L, d) x 2
    cos, sin = rope_cos_sin(torch.arange(x.shape[1]), layer.head_dim, layer.rope_theta)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    return layer._merge(out)


def worker(kind: str, length: int, reps: int) -> None:
    bc.setup()
    full = FullAttention(**SHAPE).eval()
    infini = InfiniAttention(**SHAPE).eval()
    infini.load_state_dict({**full.state_dict(), "beta": infini.beta.detach()})
    x = torch.randn(1, length, SHAPE["hidden_size"])
    run = (lambda: full_causal(full, x)) if kind == "full" else (lambda: infini(x)[0])
    times = []
    with torch.no_grad():
        for _ in range(reps):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": min(times), "peak_rss": bc.peak_rss()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2K tokens only: a smoke run")
    p.add_argument("--lengths", default="8192,32768,131072")
    p.add_argument("--worker", nargs=3, metavar=("KIND", "LENGTH", "REPS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return
    bc.setup()
    lengths = [2048] if args.quick else [int(n) for n in args.lengths.split(",")]
    print(f"machine: {bc.machine()}")
    print("one layer, hidden 64, 4 heads (2 kv) of 16, segment 64, forward, no_grad, fp32; fresh process per cell")
    rows = []
    for length in lengths:
        reps = 3 if length <= 32768 else 1  # full attention at 128K takes minutes: one run
        r = {kind: bc.run_worker(__file__, [kind, str(length), str(reps)]) for kind in ("infini", "full")}
        rows.append(
            [
                f"{length // 1024}K",
                f"{r['infini']['seconds']:.2f}",
                f"{r['full']['seconds']:.2f}",
                f"**{r['full']['seconds'] / r['infini']['seconds']:.1f}x**",
                bc.mib(r["infini"]["peak_rss"]),
                bc.mib(r["full"]["peak_rss"]),
                f"{r['full']['peak_rss'] / r['infini']['peak_rss']:.2f}",
            ]
        )
        print(f"  {length}: done", flush=True)
    print()
    print(
        bc.table(
            ["tokens", "infini s", "full s", "full / infini time", "infini peak RSS", "full peak RSS", "RSS ratio"],
            rows,
        )
    )

    # Analytic, not measured: full attention must keep K and V of every past token in every layer.
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    layers, kv_width = 12, 8 * 128  # the paper's LM: 12 layers, 8 key/value heads of 128
    print()
    print(f"Estimated (not run): KV cache of full attention in the paper's 12-layer LM; this machine has {bc.mib(ram)}")
    est = []
    for tokens in (32768, 131072, 524288, 1 << 20):
        fp32 = 2 * tokens * kv_width * layers * 4
        est.append([f"{tokens // 1024}K", bc.mib(fp32), bc.mib(fp32 / 2), "yes" if fp32 < ram else "**no**"])
    infini_state = layers * 8 * 128 * (128 + 1) * 4
    fits_fp32 = ram // (2 * kv_width * layers * 4)
    print(bc.table(["tokens", "KV cache fp32", "KV cache bf16", "fp32 KV fits in RAM"], est))
    print(f"full attention's fp32 KV cache alone outgrows this machine's RAM past ~{fits_fp32 // 1024}K tokens;")
    print(f"Infini-attention's memory (M, z) for the same model: {bc.mib(infini_state)} at any length")


if __name__ == "__main__":
    main()

"""Where a layer's time goes: torch.profiler tables of InfiniAttention and LocalAttention (same weights).

The layer of `layer_overhead.py` (hidden 1024, 8 heads of 128, segment 2048, 4 segments), one
forward+backward each, operators sorted by their own CPU time. For finding what to speed up; the
ratios to report come from `layer_overhead.py`, which times interleaved repetitions.

    python benchmarks/profile_layer.py                 # fp32
    python benchmarks/profile_layer.py --dtype bf16    # under bf16 autocast
    python benchmarks/profile_layer.py --quick         # small shapes: a smoke run
"""

from __future__ import annotations

import argparse

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch
from torch.profiler import ProfilerActivity, profile

from infini_attention.layers.attention import InfiniAttention, LocalAttention


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--rule", default="linear", help="linear, delta or deltanet")
    p.add_argument("--rows", type=int, default=20, help="operators shown per table")
    p.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    args = p.parse_args()
    bc.setup()
    hidden, heads, head_dim, n = (1024, 8, 128, 2048) if not args.quick else (128, 2, 64, 64)
    infini = InfiniAttention(hidden, heads, head_dim=head_dim, segment_len=n, rule=args.rule)
    local = LocalAttention(hidden, heads, head_dim=head_dim, segment_len=n)
    shared = local.state_dict().keys()
    local.load_state_dict({k: v for k, v in infini.state_dict().items() if k in shared})
    x = torch.randn(1, 4 * n, hidden, requires_grad=True)

    def step(layer):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            y, _ = layer(x)
        y.float().sum().backward()

    print(f"machine: {bc.machine()}")
    totals = {}
    for name, layer in (("infini", infini), ("local", local)):
        step(layer)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(layer)
        events = prof.key_averages()
        totals[name] = sum(e.self_cpu_time_total for e in events) / 1e3  # ms
        print(f"\n{name} ({args.rule if name == 'infini' else 'no memory'}, {args.dtype}, forward+backward)")
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    # one profiled run each: orientation only, the ratio to report comes from layer_overhead.py
    rows = [[name, f"{ms:.0f}"] for name, ms in totals.items()]
    rows.append(["infini / local", f"{totals['infini'] / totals['local']:.3f}"])
    print(bc.table(["layer", "profiled self CPU ms"], rows))


if __name__ == "__main__":
    main()

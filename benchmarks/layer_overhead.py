"""What the compressive memory costs: InfiniAttention time / the same layer with the memory off.

The layer without memory is `LocalAttention` with the same projection weights (segment-local
causal SDPA with RoPE): the ratio is the price of eqs 7-10 (retrieval, write, gate). Shape: the
paper's long-context LM layer, hidden 1024, 8 heads of dim 128, segment N = 2048, one sequence of
4N tokens (so that three of its four segments read a non-empty memory). Target: <= 1.10.

    python benchmarks/layer_overhead.py            # ~4 minutes on 2 CPU cores
    python benchmarks/layer_overhead.py --quick    # smoke run: small shapes, seconds

`--compiled` also times InfiniAttention with the opt-in `compile_memory_path()` (torch.compile of the
memory read and write; needs a C++ compiler on CPU), interleaved with the others.

Before/after a change to the op: `--baseline FILE` also times InfiniAttention running another
version of ops/infini/fast.py (e.g. `git show HEAD:src/infini_attention/ops/infini/fast.py > /tmp/fast_old.py`),
interleaved with the two others, and prints both ratios side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch

import infini_attention.layers.attention as attention_module
from infini_attention.layers.attention import InfiniAttention, LocalAttention
from infini_attention.ops.infini.fast import compile_memory_path


def load_op(path: str):
    """infini_attention() from another copy of ops/infini/fast.py."""
    spec = importlib.util.spec_from_file_location("fast_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.infini_attention


@contextlib.contextmanager
def memory_path_compiled(enabled: bool):
    """The opt-in compiled memory path for the duration (compiled graphs are cached across uses)."""
    if not enabled:
        yield
        return
    compile_memory_path(True)
    try:
        yield
    finally:
        compile_memory_path(False)


@contextlib.contextmanager
def op_swapped(op):
    """Make the layers call `op` (None: leave them alone) for the duration."""
    if op is None:
        yield
        return
    current = attention_module.infini_attention
    attention_module.infini_attention = op
    try:
        yield
    finally:
        attention_module.infini_attention = current


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes, one repetition: a smoke run")
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions (the median is reported)")
    p.add_argument("--segments", type=int, default=4, help="sequence length in segments")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rules", default="linear,delta", help="comma-separated: linear, delta, deltanet")
    p.add_argument("--baseline", default=None, help="another fast.py to time as well (before/after a change)")
    p.add_argument("--compiled", action="store_true", help="also time the opt-in compiled memory path")
    args = p.parse_args()
    bc.setup(args.threads)
    hidden, heads, head_dim, n = (1024, 8, 128, 2048) if not args.quick else (128, 2, 64, 64)
    reps = 1 if args.quick else args.reps
    length = args.segments * n
    x = torch.randn(1, length, hidden)
    baseline = load_op(args.baseline) if args.baseline else None
    print(f"machine: {bc.machine()}")
    print(f"layer: hidden {hidden}, {heads} heads of {head_dim}, segment {n}, batch 1 x {length} tokens")

    rows = []
    for rule in args.rules.split(","):
        infini = InfiniAttention(hidden, heads, head_dim=head_dim, segment_len=n, rule=rule)
        local = LocalAttention(hidden, heads, head_dim=head_dim, segment_len=n)
        shared = local.state_dict().keys()  # the projections: same weights
        local.load_state_dict({k: v for k, v in infini.state_dict().items() if k in shared})
        for dtype in ("fp32", "bf16"):
            for mode in ("forward", "forward+backward"):

                def step(layer, dtype=dtype, mode=mode, op=None, compiled=False):
                    def run():
                        with (
                            op_swapped(op),
                            memory_path_compiled(compiled),
                            torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"),
                        ):
                            if mode == "forward":
                                with torch.no_grad():
                                    layer(x)
                            else:
                                layer(x)[0].sum().backward()

                    return run

                fns = {"infini": step(infini), "local": step(local)}
                if baseline is not None:
                    fns["baseline"] = step(infini, op=baseline)
                if args.compiled:
                    fns["compiled"] = step(infini, compiled=True)
                t = bc.interleaved(fns, reps=reps)
                row = [rule, dtype, mode, f"{t['infini'] * 1e3:.0f}", f"{t['local'] * 1e3:.0f}"]
                row.append(f"**{t['infini'] / t['local']:.3f}**")
                if baseline is not None:
                    row += [f"{t['baseline'] * 1e3:.0f}", f"{t['baseline'] / t['local']:.3f}"]
                if args.compiled:
                    row += [f"{t['compiled'] * 1e3:.0f}", f"**{t['compiled'] / t['local']:.3f}**"]
                rows.append(row)
                compiled = f", compiled {t['compiled'] / t['local']:.3f}" if args.compiled else ""
                print(f"  {rule} {dtype} {mode}: {t['infini'] / t['local']:.3f}{compiled}", flush=True)
    print()
    headers = ["rule", "dtype", "pass", "infini ms", "local ms", "infini / local"]
    if baseline is not None:
        headers += ["baseline infini ms", "baseline / local"]
    if args.compiled:
        headers += ["compiled infini ms", "compiled / local"]
    print(bc.table(headers, rows))


if __name__ == "__main__":
    main()

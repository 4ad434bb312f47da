"""Bounded streaming: time per token and peak RSS after 1M tokens / after 8K tokens.

Two shapes, each streamed under torch.no_grad() in blocks of 8K tokens (logits for the last token
of each block only, as `infini stream` does):
- `tiny`: the whole `tiny` preset model (2 layers, 4 heads of 16, segment 64), to 1M tokens;
- `paper-lm layer`: ONE InfiniAttention layer of the paper's LM (hidden 1024, 8 heads of 128,
  segment 2048) fed random hidden states, to 128K tokens by default (`--paper-tokens 1M` took
  ~4 minutes on a quiet core); a 12-layer model costs 12x the time and is not run.
Time: in one process, each of the last 10 blocks of the long stream is followed by a block of a
fresh stream (tokens 0-8K), so the two are timed side by side; the ratio is of the medians over
those 10 blocks. Peak RSS (VmHWM) of the same process after its first 8K-token block and after
the long stream's last block before the 10 timed ones (which add a second stream): within one
process, so that the run-to-run variation of the peak does not read as growth with length. The
workers run with glibc's mmap threshold fixed at its initial 128 KiB (`MALLOC_MMAP_THRESHOLD_=131072`):
glibc otherwise raises it after large frees and keeps later large blocks in its heap, which made
identical 8K runs of the paper-lm layer peak anywhere between 480 and 612 MiB and one 1M stream
creep by 16% (and ran faster). `--default-malloc` measures with glibc's default.
Target: both ratios <= 1.05.

    python benchmarks/scaling.py            # ~10 minutes on 2 CPU cores
    python benchmarks/scaling.py --quick    # smoke run: 16K vs 8K tokens, tiny only
"""

from __future__ import annotations

import argparse
import json
import os
import time

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch

from infini_attention.layers.attention import InfiniAttention
from infini_attention.models import InfiniTransformer, ModelConfig
from infini_attention.utils import parse_count

BLOCK = 8192


def _build(shape: str):
    """A callable (block, state) -> state that streams one block of a fresh random stream."""
    if shape == "tiny":
        model = InfiniTransformer(ModelConfig.from_name("tiny")).eval()

        def step(i: int, state):
            ids = torch.randint(0, model.config.vocab_size, (1, BLOCK), generator=torch.Generator().manual_seed(i))
            return model(ids, state, logits_to_keep=1)[1]

        return step
    layer = InfiniAttention(1024, 8, head_dim=128, segment_len=2048).eval()

    def step(i: int, state):
        x = torch.randn(1, BLOCK, 1024, generator=torch.Generator().manual_seed(i))
        return layer(x, state)[1]

    return step


def worker(shape: str, tokens: int, timing: int) -> None:
    """Stream `tokens` tokens; with `timing`, also a fresh 8K stream after each of the last 10 blocks, timed in turn."""
    bc.setup()
    step = _build(shape)
    long_t, fresh_t = [], []
    with torch.no_grad():
        step(0, None)  # warm-up: first-call allocations and kernel selection
        state, blocks, rss_8k, rss_long = None, tokens // BLOCK, None, None
        for i in range(blocks):
            start = time.perf_counter()
            state = step(i, state)
            long_t.append((time.perf_counter() - start) / BLOCK)
            rss_8k = rss_8k or bc.peak_rss()  # after the first block
            if timing and i >= blocks - 10:
                rss_long = rss_long or bc.peak_rss()  # before the first block of the timing stream
                start = time.perf_counter()
                step(i, None)
                fresh_t.append((time.perf_counter() - start) / BLOCK)
    result = {"peak_rss": bc.peak_rss(), "peak_rss_8k": rss_8k, "peak_rss_long": rss_long or bc.peak_rss()}
    if timing:
        med = lambda t: sorted(t[-10:])[len(t[-10:]) // 2]
        result.update(long_us=1e6 * med(long_t), fresh_us=1e6 * med(fresh_t))
    print(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="16K instead of 1M tokens, tiny only: a smoke run")
    p.add_argument("--tokens", default=None, help="long stream length (default 1M = 2**20)")
    p.add_argument("--shapes", default="tiny,paper-lm")
    p.add_argument("--paper-tokens", default=str(1 << 17), help="long stream length of the paper-lm layer")
    p.add_argument("--default-malloc", action="store_true", help="leave glibc's dynamic mmap threshold on")
    p.add_argument("--worker", nargs=3, metavar=("SHAPE", "TOKENS", "TIMING"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return
    long = parse_count(args.tokens) if args.tokens else (1 << 14 if args.quick else 1 << 20)
    shapes = ["tiny"] if args.quick else args.shapes.split(",")
    paper_long = parse_count(args.paper_tokens)
    bc.setup()
    if not args.default_malloc:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"  # inherited by the workers
    print(f"machine: {bc.machine()}")
    print(f"streaming in blocks of {BLOCK} tokens, torch.no_grad(), fp32; a fresh process per shape")
    print(f"allocator: MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset (glibc default)')}")
    rows = []
    for shape in shapes:
        length = long if shape == "tiny" or args.quick else paper_long
        t = bc.run_worker(__file__, [shape, str(length), "1"])
        rss_short, big = t["peak_rss_8k"], t["peak_rss_long"]
        name = "tiny (model)" if shape == "tiny" else "paper-lm (1 layer)"
        rows.append(
            [
                name,
                f"{length // 1024}K" if length < 1 << 20 else f"{length / (1 << 20):g}M",
                f"{t['fresh_us']:.1f}",
                f"{t['long_us']:.1f}",
                f"**{t['long_us'] / t['fresh_us']:.3f}**",
                bc.mib(rss_short),
                bc.mib(big),
                f"**{big / rss_short:.3f}**",
            ]
        )
        print(f"  {name}: done", flush=True)
    print()
    headers = ["shape", "long stream", "us/token @0-8K", "us/token @end", "time ratio"]
    print(bc.table(headers + ["peak RSS after 8K", "peak RSS at end", "RSS ratio"], rows))


if __name__ == "__main__":
    main()

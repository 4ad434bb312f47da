"""Passkey of the transferred SmolLM2 (the shipped artifact, or another) with the sparse-cache variant of
several sizes beside the paper's memory alone (size 0): ops/infini/sparse_cache.py, runs/EXPERIMENTS.md.

    python runs/smollm2_sparse.py --sizes 0 64 --lengths 2000 4000 --depths 0 0.5 --keys 4 \
        --haystack runs/out/prose/heldout.txt --out runs/logs/smollm2-sparse

Every size runs the same instances (eval/passkey.py draws them from the seed, length and depth), with
the memory-reset ablation (which empties the cache too) where --ablation is given. Writes OUT/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from infini_attention.cli.demo_smollm2 import DEFAULT_ARTIFACT
from infini_attention.data.haystack import get_haystack
from infini_attention.eval import passkey
from infini_attention.hf.modeling import set_sparse_cache
from infini_attention.hf.transfer import load_transferred


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact", default=str(DEFAULT_ARTIFACT))
    p.add_argument("--sizes", type=int, nargs="+", default=[0, 64])
    p.add_argument("--lengths", type=int, nargs="+", default=[2000, 4000])
    p.add_argument("--depths", type=float, nargs="+", default=[0.0, 0.5])
    p.add_argument("--keys", type=int, default=4)
    p.add_argument("--format", default="passkey")
    p.add_argument("--haystack", default=None, help="a text file (default: the paper's filler)")
    p.add_argument("--ablation", action="store_true", help="also the memory-reset run")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--out", default="runs/logs/smollm2-sparse")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_transferred(args.artifact)
    tokenizer = model.tokenizer
    for size in args.sizes:
        set_sparse_cache(model, size)
        started = time.perf_counter()
        rows = passkey.evaluate_passkey(
            model,
            tokenizer,
            args.lengths,
            args.depths,
            args.keys,
            ablation=args.ablation,
            progress=False,
            haystack=get_haystack(args.haystack) if args.haystack else None,
            fmt=args.format,
            bf16=args.bf16,
        )
        for r in rows:
            print(
                f"size {size} {r.length} depth {r.depth} {r.found_via} reset={r.reset_memory}: "
                f"{r.accuracy:.2f} {r.answers}",
                flush=True,
            )
        name = f"{args.format}-{Path(args.haystack).stem if args.haystack else 'filler'}-cache{size}"
        result = {
            "size": size,
            "args": vars(args),
            "seconds": time.perf_counter() - started,
            "summary": passkey.summary(rows),
            "rows": [asdict(r) for r in rows],
        }
        (out / f"{name}.json").write_text(json.dumps(result, indent=1))
        print(f"size {size}: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()

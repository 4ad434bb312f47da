"""Long-document perplexity of the converted SmolLM2 by position bucket: memory vs memory reset vs the original
model with full attention (issue 14's perplexity goal).

    python runs/tools/books.py --out runs/out/books          # held-out books (none in any training corpus here)
    python runs/smollm2_ppl.py --books runs/out/books/*.txt --tokens 32K --adapters shipped none \
        --out runs/out/ppl-32k > docs/results/smollm2-ppl.md

Each book's first --tokens tokens are read by
  - each converted model (the shipped transfer artifact, with the fine-tuned memory adapter of --adapters:
    "shipped" = assets/smollm2-memory, "none" = the artifact alone, or a folder written by hf/lora.py),
    4 segments per call with the state carried ("memory"), and again with the memory emptied before every
    segment ("reset": only the 256-token segment is seen);
  - the original model with full attention over non-overlapping windows of --window tokens (8192: its
    trained context), so positions 0-8K see the whole document so far and later ones their own window.
Positions are bucketed by the predicted token's index: 0-2K, 2K-8K, 8K-32K, ... Issue 14 asks: memory beats
reset by >= 10% at 8K-32K, and at 0-8K closes >= 50% of the gap between reset and the original; both are
printed. Writes OUT.json with everything; prints markdown (again: `python runs/smollm2_ppl.py --report OUT.json`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infini_attention.cli.demo_smollm2 import DEFAULT_ADAPTER, DEFAULT_ARTIFACT
from infini_attention.eval.perplexity import _Buckets, bucket_edges, evaluate_perplexity
from infini_attention.utils import format_count, parse_count


def adapter_path(name: str) -> Path | None:
    if name == "none":
        return None
    folder = DEFAULT_ADAPTER if name == "shipped" else Path(name)
    if not (folder / "adapter.json").is_file():
        raise FileNotFoundError(f"--adapters {name}: no adapter.json in {folder}")
    return folder


@torch.no_grad()
def original_buckets(model, documents, window: int, edges: list[int], bf16: bool) -> _Buckets:
    """The original model, full attention over non-overlapping `window`-token windows of each document."""
    buckets = _Buckets(edges)
    for _, tokens in documents:
        for start in range(0, len(tokens) - 1, window):
            ids = torch.as_tensor(tokens[start : min(len(tokens), start + window + 1)])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(ids[None, :-1]).logits[0]
            buckets.add(start + 1, F.cross_entropy(logits.float(), ids[1:], reduction="none"))
    return buckets


def nll_of(rows: list[dict], key: str, lo: int, hi: int) -> tuple[float, int]:
    """Summed NLL and token count of the buckets inside [lo, hi) (rows as evaluate_perplexity returns)."""
    inside = [r for r in rows if r["start"] >= lo and r["end"] <= hi and r.get(key)]
    return sum(math.log(r[key]) * r["tokens"] for r in inside), sum(r["tokens"] for r in inside)


def ppl_between(rows, key, lo, hi) -> float | None:
    nll, count = nll_of(rows, key, lo, hi)
    return math.exp(nll / count) if count else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--books", nargs="+", required=True, help="plain-text files, one book each")
    p.add_argument("--tokens", default="32K", help="read the first N tokens of each book")
    p.add_argument("--adapters", nargs="+", default=["shipped", "none"], help="shipped, none, or adapter folders")
    p.add_argument("--artifact", default=str(DEFAULT_ARTIFACT))
    p.add_argument("--window", type=int, default=8192, help="the original's full-attention window")
    p.add_argument("--first-bucket", default="2K", help="end of the first position bucket (then x4 each)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--out", required=True, help="path prefix: OUT.json")
    args = p.parse_args()
    adapters = {name: adapter_path(name) for name in args.adapters}  # a wrong name fails before the loading
    tokens = parse_count(args.tokens)
    for book in args.books:
        if not Path(book).is_file():
            raise FileNotFoundError(f"--books: no file {book} (runs/tools/books.py writes them)")

    from infini_attention.hf.transfer import load_original, load_transferred

    started = time.perf_counter()
    original, tokenizer = load_original("gguf:default")
    documents = []
    for book in args.books:
        ids = np.asarray(tokenizer.encode(Path(book).read_text()), dtype=np.int64)
        if len(ids) < tokens:
            raise ValueError(f"{book} has {len(ids)} tokens, fewer than --tokens {tokens}")
        documents.append((Path(book).stem, ids[:tokens]))  # predicts positions 1 .. tokens - 1
    first = parse_count(args.first_bucket)
    edges = bucket_edges(first)
    result = {"args": vars(args), "books": [name for name, _ in documents], "tokens_per_book": tokens, "models": {}}
    t = time.perf_counter()
    orig = original_buckets(original.eval(), documents, args.window, edges, args.bf16)
    result["original"] = {
        "seconds": round(time.perf_counter() - t, 1),
        "buckets": [
            {"start": int(lo), "end": int(hi), "tokens": int(c), "ppl": math.exp(n / c)}
            for lo, hi, n, c in zip(orig.edges, orig.edges[1:], orig.nll, orig.count)
            if c
        ],
    }
    print(f"original, {args.window}-token windows: {result['original']['seconds']} s", flush=True)
    del original
    for name, folder in adapters.items():
        model = load_transferred(args.artifact, adapter=folder)
        run = evaluate_perplexity(model, documents, first_bucket=first, bf16=args.bf16, progress=False)
        run.pop("gates")
        result["models"][name] = run
        print(f"{name}: {run['seconds']:.0f} s", flush=True)
        del model
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".json").write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))


def report(result: dict) -> str:
    original = result["original"]["buckets"]
    n = result["tokens_per_book"]
    lines = [
        f"Perplexity by position, the first {format_count(n)} tokens of {len(result['books'])} held-out books "
        f"({', '.join(result['books'])}); the original: full attention over "
        f"{result['args']['window']:,}-token windows.",
        "",
        "| positions | tokens | original | " + " | ".join(f"{m}: memory | {m}: reset" for m in result["models"]) + " |",
        "|---|---|---|" + "---|---|" * len(result["models"]),
    ]
    for i, row in enumerate(original):
        cells = []
        for run in result["models"].values():
            b = run["buckets"][i]
            cells += [f"{b['ppl']:.2f}", f"{b['ppl_reset']:.2f}"]
        label = f"{format_count(row['start']) if row['start'] else 0}-{format_count(row['end'])}"
        lines.append(f"| {label} | {row['tokens']:,} | {row['ppl']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Issue 14's goals:", ""]
    for name, run in result["models"].items():
        rows = run["buckets"]
        far = [ppl_between(rows, k, 8192, 32768) for k in ("ppl", "ppl_reset")]
        near = [ppl_between(rows, k, 0, 8192) for k in ("ppl", "ppl_reset")] + [ppl_between(original, "ppl", 0, 8192)]
        if far[0]:
            lines.append(
                f"- {name}, positions 8K-32K: memory {far[0]:.2f} vs reset {far[1]:.2f}: "
                f"{100 * (1 - far[0] / far[1]):.1f}% lower with the memory (goal: >= 10%)"
            )
        gap = near[1] - near[2]
        closed = (near[1] - near[0]) / gap if gap > 0 else float("nan")
        lines.append(
            f"- {name}, positions 0-8K: memory {near[0]:.2f}, reset {near[1]:.2f}, original {near[2]:.2f}: "
            f"{100 * closed:.0f}% of the reset model's gap to the original closed (goal: >= 50%)"
        )
    lines.append(f"\n{result['seconds']:.0f} s in all.")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--report"]:  # the markdown again from a written OUT.json
        print(report(json.loads(Path(sys.argv[2]).read_text())))
    else:
        main()

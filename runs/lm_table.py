"""The measurements and the report of runs/lm_table.sh (the long-context LM comparison).

    python runs/lm_table.py footprint --checkpoint runs/out/lm/xl/checkpoint --length 32K \
        --out runs/out/lm/xl-footprint.json
    python runs/lm_table.py report --out runs/out/lm --runs full local xl memorizing infini-linear infini-delta \
        --doc docs/results/lm.md

`footprint` counts a trained model's parameters and the state it carries after `length` tokens, by the paper's
Table 1 formula (eval/footprint.py) and measured on the real state. `report` collects what the script wrote
(training metrics, `infini eval ppl` JSON, footprints, steps.jsonl with the exact commands and wall times) into
a markdown page, prints the commands, and says, from the numbers, whether the paper's ordering holds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LABELS = {
    "full": "full attention (reference)",
    "local": "local (no memory)",
    "xl": "Transformer-XL",
    "memorizing": "Memorizing Transformer",
    "infini-linear": "Infini, linear",
    "infini-delta": "Infini, linear + delta",
}
TIE = 0.01  # relative perplexity differences under 1% are called ties (one seed per kind)


def footprint(args) -> int:
    import torch

    from infini_attention.checkpoint import load_model
    from infini_attention.eval.footprint import measured_footprint, memory_footprint
    from infini_attention.utils import parse_count

    torch.manual_seed(0)
    model = load_model(args.checkpoint)
    cfg = model.config
    length = parse_count(args.length)
    measured = measured_footprint(model, length)
    result = {
        "attention": cfg.attention,
        "rule": cfg.rule,
        "length": length,
        "parameters": sum(p.numel() for p in model.parameters()),
        "formula_floats": memory_footprint(cfg, length=length),
        "measured_floats": measured.floats,
        "measured_bytes": measured.nbytes,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
    return 0


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _count(n: float) -> str:
    """Decimal, as the paper writes memory sizes: 8.4K, 16.8M."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _pow2(n: int) -> str:
    from infini_attention.utils import format_count

    return format_count(n) if n else "0"


def _ppl(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _minutes(s: float | None) -> str:
    return "-" if s is None else f"{s / 60:.1f} min"


def _compare(a: float, b: float) -> str:
    """How perplexity a compares with b, in words and percent."""
    rel = a / b - 1
    if abs(rel) < TIE:
        return f"about equal ({a:.3f} vs {b:.3f}, {rel:+.1%})"
    return f"{'lower' if rel < 0 else 'HIGHER'} ({a:.3f} vs {b:.3f}, {rel:+.1%})"


def collect(out: Path, runs: list[str]) -> dict:
    steps = _jsonl(out / "steps.jsonl") if (out / "steps.jsonl").exists() else []
    last_step = {s["name"]: s for s in steps}  # the script may run again: the latest entry of each step counts
    data = {}
    for run in runs:
        metrics = _jsonl(out / run / "metrics.jsonl")
        data[run] = {
            "train": json.loads((out / run / "train_config.json").read_text()),
            "model": json.loads((out / run / "checkpoint" / "config.json").read_text()),
            "metrics": metrics,
            "ppl": json.loads((out / f"{run}-ppl.json").read_text()),
            "footprint": json.loads((out / f"{run}-footprint.json").read_text()),
            "steps": {k: last_step.get(f"{k}-{run}") for k in ("train", "eval", "footprint")},
        }
    env = json.loads((out / "env.json").read_text()) if (out / "env.json").exists() else {}
    order = []
    for s in steps:  # commands in the order they last ran
        if last_step.get(s["name"]) is s:
            order.append(s)
    return {"runs": data, "env": env, "steps": order}


def _bucket_columns(data: dict) -> list[tuple[int, int, str]]:
    """(start, end, label) of every position bucket of any run; the last label ends where the documents end."""
    longest = max(max(d["tokens"] for d in r["ppl"]["per_document"]) + 1 for r in data.values())
    seen = {}
    for r in data.values():
        for b in r["ppl"]["buckets"]:
            seen[(b["start"], b["end"])] = f"{_pow2(b['start'])}-{_pow2(min(b['end'], longest))}"
    return [(s, e, label) for (s, e), label in sorted(seen.items())]


def _bucket(r: dict, start: int, key: str = "ppl") -> float | None:
    for b in r["ppl"]["buckets"]:
        if b["start"] == start:
            return b.get(key)
    return None


def render(c: dict, runs: list[str]) -> str:
    data, env = c["runs"], c["env"]
    any_run = data[runs[0]]
    t, m = any_run["train"], any_run["model"]
    tokens_per_run = t["steps"] * t["batch_size"] * t["seq_len"]
    long_runs = [r for r in runs if r != "full"]
    length = any_run["footprint"]["length"]
    ppl_any = (data[long_runs[0]] if long_runs else any_run)["ppl"]
    docs = ", ".join(f"{d['name'].split(':')[-1]} ({d['tokens'] + 1:,} tokens read)" for d in ppl_any["per_document"])
    try:  # epochs of the training books (the tokenized corpus is cached by then)
        from infini_attention.data.documents import load_corpus

        corpus = load_corpus(t["data"], t["tokenizer"], t["data_split"], progress=False)
        epochs = tokens_per_run / sum(int(corpus.lengths[i]) for i in corpus.split(t["val_docs"])[0])
    except Exception:  # the data moved or changed: the report still renders
        epochs = float("nan")
    L = []
    L.append("# Long-context language modelling: every attention kind on the King James Bible (CPU scale)")
    L.append("")
    L.append(
        "The paper's Table 2 (PG19 / Arxiv-math perplexity and memory size of Transformer-XL, Memorizing "
        "Transformers and Infini-Transformer), redone at a scale that trains every kind on one shared CPU "
        "thread in about 40 minutes. Made by `bash runs/lm_table.sh` (the exact commands are at the end); "
        "per-run metrics in `runs/logs/lm/`."
    )
    L.append("")
    L.append("## Setup (identical for every kind)")
    L.append("")
    params = {r: data[r]["footprint"]["parameters"] for r in runs}
    L.append(
        f"- Model: {m['num_layers']} layers, hidden {m['hidden_size']}, {m['num_heads']} heads of "
        f"{m['head_dim']} (the `{t['preset']}` preset's heads, no grouped-query attention), SwiGLU {m['ffn_size']}, "
        f"segment N = {m['segment_len']}, byte vocabulary; {min(params.values()):,}-{max(params.values()):,} "
        "parameters (the kinds differ only by their gate logits)."
    )
    L.append(
        f"- Data: `{t['data']}` split into its books (`--data-split {t['data_split']}`), byte tokenizer. "
        f"Validation = the held-out books ({t['val_docs']:g} of the books, chosen by a hash of their names, the "
        f"same for every run): {docs}."
    )
    L.append(
        f"- Training: {t['steps']} steps x {t['batch_size']} sequences x {t['seq_len']} tokens = "
        f"{tokens_per_run / 1e6:.2f}M tokens for every kind, the same batches (a pure function of the step), "
        f"{t['seq_len'] // m['segment_len']} segments per sequence with full back-propagation through all of them "
        f"(no truncation). AdamW lr {t['lr']:g}, {t['warmup_steps']} warm-up steps then cosine to "
        f"{t['min_lr_ratio']:g} x lr, weight decay {t['weight_decay']:g}, gates at lr {t['gate_lr']:g} without "
        f"decay, clip {t['clip']:g}, seed {t['seed']}, float32."
    )
    L.append(
        f"- `full` trains on the same {t['seq_len']}-token sequences (the same tokens and batches as the others) "
        f"with ordinary causal attention over the whole sequence: it is the reference of what exact attention over "
        f"{t['seq_len']} tokens buys. It is evaluated only as far as it was trained, the first "
        f"{t['seq_len']} tokens of each book (its RoPE positions beyond are untrained and its KV cache grows "
        "with the input), so it has a number in the first position bucket only."
    )
    L.append(
        f"- Evaluation: `infini eval ppl` streams each validation book (at most {_pow2(length)} tokens) through the "
        "model with the state carried from segment to segment, perplexity per byte by position bucket. The "
        "memory-reset ablation runs the same model on the same tokens with every memory emptied before each "
        "segment (Infini: M and z; Memorizing: the kNN memory); `local` and `xl` have no memory to reset."
    )
    load = env.get("loadavg_start")
    L.append(
        f"- Machine: {env.get('cpus', '?')}-core CPU shared with other jobs, one thread per run "
        f"(OMP_NUM_THREADS=1), torch {env.get('torch', '?')}, run {env.get('date', '?')}"
        + (f"; load average {load[0]:.1f} at the start" if load else "")
        + ". Tokens/s and wall times therefore carry the noise of the other jobs (load averages per step in "
        "`runs/logs/lm/steps.jsonl`)."
    )
    L.append("")

    # the main table
    L.append("## The table")
    L.append("")
    infini_floats = next((data[r]["footprint"]["formula_floats"] for r in runs if r.startswith("infini")), None)
    L.append(
        f"| model | memory, floats (Table 1 formula, {_pow2(length)} tokens read) | measured state | "
        "x Infini's memory | held-out ppl | ppl, memory reset | train tokens/s | train wall | eval wall |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        d = data[r]
        fp, ppl, mt = d["footprint"], d["ppl"], d["metrics"][-1]
        ratio = f"{fp['formula_floats'] / infini_floats:.1f}x" if infini_floats else "-"
        if r == "full":
            overall = f"({_ppl(ppl['ppl'])} on the first {_pow2(t['seq_len'])} only)"
        else:
            overall = f"**{_ppl(ppl['ppl'])}**"
        L.append(
            f"| {LABELS.get(r, r)} | {_count(fp['formula_floats'])} | {_bytes(fp['measured_bytes'])} "
            f"({_count(fp['measured_floats'])} floats) | {ratio} | {overall} | {_ppl(ppl.get('ppl_reset'))} | "
            f"{mt['tokens_per_s']:,.0f} | {_minutes((d['steps']['train'] or {}).get('seconds'))} | "
            f"{_minutes((d['steps']['eval'] or {}).get('seconds'))} |"
        )
    L.append("")
    L.append(
        f"Memory: what a sequence carries from one segment to the next after {_pow2(length)} tokens (`infini`: "
        "M and z per head and layer; `xl`: the previous segment's keys and values at every layer; `memorizing`: "
        "the keys and values of every past segment at its one memory layer, capacity "
        f"{data.get('memorizing', any_run)['model']['knn_max_memories']:,} tokens; `local`: the keys and values "
        "of the unfinished segment, "
        "at most N - 1 tokens per layer; `full`: its whole KV cache, growing with the input). Measured = the "
        "float32 state a model hands back after streaming that many tokens (eval/footprint.py); at a segment "
        "boundary it equals the formula. Perplexity is per byte over all predicted positions of the validation "
        "books."
    )
    L.append("")

    # by position
    cols = _bucket_columns(data)
    L.append("## Perplexity by position in the book")
    L.append("")
    L.append("| model | " + " | ".join(label for _, _, label in cols) + " | all |")
    L.append("|---|" + "---|" * (len(cols) + 1))
    for r in runs:
        d = data[r]
        cells = [_ppl(_bucket(d, s)) for s, _, _ in cols]
        L.append(f"| {LABELS.get(r, r)} | " + " | ".join(cells) + f" | {_ppl(d['ppl']['ppl'])} |")
        if "ppl_reset" in d["ppl"]:
            cells = [_ppl(_bucket(d, s, "ppl_reset")) for s, _, _ in cols]
            reset_all = _ppl(d["ppl"]["ppl_reset"])
            L.append(f"| {LABELS.get(r, r)}, memory reset | " + " | ".join(cells) + f" | {reset_all} |")
    tokens = [
        next((b["tokens"] for r in runs for b in data[r]["ppl"]["buckets"] if b["start"] == s), 0) for s, _, _ in cols
    ]
    L.append("| predicted tokens | " + " | ".join(f"{n:,}" for n in tokens) + " | |")
    L.append("")

    # the paper's claims, checked against these numbers
    L.append("## Does the paper's ordering hold at this scale?")
    L.append("")
    L.append(
        f"Computed from the tables above (one seed per kind: differences under {TIE:.0%} are called ties, and "
        "differences of a few percent are within what another seed could change)."
    )
    L.append("")
    long_ppl = sorted((data[r]["ppl"]["ppl"], r) for r in runs if r in ("xl", "memorizing") or r.startswith("infini"))
    L.append(
        "Held-out perplexity, best first: "
        + " < ".join(f"{LABELS.get(r, r)} ({p:.3f})" for p, r in long_ppl)
        + ". The paper's order is Infini < Memorizing < Transformer-XL."
    )
    L.append("")
    first = cols[0][0] if cols else 0
    late = cols[-1][0] if cols else 0
    for r in [x for x in runs if x.startswith("infini")]:
        d, fp = data[r], data[r]["footprint"]
        for base in ("xl", "memorizing"):
            if base in data:
                b = data[base]
                L.append(
                    f"- {LABELS[r]} vs {LABELS[base]}: perplexity {_compare(d['ppl']['ppl'], b['ppl']['ppl'])}, "
                    f"at {fp['formula_floats'] / b['footprint']['formula_floats']:.2%} of its memory "
                    f"({b['footprint']['formula_floats'] / fp['formula_floats']:.0f}x less)."
                )
        if "ppl_reset" in d["ppl"]:
            late_mem, late_reset = _bucket(d, late), _bucket(d, late, "ppl_reset")
            L.append(
                f"- {LABELS[r]} vs its memory-reset ablation: {_compare(d['ppl']['ppl'], d['ppl']['ppl_reset'])} "
                f"overall; in the last bucket {_compare(late_mem, late_reset)}."
            )
        if "local" in data:
            L.append(
                f"- {LABELS[r]} vs local attention trained without memory: "
                f"{_compare(d['ppl']['ppl'], data['local']['ppl']['ppl'])}."
            )
        if "full" in data:
            L.append(
                f"- {LABELS[r]} vs the full-attention reference on the first {_pow2(t['seq_len'])} tokens: "
                f"{_compare(_bucket(d, first), data['full']['ppl']['ppl'])}."
            )
    if "infini-linear" in data and "infini-delta" in data:
        delta, linear = data["infini-delta"]["ppl"]["ppl"], data["infini-linear"]["ppl"]["ppl"]
        L.append(f"- Delta vs linear rule: {_compare(delta, linear)}.")
    if "memorizing" in data and "ppl_reset" in data["memorizing"]["ppl"]:
        d = data["memorizing"]
        L.append(f"- Memorizing vs its own memory reset: {_compare(d['ppl']['ppl'], d['ppl']['ppl_reset'])}.")
    if "xl" in data and "local" in data:
        L.append(f"- Transformer-XL vs local: {_compare(data['xl']['ppl']['ppl'], data['local']['ppl']['ppl'])}.")
    L.append("")

    # gates
    gated = [r for r in runs if any(g for g in data[r]["ppl"]["gates"])]
    if gated:
        from infini_attention.eval.perplexity import gate_table

        L.append("## Gates after training")
        L.append("")
        L.append(
            "sigmoid(beta) per layer (rows) and head (columns): 0 = local attention only, 1 = memory only "
            "(they start at 0.5)."
        )
        L.append("")
        for r in gated:
            L.append(f"{LABELS.get(r, r)}:")
            L.append("```")
            L.append(gate_table(data[r]["ppl"]["gates"]))
            L.append("```")
        L.append("")

    # training curves
    L.append("## Training loss (nats per byte, mean over the last 20 steps before each point)")
    L.append("")
    marks = sorted({max(1, round(t["steps"] * f)) for f in (0.25, 0.5, 0.75, 1.0)})
    L.append("| model | " + " | ".join(f"step {s}" for s in marks) + " |")
    L.append("|---|" + "---|" * len(marks))
    for r in runs:
        losses = [x["loss"] for x in data[r]["metrics"]]
        cells = []
        for s in marks:
            window = losses[max(0, s - 20) : s]
            cells.append(f"{sum(window) / len(window):.3f}" if window else "-")
        L.append(f"| {LABELS.get(r, r)} | " + " | ".join(cells) + " |")
    L.append("")

    L.append("## The scale, and what would change at the paper's")
    L.append("")
    L.append(
        f"Chosen so that six training runs and their evaluations fit in about 40 minutes of one shared CPU thread: "
        f'a model of about 0.5M parameters (the "mini" of runs/EXPERIMENTS.md) trained on '
        f"{tokens_per_run / 1e6:.1f}M tokens ({epochs:.2f} epochs of the training books), a "
        f"segment of {m['segment_len']} so that a {t['seq_len']}-token sequence has "
        f"{t['seq_len'] // m['segment_len']} segments of full BPTT (public reproductions found 2-4 segments gave "
        "the memory no reason to be used), and held-out books long enough to fill late position buckets. At the "
        "paper's scale (12 layers, 8 heads of 128, FFN 4096, N = 2048 subword tokens, 32K-token training "
        "sequences of 16 segments, batch 64, Adafactor with 1000 warm-up steps, whole PG19 books and Arxiv-math) "
        "several things differ: (1) the models here are tiny and far from converged, so what dominates "
        "perplexity is local byte statistics, which every kind learns alike; (2) a byte-level segment of "
        f"{m['segment_len']} holds about "
        f"{m['segment_len'] // 6} words where the paper's holds pages, so much of what a memory would likely "
        "supply there (the rest of the paragraph) is already inside the local window or the XL cache here, and "
        "what is left for a memory in the Bible (names, formulae repeated across chapters) is thin; (3) the memory "
        "ratios grow with the model: Infini's memory does not depend on N or on the length read, while XL's "
        "grows with N and Memorizing's with the length read (the paper's 114x); (4) the Memorizing baseline "
        "here has local attention in its other layers, not Transformer-XL caches, so its memory is the kNN "
        "memory alone."
    )
    L.append("")

    L.append("## Commands")
    L.append("")
    L.append("Each step of `runs/lm_table.sh`, in order, with its wall time:")
    L.append("")
    L.append("```bash")
    L.append("export OMP_NUM_THREADS=1 INFINI_ATTENTION_CACHE=runs/out/lm/cache")
    for s in c["steps"]:
        L.append(f"# {s['name']}: {s['seconds']:.0f} s")
        L.append(s["command"])
    L.append(f"python runs/lm_table.py report --out runs/out/lm --runs {' '.join(runs)} --doc docs/results/lm.md")
    L.append("```")
    L.append("")
    return "\n".join(L)


def report(args) -> int:
    out = Path(args.out)
    c = collect(out, args.runs)
    print("commands:")
    for s in c["steps"]:
        print(f"  [{s['seconds']:7.1f} s] {s['command']}")
    text = render(c, args.runs)
    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    print(text)
    print(f"wrote {doc}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("footprint", help="parameters and state size (formula and measured) of a checkpoint")
    f.add_argument("--checkpoint", required=True)
    f.add_argument("--length", default="32K", help="tokens streamed before the state is measured")
    f.add_argument("--out", required=True, help="JSON file to write")
    r = sub.add_parser("report", help="collect the run outputs into the markdown page")
    r.add_argument("--out", default="runs/out/lm")
    r.add_argument("--runs", nargs="+", default=list(LABELS))
    r.add_argument("--doc", default="docs/results/lm.md")
    args = p.parse_args(argv)
    return {"footprint": footprint, "report": report}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())

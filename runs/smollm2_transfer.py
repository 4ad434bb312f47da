"""Attention transfer (LoLCATs route, issue #14) for SmolLM2-135M: every converted layer learns to reproduce
the original model's own full attention, layer by layer (src/infini_attention/hf/transfer.py).

    # dry run on a tiny random Llama (seconds, CPU)
    python runs/smollm2_transfer.py train --tiny --segment-len 32 --context 256 --contexts 2 --steps 10 \\
        --feature-map hedgehog --key-shift 1 --out runs/out/transfer/tiny
    python runs/smollm2_transfer.py eval --out runs/out/transfer/tiny --tokens 1024 --first-bucket 256
    # SmolLM2 (CPU, small settings: minutes)
    OMP_NUM_THREADS=1 python runs/smollm2_transfer.py train --source gguf:default --segment-len 256 \\
        --context 2048 --contexts 4 --steps 40 --feature-map hedgehog --out runs/out/transfer/hedgehog
    OMP_NUM_THREADS=1 python runs/smollm2_transfer.py eval --out runs/out/transfer/hedgehog --tokens 8192
    OMP_NUM_THREADS=1 python runs/smollm2_transfer.py export --out runs/out/transfer/hedgehog
    OMP_NUM_THREADS=1 infini eval ruler --model runs/out/transfer/hedgehog/converted --lengths 2000 4000

    # needle contexts: dry run (seconds), then the SmolLM2 run (CPU, one thread: ~16 min, see below)
    python runs/smollm2_transfer.py train --tiny --segment-len 32 --context 256 --contexts 3 \\
        --needle-contexts 2 --needle-weight 50 --steps 5 --feature-map hedgehog --out /tmp/tr-needles
    OMP_NUM_THREADS=1 python runs/smollm2_transfer.py train --source gguf:default --segment-len 256 \\
        --context 2048 --contexts 8 --needle-contexts 4 --needle-weight 50 --steps 40 --feature-map hedgehog \\
        --inputs student --out runs/out/transfer/hedgehog-needles
    OMP_NUM_THREADS=1 python runs/smollm2_transfer.py eval --out runs/out/transfer/hedgehog-needles --no-plain
    OMP_NUM_THREADS=1 python runs/smollm2_transfer.py export --out runs/out/transfer/hedgehog-needles
    # retrieval through the memory (the paper's prompt, filler haystack; depth 1 = the question's own segment)
    OMP_NUM_THREADS=1 python runs/smollm2.py passkey --model runs/out/transfer/hedgehog-needles/converted \\
        --lengths 2000 4000 --keys 2 --device cpu --name transfer-needles --out runs/out/transfer/hedgehog-needles

`train` (1) runs the original model once over N contexts of KJV text (Genesis held out, as in
runs/smollm2.py) and stores every layer's attention input and output (bf16, OUT/teacher.safetensors;
`--teacher OTHER/teacher.safetensors` reuses another run's); (2) converts the model and trains each
layer in turn on the MSE between its output (after o_proj, memory carried across segments) and the
teacher's, past the first segment; (3) after every layer writes the trained parameters so far
(OUT/transfer.safetensors: gates, feature maps, shift taps) and OUT/manifest.json (settings,
per-layer errors, wall times). `--resume` picks up after the last finished layer (and reuses the
stored teacher activations). `eval` reads Genesis through the plain converted model (the paper's
σ = ELU + 1, gate 0.5) and through the transferred one, memory on vs memory reset, by position
bucket (infini_attention.eval.perplexity), into OUT/eval.json. `export` writes the transferred model as
an ordinary converted transformers folder (OUT/converted: its config records the feature map; the
tokenizer comes along), which every evaluation loads (`infini eval ruler --model OUT/converted`).

Needle contexts (`--needle-contexts K`, default 0: plain text only): K of the N contexts are needle
prompts followed by their answer (hf/transfer.py:needle_context; format `passkey`, the paper's prompt,
or several taken in turn with `--needle-formats passkey ruler paraphrase`) over running KJV prose (the
books but Genesis, verse prefixes removed), the needle at a random depth in an earlier segment than
the question, so that at the question and answer tokens the teacher's output depends on a needle only
the memory can bring back. The N - K plain contexts are the windows a run of N - K contexts takes (with
N = 8, K = 4: E19's four). `--needle-weight W` multiplies the squared error at those tokens (question +
answer, ~16 tokens with SmolLM2's tokenizer) by W in a weighted mean (the loss keeps the scale of a
plain MSE); the layer rows then also report the error there (`marked`, `rel_marked`: local only,
before, after). The teacher file stores the token ids and the marked positions: `--teacher` and
`--resume` refuse activations collected from other ids (another seed or needle setting) or from a file
older than needle contexts; W is a training setting, so one collection serves every W. The manifest
records the settings (run.needle_*) and each needle (manifest.needles: format, key, depth, spans).
`--inputs student` (each layer's input from the converted model itself, memory off) made E19 work and
is the one to use; `--inputs teacher` (LoLCATs as published) stays available.

Wall time of the SmolLM2 needle run above, from E19's logs (one thread, shared cores): load ~60 s;
contexts ~10 s (tokenizing the KJV + 4 prompts); collect 8 contexts ~250 s (E19: 126 s for 4, with the
tokenizing); own inputs ~220 s (E19: 111 s for 4); training ~390 s (E19: 278 s for 30 x 40 steps, which
the context count does not change, + ~110 s of evaluations over 8 contexts, 55 s over 4); in all ~16 min
(14-18), teacher.safetensors 1.1 GB, peak memory ~4 GB. E19's teacher files cannot be reused: they
hold no needle context.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import re
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

KJV = "/work/shared/corpora/kjv.txt"
EVAL_BOOK = "kjv.txt:Ge"  # Genesis: held out of the transfer contexts, the perplexity document
TEACHER = "teacher.safetensors"
TINY = dict(  # --tiny: a random Llama small enough for a dry run on a CPU
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
)
# the needle settings of runs recorded before they existed (--resume compares manifests with these filled in)
NEEDLE_DEFAULTS = dict(needle_contexts=0, needle_weight=1.0, needle_formats=["passkey"])


def log(out: Path, message: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {message}"
    print(line, flush=True)
    with open(out / "log.txt", "a") as f:
        f.write(line + "\n")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} thread(s)"


# ---------------------------------------------------------------------------------------------
# Sources and text


def load_original(source: str):
    """(original float32 model in eval mode, data/tokenizers.py tokenizer or None) for gguf:..., a folder, or tiny."""
    if source == "tiny":
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(1234)  # the same tiny model in every process
        return LlamaForCausalLM(LlamaConfig(**TINY, tie_word_embeddings=True)).eval(), None
    from infini_attention.hf.transfer import load_original as load_source

    return load_source(source)


def kjv_books() -> list[tuple[str, str]]:
    from infini_attention.data.documents import iter_documents

    return list(iter_documents(KJV, "verse"))


def transfer_ids(tokenizer, contexts: int, length: int, seed: int) -> torch.Tensor:
    """(contexts, length) token ids: windows of the KJV without Genesis, spread evenly over it (tiny: random)."""
    if tokenizer is None:
        return torch.randint(0, TINY["vocab_size"], (contexts, length), generator=torch.Generator().manual_seed(seed))
    if contexts == 0:  # every context a needle prompt
        return torch.zeros((0, length), dtype=torch.long)
    text = "".join(text for name, text in kjv_books() if name != EVAL_BOOK)
    tokens = np.asarray(tokenizer.encode(text), dtype=np.int64)
    if len(tokens) < contexts * length:
        raise ValueError(f"the KJV without Genesis has {len(tokens)} tokens, fewer than {contexts} x {length}")
    starts = np.linspace(0, len(tokens) - length, contexts).astype(int)
    return torch.as_tensor(np.stack([tokens[s : s + length] for s in starts]))


class TinyTokenizer:
    """--tiny's needle prompts: words, single digits and punctuation runs hashed (crc32) into the tiny
    vocabulary, so that the paper's prompt fits a dry run's 256-token context (its bytes would not)."""

    name = "tiny-hash"
    vocab_size = TINY["vocab_size"]
    PIECES = re.compile(r" ?[A-Za-z]+| ?\d| ?[^\sA-Za-z\d]+|\s+")

    def encode(self, text: str) -> list[int]:
        return [zlib.crc32(piece.encode()) % self.vocab_size for piece in self.PIECES.findall(text)]

    def decode(self, ids) -> str:
        raise NotImplementedError("hashed tokens do not decode")


def needle_haystack():
    """The KJV without Genesis (the plain contexts' text) as running prose for needle prompts: one verse a
    paragraph, verse prefixes removed (`Ex12:3` is a run of digits, like a key)."""
    from infini_attention.data.documents import VERSE_PREFIX
    from infini_attention.data.haystack import TextHaystack

    verses = [
        VERSE_PREFIX.sub("", line, count=1)
        for name, text in kjv_books()
        if name != EVAL_BOOK
        for line in text.splitlines()
        if line.strip()
    ]
    return TextHaystack(verses, name="kjv-without-genesis")


def transfer_contexts(tokenizer, args) -> tuple[torch.Tensor, torch.Tensor | None, list[dict]]:
    """(ids (contexts, context), marked (contexts, context) bool or None, needle descriptions): the
    plain KJV windows (`transfer_ids`), then `--needle-contexts` needle prompts with their answers
    (hf/transfer.py:needle_context; formats taken in turn from --needle-formats, KJV haystack, the needle
    in an earlier segment than the question), marked on their question and answer tokens."""
    from infini_attention.hf.transfer import needle_context

    plain = transfer_ids(tokenizer, args.contexts - args.needle_contexts, args.context, args.seed)
    if not args.needle_contexts:
        return plain, None, []
    haystack, rng = needle_haystack(), random.Random(f"needle-contexts-{args.seed}")
    rows, marks, needles = [], [], []
    for k in range(args.needle_contexts):
        fmt = args.needle_formats[k % len(args.needle_formats)]
        ids, marked, about = needle_context(
            tokenizer or TinyTokenizer(), args.context, args.segment_len, rng.getrandbits(32), fmt, haystack
        )
        rows.append(ids)
        marks.append(marked)
        needles.append({"context": len(plain) + k, **about})
    ids = torch.cat([plain, torch.stack(rows)])
    marked = torch.cat([torch.zeros_like(plain, dtype=torch.bool), torch.stack(marks)])
    return ids, marked, needles


def check_reuse(teacher, ids: torch.Tensor, path: Path, args) -> None:
    """Refuse teacher activations collected from other token ids than this run's contexts."""
    if tuple(teacher.positions.shape) != (args.contexts, args.context):
        raise SystemExit(
            f"{path} holds {tuple(teacher.positions.shape)} (contexts, tokens), not ({args.contexts}, {args.context})"
        )
    if teacher.ids is None:
        if args.needle_contexts:
            raise SystemExit(
                f"{path} stores no token ids (written before needle contexts existed), so it cannot be checked "
                f"against --needle-contexts {args.needle_contexts}: collect anew (leave out --teacher)"
            )
    elif not torch.equal(teacher.ids, ids):
        raise SystemExit(
            f"{path} was collected from other token ids than this run's contexts (another --seed, --context, "
            "--needle-contexts, --needle-formats, --segment-len with needles, or source tokenizer): collect anew"
        )


def genesis_tokens(tokenizer, count: int) -> np.ndarray:
    if tokenizer is None:
        return np.random.default_rng(7).integers(0, TINY["vocab_size"], count + 1)
    genesis = next(text for name, text in kjv_books() if name == EVAL_BOOK)
    return np.asarray(tokenizer.encode(genesis), dtype=np.int64)[: count + 1]


def parts_of(args) -> tuple[str, ...]:
    parts = ["gate", "feature"]
    if args.key_shift or args.query_shift:
        parts.append("shift")
    return tuple(parts + [p for p in args.train_proj.split(",") if p])


# ---------------------------------------------------------------------------------------------


def train(args) -> None:
    from tqdm.auto import tqdm

    from infini_attention.hf.transfer import (
        ARTIFACT,
        MANIFEST,
        Teacher,
        collect,
        convert_for_transfer,
        evaluate_layer,
        infini_layers,
        load_transfer,
        read_manifest,
        save_transfer,
        select_parameters,
        student_inputs,
        train_layer,
        trained_names,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = "tiny" if args.tiny else args.source
    device = torch.device(args.device)
    settings = dict(
        segment_len=args.segment_len,
        rule=args.rule,
        feature_map=args.feature_map,
        key_shift=args.key_shift,
        query_shift=args.query_shift,
    )
    run = dict(
        source=source,
        context=args.context,
        contexts=args.contexts,
        steps=args.steps,
        lr=args.lr,
        gate_lr=args.gate_lr,
        beta_init=args.beta_init,
        loss_on=args.loss_on,
        inputs=args.inputs,
        parts=list(parts_of(args)),
        seed=args.seed,
        needle_contexts=args.needle_contexts,
        needle_weight=args.needle_weight,
        needle_formats=list(args.needle_formats),
    )
    if not 0 <= args.needle_contexts <= args.contexts:
        raise SystemExit(f"--needle-contexts must lie in [0, --contexts {args.contexts}], got {args.needle_contexts}")
    if args.needle_weight <= 0:
        raise SystemExit(f"--needle-weight must be positive, got {args.needle_weight}")
    if args.needle_weight != 1 and not args.needle_contexts:
        raise SystemExit("--needle-weight weights the question and answer of needle contexts: add --needle-contexts")
    resuming = args.resume and (out / MANIFEST).is_file()
    if (out / MANIFEST).is_file() and not args.resume:
        raise SystemExit(f"{out} already holds a run: pass --resume to continue it, or another --out")
    previous = read_manifest(out) if resuming else {}
    if resuming:
        saved = {**NEEDLE_DEFAULTS, **previous["run"], **previous["settings"]}
        differ = {k: saved.get(k) for k, v in {**run, **settings}.items() if saved.get(k) != v}
        if differ:
            raise SystemExit(f"--resume with other settings than {out}/{MANIFEST}, which has {differ}")
    log(out, f"start: {' '.join(sys.argv)}  (device {device_name(device)})")
    stages = previous.get("stages", {})
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    original, tokenizer = load_original(source)
    stages["load_s"] = stages.get("load_s", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    ids, marked, needles = transfer_contexts(tokenizer, args)
    stages["contexts_s"] = time.perf_counter() - started
    if needles:
        spans = ", ".join(f"{n['format']} needle {n['needle']} question {n['question']}" for n in needles)
        log(
            out,
            f"needle contexts {args.needle_contexts} of {args.contexts} (question + answer weighted "
            f"{args.needle_weight:g}): {spans}; {stages['contexts_s']:.1f} s",
        )
    reuse = Path(args.teacher) if args.teacher else out / TEACHER if resuming else None
    if reuse is not None and reuse.is_file():
        teacher = Teacher.load(reuse)
        check_reuse(teacher, ids, reuse, args)
        teacher = dataclasses.replace(teacher, marked=marked)
        log(out, f"teacher activations reused from {reuse}")
    else:
        started = time.perf_counter()
        teacher = dataclasses.replace(collect(original.to(device), ids), marked=marked)
        teacher.save(out / TEACHER)
        stages["collect_s"] = time.perf_counter() - started
        size = sum(t.numel() * t.element_size() for t in teacher.inputs + teacher.outputs)
        log(
            out,
            f"collected {ids.shape[0]} x {ids.shape[1]} tokens, {size / 2**20:.0f} MiB, {stages['collect_s']:.1f} s",
        )

    model = convert_for_transfer(original, beta_init=args.beta_init, **settings).to(device)
    model.requires_grad_(False)
    if args.inputs == "student" and not (resuming and (out / TEACHER).is_file()):
        started = time.perf_counter()
        teacher = student_inputs(model, ids, teacher)
        teacher.save(out / TEACHER)
        stages["student_inputs_s"] = time.perf_counter() - started
        log(out, f"inputs from the converted model (memory off), {stages['student_inputs_s']:.1f} s")
    layers = infini_layers(model)
    done = [row["layer"] for row in previous.get("layers", [])]
    if done:
        load_transfer(model, out, layers=done)
        log(out, f"resumed after layers {done}")
    rows = list(previous.get("layers", []))
    bar = tqdm(
        total=len(layers) * args.steps, initial=len(done) * args.steps, desc="transfer", unit="step", disable=None
    )
    for i, attn in enumerate(layers):
        if i in done:
            continue
        started = time.perf_counter()
        batches = [teacher.layer(i, c) for c in range(teacher.contexts)]
        weights = [teacher.weights(c, args.needle_weight) for c in range(teacher.contexts)]
        weights = weights if any(w is not None for w in weights) else None  # None: the plain loss everywhere
        local = evaluate_layer(attn, batches, local_only=True, weights=weights)
        before = evaluate_layer(attn, batches, weights=weights)
        params = select_parameters(attn, run["parts"])

        def progress(step, loss, layer=i):
            bar.update(1)
            bar.set_postfix(layer=layer, loss=f"{loss:.3g}")

        history = train_layer(
            attn,
            batches,
            params,
            args.steps,
            lr=args.lr,
            gate_lr=args.gate_lr,
            loss_on=args.loss_on,
            progress=progress,
            weights=weights,
        )
        after = evaluate_layer(attn, batches, weights=weights)
        gate = torch.sigmoid(attn.beta.detach().float())
        row = {
            "layer": i,
            "local": local,
            "before": before,
            "after": after,
            "loss_first": history["losses"][0] if history["losses"] else None,
            "loss_last": history["losses"][-1] if history["losses"] else None,
            "gate_mean": gate.mean().item(),
            "gate_min": gate.min().item(),
            "gate_max": gate.max().item(),
            "train_s": history["seconds"],
            "layer_s": time.perf_counter() - started,
        }
        rows.append(row)
        stages["train_s"] = stages.get("train_s", 0.0) + row["layer_s"]
        names = trained_names(model, run["parts"], [r["layer"] for r in rows])
        manifest = {"run": run, "settings": settings, "layers": rows, "stages": stages}
        save_transfer(model, out, names, {**manifest, "needles": needles} if needles else manifest)
        marked_note = (
            f", question + answer rel {before['rel_marked']:.3f} -> {after['rel_marked']:.3f} "
            f"(local only {local['rel_marked']:.3f})"
            if "rel_marked" in after
            else ""
        )
        bar.write(
            f"layer {i:2d}: MSE later {before['later']:.3g} -> {after['later']:.3g} (local only {local['later']:.3g}), "
            f"rel {before['rel_later']:.3f} -> {after['rel_later']:.3f}, first {after['first']:.2g}{marked_note}, "
            f"gate {row['gate_mean']:.2f}, {row['layer_s']:.1f} s"
        )
        with open(out / "log.txt", "a") as f:
            f.write(json.dumps(row) + "\n")
    bar.close()
    summary = summarise(rows)
    manifest = read_manifest(out)
    manifest["summary"], manifest["device"] = summary, device_name(device)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    log(out, f"done: {json.dumps(summary)}; stages {json.dumps({k: round(v, 1) for k, v in stages.items()})}")
    log(out, f"artifact {out / ARTIFACT}: {(out / ARTIFACT).stat().st_size / 2**10:.0f} KiB")
    print(table(rows))


def summarise(rows: list[dict]) -> dict:
    def mean(key, sub):
        return float(np.mean([r[key][sub] for r in rows]))

    marked = {}
    if all("rel_marked" in r["after"] for r in rows):  # needle contexts: the error at the question and answer
        marked = {
            "mse_marked_local": mean("local", "marked"),
            "mse_marked_before": mean("before", "marked"),
            "mse_marked_after": mean("after", "marked"),
            "rel_marked_local": mean("local", "rel_marked"),
            "rel_marked_before": mean("before", "rel_marked"),
            "rel_marked_after": mean("after", "rel_marked"),
            "layers_marked_better_than_local": sum(r["after"]["marked"] < r["local"]["marked"] for r in rows),
        }
    return {
        "layers": len(rows),
        "mse_later_local": mean("local", "later"),
        "mse_later_before": mean("before", "later"),
        "mse_later_after": mean("after", "later"),
        "mse_first_after": mean("after", "first"),
        "rel_later_local": mean("local", "rel_later"),
        "rel_later_before": mean("before", "rel_later"),
        "rel_later_after": mean("after", "rel_later"),
        "layers_better_than_local": sum(r["after"]["later"] < r["local"]["later"] for r in rows),
        "gate_mean": float(np.mean([r["gate_mean"] for r in rows])),
        **marked,
    }


def table(rows: list[dict]) -> str:
    marked = all("rel_marked" in r["after"] for r in rows)
    extra = " rel. err question + answer: local | before | after |" if marked else ""
    lines = [
        "| layer | MSE first seg. | MSE later: local only | before | after "
        f"| rel. err later: local | before | after |{extra} gate mean | s |",
        "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if marked else "") + "---|---|",
    ]
    for r in rows:
        columns = (
            f" {r['local']['rel_marked']:.3f} | {r['before']['rel_marked']:.3f} | {r['after']['rel_marked']:.3f} |"
            if marked
            else ""
        )
        lines.append(
            f"| {r['layer']} | {r['after']['first']:.2e} | {r['local']['later']:.3e} | {r['before']['later']:.3e} | "
            f"{r['after']['later']:.3e} | {r['local']['rel_later']:.3f} | {r['before']['rel_later']:.3f} | "
            f"{r['after']['rel_later']:.3f} |{columns} {r['gate_mean']:.2f} | {r['layer_s']:.0f} |"
        )
    return "\n".join(lines)


def evaluate(args) -> None:
    from infini_attention.eval.perplexity import evaluate_perplexity
    from infini_attention.hf.training import HFTrainingModel
    from infini_attention.hf.transfer import convert_for_transfer, load_transfer, read_manifest

    out, device = Path(args.out), torch.device(args.device)
    manifest = read_manifest(out)
    settings, run = manifest["settings"], manifest["run"]
    started = time.perf_counter()
    original, tokenizer = load_original(run["source"])
    tokens = genesis_tokens(tokenizer, args.tokens)
    plain = {k: v for k, v in settings.items() if k != "feature_map"}
    model = convert_for_transfer(original, beta_init=run["beta_init"], feature_map="elu1", **plain).to(device)
    wrapped = HFTrainingModel(model, tokenizer, source=run["source"]).eval()
    load_s = time.perf_counter() - started
    results = {"tokens": len(tokens) - 1, "load_s": load_s, "device": device_name(device)}
    kwargs = dict(chunk_segments=4, first_bucket=args.first_bucket, device=device, bf16=args.bf16, progress=False)
    with torch.no_grad():
        if not args.no_plain:
            results["plain"] = evaluate_perplexity(wrapped, [("Genesis (KJV)", tokens)], **kwargs)
            log(out, f"plain converted: {brief(results['plain'])}")
        load_transfer(model, out)
        results["transfer"] = evaluate_perplexity(wrapped, [("Genesis (KJV)", tokens)], **kwargs)
        log(out, f"transferred ({settings['feature_map']}): {brief(results['transfer'])}")
    (out / "eval.json").write_text(json.dumps(results, indent=1) + "\n")


def export(args) -> None:
    """The converted model with the transferred parameters -> an ordinary converted transformers folder
    (config with the feature map, weights, and the source's tokenizer), then reloaded as the evaluations
    load it (eval/models.py:load_eval_model) to check that it gives the same logits."""
    from infini_attention.eval.models import load_eval_model
    from infini_attention.hf.training import HFTrainingModel
    from infini_attention.hf.transfer import apply_transfer, read_manifest

    out = Path(args.out)
    folder = Path(args.to) if args.to else out / "converted"
    if (folder / "config.json").is_file() and not args.overwrite:
        raise SystemExit(f"{folder} already holds a model: pass --overwrite to replace it")
    manifest = read_manifest(out)
    settings, run = manifest["settings"], manifest["run"]
    started = time.perf_counter()
    original, tokenizer = load_original(run["source"])
    model = apply_transfer(original, out).eval()  # what infini demo --model smollm2 loads (hf/transfer.py)
    wrapped = HFTrainingModel(model, tokenizer, source=run["source"])
    wrapped.save_pretrained(folder)  # weights + config, and the tokenizer's files when the source has one
    provenance = {"transfer": str(out), "run": run, "settings": settings, "summary": manifest.get("summary")}
    (folder / "transfer.json").write_text(json.dumps(provenance, indent=1) + "\n")
    saved_s = time.perf_counter() - started
    vocab = model.config.vocab_size  # any ids will do: the check is that the folder computes the same function
    ids = torch.randint(0, vocab, (1, 2 * settings["segment_len"] + 37), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        loaded = load_eval_model(str(folder)) if tokenizer is not None else None
        again = (loaded.model.hf if loaded else HFTrainingModel.load(str(folder)).eval().hf)(input_ids=ids).logits
    diff = (again - expected).abs().max().item()
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    tokenizer_note = "saved" if tokenizer is not None else "none: the source has none"
    log(
        out,
        f"exported to {folder} ({settings['feature_map']}, {size:.0f} MiB, tokenizer {tokenizer_note}) "
        f"in {saved_s:.0f} s; "
        f"reloaded: max |logit difference| over {ids.shape[1]} tokens {diff:.2e}",
    )
    if diff > 1e-4:
        raise SystemExit(f"the reloaded model differs from the exported one by {diff}")


def brief(result: dict) -> str:
    buckets = "; ".join(f"{b['bucket']}: {b['ppl']:.2f} / reset {b['ppl_reset']:.2f}" for b in result["buckets"])
    return f"ppl {result['ppl']:.2f} / reset {result['ppl_reset']:.2f} ({buckets}), {result['seconds']:.0f} s"


def main() -> None:
    from infini_attention.data.formats import EVALUATION_ONLY, FORMATS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="collect the teacher's activations and train every layer")
    t.add_argument("--source", default="gguf:default", help="gguf:default, gguf:<file> or a transformers folder")
    t.add_argument("--tiny", action="store_true", help="a random tiny Llama and random tokens (a dry run)")
    t.add_argument("--segment-len", type=int, default=256)
    t.add_argument("--rule", default="delta", choices=["linear", "delta"])
    t.add_argument("--beta-init", type=float, default=0.0, help="initial gate logit (0: gate 0.5)")
    t.add_argument("--context", type=int, default=2048, help="tokens per context")
    t.add_argument("--contexts", type=int, default=4)
    t.add_argument("--steps", type=int, default=40, help="Adam steps per layer, one context each")
    t.add_argument("--lr", type=float, default=1e-2, help="feature map, shift taps and projections")
    t.add_argument("--gate-lr", type=float, default=0.1)
    t.add_argument("--feature-map", default="elu1", choices=["elu1", "hedgehog", "sharpness"])
    t.add_argument("--key-shift", type=int, default=0, help="previous-token taps on the memory's keys")
    t.add_argument("--query-shift", type=int, default=0)
    t.add_argument("--train-proj", default="", help="also train these projections, e.g. 'q,k' (comma-separated)")
    t.add_argument("--loss-on", default="later", choices=["later", "all"])
    t.add_argument(
        "--inputs",
        default="teacher",
        choices=["teacher", "student"],
        help="each layer's input: the original model's (LoLCATs) or the converted model's own, memory off",
    )
    t.add_argument(
        "--needle-contexts",
        type=int,
        default=0,
        help="of the --contexts, this many are needle prompts + answers over KJV prose (the rest plain text)",
    )
    t.add_argument(
        "--needle-formats",
        nargs="+",
        default=["passkey"],
        choices=[f for f in FORMATS if f not in EVALUATION_ONLY],
        help="prompt formats of the needle contexts, taken in turn (data/formats.py)",
    )
    t.add_argument(
        "--needle-weight", type=float, default=1.0, help="loss weight of the needle contexts' question + answer tokens"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--resume", action="store_true")
    t.add_argument(
        "--teacher",
        help="reuse the teacher activations of another run (same source, --context, --contexts, --seed and "
        "needle contexts: checked on the stored token ids)",
    )
    t.add_argument("--out", default="runs/out/transfer")
    e = sub.add_parser("eval", help="perplexity of Genesis: plain converted vs transferred, memory on vs reset")
    e.add_argument("--out", default="runs/out/transfer")
    e.add_argument("--tokens", type=int, default=8192)
    e.add_argument("--first-bucket", type=int, default=1024)
    e.add_argument("--device", default="cpu")
    e.add_argument("--bf16", action="store_true")
    e.add_argument("--no-plain", action="store_true", help="skip the plain converted model")
    x = sub.add_parser("export", help="converted model + transfer artifact -> a converted transformers folder")
    x.add_argument("--out", default="runs/out/transfer", help="the transfer run's folder")
    x.add_argument("--to", default=None, help="the converted folder to write (default: OUT/converted)")
    x.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if "OMP_NUM_THREADS" not in os.environ and args.device == "cpu":
        print("note: OMP_NUM_THREADS is not set", file=sys.stderr)
    {"train": train, "eval": evaluate, "export": export}[args.command](args)


if __name__ == "__main__":
    main()

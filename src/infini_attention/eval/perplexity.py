"""Perplexity of long documents, streamed through the model with its state carried, by position bucket.

Each document is read a few segments at a time: the model's state (compressive memory and the
unfinished segment) goes from one call to the next and the loss is taken per call, so neither the
activations nor the logits of a whole document are ever held: memory is bounded whatever the
document's length. Carrying the state makes this equal to one forward pass over the document
(tests/eval/test_perplexity.py checks it).

Beside each number stands the memory ablation: the same model, the same tokens, with every
compressive memory emptied before each segment (`model.reset_memory`), so that only the local
attention is left. Where memory is used, the ablation's perplexity is higher, and more so at later
positions. For `memorizing` it empties the kNN memory (the layer's `reset_memory`); for kinds without a
memory to empty (local, full, xl) it is the same run.

Positions are bucketed by the index of the predicted token in its document: 0-2K, 2K-8K, 8K-32K,
32K-128K, ... (powers of 4 after the first bucket).

Gate diagnostics (the paper's Figure 3): sigmoid(beta) per head and layer, as a table and a
heatmap; near 0 or 1 a head is specialised (local only / memory only), near 0.5 a mixer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from infini_attention.utils import format_count


def bucket_edges(first: int = 2048, factor: int = 4, upto: int = 1 << 40) -> list[int]:
    """[0, first, first*factor, first*factor^2, ...] up to `upto`."""
    edges = [0, first]
    while edges[-1] < upto:
        edges.append(edges[-1] * factor)
    return edges


def chunked_nll(model, ids: torch.Tensor, labels: torch.Tensor, chunk_len: int) -> tuple[float, int]:
    """Summed cross-entropy and label count of (batch, length) ids/labels (-100 = no loss), chunk by chunk.

    The state is carried between chunks, so the result equals one forward pass over `ids`, with the
    logits of at most `chunk_len` positions alive at a time.
    """
    state, total = None, 0.0
    for start in range(0, ids.shape[1], chunk_len):
        logits, state = model(ids[:, start : start + chunk_len], state)
        target = labels[:, start : start + chunk_len]
        total += F.cross_entropy(
            logits.float().flatten(0, 1), target.flatten(), ignore_index=-100, reduction="sum"
        ).item()
    return total, int((labels != -100).sum())


def document_nll(model, tokens, chunk_len: int, reset_memory: bool = False, device="cpu", on_chunk=None):
    """Yield (position of the first predicted token, per-token negative log-likelihoods) chunk by chunk.

    tokens: a 1-d sequence of ids (a numpy memmap slice is read a chunk at a time). With
    reset_memory, chunks are single segments and the memory is emptied before each of them.
    on_chunk(tokens_read, state): called after each chunk with the tokens read so far and the state.
    """
    if reset_memory:
        chunk_len = model.config.segment_len  # chunks start on segment boundaries: reset exactly there
    n, state = len(tokens), None
    for start in range(0, n - 1, chunk_len):
        end = min(n - 1, start + chunk_len)
        window = torch.as_tensor(np.asarray(tokens[start : end + 1], dtype=np.int64), device=device)
        if reset_memory and state is not None:
            state = model.reset_memory(state)
        logits, state = model(window[None, :-1], state)
        if on_chunk is not None:
            on_chunk(end, state)
        yield start + 1, F.cross_entropy(logits[0].float(), window[1:], reduction="none")


class _Buckets:
    def __init__(self, edges: list[int]):
        self.edges = np.asarray(edges, dtype=np.int64)
        self.nll = np.zeros(len(edges), dtype=np.float64)
        self.count = np.zeros(len(edges), dtype=np.int64)

    def add(self, first: int, nll: torch.Tensor) -> None:
        values = nll.detach().double().cpu().numpy()
        index = np.searchsorted(self.edges, np.arange(first, first + len(values)), side="right") - 1
        self.nll += np.bincount(index, weights=values, minlength=len(self.edges))
        self.count += np.bincount(index, minlength=len(self.edges))


def _ppl(nll: float, count: int) -> float | None:
    return math.exp(min(nll / count, 700.0)) if count else None


@torch.no_grad()
def evaluate_perplexity(
    model,
    documents: Iterable[tuple[str, object]],
    *,
    chunk_segments: int = 4,
    ablation: bool = True,
    max_tokens: int | None = None,
    first_bucket: int = 2048,
    device: str | torch.device = "cpu",
    bf16: bool = False,
    progress: bool = True,
) -> dict:
    """Token-level perplexity of `documents` ((name, token ids) pairs) overall, by position bucket and per document.

    chunk_segments: segments per forward call (bounds the logits held); max_tokens: read at most
    this many tokens of each document; ablation: also run with the memory reset at every segment.
    Returns a JSON-ready dict (see format_report).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    model.eval()
    documents = [(name, tokens[:max_tokens] if max_tokens else tokens) for name, tokens in documents]
    documents = [(name, tokens) for name, tokens in documents if len(tokens) >= 2]
    if not documents:
        raise ValueError("no document with 2 tokens or more to evaluate")
    edges = bucket_edges(first_bucket)
    runs = {"memory": _Buckets(edges)} | ({"reset": _Buckets(edges)} if ablation else {})
    chunk_len = chunk_segments * model.config.segment_len
    per_doc = []
    total_tokens = sum(len(t) - 1 for _, t in documents) * len(runs)
    bar = tqdm(total=total_tokens, desc="perplexity", unit="tok", unit_scale=True, disable=not progress)
    started = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for name, tokens in documents:
            row = {"name": name, "tokens": len(tokens) - 1}
            for run, buckets in runs.items():
                nll = 0.0
                for first, values in document_nll(model, tokens, chunk_len, run == "reset", device):
                    buckets.add(first, values)
                    nll += values.sum().item()
                    bar.update(len(values))
                row["ppl" if run == "memory" else "ppl_reset"] = _ppl(nll, len(tokens) - 1)
            per_doc.append(row)
    bar.close()
    seconds = time.perf_counter() - started
    memory = runs["memory"]
    rows = []
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        if memory.count[i]:
            row = {
                "bucket": f"{format_count(lo) if lo else 0}-{format_count(hi)}",
                "start": lo,
                "end": hi,
                "tokens": int(memory.count[i]),
                "ppl": _ppl(memory.nll[i], memory.count[i]),
            }
            if ablation:
                row["ppl_reset"] = _ppl(runs["reset"].nll[i], runs["reset"].count[i])
            rows.append(row)
    count = int(memory.count.sum())
    cfg = model.config
    result = {
        "model": {
            "attention": cfg.attention,
            "rule": cfg.rule,
            "segment_len": cfg.segment_len,
            "num_layers": cfg.num_layers,
            "num_heads": cfg.num_heads,
        },
        "documents": len(documents),
        "tokens": count,
        "loss": float(memory.nll.sum() / count),
        "ppl": _ppl(memory.nll.sum(), count),
        "buckets": rows,
        "per_document": per_doc,
        "gates": gate_values(model),
        "seconds": seconds,
        "chunk_len": chunk_len,
        "bf16": bf16,
    }
    if ablation:
        result["loss_reset"] = float(runs["reset"].nll.sum() / count)
        result["ppl_reset"] = _ppl(runs["reset"].nll.sum(), count)
    return result


# ---------------------------------------------------------------------------------------------
# Gates (Figure 3) and reports


def gate_values(model) -> list[list[float] | None]:
    """sigmoid(beta) per head for each layer; None for a layer without a gate (not Infini-attention)."""
    values = []
    for layer in model.layers:
        beta = getattr(layer.self_attn, "beta", None)
        values.append(None if beta is None else torch.sigmoid(beta.detach().float()).cpu().tolist())
    return values


def gate_table(gates: list[list[float] | None]) -> str:
    """Layers as rows, heads as columns; '-' for a layer without a gate."""
    heads = max((len(g) for g in gates if g), default=0)
    if not heads:
        return "no gates (the model has no Infini-attention layer)"
    lines = ["layer " + " ".join(f"{'h' + str(h):>5}" for h in range(heads))]
    for i, g in enumerate(gates):
        lines.append(f"{i:>5} " + (" ".join(f"{v:5.2f}" for v in g) if g else "    -"))
    return "\n".join(lines)


def plot_gates(gates: list[list[float] | None], path, title: str = "") -> bool:
    """Heatmap of sigmoid(beta), layer x head, like the paper's Figure 3; False when there is nothing to plot."""
    heads = max((len(g) for g in gates if g), default=0)
    if not heads:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    grid = np.full((len(gates), heads), np.nan)
    for i, g in enumerate(gates):
        if g:
            grid[i, : len(g)] = g
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * heads, 1.0 + 0.45 * len(gates)))
    image = ax.imshow(grid, cmap="coolwarm", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, h), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(h, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(heads))
    ax.set_yticks(range(len(gates)))
    ax.set_title(title or "gate sigmoid(beta): 0 = local attention, 1 = memory")
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def format_report(result: dict) -> str:
    """The terminal table: perplexity by position bucket, with the memory reset beside it."""
    ablation = "ppl_reset" in result
    head = f"{'positions':>12} {'tokens':>10} {'ppl':>10}" + (f" {'ppl reset':>10} {'ratio':>7}" if ablation else "")
    lines = [head]

    def line(label, tokens, ppl, reset):
        text = f"{label:>12} {tokens:>10} {ppl:>10.3f}"
        return text + (f" {reset:>10.3f} {reset / ppl:>7.3f}" if ablation else "")

    for row in result["buckets"]:
        lines.append(line(row["bucket"], row["tokens"], row["ppl"], row.get("ppl_reset")))
    lines.append(line("all", result["tokens"], result["ppl"], result.get("ppl_reset")))
    m = result["model"]
    lines.insert(
        0,
        f"model: {m['attention']} ({m['rule']}), segment {m['segment_len']}; "
        f"{result['documents']} documents, {result['tokens']} predicted tokens",
    )
    if ablation:
        lines.append("ppl reset: every compressive memory emptied before each segment (local attention only)")
    return "\n".join(lines)

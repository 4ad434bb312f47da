"""The passkey evaluation's report: markdown table and page, JSON, and the needle-in-a-haystack heatmap."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch

from infini_attention.utils import format_bytes, format_count

if TYPE_CHECKING:
    from infini_attention.eval.passkey import PasskeyRow


def format_table(rows: list[PasskeyRow]) -> str:
    """Markdown table: one line per (length, depth), the memory ablation beside the real result."""
    real = {(r.length, r.depth, _found_via(r)): r for r in rows if not r.reset_memory}
    reset = {(r.length, r.depth, _found_via(r)): r for r in rows if r.reset_memory}
    lines = [
        "| length | depth | needle seg. | question seg. | found via | accuracy | digits | memory reset: accuracy "
        "| key share of memory read | tokens/s | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in real.items():
        ablated = reset.get(key)
        share = "-" if r.memory_share is None else f"{100 * r.memory_share:.1f}%"
        lines.append(
            f"| {format_count(r.length)} | {r.depth:.2f} | {r.needle_segment} | {r.question_segment} | "
            f"{_found_via(r)} | {100 * r.accuracy:.0f}% ({r.keys}) | "
            f"{100 * r.digit_accuracy:.0f}% | {'-' if ablated is None else f'{100 * ablated.accuracy:.0f}%'} | "
            f"{share} | {r.tokens_per_s:,.0f} | {format_bytes(r.peak_rss)} |"
        )
    return "\n".join(lines)


def _found_via(r: PasskeyRow) -> str:
    if r.found_via:
        return r.found_via
    if r.in_memory:
        return "memory"
    return "straddling" if r.needle_segment < r.question_segment else "local window"


def describe_model(model) -> str:
    """One line: the attention kind, rule, variants and sizes (a variant is never left unsaid)."""
    cfg = model.config
    variants = []
    for name in ("key_shift", "query_shift"):
        taps = int(getattr(cfg, name, 0))
        if taps:
            variants.append(name if taps == 1 else f"{name}={taps}")
    if getattr(cfg, "sharpness", False):
        variants.append("sharpness")
    for name in ("sparse_cache", "local_tail", "local_sink"):  # no parameters: switched on at load or by --look-back
        tokens = int(getattr(cfg, name, 0) or 0)
        if tokens:
            variants.append(f"{name}={tokens}")
    variant = f", variants: {', '.join(variants)}" if variants else ""
    params = sum(p.numel() for p in model.parameters())
    return (
        f"{cfg.attention} attention ({cfg.rule} rule{variant}), {cfg.num_layers} layers, {cfg.num_heads} heads "
        f"of {cfg.head_dim}, segment {cfg.segment_len} tokens, {params / 1e6:.2f}M parameters"
    )


def format_report(
    rows: list[PasskeyRow], command: str, model, image: str | None = None, setting: str | None = None
) -> str:
    """A markdown page: the command, the model, the prompt setting, the summary, the full table and the heatmap."""
    s = summary(rows)
    lines = [
        "# Passkey retrieval",
        "",
        f"Made by `{command.strip()}` on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Model: {describe_model(model)}.",
        "",
        *([f"Prompts: {setting}.", ""] if setting else []),
        "Exact match of the whole key (greedy). *found via*: `memory` when the needle lies wholly before the "
        "question's segment, so that only the compressive memory can bring it back; `local window` when it "
        "is in the question's own segment; `memory + local` when it straddles the boundary. "
        "*memory reset*: the same prompts with every memory emptied at "
        "each segment boundary (the ablation, which must fall to chance where the key is in memory). "
        "*key share*: the largest share, over heads and layers, of the memory read's normaliser "
        "sigma(q) z that comes from the needle's tokens at the question (none for the deltanet rule, "
        "which has no normaliser).",
        "",
        "Summary: " + ", ".join(f"{k.replace('_', ' ')} {100 * v:.1f}%" for k, v in s.items()),
        "",
        format_table(rows),
        "",
    ]
    if image:
        lines += [f"![passkey heatmap]({image})", ""]
    return "\n".join(lines)


def summary(rows: list[PasskeyRow]) -> dict:
    """Accuracy over cells where the key is reachable only through the memory, with and without memory."""
    out = {}
    for reset in (False, True):
        cells = [r for r in rows if r.in_memory and r.reset_memory == reset]
        if cells:
            name = "memory_reset" if reset else "memory"
            out[f"{name}_accuracy"] = sum(r.accuracy * r.keys for r in cells) / sum(r.keys for r in cells)
    local = [r for r in rows if not r.in_memory and not r.reset_memory]
    if local:
        out["local_accuracy"] = sum(r.accuracy * r.keys for r in local) / sum(r.keys for r in local)
    return out


def save_json(rows: list[PasskeyRow], path, extra: dict | None = None) -> None:
    data = {"summary": summary(rows), "rows": [asdict(r) for r in rows], **(extra or {})}
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def plot_heatmap(rows: list[PasskeyRow], path, title: str = "Passkey retrieval") -> None:
    """Needle-in-a-haystack heatmap: depth (rows) x length (columns), colour = exact-match accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("with memory", [r for r in rows if not r.reset_memory])]
    if any(r.reset_memory for r in rows):
        groups.append(("memory reset every segment", [r for r in rows if r.reset_memory]))
    lengths = sorted({r.length for r in rows})
    depths = sorted({r.depth for r in rows})
    fig, axes = plt.subplots(
        1, len(groups), figsize=(1.2 + 1.3 * len(lengths) * len(groups), 1.2 + 0.55 * len(depths)), squeeze=False
    )
    for col, (ax, (name, group)) in enumerate(zip(axes[0], groups)):
        grid = torch.full((len(depths), len(lengths)), float("nan"))
        for i, d in enumerate(depths):
            for j, n in enumerate(lengths):
                cell = [r for r in group if r.depth == d and r.length == n]
                if not cell:
                    ax.text(j, i, "not run", ha="center", va="center", fontsize=7, color="grey")
                else:
                    acc = sum(r.accuracy * r.keys for r in cell) / sum(r.keys for r in cell)
                    grid[i, j] = 100 * acc
                    mark = "" if all(r.in_memory for r in cell) else "*"
                    ax.text(j, i, f"{100 * acc:.0f}{mark}", ha="center", va="center", fontsize=8)
        im = ax.imshow(grid.numpy(), cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(lengths)), [format_count(n) for n in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:.2f}" for d in depths])
        ax.set_xlabel("context length (tokens)")
        if col == 0:
            ax.set_ylabel("needle depth")
        ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), label="exact match %")
    fig.suptitle(f"{title}  (* = needle not wholly before the question's segment)", fontsize=10, y=1.04)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)

"""RULER evaluation: every task x length, fresh instances per cell, RULER's scoring, the memory ablation beside it.

    rows = evaluate_ruler(load_eval_model("src/infini_attention/assets/passkey"), ["niah_single_1"], [4000], 8)

Each instance streams through the model with bounded state (batch 1: RULER's instances differ in
length) and the model continues RULER's answer prefix greedily for the task's answer budget; the
answer is scored with `string_match_all` (the share of the expected strings present). A row gives
the mean score and the share of instances with every expected string. With the ablation, the same
prompts run with every compressive memory emptied at each segment boundary: what the model still
finds is found by its local attention alone.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field

import torch

from infini_attention.data.ruler import Wrapper, make_instance, string_match_all
from infini_attention.eval.models import EvalModel, greedy_continue
from infini_attention.generate import prefill
from infini_attention.utils import format_bytes, format_count, rss_bytes


@dataclass
class RulerRow:
    task: str
    length: int
    samples: int
    score: float  # RULER's string_match_all, mean over instances
    all_found: float  # share of instances with every expected string in the answer
    reset_memory: bool
    prompt_tokens: float  # mean prompt length (RULER's length minus the answer budget, at most)
    seconds: float
    tokens_per_s: float
    peak_rss: int
    answers: list = field(default_factory=list)  # {"outputs", "prediction", "score"} per instance


def instance_seed(seed: int, task: str, length: int, i: int) -> int:
    """A seed of its own for instance i of every (task, length) cell."""
    return random.Random(f"ruler-{seed}-{task}-{length}-{i}").getrandbits(32)


def evaluate_cell(
    em: EvalModel, task: str, length: int, samples: int, *, seed=0, haystack=None, reset_memory=False, progress=None
) -> RulerRow:
    """The `samples` instances of one (task, length) cell, one at a time (RULER's lengths differ per instance)."""
    wrapper = Wrapper.chat(em.tokenizer.tokenizer, em.tokenizer) if em.chat_template else None
    scores, answers, tokens, peak, start = [], [], 0, rss_bytes(), time.perf_counter()
    device = next(em.model.parameters(), torch.empty(0)).device  # the prompts are made on the CPU
    for i in range(samples):
        inst = make_instance(task, em.tokenizer, length, instance_seed(seed, task, length, i), haystack, wrapper)
        ids = torch.tensor([inst.prompt_ids], dtype=torch.long, device=device)
        logits, state = prefill(em.model, ids, reset_memory=reset_memory, on_block=progress)
        out = greedy_continue(em.model, logits, state, inst.tokens_to_generate, em.stop_ids, reset_memory=reset_memory)[
            0
        ]
        prediction = em.tokenizer.decode(out)
        score = string_match_all(prediction, inst.outputs)
        scores.append(score)
        answers.append({"outputs": inst.outputs, "prediction": prediction, "score": score})
        tokens += inst.length
        peak = max(peak, rss_bytes())
    seconds = time.perf_counter() - start
    return RulerRow(
        task=task,
        length=length,
        samples=samples,
        score=sum(scores) / samples,
        all_found=sum(s == 1.0 for s in scores) / samples,
        reset_memory=reset_memory,
        prompt_tokens=tokens / samples,
        seconds=seconds,
        tokens_per_s=tokens / seconds,
        peak_rss=peak,
        answers=answers,
    )


def evaluate_ruler(
    em: EvalModel,
    tasks: list[str],
    lengths: list[int],
    samples: int = 8,
    *,
    ablation: bool | int = True,
    seed: int = 0,
    haystack=None,
    progress: bool = True,
    on_row=None,
) -> list[RulerRow]:
    """Every (task, length) cell; the memory-reset ablation beside it (True, False, or up to a length)."""

    def ablate(n: int) -> bool:
        return ablation is True or (ablation is not False and n <= ablation)

    cells = [(t, n, reset) for t in tasks for n in lengths for reset in ((False, True) if ablate(n) else (False,))]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(n * samples for _, n, _ in cells), unit="tok", unit_scale=True, dynamic_ncols=True)
    rows = []
    for task, n, reset in cells:
        if bar is not None:
            bar.set_description(f"{task} {format_count(n)}{' memory reset' if reset else ''}")
        row = evaluate_cell(
            em,
            task,
            n,
            samples,
            seed=seed,
            haystack=haystack,
            reset_memory=reset,
            progress=bar.update if bar is not None else None,
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
    if bar is not None:
        bar.close()
    return rows


def format_table(rows: list[RulerRow]) -> str:
    """Markdown: one line per task, one column per length: score (instances), memory reset beside it."""
    lengths = sorted({r.length for r in rows})
    cell = {(r.task, r.length, r.reset_memory): r for r in rows}
    tasks = list(dict.fromkeys(r.task for r in rows))
    head = "| task | " + " | ".join(format_count(n) for n in lengths) + " |"
    lines = [head, "|---|" + "---|" * len(lengths)]
    for t in tasks:
        parts = []
        for n in lengths:
            r, z = cell.get((t, n, False)), cell.get((t, n, True))
            text = "-" if r is None else f"{100 * r.score:.0f}% ({r.samples})"
            if z is not None:
                text += f"; reset {100 * z.score:.0f}%"
            parts.append(text)
        lines.append(f"| {t} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def summary(rows: list[RulerRow]) -> dict:
    real = [r for r in rows if not r.reset_memory]
    return {
        "score": sum(r.score for r in real) / max(1, len(real)),
        "by_task": {
            t: sum(r.score for r in real if r.task == t) / sum(r.task == t for r in real)
            for t in dict.fromkeys(r.task for r in real)
        },
    }


def save_json(rows: list[RulerRow], path, extra: dict | None = None) -> None:
    data = {"rows": [asdict(r) for r in rows], "summary": summary(rows), **(extra or {})}
    path.write_text(json.dumps(data, indent=1) + "\n")


def plot_heatmap(rows: list[RulerRow], path, title: str = "RULER") -> bool:
    """Task x length heatmap of the score (memory on); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    real = [r for r in rows if not r.reset_memory]
    tasks = list(dict.fromkeys(r.task for r in real))
    lengths = sorted({r.length for r in real})
    grid = [[float("nan")] * len(lengths) for _ in tasks]
    for r in real:
        grid[tasks.index(r.task)][lengths.index(r.length)] = 100 * r.score
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * len(lengths), 0.9 + 0.45 * len(tasks)))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(lengths)), [format_count(n) for n in lengths])
    ax.set_yticks(range(len(tasks)), tasks)
    for i, line in enumerate(grid):
        for j, v in enumerate(line):
            if v == v:
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("length (tokens)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="score (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def format_report(rows: list[RulerRow], command: str, setting: str, image: str | None) -> str:
    by_length: dict[int, int] = {}
    for r in rows:
        by_length[r.length] = max(by_length.get(r.length, 0), r.peak_rss)
    seconds = sum(r.seconds for r in rows)
    lines = [
        "# RULER",
        "",
        f"Command: `{command}`",
        "",
        f"Setting: {setting}. Score: RULER's string_match_all (the share of the expected strings in the greedy "
        "answer), mean over the instances (their count in brackets); `reset`: the same prompts with every "
        "compressive memory emptied at each segment boundary.",
        "",
        format_table(rows),
        "",
        f"Wall time {seconds / 60:.1f} min; peak RSS by length: "
        + ", ".join(f"{format_count(n)}: {format_bytes(b)}" for n, b in sorted(by_length.items())),
    ]
    if image:
        lines += ["", f"![RULER heatmap]({image})"]
    return "\n".join(lines) + "\n"

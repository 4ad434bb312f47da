"""BABILong (Kuratov et al. 2024): its prompts and scoring, streamed through a model with bounded state.

Prompts follow the reference code (github.com/booydar/babilong, `babilong/prompts.py`): the
template "{instruction}\\n\\n{examples}\\n\\n{post_prompt}\\n\\n<context>\\n{input}\\n</context>\\n\\nQuestion:
{question}", stripped, with the published instruction, examples and post-prompt of qa1-qa5
(copied verbatim, their typography included). Scoring is the reference's `compare_answers`
(`babilong/metrics.py`): the answer lower-cased and cut at its first ".", right when the target is
the only label of the task's label set (qa1-qa10) in it, labels named in the question not
counted (a question like "Where was the apple before the kitchen?" names one place that is never
the answer).

What is adapted, and why:
- Few-shot examples are off by default (`examples=True` adds them): a small byte-level model
  gains nothing from two more paragraphs of prompt, and they would cost it its local window.
  `bare=True` drops instruction, examples and post-prompt, BABILong's setting for base models
  ("instruction_no_examples_no_post_prompt_no"); a task without a built-in prompt (qa6-qa20)
  runs only bare.
- A model without a chat template gets the prompt followed by "\\nAnswer:" (the examples' answer
  format); an instruction-tuned model gets the prompt as one user turn of its chat template, as in
  the reference. Answers end at the tokenizer's end-of-sequence token or at the token limit, not at
  a newline: the score reads up to the first "." whatever the lines, as the reference does.
- Answers are at most 20 new tokens (the reference's `max_new_tokens`), 64 for the byte tokenizer,
  whose tokens are characters.
- The reference also cuts the answer at "Question", after lower-casing it: that never matches, so
  it is left out (the scores are the same).
- Tasks without a label set (qa8, qa11-qa20) count the target appearing in the answer's first
  sentence (the reference has no rule for them).

Each prompt streams through the model with its state carried (`generate.prefill`,
`eval/models.py:greedy_continue`). The memory ablation runs the same prompts with every compressive memory
emptied at each segment boundary.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import torch

from infini_attention.data.babi import Record, length_value
from infini_attention.eval.models import EvalModel, greedy_continue
from infini_attention.eval.passkey_report import describe_model
from infini_attention.generate import prefill
from infini_attention.utils import format_count

DEFAULT_TEMPLATE = (
    "{instruction}\n\n{examples}\n\n{post_prompt}\n\n<context>\n{context}\n</context>\n\nQuestion: {question}"
)
ANSWER_PREFIX = "\nAnswer:"  # after the prompt, for models without a chat template

# BABILong's DEFAULT_PROMPTS (babilong/prompts.py), verbatim
PROMPTS = {
    "qa1": {
        "instruction": "I will give you context with the facts about positions of different persons hidden in some "
        "random text and a question. You need to answer the question based only on the information from the facts. "
        "If a person was in different locations, use the latest location to answer the question.",
        "examples": "<example>\n"
        "Charlie went to the hallway. Judith come back to the kitchen. Charlie travelled to balcony. "
        "Where is Charlie?\n"
        "Answer: The most recent location of Charlie is balcony.\n"
        "</example>\n\n"
        "<example>\n"
        "Alan moved to the garage. Charlie went to the beach. Alan went to the shop. Rouse travelled to balcony. "
        "Where is Alan?\n"
        "Answer: The most recent location of Alan is shop.\n"
        "</example>",
        "post_prompt": "Always return your answer in the following format: "
        "The most recent location of ’person’ is ’location’. Do not write anything else after that.",
    },
    "qa2": {
        "instruction": "I give you context with the facts about locations and actions of different persons "
        "hidden in some random text and a question."
        "You need to answer the question based only on the information from the facts.\n"
        "If a person got an item in the first location and travelled to the second location "
        "the item is also in the second location. "
        "If a person dropped an item in the first location and moved to the second location "
        "the item remains in the first location.",
        "examples": "<example>\n"
        "Charlie went to the kitchen. Charlie got a bottle. Charlie moved to the balcony. Where is the bottle?\n"
        "Answer: The bottle is in the balcony.\n"
        "</example>\n"
        "<example>\n"
        "Alan moved to the garage. Alan got a screw driver. Alan moved to the kitchen. Where is the screw driver?\n"
        "Answer: The screw driver is in the kitchen.\n"
        "</example>",
        "post_prompt": "Always return your answer in the following format: The ’item’ is in ’location’. "
        "Do not write anything else after that.",
    },
    "qa3": {
        "instruction": "I give you context with the facts about locations and actions of different persons "
        "hidden in some random text and a question. "
        "You need to answer the question based only on the information from the facts.\n"
        "If a person got an item in the first location and travelled to the second location "
        "the item is also in the second location. "
        "If a person dropped an item in the first location and moved to the second location "
        "the item remains in the first location.",
        "examples": "<example>\n"
        "John journeyed to the bedroom. Mary grabbed the apple. Mary went back to the bathroom. "
        "Daniel journeyed to the bedroom. Daniel moved to the garden. Mary travelled to the kitchen. "
        "Where was the apple before the kitchen?\n"
        "Answer: Before the kitchen the apple was in the bathroom.\n"
        "</example>\n"
        "<example>\n"
        "John went back to the bedroom. John went back to the garden. John went back to the kitchen. "
        "Sandra took the football. Sandra travelled to the garden. Sandra journeyed to the bedroom. "
        "Where was the football before the bedroom?\n"
        "Answer: Before the bedroom the football was in the garden.\n"
        "</example>",
        "post_prompt": "Always return your answer in the following format: "
        "Before the $location_1$ the $item$ was in the $location_2$. Do not write anything else after that.",
    },
    "qa4": {
        "instruction": "I will give you context with the facts about different people, their location and actions, "
        "hidden in some random text and a question. "
        "You need to answer the question based only on the information from the facts.",
        "examples": "<example>\n"
        "The hallway is south of the kitchen. The bedroom is north of the kitchen. What is the kitchen south of?\n"
        "Answer: bedroom\n"
        "</example>\n"
        "<example>\n"
        "The garden is west of the bedroom. The bedroom is west of the kitchen. What is west of the bedroom?\n"
        "Answer: garden\n"
        "</example>",
        "post_prompt": "Your answer should contain only one word - location. Do not write anything else after that.",
    },
    "qa5": {
        "instruction": "I will give you context with the facts about locations and their relations hidden in some "
        "random text and a question. You need to answer the question based only on the information from the facts.",
        "examples": "<example>\n"
        "Mary picked up the apple there. Mary gave the apple to Fred. Mary moved to the bedroom. "
        "Bill took the milk there. Who did Mary give the apple to?\n"
        "Answer: Fred\n"
        "</example>\n"
        "<example>\n"
        "Jeff took the football there. Jeff passed the football to Fred. Jeff got the milk there. "
        "Bill travelled to the bedroom. Who gave the football?\n"
        "Answer: Jeff\n"
        "</example>\n"
        "<example>\n"
        "Fred picked up the apple there. Fred handed the apple to Bill. Bill journeyed to the bedroom. "
        "Jeff went back to the garden. What did Fred give to Bill?\n"
        "Answer: apple\n"
        "</example>",
        "post_prompt": "Your answer should contain only one word. Do not write anything else after that. "
        "Do not explain your answer.",
    },
}

# BABILong's TASK_LABELS (babilong/metrics.py)
_PLACES = {"bathroom", "bedroom", "garden", "hallway", "kitchen", "office"}
TASK_LABELS = {
    "qa1": _PLACES,
    "qa2": _PLACES,
    "qa3": _PLACES,
    "qa4": _PLACES,
    "qa5": {"Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk"},
    "qa6": {"no", "yes"},
    "qa7": {"two", "one", "none"},
    "qa9": {"no", "yes"},
    "qa10": {"maybe", "no", "yes"},
}


def format_prompt(record: Record, *, examples: bool = False, bare: bool = False) -> str:
    """BABILong's prompt for one record: instruction, (examples), post-prompt, context and question."""
    if bare:
        parts = {"instruction": "", "examples": "", "post_prompt": ""}
    elif record.task in PROMPTS:
        parts = dict(PROMPTS[record.task])
        if not examples:
            parts["examples"] = ""
    else:
        raise ValueError(f"no BABILong prompt for {record.task} here (only {', '.join(PROMPTS)}): run it bare")
    text = DEFAULT_TEMPLATE.format(**parts, context=record.input.strip(), question=record.question)
    return text.strip()


def preprocess_output(output: str) -> str:
    """The answer's first sentence, lower-cased, cut before any example or context it starts to write."""
    output = output.lower().split(".")[0]
    return output.split("<context>")[0].split("<example>")[0]


def compare_answers(target: str, output: str, question: str, task_labels) -> bool:
    """BABILong's rule: the target is the only label in the answer, labels named in the question aside."""
    output = preprocess_output(output)
    labels = {label.lower() for label in task_labels}
    in_question = {label for label in labels if label in question.lower()}
    in_output = {label for label in labels if label in output} - in_question
    return target.lower() in in_output and len(in_output) == 1


def score(record: Record, output: str) -> bool:
    """compare_answers with the task's labels; without a label set, the target in the first sentence."""
    labels = TASK_LABELS.get(record.task)
    if labels is None:
        return record.target.lower() in preprocess_output(output)
    return compare_answers(record.target, output, record.question, labels)


@dataclass
class Answer:
    """One record's answer."""

    task: str
    length: str
    index: int  # the record's place among its (task, length) cell
    question: str
    target: str
    output: str  # the decoded greedy answer
    correct: bool
    reset_memory: bool  # the memory-ablation run
    prompt_tokens: int
    seed: int | None = None  # the generator's seed (None for published data)


def prompt_ids(em: EvalModel, record: Record, *, examples: bool = False, bare: bool = False) -> list[int]:
    """The prompt's token ids: a chat model's user turn, else the text followed by the answer prefix."""
    text = format_prompt(record, examples=examples, bare=bare)
    return em.prompt_ids(text) if em.chat_template else em.tokenizer.encode(text + ANSWER_PREFIX)


@torch.no_grad()
def evaluate_babilong(
    em: EvalModel,
    records: list[Record],
    *,
    ablation: bool = True,
    examples: bool = False,
    bare: bool = False,
    max_new_tokens: int | None = None,
    chunk_segments: int = 16,
    progress: bool = True,
    on_answer=None,
) -> list[Answer]:
    """Every record streamed through the model (batch 1), greedy answer, scored; with the memory ablation
    beside it when `ablation`."""
    if not records:
        raise ValueError("no records to evaluate")
    if max_new_tokens is None:
        max_new_tokens = 64 if em.tokenizer.name == "byte" else 20
    model = em.model
    device = next(model.parameters()).device
    prompts = [prompt_ids(em, r, examples=examples, bare=bare) for r in records]
    resets = (False, True) if ablation else (False,)
    index, seen = [], {}
    for r in records:
        key = (r.task, r.length)
        index.append(seen.get(key, 0))
        seen[key] = index[-1] + 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = sum(len(p) for p in prompts) * len(resets)
        bar = tqdm(total=total, unit="tok", unit_scale=True, desc="babilong", dynamic_ncols=True)
    answers = []
    try:
        for reset in resets:
            for record, ids, i in zip(records, prompts, index):
                if bar is not None:
                    bar.set_description(f"babilong {record.task} {record.length}{' memory reset' if reset else ''}")
                x = torch.tensor([ids], dtype=torch.long, device=device)
                last, state = prefill(
                    model,
                    x,
                    block_len=chunk_segments * model.config.segment_len,
                    reset_memory=reset,
                    on_block=bar.update if bar is not None else None,
                )
                out = greedy_continue(model, last, state, max_new_tokens, em.stop_ids, reset_memory=reset)[0]
                text = em.tokenizer.decode(out)
                answer = Answer(
                    task=record.task,
                    length=record.length,
                    index=i,
                    question=record.question,
                    target=record.target,
                    output=text.strip(),
                    correct=score(record, text),
                    reset_memory=reset,
                    prompt_tokens=len(ids),
                    seed=record.seed,
                )
                answers.append(answer)
                if on_answer is not None:
                    on_answer(answer)
    finally:
        if bar is not None:
            bar.close()
    return answers


# ---------------------------------------------------------------------------------------------
# the report


def _tasks(answers: list[Answer]) -> list[str]:
    return sorted({a.task for a in answers}, key=lambda t: (len(t), t))


def _lengths(answers: list[Answer]) -> list[str]:
    return sorted({a.length for a in answers}, key=lambda n: (length_value(n), n))


def cells(answers: list[Answer]) -> list[dict]:
    """One entry per (task, length, memory reset): accuracy, n and the mean prompt length in tokens."""
    groups: dict[tuple, list[Answer]] = {}
    for a in answers:
        groups.setdefault((a.task, a.length, a.reset_memory), []).append(a)
    out = []
    for (task, length, reset), group in groups.items():
        out.append(
            {
                "task": task,
                "length": length,
                "reset_memory": reset,
                "n": len(group),
                "accuracy": sum(a.correct for a in group) / len(group),
                "prompt_tokens": sum(a.prompt_tokens for a in group) / len(group),
            }
        )
    return out


def summary(answers: list[Answer]) -> dict:
    """Accuracy over all answers, with the memory and with it reset every segment."""
    out = {}
    for reset, name in ((False, "accuracy"), (True, "memory_reset_accuracy")):
        group = [a for a in answers if a.reset_memory == reset]
        if group:
            out[name] = sum(a.correct for a in group) / len(group)
    return out


def format_table(answers: list[Answer]) -> str:
    """Markdown: a line per task, a column per length; each cell "accuracy (n)", then the ablation's accuracy."""
    table = {(c["task"], c["length"], c["reset_memory"]): c for c in cells(answers)}
    lengths = _lengths(answers)
    lines = ["| task | " + " | ".join(lengths) + " |", "|---|" + "---|" * len(lengths)]
    for task in _tasks(answers):
        row = []
        for length in lengths:
            real, reset = table.get((task, length, False)), table.get((task, length, True))
            if real is None:
                row.append("-")
                continue
            text = f"{100 * real['accuracy']:.0f}% ({real['n']})"
            if reset is not None:
                text += f", reset {100 * reset['accuracy']:.0f}%"
            row.append(text)
        lines.append(f"| {task} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def save_json(answers: list[Answer], path, extra: dict | None = None) -> None:
    data = {"summary": summary(answers), "cells": cells(answers), "answers": [asdict(a) for a in answers]}
    with open(path, "w") as f:
        json.dump({**data, **(extra or {})}, f, indent=1)


def format_report(
    answers: list[Answer], command: str, em: EvalModel, image: str | None = None, setting: str | None = None
) -> str:
    """A markdown page: the command, the model, the setting, the summary, the table and the heatmap."""
    try:
        model = describe_model(em.model)
    except AttributeError:  # a converted HF model's config lacks some native fields
        model = em.name
    s = summary(answers)
    tokens = [c["prompt_tokens"] for c in cells(answers)]
    lines = [
        "# BABILong",
        "",
        f"Made by `{command.strip()}` on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Model: `{em.name}`: {model}.",
        "",
        *([f"Prompts: {setting}.", ""] if setting else []),
        "Greedy answers scored as BABILong's `compare_answers` (the target is the only place or name of the "
        "task's label set in the answer's first sentence). Each cell: accuracy (instances); *reset*: the "
        "same prompts with every compressive memory emptied at each segment boundary. Prompts hold "
        f"{format_count(int(min(tokens)))} to {format_count(int(max(tokens)))} tokens (mean per cell).",
        "",
        "Summary: " + ", ".join(f"{k.replace('_', ' ')} {100 * v:.1f}%" for k, v in s.items()),
        "",
        format_table(answers),
        "",
    ]
    if image:
        lines += [f"![BABILong heatmap]({image})", ""]
    return "\n".join(lines)


def plot_heatmap(answers: list[Answer], path, title: str = "BABILong") -> None:
    """Task (rows) x length (columns), colour = accuracy; the memory ablation in a second panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = {(c["task"], c["length"], c["reset_memory"]): c for c in cells(answers)}
    tasks, lengths = _tasks(answers), _lengths(answers)
    groups = [("with memory", False)]
    if any(a.reset_memory for a in answers):
        groups.append(("memory reset every segment", True))
    fig, axes = plt.subplots(
        1, len(groups), figsize=(1.2 + 1.3 * len(lengths) * len(groups), 1.2 + 0.55 * len(tasks)), squeeze=False
    )
    for col, (ax, (name, reset)) in enumerate(zip(axes[0], groups)):
        grid = torch.full((len(tasks), len(lengths)), float("nan"))
        for i, task in enumerate(tasks):
            for j, length in enumerate(lengths):
                cell = table.get((task, length, reset))
                if cell is None:
                    ax.text(j, i, "not run", ha="center", va="center", fontsize=7, color="grey")
                else:
                    grid[i, j] = 100 * cell["accuracy"]
                    ax.text(j, i, f"{100 * cell['accuracy']:.0f}", ha="center", va="center", fontsize=8)
        im = ax.imshow(grid.numpy(), cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(lengths)), lengths)
        ax.set_yticks(range(len(tasks)), tasks)
        ax.set_xlabel("context length (tokens)")
        if col == 0:
            ax.set_ylabel("task")
        ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), label="accuracy %")
    fig.suptitle(title, fontsize=10, y=1.04)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)

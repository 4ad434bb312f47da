"""Passkey retrieval evaluation: accuracy by length x depth, with the memory ablation beside it.

Every row says in which segment the needle sat and in which the question sat, so that a key
found through the memory (needle in an earlier segment) is never mixed up with one found by the
local attention (needle in the question's own segment). The memory ablation runs the same prompts
with every compressive memory emptied at each segment boundary: for keys outside the question's
segment it must fall to chance.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field

import torch

from infini_attention.data.passkey import PasskeyInstance, make_instance
from infini_attention.data.tokenizers import Tokenizer
from infini_attention.eval.passkey_report import (  # the report: tables, JSON, heatmap (names kept here)
    describe_model,
    format_report,
    format_table,
    plot_heatmap,
    save_json,
    summary,
)
from infini_attention.generate import sample
from infini_attention.layers import InfiniAttention
from infini_attention.utils import format_count, rss_bytes


@dataclass
class PasskeyRow:
    length: int
    depth: float
    keys: int  # instances evaluated
    accuracy: float  # exact match of the whole key, greedy
    digit_accuracy: float  # share of answer tokens right, position by position
    needle_segment: int  # segment of the (asked) needle's first token
    question_segment: int  # segment of the prompt's last token
    in_memory: bool  # the needle lies wholly before the question's segment
    reset_memory: bool  # the memory-ablation run
    seconds: float
    tokens_per_s: float
    peak_rss: int  # bytes, the process's resident memory at its highest during this cell
    memory_share: float | None = None  # share of the memory read mass on the needle (max over heads, mean over keys)
    answers: list = field(default_factory=list)  # (key, decoded answer) per instance
    found_via: str = ""  # memory, straddling (the needle crosses into the question's segment) or local window


def _stack_chunks(instances: list[PasskeyInstance], chunk_len: int):
    """The prompts of same-length instances, chunk by chunk, as (batch, chunk) tensors."""
    for chunks in zip(*(inst.chunks(chunk_len) for inst in instances)):
        yield torch.tensor(chunks, dtype=torch.long)


class _NeedleProbe:
    """The share of each row's memory read that comes from its needle, per Infini layer.

    Forward pre-hooks see each layer's input and state; on the calls that hold needle tokens the
    layer's own `project` gives the keys the memory receives (token shifts included), whose key mass
    (the rule's `key_mass`) is summed per row. At the end the rule's `read_share` compares the last
    query's read of that mass with its read of the whole z. Rules without a normaliser (deltanet)
    have no share: their layers are skipped.
    """

    def __init__(self, model, needles: list[tuple[int, int]]):
        self.needles = needles  # [start, end) of the asked needle, one per batch row
        self.layers = [
            m
            for m in model.modules()
            if isinstance(m, InfiniAttention) and m.memory_rule().normalised and not m.sparse_cache
        ]
        self.mass = [None] * len(self.layers)  # (B, Hkv, d) key mass of each row's needle
        self.last_call = [None] * len(self.layers)  # (x, state) of the latest call: its last token asks
        self.offsets = [0] * len(self.layers)  # tokens each layer has seen: every token passes once, in order
        self.handles = [
            layer.register_forward_pre_hook(self._hook(i), with_kwargs=True) for i, layer in enumerate(self.layers)
        ]

    def _hook(self, i):
        def hook(layer, args, kwargs):
            x, state = layer.call_inputs(args, kwargs)
            offset, length = self.offsets[i], x.shape[1]
            self.offsets[i] += length
            self.last_call[i] = (x, state)
            spans = [(b, max(s - offset, 0), min(e - offset, length)) for b, (s, e) in enumerate(self.needles)]
            spans = [(b, lo, hi) for b, lo, hi in spans if lo < hi]
            if not spans:
                return
            _, k, _ = self._memory_view(layer, x, state)  # (B, Hkv, L, d), as the memory receives them
            rule = layer.memory_rule()
            if self.mass[i] is None:
                self.mass[i] = k.new_zeros(
                    len(self.needles), layer.num_key_value_heads, layer.head_dim, dtype=torch.float32
                )
            for b, lo, hi in spans:
                self.mass[i][b] += rule.key_mass(k[b : b + 1, :, lo:hi])[0]

        return hook

    @staticmethod
    def _memory_view(layer, x, state):
        """(q, k, v) as the layer's memory sees them: project()'s, through the memory LoRA when there is one."""
        q, k, v, state = layer.project(x, state)
        return layer.memory_inputs(x, q, k, v, state)[0] or (q, k, v)

    def shares(self, state) -> list[float | None]:
        """Per row: max over layers and heads of the needle's share of the read at the prompt's last token."""
        best = [None] * len(self.needles)
        for i, layer in enumerate(self.layers):
            if self.mass[i] is None:
                continue
            q, _, _ = self._memory_view(layer, *self.last_call[i])
            share = layer.memory_rule().read_share(q[:, :, -1], self.mass[i], state.layers[i].z)  # (B, H)
            for b, value in enumerate(share.max(dim=1).values.tolist()):
                best[b] = value if best[b] is None else max(best[b], value)
        return best

    def close(self):
        for h in self.handles:
            h.remove()


def instance_seed(seed: int, length: int, depth: float, i: int) -> int:
    """A seed of its own for instance i of every (length, depth) cell: fresh keys and haystacks per cell."""
    return random.Random(f"passkey-{seed}-{length}-{depth!r}-{i}").getrandbits(32)


def cell_instances(tokenizer, length, depth, keys, *, seed=0, needles=1, **prompt) -> list[PasskeyInstance]:
    """The `keys` instances of one cell; with several needles the asked one sits at `depth`, the others
    at depths drawn from the instance's seed."""
    out = []
    for i in range(keys):
        s = instance_seed(seed, length, depth, i)
        if needles == 1:
            out.append(make_instance(tokenizer, length, depth, seed=s, **prompt))
        else:
            rng = random.Random(s)
            others = [rng.random() for _ in range(needles - 1)]
            out.append(make_instance(tokenizer, length, [depth, *others], seed=s, ask=0, **prompt))
    return out


def found_via(inst: PasskeyInstance, segment_len: int) -> str:
    """memory (the asked needle wholly before the question's segment), local window, or straddling."""
    if inst.in_memory_only(segment_len):
        return "memory"
    if inst.needle_spans[inst.ask][0] // segment_len < inst.question_segment(segment_len):
        return "straddling"
    return "local window"


@torch.no_grad()
def evaluate_length(
    model,
    tokenizer: Tokenizer,
    length: int,
    depths: list[float],
    keys: int,
    *,
    digits: int | None = None,
    seed: int = 0,
    reset_memory: bool = False,
    filler=None,
    haystack=None,
    fmt: str = "passkey",
    template: str = "plain",
    needles: int = 1,
    chunk_segments: int = 16,
    bf16: bool = False,
    progress=None,
) -> list[PasskeyRow]:
    """Greedy exact-match accuracy of `keys` instances at each depth, all of one length, run as one batch.

    Every cell draws its own keys (and haystack starts): `instance_seed`. A cell whose instances
    differ in where the needle sits (memory, local window, straddling) gives one row per kind.
    """
    n = model.config.segment_len
    prompt = dict(digits=digits, filler=filler, haystack=haystack, fmt=fmt, template=template)
    cells = [cell_instances(tokenizer, length, depth, keys, seed=seed, needles=needles, **prompt) for depth in depths]
    instances = [inst for cell in cells for inst in cell]
    probe = None if reset_memory else _NeedleProbe(model, [inst.needle_spans[inst.ask] for inst in instances])
    chunk_len = n if reset_memory else n * chunk_segments  # the ablation empties the memory every segment
    state, logits, start, peak = None, None, time.perf_counter(), rss_bytes()
    device = next(model.parameters(), torch.empty(0)).device  # the prompts are made on the CPU
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for chunk in _stack_chunks(instances, chunk_len):
                logits, state = model(chunk.to(device), state, logits_to_keep=1)
                if reset_memory and state.position % n == 0:
                    state = model.reset_memory(state)
                peak = max(peak, rss_bytes())
                if progress is not None:
                    progress(chunk.shape[1] * chunk.shape[0])
            shares = probe.shares(state) if probe is not None else [None] * len(instances)
            answer_len = max(len(inst.answer_ids) for inst in instances)
            predicted = []
            for step in range(answer_len):
                token = sample(logits[:, -1], temperature=0.0)
                predicted.append(token)
                if step + 1 < answer_len:
                    logits, state = model(token[:, None], state)
                    if reset_memory and state.position % n == 0:
                        state = model.reset_memory(state)
    finally:
        if probe is not None:
            probe.close()
    seconds = time.perf_counter() - start
    predicted = torch.stack(predicted, dim=1).cpu()  # (depths * keys, answer_len)
    rows = []
    for c, (depth, cell) in enumerate(zip(depths, cells)):
        results = []  # (instance, exact, digits right, share, prediction) per instance of the cell
        for j, inst in enumerate(cell):
            row = c * keys + j
            truth = torch.tensor(inst.answer_ids)
            guess = predicted[row, : len(truth)]
            right = guess == truth
            results.append((inst, bool(right.all()), right.float().mean().item(), shares[row], guess))
        for via in ("memory", "straddling", "local window"):
            group = [r for r in results if found_via(r[0], n) == via]
            if not group:
                continue
            first = group[0][0]
            group_shares = [r[3] for r in group if r[3] is not None] if via == "memory" else []
            rows.append(
                PasskeyRow(
                    length=length,
                    depth=depth,
                    keys=len(group),
                    accuracy=sum(r[1] for r in group) / len(group),
                    digit_accuracy=sum(r[2] for r in group) / len(group),
                    needle_segment=first.needle_spans[first.ask][0] // n,
                    question_segment=first.question_segment(n),
                    in_memory=via == "memory",
                    reset_memory=reset_memory,
                    seconds=seconds,
                    tokens_per_s=length * len(instances) / seconds,
                    peak_rss=peak,
                    memory_share=sum(group_shares) / len(group_shares) if group_shares else None,
                    answers=[(r[0].key, tokenizer.decode(r[4].tolist()).strip()) for r in group],
                    found_via=via,
                )
            )
    return rows


def evaluate_cell(model, tokenizer: Tokenizer, length: int, depth: float, keys: int, **kwargs) -> PasskeyRow:
    """One (length, depth) cell: `keys` instances run as one batch, as one row (its kinds merged)."""
    rows = evaluate_length(model, tokenizer, length, [depth], keys, **kwargs)
    if len(rows) == 1:
        return rows[0]
    total = sum(r.keys for r in rows)
    shares = [r.memory_share for r in rows if r.memory_share is not None]
    return dataclasses.replace(
        rows[0],
        keys=total,
        accuracy=sum(r.accuracy * r.keys for r in rows) / total,
        digit_accuracy=sum(r.digit_accuracy * r.keys for r in rows) / total,
        in_memory=all(r.in_memory for r in rows),
        memory_share=shares[0] if shares else None,
        answers=[a for r in rows for a in r.answers],
        found_via=" / ".join(r.found_via for r in rows),
    )


def evaluate_passkey(
    model,
    tokenizer: Tokenizer,
    lengths: list[int],
    depths: list[float],
    keys: int = 5,
    *,
    ablation: bool | int = True,
    progress: bool = True,
    on_row=None,
    **kwargs,
) -> list[PasskeyRow]:
    """Every (length, depth) cell, with the memory-reset ablation beside it.

    ablation: True (every length), False (none) or a length: the ablation runs up to that length.
    """

    def ablate(length: int) -> bool:
        return ablation is True or (ablation is not False and length <= ablation)

    rows = []
    total = sum(n * (2 if ablate(n) else 1) for n in lengths) * len(depths) * keys
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="tok", unit_scale=True, desc="passkey", dynamic_ncols=True)
    for length in lengths:
        for reset in (False, True) if ablate(length) else (False,):
            if bar is not None:
                bar.set_description(f"passkey {format_count(length)}{' memory reset' if reset else ''}")
            new_rows = evaluate_length(
                model,
                tokenizer,
                length,
                depths,
                keys,
                reset_memory=reset,
                progress=bar.update if bar is not None else None,
                **kwargs,
            )
            rows.extend(new_rows)
            if on_row is not None:
                for row in new_rows:
                    on_row(row)
    if bar is not None:
        bar.close()
    return rows


__all__ = [
    "PasskeyRow",
    "cell_instances",
    "describe_model",
    "evaluate_cell",
    "evaluate_length",
    "evaluate_passkey",
    "format_report",
    "format_table",
    "found_via",
    "instance_seed",
    "plot_heatmap",
    "save_json",
    "summary",
]

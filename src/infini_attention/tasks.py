"""Training tasks: each gives (input_ids, labels) for a step as a pure function of (seed, step, rank).

Because a batch depends only on its step, resuming at step k reads exactly the batches an
uninterrupted run would have read: the data position saved in a checkpoint is the step itself.
Labels are -100 where no loss is taken.
"""

from __future__ import annotations

import math
import random

import torch

from infini_attention.data import passkey
from infini_attention.data.formats import get_format
from infini_attention.data.tokenizers import get_tokenizer


def _rng(seed: int, step: int, rank: int, micro: int) -> random.Random:
    return random.Random(f"{seed}-{step}-{rank}-{micro}")


def _length(rng: random.Random, cfg, step: int) -> int:
    """A sequence length drawn log-uniformly from [min_len, max], short and long sequences alike.

    max grows linearly from min_len to seq_len over `length_curriculum_steps` (0 = seq_len from the
    start), so that what is to be recalled moves out of the local window step by step.
    """
    low, high = cfg.min_len, cfg.seq_len
    if cfg.length_curriculum_steps:
        high = int(low + (high - low) * min(1.0, step / cfg.length_curriculum_steps))
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))


class PasskeyTask:
    """Passkey prompts of `min_len`..`max_len` tokens; loss on the answer only (or everywhere).

    Curriculum: the share of instances whose needle sits in the question's own segment falls
    linearly from `local_start` to `local_end` over `curriculum_steps`.
    """

    def __init__(self, cfg, segment_len: int):
        self.cfg, self.segment_len = cfg, segment_len
        self.tokenizer = get_tokenizer(cfg.tokenizer)

    def local_fraction(self, step: int) -> float:
        c = self.cfg
        progress = min(1.0, step / max(1, c.curriculum_steps))
        return c.local_start + (c.local_end - c.local_start) * progress

    def _instances(self, step: int, rank: int, micro: int) -> list[passkey.PasskeyInstance]:
        c = self.cfg
        rng = _rng(c.seed, step, rank, micro)
        length = _length(rng, c, step)
        if c.aligned_lengths > 0 and rng.random() < c.aligned_lengths:  # no draw when off
            # a whole number of segments: the answer then starts a new segment, as at every power-of-two length
            length = max(self.segment_len, length - length % self.segment_len)
        # one prompt format and one haystack per micro-batch, drawn only when there is a choice
        fmt = c.formats[0] if len(c.formats) == 1 else rng.choice(c.formats)
        haystack = (c.haystacks or ["paper"])[0] if len(c.haystacks) <= 1 else rng.choice(c.haystacks)
        form = get_format(fmt)
        return passkey.training_instances(
            self.tokenizer,
            c.batch_size,
            length,
            rng,
            digits=c.digits if form.default_digits == 5 else None,  # RULER values keep their 7 digits
            local_fraction=self.local_fraction(step),
            segment_len=self.segment_len,
            doubled_fraction=c.doubled_keys,
            needles=form.default_needles,
            fmt=fmt,
            haystack=haystack,
        )

    def batch(self, step: int, rank: int = 0, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        ids, labels = passkey.batch_tensors(self._instances(step, rank, micro))
        if self.cfg.full_loss:  # language-model loss on the whole prompt as well
            labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], dim=1).where(labels == -100, labels)
        return ids, labels

    def stretch_limit(self, step: int) -> float:
        """The largest write weight at this step: grows log-linearly from 1 to stretch_max over
        stretch_curriculum_steps (at once if 0)."""
        c = self.cfg
        progress = min(1.0, step / c.stretch_curriculum_steps) if c.stretch_curriculum_steps else 1.0
        return c.stretch_max**progress

    def write_weights(self, step: int, rank: int = 0, micro: int = 0) -> torch.Tensor | None:
        """(batch, segments) memory-write weights for `batch(step, rank, micro)` (stretch.py), or None when off.

        Each sequence draws one weight log-uniformly from [1, stretch_limit(step)] and gives it to
        every segment that holds filler only: its haystack looks that many times longer to the
        memory. Segments with the instruction, the needle, the question or the answer keep weight 1.
        """
        if self.cfg.stretch_max <= 1:
            return None
        rng = random.Random(f"stretch-{self.cfg.seed}-{step}-{rank}-{micro}")
        limit = self.stretch_limit(step)
        rows = []
        instances = self._instances(step, rank, micro)
        width = max(inst.length + len(inst.answer_ids) for inst in instances)  # batch_tensors pads to it
        segments = -(-width // self.segment_len)
        for inst in instances:
            w = math.exp(rng.uniform(0.0, math.log(limit)))
            row = [w if filler else 1.0 for filler in passkey.filler_segments(inst, self.segment_len)]
            rows.append(row + [1.0] * (segments - len(row)))
        return torch.tensor(rows)

    def evaluate(self, model, device, cfg) -> dict:
        """Exact match with the needle only in memory (depths 0.1-0.5) and in the local window (depth 1),
        for every training format, on `eval_haystack` (default: the paper's filler)."""
        from infini_attention.eval.passkey import evaluate_cell

        out = {}
        for fmt in cfg.formats:
            form = get_format(fmt)
            kwargs = dict(
                digits=cfg.digits if form.default_digits == 5 else None,
                seed=10_000,
                fmt=fmt,
                haystack=cfg.eval_haystack,
                needles=form.default_needles,
            )
            for length in cfg.eval_lengths:
                memory = [evaluate_cell(model, self.tokenizer, length, d, cfg.eval_keys, **kwargs) for d in (0.1, 0.5)]
                local = evaluate_cell(model, self.tokenizer, length, 1.0, cfg.eval_keys, **kwargs)
                name = f"passkey_{length}" if fmt == "passkey" else f"{fmt}_{length}"
                out[f"{name}_memory_acc"] = sum(r.accuracy for r in memory) / len(memory)
                out[f"{name}_memory_digits"] = sum(r.digit_accuracy for r in memory) / len(memory)
                shares = [r.memory_share for r in memory if r.memory_share is not None]
                if shares:  # none for the deltanet rule, which has no normaliser
                    out[f"{name}_key_share"] = sum(shares) / len(shares)
                out[f"{name}_end_acc"] = local.accuracy
        return out


class CopyTask:
    """Associative recall through the memory: a random string early, filler, then the string again.

    Sequence: "The code is S. <filler ...> The code is S." with S a random string of
    `copy_len` digits and letters; the loss is taken on the second S only. Every token of the
    repeat is predictable only by recalling what followed the same context before, which for
    sequences longer than a segment must go through the memory: dense supervision for the
    ordered recall that the passkey answer needs.
    """

    ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

    def __init__(self, cfg, segment_len: int):
        self.cfg, self.segment_len = cfg, segment_len
        self.tokenizer = get_tokenizer(cfg.tokenizer)

    def batch(self, step: int, rank: int = 0, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        c, tok = self.cfg, self.tokenizer
        rng = _rng(c.seed, step, rank, micro)
        length = _length(rng, c, step)
        filler = tok.encode(passkey.FILLER)
        inputs, labels = [], []
        for _ in range(c.batch_size):
            code = "".join(rng.choice(self.ALPHABET) for _ in range(c.copy_len))
            head = tok.encode(f"The code is {code}.")
            tail = tok.encode(f" The code is {code}.")
            gap = max(0, length - len(head) - len(tail))
            ids = head + [filler[i % len(filler)] for i in range(gap)] + tail
            label = [-100] * len(ids)
            start = len(ids) - len(tail) + len(tok.encode(" The code is"))
            for t in range(start, len(ids) - 1):  # position t - 1 predicts token t
                label[t - 1] = ids[t]
            inputs.append(torch.tensor(ids))
            labels.append(torch.tensor(label))
        return stack_padded(inputs, 0), stack_padded(labels, -100)


def stack_padded(rows: list[torch.Tensor], pad: int) -> torch.Tensor:
    """Stack 1-d tensors, right-padding the shorter ones (harmless for a causal model)."""
    width = max(len(r) for r in rows)
    return torch.stack([torch.cat([r, r.new_full((width - len(r),), pad)]) for r in rows])


TASKS = {"passkey": PasskeyTask, "copy": CopyTask}


def build_task(cfg, segment_len: int):
    if cfg.task == "lm":
        from infini_attention.data.documents import LMTask

        return LMTask(cfg, segment_len)
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}: choose one of {sorted([*TASKS, 'lm'])}")
    return TASKS[cfg.task](cfg, segment_len)

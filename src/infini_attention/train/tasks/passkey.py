"""The passkey task: needle prompts (data/passkey.py) in any format and haystack, loss on the answer."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from infini_attention.data import passkey
from infini_attention.data.formats import get_format
from infini_attention.data.tokenizers import get_tokenizer
from infini_attention.train.tasks.common import Batch, LengthOptions, draw_length, step_rng


@dataclass(frozen=True)
class PasskeyOptions(LengthOptions):
    """What the passkey task reads (TrainConfig's comments say what each field means)."""

    digits: int
    key_digits: list
    doubled_keys: float
    aligned_lengths: float
    full_loss: bool
    answer_end: bool
    formats: list
    haystacks: list
    templates: list
    eval_haystack: str | None
    local_start: float
    local_end: float
    curriculum_steps: int
    eval_lengths: list
    eval_keys: int
    stretch_max: float
    stretch_curriculum_steps: int


class PasskeyTask:
    """Passkey prompts of `min_len`..`max_len` tokens; loss on the answer only (or everywhere).

    Curriculum: the share of instances whose needle sits in the question's own segment falls
    linearly from `local_start` to `local_end` over `curriculum_steps`.
    """

    def __init__(self, cfg, segment_len: int):
        self.cfg, self.segment_len = PasskeyOptions.from_config(cfg), segment_len
        self.tokenizer = get_tokenizer(cfg.tokenizer)

    def digits(self, form) -> int | None:
        """--digits for the formats whose keys are 5 digits by default; None (the format's own, 7) for RULER's."""
        return self.cfg.digits if form.default_digits == 5 else None

    def local_fraction(self, step: int) -> float:
        c = self.cfg
        progress = min(1.0, step / max(1, c.curriculum_steps))
        return c.local_start + (c.local_end - c.local_start) * progress

    def _instances(self, step: int, rank: int, micro: int) -> list[passkey.PasskeyInstance]:
        c = self.cfg
        rng = step_rng(c.seed, step, rank, micro)
        length = draw_length(rng, c, step)
        if c.aligned_lengths > 0 and rng.random() < c.aligned_lengths:  # no draw when off
            # a whole number of segments: the answer then starts a new segment, as at every power-of-two length
            length = max(self.segment_len, length - length % self.segment_len)
        # one prompt format and one haystack per micro-batch, drawn only when there is a choice
        fmt = c.formats[0] if len(c.formats) == 1 else rng.choice(c.formats)
        haystack = (c.haystacks or ["paper"])[0] if len(c.haystacks) <= 1 else rng.choice(c.haystacks)
        template = c.templates[0] if len(c.templates) == 1 else rng.choice(c.templates)
        form = get_format(fmt)
        digits = rng.choice(c.key_digits) if c.key_digits else self.digits(form)  # (no draw when off)
        return passkey.training_instances(
            self.tokenizer,
            c.batch_size,
            length,
            rng,
            digits=digits,
            local_fraction=self.local_fraction(step),
            segment_len=self.segment_len,
            doubled_fraction=c.doubled_keys,
            needles=form.default_needles,
            fmt=fmt,
            haystack=haystack,
            template=template,
        )

    def batch(self, step: int, rank: int = 0, micro: int = 0) -> Batch:
        instances = self._instances(step, rank, micro)
        ids, labels = passkey.batch_tensors(instances, ends=self.cfg.answer_end)
        if self.cfg.full_loss:  # language-model loss on the whole prompt as well
            labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], dim=1).where(labels == -100, labels)
        return Batch(ids, labels, self._write_weights(instances, ids.shape[1], step, rank, micro))

    def stretch_limit(self, step: int) -> float:
        """The largest write weight at this step: grows log-linearly from 1 to stretch_max over
        stretch_curriculum_steps (at once if 0)."""
        c = self.cfg
        progress = min(1.0, step / c.stretch_curriculum_steps) if c.stretch_curriculum_steps else 1.0
        return c.stretch_max**progress

    def write_weights(self, step: int, rank: int = 0, micro: int = 0) -> torch.Tensor | None:
        """(batch, segments) memory-write weights of `batch(step, rank, micro)` (stretch.py), or None when off."""
        return self.batch(step, rank, micro).write_weights

    def _write_weights(self, instances, width: int, step: int, rank: int, micro: int) -> torch.Tensor | None:
        """The write weights of these instances (the batch's, `width` tokens wide), or None when stretched writes
        are off.

        Each sequence draws one weight log-uniformly from [1, stretch_limit(step)] and gives it to
        every segment that holds filler only: its haystack looks that many times longer to the
        memory. Segments with the instruction, the needle, the question or the answer keep weight 1.
        """
        if self.cfg.stretch_max <= 1:
            return None
        rng = random.Random(f"stretch-{self.cfg.seed}-{step}-{rank}-{micro}")
        limit = self.stretch_limit(step)
        rows = []
        segments = -(-width // self.segment_len)
        for inst in instances:
            w = math.exp(rng.uniform(0.0, math.log(limit)))
            row = [w if filler else 1.0 for filler in passkey.filler_segments(inst, self.segment_len)]
            rows.append(row + [1.0] * (segments - len(row)))
        return torch.tensor(rows)

    def evaluate(self, model, device, train_cfg=None) -> dict:
        """Exact match with the needle only in memory (depths 0.1-0.5) and in the local window (depth 1),
        for every training format, on `eval_haystack` (default: the paper's filler)."""
        from infini_attention.eval.passkey import evaluate_cell

        cfg, out = self.cfg, {}
        for fmt in cfg.formats:
            form = get_format(fmt)
            kwargs = dict(
                digits=self.digits(form),
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

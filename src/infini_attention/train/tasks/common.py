"""What every training task shares: the batch it returns, the step-seeded random draws, padding."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass
class Batch:
    """One micro-batch: ids and labels (batch, length), labels -100 where no loss is taken, and the
    memory-write weights (batch, segments) of stretched writes (train/stretch.py), or None.

    It unpacks as (ids, labels), as tasks' batches did before write weights joined them."""

    ids: torch.Tensor
    labels: torch.Tensor
    write_weights: torch.Tensor | None = None

    def __iter__(self):
        return iter((self.ids, self.labels))

    def __getitem__(self, i):
        return (self.ids, self.labels)[i]


class Task(Protocol):
    """A training task: batches are a pure function of (seed, step, rank, micro), so that a resumed or
    data-parallel run reads exactly the batches of one uninterrupted process."""

    def batch(self, step: int, rank: int = 0, micro: int = 0) -> Batch: ...

    def evaluate(self, model, device, cfg) -> dict: ...


@dataclass(frozen=True)
class TaskOptions:
    """The fields of TrainConfig that a task reads (each task subclasses it with its own): a task sees
    only these, with the same names and meanings as the `infini train` flags."""

    seed: int
    batch_size: int
    tokenizer: object  # a tokenizer name, or a Tokenizer object (a converted HF model's own)
    seq_len: int

    @classmethod
    def from_config(cls, cfg) -> TaskOptions:
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class LengthOptions(TaskOptions):
    """Tasks whose sequences have drawn lengths (passkey, copy)."""

    min_len: int
    length_curriculum_steps: int


def step_rng(seed: int, step: int, rank: int, micro: int) -> random.Random:
    return random.Random(f"{seed}-{step}-{rank}-{micro}")


def draw_length(rng: random.Random, cfg, step: int) -> int:
    """A sequence length drawn log-uniformly from [min_len, max], short and long sequences alike.

    max grows linearly from min_len to seq_len over `length_curriculum_steps` (0 = seq_len from the
    start), so that what is to be recalled moves out of the local window step by step.
    """
    low, high = cfg.min_len, cfg.seq_len
    if cfg.length_curriculum_steps:
        high = int(low + (high - low) * min(1.0, step / cfg.length_curriculum_steps))
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))


def stack_padded(rows: list[torch.Tensor], pad: int) -> torch.Tensor:
    """Stack 1-d tensors, right-padding the shorter ones (harmless for a causal model)."""
    width = max(len(r) for r in rows)
    return torch.stack([torch.cat([r, r.new_full((width - len(r),), pad)]) for r in rows])

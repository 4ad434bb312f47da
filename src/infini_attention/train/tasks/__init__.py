"""Training tasks by name. Each gives `Batch(ids, labels, write_weights)` for a step as a pure function
of (seed, step, rank, micro): resuming at step k reads exactly the batches an uninterrupted run would
have read, so the data position saved in a checkpoint is the step itself. Labels are -100 where no
loss is taken.

A new task is one module here with a class that has `batch()` (and `evaluate()` if it has a
training-time evaluation), added to TASKS.
"""

from __future__ import annotations

from infini_attention.train.tasks.common import Batch, Task, draw_length, stack_padded, step_rng
from infini_attention.train.tasks.copy import CopyTask
from infini_attention.train.tasks.passkey import PasskeyTask

TASKS = {"passkey": PasskeyTask, "copy": CopyTask, "lm": None}  # lm: imported on use (numpy corpora, eval)


def build_task(cfg, segment_len: int):
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}: choose one of {sorted(TASKS)}")
    if cfg.task == "lm":
        from infini_attention.train.tasks.lm import LMTask

        return LMTask(cfg, segment_len)
    return TASKS[cfg.task](cfg, segment_len)


__all__ = ["TASKS", "Batch", "CopyTask", "PasskeyTask", "Task", "build_task", "draw_length", "stack_padded", "step_rng"]

"""Training: config, loop, checkpoints, data parallelism, stretched writes and tasks (tasks/).

`from infini_attention.train import TrainConfig, train` as before the package existed; the names are
imported on first use, so that reading the config (the CLI's --help) does not import torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "load_checkpoint": "checkpointing",
    "save_checkpoint": "checkpointing",
    "TrainConfig": "config",
    "TRAIN_ONLY": "loop",
    "build_model": "loop",
    "loss_fn": "loop",
    "lr_factor": "loop",
    "parameter_groups": "loop",
    "train": "loop",
    "build_task": "tasks",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'infini_attention.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"infini_attention.train.{_WHERE[name]}"), name)
    globals()[name] = value
    return value

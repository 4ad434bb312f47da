"""Training: config, loop, checkpoints, data parallelism, stretched writes and tasks (tasks/).

`from infini_attention.train import TrainConfig, train` as before the package existed; the names are
imported on first use, so that reading the config (the CLI's --help) does not import torch.
"""

from __future__ import annotations

from infini_attention.utils import lazy_attribute

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
    return lazy_attribute(__name__, _WHERE, name)

"""Training: config, loop, checkpoints, data parallelism, stretched writes and tasks (tasks/).

`from infini_attention.train import TrainConfig, train` as before the package existed.
"""

from infini_attention.train.checkpointing import load_checkpoint, save_checkpoint
from infini_attention.train.config import TrainConfig
from infini_attention.train.loop import TRAIN_ONLY, build_model, loss_fn, lr_factor, parameter_groups, train
from infini_attention.train.tasks import build_task

__all__ = [
    "TRAIN_ONLY",
    "TrainConfig",
    "build_model",
    "build_task",
    "load_checkpoint",
    "loss_fn",
    "lr_factor",
    "parameter_groups",
    "save_checkpoint",
    "train",
]

"""Training tasks: moved to train/tasks/; these names keep working."""

from infini_attention.train.tasks import TASKS, CopyTask, PasskeyTask, build_task, stack_padded
from infini_attention.train.tasks.common import draw_length as _length
from infini_attention.train.tasks.common import step_rng as _rng

__all__ = ["TASKS", "CopyTask", "PasskeyTask", "_length", "_rng", "build_task", "stack_padded"]

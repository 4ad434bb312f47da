"""Data parallelism: moved to train/distributed.py; these names keep working."""

from infini_attention.train.distributed import Distributed

__all__ = ["Distributed"]

"""Stretched memory writes: moved to train/stretch.py; these names keep working."""

from infini_attention.train.stretch import forward_with_write_weights

__all__ = ["forward_with_write_weights"]

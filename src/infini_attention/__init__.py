"""Infini-attention (Munkhdalai et al., 2024): Transformers that read inputs of any length with bounded memory.

The names below are imported on first use (PEP 562), so that `infini --help` starts without torch.
"""

from __future__ import annotations

import sys
import types

from infini_attention.utils import lazy_attribute

__version__ = "0.1.0"

_WHERE = {  # public name -> the module that defines it
    "decode_one_token": "generate",
    "generate": "generate",
    "prefill": "generate",
    "sample": "generate",
    "FullAttention": "layers",
    "InfiniAttention": "layers",
    "LocalAttention": "layers",
    "MemorizingAttention": "layers.memorizing",
    "XLAttention": "layers.xl",
    "ATTENTION_KINDS": "models",
    "PRESETS": "models",
    "InfiniTransformer": "models",
    "ModelConfig": "models",
    "infini_attention": "ops",
    "infini_attention_naive": "ops",
    "InfiniState": "state",
    "KNNState": "state",
    "KVState": "state",
    "ModelState": "state",
    "XLState": "state",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    return lazy_attribute(__name__, _WHERE, name)


def __dir__():
    return sorted([*globals(), *_WHERE])


class _Package(types.ModuleType):
    """`infini_attention.generate` is the function, as it always was, even after the submodule of the same
    name is imported (the import system would set the package attribute to the submodule)."""

    def __setattr__(self, name, value):
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

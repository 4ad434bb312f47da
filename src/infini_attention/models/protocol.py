"""What the trainer and the evaluations call on a model, whichever kind it is (`StreamingLM`), and where
models other than InfiniTransformer come from (`MODEL_SOURCES`).

InfiniTransformer (models/transformer.py) and the Hugging Face adapter (hf/training.py,
HFTrainingModel) both implement StreamingLM. A package that provides another kind of model registers
a source by name, e.g. hf/training.py does `MODEL_SOURCES["hf"] = HFSource`: the trainer looks the
source up here and never imports that package itself (docs/architecture.md).
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from infini_attention.state import ModelState


@runtime_checkable
class StreamingLM(Protocol):
    config: object  # has segment_len, vocab_size, num_layers (ModelConfig, or a view of an HF config)
    layers: nn.ModuleList

    def forward(
        self,
        input_ids: torch.Tensor,
        state: ModelState | None = None,
        *,
        logits_to_keep: int | None = None,
        gradient_checkpointing: bool = False,
        detach_every: int | None = None,
    ) -> tuple[torch.Tensor, ModelState]: ...

    def reset_memory(self, state: ModelState) -> ModelState: ...

    def gate_parameters(self) -> list[nn.Parameter]: ...

    def save_weights(self, folder: str | os.PathLike) -> None: ...

    def load_weights(self, folder: str | os.PathLike) -> None: ...


class ModelSource(Protocol):
    """Builds a StreamingLM from a name (e.g. a model folder or gguf:default) and `--model` overrides."""

    @staticmethod
    def load(spec: str, **overrides) -> StreamingLM: ...

    @staticmethod
    def config(spec: str, overrides: dict) -> object: ...  # the model's config without loading its weights


MODEL_SOURCES: dict[str, ModelSource] = {}


def model_source(name: str) -> ModelSource:
    if name not in MODEL_SOURCES:
        hint = " (import infini_attention.hf first; it needs pip install -e '.[hf]')" if name == "hf" else ""
        raise ValueError(f"no model source {name!r} is registered{hint}")
    return MODEL_SOURCES[name]

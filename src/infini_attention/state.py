"""Typed containers for the recurrent state that a forward pass takes in and hands back.

A model never keeps state on its modules: `forward(x, state) -> (y, new_state)`. The state of an
Infini-attention layer is its compressive memory (M, z), always float32, plus the keys and values
of the segment it is in the middle of (fewer than `segment_len` tokens). Its size does not depend
on how many tokens were read. `ModelState.save` / `ModelState.load` write it to one safetensors
file, so a compressed context can be resumed later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields

import torch

from infini_attention.safe_files import load_checked, save_checked

STATE_FORMAT_VERSION = 1


@dataclass
class InfiniState:
    """State of one Infini-attention layer."""

    M: torch.Tensor  # (batch, kv_heads, head_dim, v_head_dim) float32: memory matrix, eqs 8-9
    z: torch.Tensor  # (batch, kv_heads, head_dim) float32: normalisation term, eqs 8-9
    k: torch.Tensor  # (batch, kv_heads, p, head_dim) un-rotated keys of the unfinished segment, p < N
    v: torch.Tensor  # (batch, kv_heads, p, v_head_dim) values of the unfinished segment
    # key_shift variant only: the shift terms W_{s,j} x_{t-j} of tokens already read that belong to the
    # next key_shift tokens, (batch, kv_heads, key_shift, head_dim)
    shift: torch.Tensor | None = None
    # query_shift variant only: the same for queries, (batch, heads, query_shift, head_dim)
    query_shift: torch.Tensor | None = None
    # sparse-cache variant only (ops/infini/sparse_cache.py): the past tokens kept exactly, c <= sparse_cache,
    # un-rotated keys (batch, kv_heads, c, head_dim) and their values (batch, kv_heads, c, v_head_dim)
    cache_k: torch.Tensor | None = None
    cache_v: torch.Tensor | None = None
    # memory-inputs variant only (the memory path has projections of its own, modules/memory_lora.py): the
    # unfinished segment's keys and values as the memory will receive them, shaped like k and v
    mem_k: torch.Tensor | None = None
    mem_v: torch.Tensor | None = None
    # memory-inputs variant with shift taps only (MemoryLoRA.shift): the taps' terms owed to the next tokens'
    # memory keys (batch, kv_heads, taps, head_dim) and memory queries (batch, heads, taps, head_dim)
    mem_shift: torch.Tensor | None = None
    mem_query_shift: torch.Tensor | None = None
    # local-tail variant only (fast.py's local_tail): the previous segment's last T un-rotated keys
    # (batch, kv_heads, t, head_dim) and values (batch, kv_heads, t, v_head_dim), t <= T, that the local
    # attention of the current segment sees before its own tokens
    tail_k: torch.Tensor | None = None
    tail_v: torch.Tensor | None = None
    # local-sink variant only (fast.py's local_sink): the stream's first S un-rotated keys and values, shaped like
    # the tail's, that the local attention of every later segment sees before the tail (the attention sink)
    sink_k: torch.Tensor | None = None
    sink_v: torch.Tensor | None = None

    kind = "infini"


@dataclass
class KVState:
    """Keys and values kept for attention: the unfinished segment (`local`) or everything (`full`)."""

    k: torch.Tensor  # (batch, kv_heads, p, head_dim) un-rotated keys
    v: torch.Tensor  # (batch, kv_heads, p, v_head_dim)

    kind = "kv"


@dataclass
class XLState:
    """State of one Transformer-XL layer: the previous complete segment (detached) and the unfinished one."""

    prev_k: torch.Tensor  # (batch, kv_heads, P, head_dim) un-rotated keys of the previous segment, P = 0 or N, detached
    prev_v: torch.Tensor  # (batch, kv_heads, P, v_head_dim) its values, detached
    k: torch.Tensor  # (batch, kv_heads, p, head_dim) un-rotated keys of the unfinished segment, p < N
    v: torch.Tensor  # (batch, kv_heads, p, v_head_dim) values of the unfinished segment

    kind = "xl"


@dataclass
class KNNState:
    """State of one Memorizing-Transformer layer: the kNN memory of past segments and the unfinished segment."""

    mem_k: torch.Tensor  # (batch, kv_heads, S, head_dim) un-rotated keys of past segments, oldest first, detached
    mem_v: torch.Tensor  # (batch, kv_heads, S, v_head_dim) their values, detached; S <= knn_max_memories
    k: torch.Tensor  # (batch, kv_heads, p, head_dim) un-rotated keys of the unfinished segment, p < N
    v: torch.Tensor  # (batch, kv_heads, p, v_head_dim) values of the unfinished segment

    kind = "knn"


STATE_CLASSES = {cls.kind: cls for cls in (InfiniState, KVState, XLState, KNNState)}


def _tensors(layer_state) -> dict[str, torch.Tensor]:
    """The state's tensors by field name; optional fields that are None are left out."""
    tensors = {f.name: getattr(layer_state, f.name) for f in fields(layer_state)}
    return {name: t for name, t in tensors.items() if t is not None}


@dataclass
class ModelState:
    """The state of a whole model: one entry per layer and the number of tokens read so far."""

    layers: list
    position: int = 0
    # what made it (attention kind, rule, segment length, shapes, variants), when a model forward did:
    # saved with the state and compared by the model that continues it (models/transformer.py)
    model: dict | None = None

    def detach(self) -> ModelState:
        """The same state cut from the autograd graph (truncated back-propagation through time)."""
        layers = [type(s)(**{n: t.detach() for n, t in _tensors(s).items()}) for s in self.layers]
        return ModelState(layers, self.position, self.model)

    def numel(self) -> int:
        return sum(t.numel() for s in self.layers for t in _tensors(s).values())

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self.layers for t in _tensors(s).values())

    @property
    def batch_size(self) -> int:
        return next(iter(_tensors(self.layers[0]).values())).shape[0]

    def save(self, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None) -> None:
        """Write the state to a safetensors file (atomically, with a checksum: safe_files.py)."""
        tensors = {
            f"layers.{i}.{name}": t.detach().contiguous().cpu()
            for i, s in enumerate(self.layers)
            for name, t in _tensors(s).items()
        }
        metadata = {
            "format_version": str(STATE_FORMAT_VERSION),
            "layer_kinds": json.dumps([s.kind for s in self.layers]),
            "position": str(self.position),
            **({"model": json.dumps(self.model, sort_keys=True)} if self.model else {}),
            **(extra_metadata or {}),
        }
        save_checked(tensors, path, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> ModelState:
        tensors, metadata = load_checked(path, device=str(device))
        version = int(metadata.get("format_version", -1))
        if version != STATE_FORMAT_VERSION:
            raise ValueError(
                f"{path}: state format version {version}, this library reads version {STATE_FORMAT_VERSION}"
            )
        layers = []
        for i, kind in enumerate(json.loads(metadata["layer_kinds"])):
            state_cls = STATE_CLASSES[kind]
            prefix = f"layers.{i}."
            layers.append(state_cls(**{k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}))
        model = json.loads(metadata["model"]) if "model" in metadata else None
        return cls(layers, int(metadata["position"]), model)

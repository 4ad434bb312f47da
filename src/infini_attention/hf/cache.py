"""`InfiniCache`: a transformers `Cache` that holds one `InfiniState` per layer instead of a growing KV cache.

Each layer keeps its compressive memory (M, z, float32) and the un-rotated keys and values of the
unfinished segment (fewer than `segment_len` tokens), so the cache's size does not depend on how
many tokens were read. The attention modules of a converted model (`hf/attention.py`) read and
write `layer.state` directly; transformers only asks the cache for lengths, mask sizes and batch
re-ordering, which the methods below answer.
"""

from __future__ import annotations

from dataclasses import fields

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from infini_attention.state import InfiniState, ModelState


class InfiniCacheLayer(CacheLayerMixin):
    """The state of one converted attention layer and the number of tokens it has read."""

    is_compileable = False
    is_croppable = False  # the memory cannot forget a token once it is written
    is_sliding = False

    def __init__(self, state: InfiniState | None = None, seen: int = 0):
        super().__init__()
        self.state = state
        self.seen = seen
        self.is_initialized = state is not None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to allocate ahead: the op creates M = 0, z = 0 on its first call."""

    def update(self, key_states, value_states, *args, **kwargs):
        raise NotImplementedError(
            "an InfiniCache layer is written by the Infini-attention op, not by Cache.update: "
            "was an InfiniCache passed to a model that was not converted with infini_attention.hf.convert?"
        )

    def advance(self, state: InfiniState, tokens: int) -> None:
        """Store the state the op returned after reading `tokens` more tokens."""
        self.state, self.seen, self.is_initialized = state, self.seen + tokens, True

    @property
    def pending(self) -> int:
        """Tokens of the unfinished segment held for local attention (< segment_len)."""
        return 0 if self.state is None else self.state.k.shape[2]

    def get_seq_length(self) -> int:
        return self.seen

    def get_max_length(self) -> int:
        return -1  # no maximum: the layer reads inputs of any length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        # The keys a query can see: the pending ones of its segment, then its own piece.
        return self.pending + query_length, self.seen - self.pending

    def offload(self):
        """Not supported: the state is small (bounded) and stays where the model is."""

    def prefetch(self):
        """Not supported, see `offload`."""

    def reset(self) -> None:
        self.state, self.seen, self.is_initialized = None, 0, False

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove != 0:
            raise NotImplementedError("an Infini-attention cache cannot be cropped: its memory cannot forget tokens")

    def _map(self, fn) -> None:
        if self.state is not None:
            values = {f.name: getattr(self.state, f.name) for f in fields(self.state)}
            # optional fields (InfiniState.shift / query_shift of the shift variants) may be None
            self.state = InfiniState(**{name: None if t is None else fn(t) for name, t in values.items()})

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._map(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map(lambda t: t[indices])

    def nbytes(self) -> int:
        if self.state is None:
            return 0
        tensors = (getattr(self.state, f.name) for f in fields(self.state))
        return sum(t.nbytes for t in tensors if t is not None)


class InfiniCache(Cache):
    """Per-layer Infini-attention state for a converted model; pass it as `cache=` to forward or generate.

    `generate()` of a converted model creates one by itself. Its size is bounded by the segment
    length: M and z per layer plus fewer than `segment_len` pending keys and values.
    """

    def __init__(self, config=None, num_layers: int | None = None):
        if num_layers is None:
            if config is None:
                raise ValueError("InfiniCache needs the model config or num_layers")
            num_layers = config.get_text_config(decoder=True).num_hidden_layers
        super().__init__(layers=[InfiniCacheLayer() for _ in range(num_layers)])

    def nbytes(self) -> int:
        """Bytes held by all layers' states (the memory plus the unfinished segment's keys and values)."""
        return sum(layer.nbytes() for layer in self.layers)

    def to_model_state(self) -> ModelState:
        """The same state as a `ModelState`, e.g. to `save()` a compressed context to a safetensors file."""
        if any(layer.state is None for layer in self.layers):
            raise ValueError("the cache is empty: run the model on some tokens first")
        return ModelState([layer.state for layer in self.layers], position=self.layers[0].seen)

    @classmethod
    def from_model_state(cls, state: ModelState) -> InfiniCache:
        """A cache that resumes from a `ModelState` (e.g. one read back with `ModelState.load`)."""
        if not all(isinstance(s, InfiniState) for s in state.layers):
            raise TypeError("every layer of the ModelState must be an InfiniState")
        cache = cls(num_layers=len(state.layers))
        for layer, layer_state in zip(cache.layers, state.layers):
            layer.advance(layer_state, state.position)
        return cache

"""The attention module that replaces a Llama-family attention: the library's own `InfiniAttention`
layer around the pretrained projections.

It keeps the original `q_proj`, `k_proj`, `v_proj`, `o_proj` modules themselves (same weights,
dtype, device and parameter names), adds the per-head gate `beta` of eq 10 (and the parameters of
any variant), and runs exactly the native layer's forward: the op segments, attends locally, reads
the memory (eq 7), writes it (eqs 8-9) and gates. RoPE tables come from the model's own rotary
embedding module (its inv_freq and any rope scaling), evaluated at in-segment positions
0..N-1: the op applies them to the local attention only, with positions restarting in every
segment, and never to the memory path.
"""

from __future__ import annotations

import torch
from torch import nn

from infini_attention.hf.cache import InfiniCache
from infini_attention.layers.attention import InfiniAttention


class SegmentRope:
    """cos/sin of the model's rotary embedding at positions 0..segment_len-1, computed once per device.

    A plain object, not a Module, so that the model's `rotary_emb` is not registered twice.
    """

    def __init__(self, rotary_emb: nn.Module, segment_len: int):
        self.rotary_emb, self.segment_len = rotary_emb, segment_len
        self._tables: dict = {}

    def __call__(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self.rotary_emb.inv_freq
        # inv_freq changes object or version if the model is moved, cast, or dynamic rope rescales it
        key = (device, inv_freq.data_ptr(), inv_freq._version, inv_freq.dtype)
        if key not in self._tables:
            positions = torch.arange(self.segment_len, device=device)[None]  # (1, N)
            probe = torch.empty(0, device=device, dtype=torch.float32)  # the rotary module reads device and dtype
            with torch.no_grad():
                cos, sin = self.rotary_emb(probe, positions)  # (1, N, head_dim), attention scaling included
            self._tables = {key: (cos[0], sin[0])}
        return self._tables[key]


class InfiniHFAttention(InfiniAttention):
    """Drop-in for LlamaAttention / Qwen2Attention / MistralAttention: the library's `InfiniAttention`
    built around the pretrained projections and the model's rotary embedding.

    forward(hidden_states (B, L, hidden), cache=InfiniCache | None) -> (output (B, L, hidden), None).
    The attention mask and position embeddings that the decoder layer passes are ignored: the op
    is causal by construction and uses in-segment positions. Padding is rejected by the model's
    forward (see `modeling.py`). Every rule and variant of `InfiniAttention` (rule, key_shift,
    query_shift, sharpness) is available.
    """

    def __init__(
        self,
        projections: dict[str, nn.Linear],
        num_heads: int,
        num_key_value_heads: int,
        head_dim: int,
        layer_idx: int,
        segment_len: int,
        rule: str,
        beta_init: float,
        rope: SegmentRope,
        **variants,
    ):
        super().__init__(
            projections["q_proj"].in_features,
            num_heads,
            num_key_value_heads,
            head_dim,
            segment_len=segment_len,
            rule=rule,
            beta_init=beta_init,
            projections=projections,
            rope=rope,
            **variants,
        )
        self.layer_idx = layer_idx

    def call_inputs(self, args: tuple, kwargs: dict):
        """(hidden_states, the cache layer's state) that a call from the decoder layer reads."""
        x = args[0] if args else kwargs["hidden_states"]
        cache = kwargs.get("cache") if kwargs.get("cache") is not None else kwargs.get("past_key_values")
        return x, None if cache is None else cache.layers[self.layer_idx].state

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings=None,
        attention_mask=None,
        cache: InfiniCache | None = None,
        past_key_values: InfiniCache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, None]:
        cache = cache if cache is not None else past_key_values
        if cache is not None and not isinstance(cache, InfiniCache):
            raise TypeError(
                f"a converted Infini-attention model needs an InfiniCache, got {type(cache).__name__}: "
                "pass cache=InfiniCache(model.config), or use_cache=False when calling the inner model"
            )
        layer = cache.layers[self.layer_idx] if cache is not None else None
        out, state = super().forward(hidden_states, None if layer is None else layer.state)
        if layer is not None:
            layer.advance(state, hidden_states.shape[1])
        return out, None

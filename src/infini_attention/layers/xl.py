"""Transformer-XL style attention (Dai et al., 2019), the paper's first long-context baseline.

Each segment of N tokens attends causally over itself and over the cached keys and values of the
previous segment. The cache is detached, as in Transformer-XL: no gradient flows into a past
segment. Keys and values are cached (not the previous segment's hidden states, which
Transformer-XL re-projects): with the weights fixed the two give the same forward pass, and K/V is
the cache that Table 1 of Infini-attention counts, (d_k + d_v) * H * N per layer.

Positions: RoPE with the previous segment at positions 0..N-1 and the current one at N..2N-1,
whatever the segment number, so that every token sees the same relative offsets to its cache in
every segment (and in the first segment, where the cache is empty, the current segment keeps the
positions N..2N-1, which changes nothing since RoPE scores depend only on offsets).
"""

import torch
import torch.nn.functional as F

from infini_attention.layers.attention import _Attention
from infini_attention.ops.rope import apply_rope, rope_cos_sin
from infini_attention.ops.segments import map_segment_pieces
from infini_attention.state import XLState


class XLAttention(_Attention):
    """Causal attention over the current segment plus the previous segment's detached keys and values.

    forward(x (batch, length, hidden), state=None) -> (y (batch, length, hidden), XLState).
    The input may begin or end anywhere inside a segment; two calls carrying the state give the
    output of one call, and so does token-by-token decoding.
    """

    def forward(self, x: torch.Tensor, state: XLState | None = None) -> tuple[torch.Tensor, XLState]:
        q, k, v = self._project(x)
        if state is None:
            empty_k, empty_v = k[:, :, :0].detach(), v[:, :, :0].detach()
            state = XLState(empty_k, empty_v, empty_k, empty_v)
        self.check_state(state, x.shape[0])
        positions = torch.arange(2 * self.segment_len, device=x.device)
        rope = rope_cos_sin(positions, self.head_dim, self.rope_theta)
        out, state = map_segment_pieces(  # (B, H, L, d)
            q, k, v, state, self.segment_len, lambda q, k, v, state: self._attend_piece(q, k, v, state, rope)
        )
        return self._merge(out), state

    def _attend_piece(self, q, k, v, state: XLState, rope) -> tuple[torch.Tensor, XLState]:
        """Tokens p..p+m-1 of one segment, where the state holds the segment's first p tokens."""
        n_seg, cached, p, m = self.segment_len, state.prev_k.shape[2], state.k.shape[2], q.shape[2]
        current_k = torch.cat([state.k, k], dim=2)  # (B, Hkv, p+m, d), un-rotated
        current_v = torch.cat([state.v, v], dim=2)
        keys = torch.cat([state.prev_k, current_k], dim=2)  # (B, Hkv, cached+p+m, d)
        values = torch.cat([state.prev_v, current_v], dim=2)
        cos, sin = rope
        # cache at N-cached..N-1 (0..N-1 once full), current segment at N..N+p+m-1
        k_rot = apply_rope(keys, cos[n_seg - cached : n_seg + p + m], sin[n_seg - cached : n_seg + p + m])
        q_rot = apply_rope(q, cos[n_seg + p : n_seg + p + m], sin[n_seg + p : n_seg + p + m])
        n = keys.shape[2]
        # query i (token p+i of the segment) sees the whole cache and the segment's tokens <= p+i
        mask = None if m == 1 else torch.ones(m, n, dtype=torch.bool, device=q.device).tril(diagonal=cached + p)
        out = F.scaled_dot_product_attention(
            q_rot, k_rot, values, attn_mask=mask, enable_gqa=self.num_heads != self.num_key_value_heads
        )
        if p + m < n_seg:
            return out, XLState(state.prev_k, state.prev_v, current_k, current_v)
        # the segment is complete: it becomes the (detached) cache of the next one
        return out, XLState(current_k.detach(), current_v.detach(), current_k[:, :, :0], current_v[:, :, :0])

    def check_state(self, state: XLState, batch: int) -> None:
        if not isinstance(state, XLState):
            raise TypeError(f"XLAttention needs an XLState, got {type(state).__name__}")
        self._check_window(state, batch, self.segment_len - 1)
        check_cache(self, state.prev_k, state.prev_v, batch, "prev_k", "prev_v")
        if state.prev_k.shape[2] > self.segment_len:
            raise ValueError(f"state caches {state.prev_k.shape[2]} tokens, more than segment_len = {self.segment_len}")


def check_cache(layer: _Attention, k: torch.Tensor, v: torch.Tensor, batch: int, k_name: str, v_name: str) -> None:
    """Clear errors for a cache of keys k (B, Hkv, n, dk) and values v (B, Hkv, n, dv) that does not fit `layer`."""
    expected = (batch, layer.num_key_value_heads, layer.head_dim)
    for name, t in ((k_name, k), (v_name, v)):
        if t.dim() != 4 or (t.shape[0], t.shape[1], t.shape[3]) != expected:
            raise ValueError(
                f"state.{name} has shape {tuple(t.shape)}, this layer expects (batch={batch}, "
                f"kv_heads={layer.num_key_value_heads}, tokens, head_dim={layer.head_dim}): "
                "was the state made by a model with other shapes or another batch size?"
            )
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"state.{k_name} holds {k.shape[2]} tokens but state.{v_name} holds {v.shape[2]}")

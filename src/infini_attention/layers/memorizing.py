"""Memorizing Transformer attention (Wu et al., 2022), the paper's second long-context baseline.

One layer of the model (config.memory_layer) combines
- segment-local causal attention with RoPE, exactly as the `local` kind, and
- attention over the top-k (key, value) pairs retrieved from an external kNN memory holding the
  keys and values of past segments of this layer,
through a learned per-head gate (Wu et al., section 3.2): g = sigmoid(b_g),
A = g * A_mem + (1 - g) * A_local. The gate logits are stored as `beta`, like Infini-attention's,
so that init_weights and gate_parameters treat both gates alike.

Choices, as in the original unless noted:
- Retrieval is exact: inner products against every stored key, per kv head (grouped query heads
  search their kv head's memory), top-k, then softmax over the k scores scaled by 1/sqrt(d).
  Wu et al. use approximate search (ScaNN); for memories that fit in RAM, exact is the reference.
- Keys and values are stored detached (Wu et al.: no gradient into the memory) and un-rotated:
  the memory path carries no positional encoding, as in the original.
- A segment enters the memory when its last token has been read, so its own queries never
  retrieve it; within the segment, local attention covers it.
- Capacity `max_memories` tokens per sequence and kv head; when full the oldest tokens are
  dropped first (FIFO), as in the original.
- With an empty memory (the first segment) the gate's memory share goes to local attention, so
  the output equals `local` attention instead of being scaled down (the same choice as the
  `infini` kind's first segment).
"""

import math

import torch
from torch import nn

from infini_attention.layers.attention import _Attention
from infini_attention.layers.xl import check_cache
from infini_attention.modules import tag
from infini_attention.ops.infini import infini_attention
from infini_attention.ops.segments import map_segment_pieces
from infini_attention.state import KNNState, KVState

# The largest score matrix (queries x memories, summed over batch and kv heads) built at once.
_SCORE_CHUNK = 1 << 24


def knn_search(q: torch.Tensor, mem_k: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k memory keys by inner product for queries q (B, Hkv, n, d) and keys mem_k (B, Hkv, S, d).

    Returns scores (B, Hkv, n, k) float32 (descending) and indices (B, Hkv, n, k) into S, k = min(top_k, S).
    """
    batch, kv_heads, n, _ = q.shape
    memories = mem_k.shape[2]
    if memories == 0:
        raise ValueError("knn_search needs a non-empty memory")
    k = min(top_k, memories)
    rows = max(1, _SCORE_CHUNK // (batch * kv_heads * memories))  # queries per chunk: bounds the score matrix
    scores, indices = [], []
    with torch.autocast(q.device.type, enabled=False):
        keys_t = mem_k.float().transpose(-1, -2)  # (B, Hkv, d, S)
        for start in range(0, n, rows):
            top = (q[:, :, start : start + rows].float() @ keys_t).topk(k, dim=-1)  # over (B, Hkv, rows, S)
            scores.append(top.values)
            indices.append(top.indices)
    return torch.cat(scores, dim=2), torch.cat(indices, dim=2)


def knn_attention(q: torch.Tensor, mem_k: torch.Tensor, mem_v: torch.Tensor, top_k: int) -> torch.Tensor:
    """Attention of q (B, H, m, d) over its top-k of mem_k, mem_v (B, Hkv, S, d): float32 (B, H, m, dv)."""
    batch, heads, m, d = q.shape
    kv_heads, memories, dv = mem_k.shape[1], mem_k.shape[2], mem_v.shape[-1]
    q_grouped = q.reshape(batch, kv_heads, (heads // kv_heads) * m, d)  # heads grouped by kv head
    scores, idx = knn_search(q_grouped, mem_k, top_k)  # (B, Hkv, G*m, k)
    with torch.autocast(q.device.type, enabled=False):
        weights = torch.softmax(scores / math.sqrt(d), dim=-1)
        # index into the memory flattened over (batch, kv head, slot)
        offsets = torch.arange(batch * kv_heads, device=q.device).view(batch, kv_heads, 1, 1) * memories
        picked = mem_v.float().reshape(batch * kv_heads * memories, dv)[idx + offsets]  # (B, Hkv, G*m, k, dv)
        out = torch.einsum("bhnk,bhnkd->bhnd", weights, picked)  # (B, Hkv, G*m, dv)
    return out.reshape(batch, heads, m, dv)


class MemorizingAttention(_Attention):
    """Segment-local attention plus kNN attention over a FIFO memory of past segments, gated per head.

    forward(x (batch, length, hidden), state=None) -> (y (batch, length, hidden), KNNState).
    `beta` holds the gate logits b_g; it starts at `beta_init` (default 0: gate 0.5).
    """

    def __init__(self, *args, top_k: int = 32, max_memories: int = 65536, beta_init: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if max_memories < 1:
            raise ValueError(f"max_memories must be >= 1, got {max_memories}")
        self.top_k, self.max_memories = top_k, max_memories
        self.beta = nn.Parameter(torch.full((self.num_heads,), float(beta_init)))
        tag(self, "beta", init=("constant", float(beta_init)), lr="gate", decay=False)

    def forward(self, x: torch.Tensor, state: KNNState | None = None) -> tuple[torch.Tensor, KNNState]:
        q, k, v = self._project(x)
        if state is None:
            empty_k, empty_v = k[:, :, :0].detach(), v[:, :, :0].detach()
            state = KNNState(empty_k, empty_v, empty_k, empty_v)
        self.check_state(state, x.shape[0])
        rope = self._segment_rope(x.device)
        out, state = map_segment_pieces(  # (B, H, L, d)
            q, k, v, state, self.segment_len, lambda q, k, v, state: self._attend_piece(q, k, v, state, rope)
        )
        return self._merge(out), state

    def _attend_piece(self, q, k, v, state: KNNState, rope) -> tuple[torch.Tensor, KNNState]:
        """Tokens p..p+m-1 of one segment, where the state holds the segment's first p tokens."""
        a_local, window = infini_attention(
            q, k, v, None, segment_len=self.segment_len, rope=rope, state=KVState(state.k, state.v)
        )
        if state.mem_k.shape[2] == 0:
            out = a_local
        else:
            a_mem = knn_attention(q, state.mem_k, state.mem_v, self.top_k)
            gate = torch.sigmoid(self.beta.float())[None, :, None, None]  # (1, H, 1, 1)
            out = (a_local.float() + gate * (a_mem - a_local.float())).to(a_local.dtype)
        if window.k.shape[2] > 0:  # the segment is unfinished
            return out, KNNState(state.mem_k, state.mem_v, window.k, window.v)
        segment_k = torch.cat([state.k, k], dim=2).detach()  # (B, Hkv, N, d)
        segment_v = torch.cat([state.v, v], dim=2).detach()
        mem_k = torch.cat([state.mem_k, segment_k], dim=2)[:, :, -self.max_memories :]  # FIFO: drop the oldest
        mem_v = torch.cat([state.mem_v, segment_v], dim=2)[:, :, -self.max_memories :]
        return out, KNNState(mem_k, mem_v, window.k, window.v)

    def check_state(self, state: KNNState, batch: int) -> None:
        if not isinstance(state, KNNState):
            raise TypeError(f"MemorizingAttention needs a KNNState, got {type(state).__name__}")
        self._check_window(state, batch, self.segment_len - 1)
        check_cache(self, state.mem_k, state.mem_v, batch, "mem_k", "mem_v")
        if state.mem_k.shape[2] > self.max_memories:
            raise ValueError(
                f"state holds {state.mem_k.shape[2]} memories, more than max_memories = {self.max_memories}"
            )

    def reset_memory(self, state: KNNState) -> KNNState:
        """The same state with an empty kNN memory."""
        return KNNState(state.mem_k[:, :, :0], state.mem_v[:, :, :0], state.k, state.v)

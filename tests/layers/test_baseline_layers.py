"""The baseline layers (Transformer-XL, Memorizing kNN attention) against plain references."""

import math

import pytest
import torch
import torch.nn.functional as F

from baseline_helpers import N, layer
from conftest import assert_close
from infini_attention import (
    KNNState,
    LocalAttention,
    MemorizingAttention,
    XLAttention,
    XLState,
)
from infini_attention.layers.memorizing import knn_attention, knn_search
from infini_attention.ops import apply_rope, rope_cos_sin

# ---------------------------------------------------------------- layer level


def _rotated(attn, x):
    """Queries and keys rotated at absolute positions 0..L-1, and values, expanded to all query heads."""
    q, k, v = attn._project(x)
    cos, sin = rope_cos_sin(torch.arange(x.shape[1]), attn.head_dim, attn.rope_theta)
    group = attn.num_heads // attn.num_key_value_heads
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, H, L, d)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


def test_xl_layer_matches_a_masked_attention_reference():
    """Token t sees tokens of its own segment up to t and all of the previous segment, nothing else."""
    attn = layer(XLAttention)
    x = torch.randn(2, 4 * N + 3, 32)
    y, _ = attn(x)
    with torch.no_grad():
        q, k, v = _rotated(attn, x)
        t = torch.arange(x.shape[1])
        seg = t // N
        mask = (t[None, :] <= t[:, None]) & (seg[None, :] >= seg[:, None] - 1)  # (query, key)
        ref = attn._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert_close(y, ref, atol=1e-5, what="XL vs masked full attention")


def _brute_force_knn(q, mem_k, mem_v, top_k):
    """Per query head and query: sort every score, keep the top_k, softmax, weighted sum of values (float64)."""
    batch, heads, m, d = q.shape
    group = heads // mem_k.shape[1]
    out = torch.zeros(batch, heads, m, mem_v.shape[-1], dtype=torch.float64)
    chosen = {}
    for b in range(batch):
        for h in range(heads):
            keys, values = mem_k[b, h // group].double(), mem_v[b, h // group].double()
            for i in range(m):
                scores = (keys @ q[b, h, i].double()).tolist()
                order = sorted(range(len(scores)), key=lambda j: -scores[j])[:top_k]
                chosen[b, h, i] = set(order)
                w = torch.softmax(torch.tensor([scores[j] for j in order], dtype=torch.float64) / math.sqrt(d), 0)
                out[b, h, i] = (w[:, None] * values[order]).sum(0)
    return out, chosen


@pytest.mark.parametrize("top_k,memories", [(7, 40), (4, 4), (32, 9)])
def test_knn_retrieval_is_the_exact_top_k(top_k, memories):
    q = torch.randn(2, 4, 5, 8)  # 4 query heads over 2 kv heads
    mem_k, mem_v = torch.randn(2, 2, memories, 8), torch.randn(2, 2, memories, 8)
    ref, chosen = _brute_force_knn(q, mem_k, mem_v, top_k)
    out = knn_attention(q, mem_k, mem_v, top_k)
    assert_close(out, ref, atol=1e-5, what="kNN attention vs brute force")
    _, idx = knn_search(q.reshape(2, 2, 10, 8), mem_k, top_k)  # heads grouped by kv head
    assert idx.shape[-1] == min(top_k, memories)
    idx = idx.reshape(2, 4, 5, -1)  # (B, H, m, k)
    for (b, h, i), expected in chosen.items():
        assert set(idx[b, h, i].tolist()) == expected, f"query {(b, h, i)}"


def test_knn_memory_is_a_fifo_with_a_cap():
    big = layer(MemorizingAttention, max_memories=100 * N)
    small = layer(MemorizingAttention, max_memories=2 * N + 3)
    small.load_state_dict(big.state_dict())
    x = torch.randn(2, 6 * N + 5, 32)
    with torch.no_grad():
        _, keys, values = big._project(x)  # (B, Hkv, L, d): what the memory must hold, un-rotated
        state_big = state_small = None
        for start, end in [(0, N + 2), (N + 2, 3 * N), (3 * N, 6 * N + 5)]:
            _, state_big = big(x[:, start:end], state_big)
            _, state_small = small(x[:, start:end], state_small)
            stored = N * (end // N)  # finished segments only
            assert state_big.mem_k.shape[2] == stored
            assert state_small.mem_k.shape[2] == min(stored, 2 * N + 3)
            assert_close(state_big.mem_k, keys[:, :, :stored], what="memory keys")
            assert_close(state_big.mem_v, values[:, :, :stored], what="memory values")
            assert_close(state_small.mem_k, keys[:, :, :stored][:, :, -(2 * N + 3) :], what="newest keys kept")
            assert_close(state_small.mem_v, values[:, :, :stored][:, :, -(2 * N + 3) :], what="newest values kept")


def test_memorizing_layer_matches_the_gated_formula():
    """Segment 1: out = g * A_mem + (1 - g) * A_local with g = sigmoid(b_g) (Wu et al.), A_mem by brute force."""
    attn = layer(MemorizingAttention, top_k=5)
    with torch.no_grad():
        attn.beta.copy_(torch.tensor([-2.0, -0.5, 0.5, 2.0]))
    x = torch.randn(2, 2 * N, 32)
    y, _ = attn(x)
    with torch.no_grad():
        q, k, v = attn._project(x)
        a_mem, _ = _brute_force_knn(q[:, :, N:], k[:, :, :N], v[:, :, :N], 5)
        qr, kr, vr = _rotated(attn, x[:, N:])  # local attention restarts its positions every segment
        a_local = F.scaled_dot_product_attention(qr, kr, vr, is_causal=True)
        g = torch.sigmoid(attn.beta)[None, :, None, None]
        ref = attn._merge((g * a_mem.float() + (1 - g) * a_local).float())
    assert_close(y[:, N:], ref, atol=1e-5, what="gated output")
    local = layer(LocalAttention)
    local.load_state_dict(attn.state_dict(), strict=False)
    assert_close(y[:, :N], local(x[:, :N])[0], atol=0, rtol=0, what="first segment = local")


def test_xl_layer_errors():
    attn = layer(XLAttention)
    _, state = attn(torch.randn(1, N + 2, 32))
    assert isinstance(state, XLState) and state.prev_k.shape[2] == N and state.k.shape[2] == 2
    with pytest.raises(TypeError, match="XLState"):
        attn(torch.randn(1, 1, 32), KNNState(state.prev_k, state.prev_v, state.k, state.v))
    with pytest.raises(ValueError, match="another batch size"):
        attn(torch.randn(2, 1, 32), state)
    too_long = XLState(torch.cat([state.prev_k] * 2, 2), torch.cat([state.prev_v] * 2, 2), state.k, state.v)
    with pytest.raises(ValueError, match="more than segment_len"):
        attn(torch.randn(1, 1, 32), too_long)

"""The sparse-cache variant (ops/infini/sparse_cache.py): the fast op against the plain reference, carried
state, decoding, where every past token goes, what the selection keeps, and the options' checks."""

import pytest
import torch

from conftest import assert_close
from infini_attention.layers.attention import InfiniAttention
from infini_attention.ops import infini_attention, infini_attention_naive, rope_cos_sin
from infini_attention.ops.infini import sparse_cache
from infini_attention.ops.infini.rules import make_rule
from infini_attention.state import InfiniState

N, DK = 16, 8
BLOCK = 4  # the selection's block in these tests (the layers use sparse_cache.BLOCK = 16)
RULES = ["linear", "delta", "deltanet", "linear-causal"]


def make_inputs(length, batch=2, heads=4, kv_heads=2, cached=3):
    torch.manual_seed(length * 7 + cached)
    q, k, v = (
        torch.randn(batch, heads, length, DK),
        torch.randn(batch, kv_heads, length, DK),
        torch.randn(batch, kv_heads, length, DK),
    )
    beta = torch.randn(heads)
    M0, z0 = torch.rand(batch, kv_heads, DK, DK), torch.rand(batch, kv_heads, DK) + 0.5
    ck, cv = torch.randn(batch, kv_heads, cached, DK), torch.randn(batch, kv_heads, cached, DK)
    return [t.requires_grad_() for t in (q, k, v, beta, M0, z0, ck, cv)]


def rope():
    return rope_cos_sin(torch.arange(N), DK, 10000.0)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("size", [BLOCK, N, 2 * N + BLOCK])
@pytest.mark.parametrize("length", [N - 1, N, 3 * N + 5])
def test_fast_matches_reference_outputs_and_gradients(rule, size, length):
    q, k, v, beta, M0, z0, ck, cv = make_inputs(length, cached=BLOCK)
    wg = (torch.randn(2, DK) * 0.5, torch.randn(2)) if rule == "deltanet" else None
    opts = dict(segment_len=N, rule=rule, rope=rope(), sparse_cache=size, sparse_block=BLOCK, write_gate=wg)
    out_ref, (M_ref, z_ref, ck_ref, cv_ref) = infini_attention_naive(
        q, k, v, beta, initial_state=(M0, z0), initial_cache=(ck, cv), **opts
    )
    state = InfiniState(M0, z0, k[:, :, :0].detach(), v[:, :, :0].detach(), cache_k=ck, cache_v=cv)
    out, state = infini_attention(q, k, v, beta, state=state, **opts)
    assert_close(out, out_ref, what="output")
    for name, ref in (("M", M_ref), ("z", z_ref), ("cache_k", ck_ref), ("cache_v", cv_ref)):
        assert_close(getattr(state, name), ref, what=name)
    assert state.cache_k.shape[2] == min(size, BLOCK + (length // N) * N)
    inputs = [q, k, v, beta, M0, z0, ck, cv]
    weights = torch.randn_like(out_ref)
    loss_ref = (out_ref * weights).sum() + 1e-2 * (M_ref.sum() + z_ref.sum() + ck_ref.sum() + cv_ref.sum())
    loss = (out * weights).sum() + 1e-2 * (state.M.sum() + state.z.sum() + state.cache_k.sum() + state.cache_v.sum())
    grads_ref = torch.autograd.grad(loss_ref, inputs)
    grads = torch.autograd.grad(loss, inputs)
    for name, g, g_ref in zip(["q", "k", "v", "beta", "M0", "z0", "cache_k", "cache_v"], grads, grads_ref):
        if not (rule == "deltanet" and name == "z0"):  # (deltanet neither reads nor writes z: the loss's own term)
            assert g_ref.abs().sum() > 0, f"grad {name} is zero"
        assert_close(g, g_ref, atol=1e-4, what=f"grad {name}")


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("split", [1, N - 1, N, 2 * N + 3])
def test_two_calls_carrying_state_equal_one_call(rule, split):
    q, k, v, beta, *_ = (t.detach() for t in make_inputs(4 * N + 5))
    wg = (torch.randn(2, DK) * 0.5, torch.randn(2)) if rule == "deltanet" else None
    opts = dict(segment_len=N, rule=rule, rope=rope(), sparse_cache=2 * BLOCK, sparse_block=BLOCK, write_gate=wg)
    out, state = infini_attention(q, k, v, beta, **opts)
    a, b = slice(None, split), slice(split, None)
    out1, s1 = infini_attention(q[:, :, a], k[:, :, a], v[:, :, a], beta, **opts)
    out2, s2 = infini_attention(q[:, :, b], k[:, :, b], v[:, :, b], beta, state=s1, **opts)
    assert_close(torch.cat([out1, out2], dim=2), out, what="output")
    for name in ("M", "z", "k", "v", "cache_k", "cache_v"):
        assert_close(getattr(s2, name), getattr(state, name), what=name)


def test_token_by_token_equals_one_call():
    q, k, v, beta, *_ = (t.detach() for t in make_inputs(3 * N + 2))
    opts = dict(segment_len=N, rule="linear", rope=rope(), sparse_cache=2 * BLOCK, sparse_block=BLOCK)
    out, _ = infini_attention(q, k, v, beta, **opts)
    state, pieces = None, []
    for t in range(q.shape[2]):
        o, state = infini_attention(
            q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], beta, state=state, **opts
        )
        pieces.append(o)
    assert_close(torch.cat(pieces, dim=2), out, what="token-by-token output")
    assert state.cache_k.shape[2] == 2 * BLOCK, "the cache never holds more than its size"


def test_every_past_token_is_in_the_cache_or_the_memory():
    """Linear rule: z with a cache + the cached keys' mass == z without a cache (each token written once)."""
    q, k, v, beta, *_ = (t.detach() for t in make_inputs(5 * N))
    _, plain = infini_attention(q, k, v, beta, segment_len=N, rule="linear")
    _, cached = infini_attention(
        q, k, v, beta, segment_len=N, rule="linear", sparse_cache=3 * BLOCK, sparse_block=BLOCK
    )
    rule = make_rule("linear")
    assert_close(cached.z + rule.key_mass(cached.cache_k), plain.z, what="z + cached mass")
    assert_close(
        cached.M + rule.feature(cached.cache_k).transpose(-1, -2) @ cached.cache_v, plain.M, what="M + cached writes"
    )


def test_novelty_is_zero_for_a_repeat_and_the_norm_for_the_first_token():
    torch.manual_seed(1)
    k, v = torch.randn(1, 1, 5, DK) * 4, torch.randn(1, 1, 5, DK)
    k[0, 0, 4], v[0, 0, 4] = k[0, 0, 1], v[0, 0, 1]  # token 4 repeats token 1 (keys sharp enough to find it)
    error = sparse_cache.novelty(k, v)[0, 0]
    assert_close(error[0], v[0, 0, 0].square().sum(), what="the first token: nothing before it")
    assert error[4] < 1e-3 * error[1]


def test_a_fact_stated_once_is_kept_over_a_repeated_filler_and_a_query_finds_it():
    """A filler of 4 tokens repeated, one odd token in the first segment: after 6 segments a cache of one block
    holds it, and a query equal to its key returns its value through the local attention; without the cache
    the output is far from it."""
    torch.manual_seed(0)
    pattern_k, pattern_v = torch.randn(4, DK) * 3, torch.randn(4, DK)
    k, v = pattern_k.repeat(24, 1)[None, None], pattern_v.repeat(24, 1)[None, None]  # (1, 1, 6N, DK)
    odd = 5
    k[0, 0, odd], v[0, 0, odd] = torch.randn(DK) * 3, torch.full((DK,), 10.0)
    q = k.clone()
    q[0, 0, -1] = k[0, 0, odd] * 4  # the last query asks for the odd token's key, sharply
    beta = torch.tensor([-20.0])  # the gate shuts the memory: what comes back comes through the local attention
    out, state = infini_attention(q, k, v, beta, segment_len=N, sparse_cache=BLOCK, sparse_block=BLOCK)
    assert_close(state.cache_k[0, 0], k[0, 0, 4:8], what="the cached block")
    assert (out[0, 0, -1] - v[0, 0, odd]).abs().max() < 0.5, out[0, 0, -1]
    out_plain, _ = infini_attention(q, k, v, beta, segment_len=N)
    assert (out_plain[0, 0, -1] - v[0, 0, odd]).abs().max() > 5.0


def test_select_and_its_reference_agree_per_head():
    torch.manual_seed(3)
    ck, cv = torch.randn(2, 3, 2 * BLOCK, DK), torch.randn(2, 3, 2 * BLOCK, DK)
    k, v = torch.randn(2, 3, N, DK), torch.randn(2, 3, N, DK)
    kept = sparse_cache.select(3 * BLOCK, ck, cv, k, v, BLOCK)
    assert kept[0].shape[2] == 3 * BLOCK and kept[2].shape[2] == N - BLOCK
    for b in range(2):
        for h in range(3):
            ref = sparse_cache.reference_select(3 * BLOCK, ck[b, h], cv[b, h], k[b, h], v[b, h], BLOCK)
            for got, want in zip(kept, ref):
                assert_close(got[b, h], want, what="select vs reference")


def test_reset_memory_empties_the_cache_and_options_are_checked():
    layer = InfiniAttention(16, 2, 1, 8, segment_len=16, sparse_cache=16)
    _, state = layer(torch.randn(1, 45, 16))
    assert state.cache_k.shape[2] == 16
    reset = layer.reset_memory(state)
    assert reset.cache_k.shape[2] == 0 and reset.cache_v.shape[2] == 0 and reset.M.abs().sum() == 0
    plain = InfiniAttention(16, 2, 1, 8, segment_len=16)
    with pytest.raises(ValueError, match="holds a sparse cache"):
        plain(torch.randn(1, 2, 16), state)
    with pytest.raises(ValueError, match="has no sparse cache"):
        layer(torch.randn(1, 2, 16), plain(torch.randn(1, 5, 16))[1])
    with pytest.raises(ValueError, match="sparse_cache must be a number"):
        InfiniAttention(16, 2, 1, 8, segment_len=16, sparse_cache=-1)
    with pytest.raises(ValueError, match="multiples of the selection's block"):
        InfiniAttention(16, 2, 1, 8, segment_len=16, sparse_cache=20)

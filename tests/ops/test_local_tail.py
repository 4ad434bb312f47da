"""The local-tail and local-sink variants (ops/infini/fast.py `local_tail`, `local_sink`): every segment's local
attention also sees the previous segment's last T tokens and the stream's first S tokens. The fast op against the
plain reference (outputs and gradients), carried state, decoding, what they change and what they leave alone, and
the options' checks."""

import pytest
import torch

from conftest import assert_close
from infini_attention.ops import infini_attention, infini_attention_naive, rope_cos_sin
from infini_attention.ops.infini.fast import empty_state
from infini_attention.ops.rope import apply_rope
from infini_attention.state import InfiniState

N, DK = 16, 8
RULES = ["linear", "delta", "deltanet", "linear-causal"]


def make_inputs(length, batch=2, heads=4, kv_heads=2, tail=3, sink=2):
    torch.manual_seed(length * 5 + tail)
    q, k, v = (
        torch.randn(batch, heads, length, DK),
        torch.randn(batch, kv_heads, length, DK),
        torch.randn(batch, kv_heads, length, DK),
    )
    beta = torch.randn(heads)
    M0, z0 = torch.rand(batch, kv_heads, DK, DK), torch.rand(batch, kv_heads, DK) + 0.5
    tk, tv = torch.randn(batch, kv_heads, tail, DK), torch.randn(batch, kv_heads, tail, DK)
    sk, sv = torch.randn(batch, kv_heads, sink, DK), torch.randn(batch, kv_heads, sink, DK)
    return [t.requires_grad_() for t in (q, k, v, beta, M0, z0, tk, tv, sk, sv)]


def rope():
    return rope_cos_sin(torch.arange(N), DK, 10000.0)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("tail,sink", [(1, 0), (5, 2), (N - 3, 2), (0, 3)])
@pytest.mark.parametrize("length", [N - 1, N, 3 * N + 5])
def test_fast_matches_reference_outputs_and_gradients(rule, tail, sink, length):
    """From a state that holds a tail and a sink already (random), over segments that replace the tail."""
    q, k, v, beta, M0, z0, tk, tv, sk, sv = make_inputs(length, tail=tail, sink=sink)
    wg = (torch.randn(2, DK) * 0.5, torch.randn(2)) if rule == "deltanet" else None
    opts = dict(segment_len=N, rule=rule, rope=rope(), local_tail=tail, local_sink=sink, write_gate=wg)
    out_ref, (M_ref, z_ref, *looked_ref) = infini_attention_naive(
        q, k, v, beta, initial_state=(M0, z0), initial_tail=(tk, tv), initial_sink=(sk, sv), **opts
    )
    held = {"tail_k": tk, "tail_v": tv} if tail else {}
    held.update({"sink_k": sk, "sink_v": sv} if sink else {})
    state = InfiniState(M0, z0, k[:, :, :0].detach(), v[:, :, :0].detach(), **held)
    out, state = infini_attention(q, k, v, beta, state=state, **opts)
    assert_close(out, out_ref, what="output")
    names = list(held)
    for name, ref in zip(["M", "z", *names], [M_ref, z_ref, *looked_ref]):
        assert_close(getattr(state, name), ref, what=name)
    if tail and length >= N:
        end = (length // N) * N
        assert_close(state.tail_k, k[:, :, end - tail : end], what="the last segment's tail")
    if sink:
        assert_close(state.sink_k, sk, what="a full sink stays as it was")
    inputs = [q, k, v, beta, M0, z0, *held.values()]
    weights = torch.randn_like(out_ref)
    loss_ref = (out_ref * weights).sum() + 1e-2 * (M_ref.sum() + z_ref.sum() + sum(t.sum() for t in looked_ref))
    loss = (out * weights).sum() + 1e-2 * (state.M.sum() + state.z.sum() + sum(getattr(state, n).sum() for n in names))
    grads_ref = torch.autograd.grad(loss_ref, inputs)
    grads = torch.autograd.grad(loss, inputs)
    for name, g, g_ref in zip(["q", "k", "v", "beta", "M0", "z0", *names], grads, grads_ref):
        if not (rule == "deltanet" and name == "z0"):  # (deltanet neither reads nor writes z: the loss's own term)
            assert g_ref.abs().sum() > 0, f"grad {name} is zero"
        assert_close(g, g_ref, atol=1e-4, what=f"grad {name}")


def test_with_the_sparse_cache_and_memory_inputs_the_reference_agrees():
    q, k, v, beta, *_ = (t.detach() for t in make_inputs(3 * N + 2, tail=4))
    torch.manual_seed(9)
    opts = dict(segment_len=N, rule="delta", rope=rope(), local_tail=4)
    cached = dict(sparse_cache=8, sparse_block=4)
    out_ref, (M_ref, z_ref, ck, cv, tk_ref, _) = infini_attention_naive(q, k, v, beta, **opts, **cached)
    out, state = infini_attention(q, k, v, beta, **opts, **cached)
    assert_close(out, out_ref, what="output with the sparse cache")
    for name, ref in (("M", M_ref), ("cache_k", ck), ("tail_k", tk_ref)):
        assert_close(getattr(state, name), ref, what=name)
    mem = tuple(torch.randn_like(t) for t in (q, k, v))
    out_ref, (M_ref, _, tk_ref, _) = infini_attention_naive(q, k, v, beta, memory_inputs=mem, **opts)
    out, state = infini_attention(q, k, v, beta, memory_inputs=mem, **opts)
    assert_close(out, out_ref, what="output with memory inputs")
    assert_close(state.M, M_ref, what="M with memory inputs")
    assert_close(state.tail_k, k[:, :, 3 * N - 4 : 3 * N], what="the tail holds the local keys, not the memory's")


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("split", [1, N - 1, N, 2 * N + 3])
def test_two_calls_carrying_state_equal_one_call(rule, split):
    """From a fresh state: the first segment fills the sink, every segment replaces the tail."""
    q, k, v, beta, *_ = (t.detach() for t in make_inputs(4 * N + 5))
    wg = (torch.randn(2, DK) * 0.5, torch.randn(2)) if rule == "deltanet" else None
    opts = dict(segment_len=N, rule=rule, rope=rope(), local_tail=6, local_sink=3, write_gate=wg)
    out, state = infini_attention(q, k, v, beta, **opts)
    out_ref, _ = infini_attention_naive(q, k, v, beta, **opts)
    assert_close(out, out_ref, what="output against the reference from an empty sink")
    assert_close(state.sink_k, k[:, :, :3], what="the stream's first tokens")
    a, b = slice(None, split), slice(split, None)
    out1, s1 = infini_attention(q[:, :, a], k[:, :, a], v[:, :, a], beta, **opts)
    out2, s2 = infini_attention(q[:, :, b], k[:, :, b], v[:, :, b], beta, state=s1, **opts)
    assert_close(torch.cat([out1, out2], dim=2), out, what="output")
    for name in ("M", "z", "k", "v", "tail_k", "tail_v", "sink_k", "sink_v"):
        assert_close(getattr(s2, name), getattr(state, name), what=name)


def test_token_by_token_equals_one_call():
    q, k, v, beta, *_ = (t.detach() for t in make_inputs(3 * N + 2))
    opts = dict(segment_len=N, rule="delta", rope=rope(), local_tail=5, local_sink=2)
    out, _ = infini_attention(q, k, v, beta, **opts)
    state, pieces = None, []
    for t in range(q.shape[2]):
        o, state = infini_attention(
            q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], beta, state=state, **opts
        )
        pieces.append(o)
    assert_close(torch.cat(pieces, dim=2), out, what="token-by-token output")
    assert state.tail_k.shape[2] == 5 and state.sink_k.shape[2] == 2, "neither holds more than its size"


def test_the_first_segment_is_the_papers_and_later_segments_see_sink_and_tail_as_a_window_would():
    """With the memory's gate shut (beta = -inf), a sink of S and a tail of T tokens make the third segment's first
    token attend over the stream's first S tokens, the previous T and itself, laid side by side (as StreamingLLM's
    cache: consecutive RoPE positions). Without them it sees itself only. Segment 1 is unchanged by them."""
    q, k, v, *_ = (t.detach() for t in make_inputs(3 * N, heads=2, kv_heads=2))
    shut = torch.full((2,), float("-inf"))
    cos, sin = rope_cos_sin(torch.arange(N), DK, 10000.0)
    out_look, state = infini_attention(q, k, v, shut, segment_len=N, rope=(cos, sin), local_tail=4, local_sink=2)
    out_plain, _ = infini_attention(q, k, v, shut, segment_len=N, rope=(cos, sin))
    assert_close(out_look[:, :, :N], out_plain[:, :, :N], what="the first segment")
    window = torch.tensor([0, 1, 2 * N - 4, 2 * N - 3, 2 * N - 2, 2 * N - 1, 2 * N])  # sink, tail, the query's token
    qr = apply_rope(q[:, :, 2 * N : 2 * N + 1], cos[6:7], sin[6:7])
    kr = apply_rope(k[:, :, window], cos[:7], sin[:7])
    want = torch.softmax(qr @ kr.transpose(-1, -2) / DK**0.5, dim=-1) @ v[:, :, window]
    assert_close(out_look[:, :, 2 * N : 2 * N + 1], want, what="the third segment's first token")
    assert_close(out_plain[:, :, 2 * N], v[:, :, 2 * N], what="without them it sees only itself")
    assert_close(state.sink_k, k[:, :, :2], what="the sink keeps the stream's first tokens")


def test_options_and_states_are_checked():
    q, k, v, beta, *_ = (t.detach() for t in make_inputs(N + 2))
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="local_tail must be a number of tokens"):
            infini_attention(q, k, v, beta, segment_len=N, local_tail=bad)
        with pytest.raises(ValueError, match="local_sink must be a number of tokens"):
            infini_attention(q, k, v, beta, segment_len=N, local_sink=bad)
    with pytest.raises(ValueError, match="less than segment_len"):
        infini_attention(q, k, v, beta, segment_len=N, local_tail=N - 2, local_sink=2)
    with pytest.raises(ValueError, match="need a memory"):
        infini_attention(q, k, v, None, segment_len=N, local_tail=2)
    _, plain = infini_attention(q, k, v, beta, segment_len=N)
    with pytest.raises(ValueError, match="has no tail"):
        infini_attention(q, k, v, beta, segment_len=N, local_tail=2, state=plain)
    _, tailed = infini_attention(q, k, v, beta, segment_len=N, local_tail=4)
    with pytest.raises(ValueError, match="holds a tail"):
        infini_attention(q, k, v, beta, segment_len=N, state=tailed)
    with pytest.raises(ValueError, match="more than local_tail=2"):
        infini_attention(q, k, v, beta, segment_len=N, local_tail=2, state=tailed)
    with pytest.raises(ValueError, match="has no sink"):
        infini_attention(q, k, v, beta, segment_len=N, local_tail=4, local_sink=1, state=tailed)
    fresh = empty_state(q, k, v, memory=True, local_tail=3, local_sink=2)
    assert fresh.tail_k.shape == (2, 2, 0, DK) and fresh.sink_v.shape == (2, 2, 0, DK)

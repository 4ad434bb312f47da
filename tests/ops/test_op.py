"""The fast op against the plain fp32 reference: outputs, gradients, carried state, RoPE, causality."""

import pytest
import torch

from conftest import assert_close
from infini_attention.ops import infini_attention, infini_attention_naive, rope_cos_sin
from infini_attention.state import InfiniState

N = 16  # segment length
DK = 8


def make_inputs(length, batch=2, heads=4, kv_heads=2, requires_grad=True):
    q = torch.randn(batch, heads, length, DK)
    k = torch.randn(batch, kv_heads, length, DK)
    v = torch.randn(batch, kv_heads, length, DK)
    beta = torch.randn(heads)
    M0 = torch.rand(batch, kv_heads, DK, DK)
    z0 = torch.rand(batch, kv_heads, DK) + 0.5
    return [t.requires_grad_(requires_grad) for t in (q, k, v, beta, M0, z0)]


def rope():
    return rope_cos_sin(torch.arange(N), DK, 10000.0)


RULES = ["linear", "delta", "deltanet", "linear-causal"]


def write_gate(rule, kv_heads=2, requires_grad=False):
    """The deltanet rule's write-strength parameters (weight, bias); None for the paper's rules."""
    if rule != "deltanet":
        return None
    weight, bias = torch.randn(kv_heads, DK) * 0.5, torch.randn(kv_heads)
    return weight.requires_grad_(requires_grad), bias.requires_grad_(requires_grad)


def fast(q, k, v, beta, M0=None, z0=None, rule="linear", rope_tables=None, write_gate=None):
    state = None
    if M0 is not None:
        empty = k[:, :, :0].detach()
        state = InfiniState(M0, z0, empty, v[:, :, :0].detach())
    out, state = infini_attention(
        q, k, v, beta, segment_len=N, rule=rule, rope=rope_tables, state=state, write_gate=write_gate
    )
    return out, state


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("length", [1, 63, N - 1, N, N + 1, 5 * N + 3])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_fast_matches_reference_outputs_and_gradients(rule, length, with_initial_state):
    q, k, v, beta, M0, z0 = make_inputs(length)
    init = (M0, z0) if with_initial_state else (None, None)
    tables = rope()
    wg = write_gate(rule, requires_grad=True)
    out_ref, (M_ref, z_ref) = infini_attention_naive(
        q,
        k,
        v,
        beta,
        segment_len=N,
        rule=rule,
        rope=tables,
        initial_state=init if with_initial_state else None,
        write_gate=wg,
    )
    out, state = fast(q, k, v, beta, *init, rule=rule, rope_tables=tables, write_gate=wg)
    assert_close(out, out_ref, what="output")
    assert_close(state.M, M_ref, what="M")
    assert_close(state.z, z_ref, what="z")
    assert state.k.shape[2] == length % N, "the unfinished segment is carried in the state"

    inputs = [q, k, v, beta] + ([M0, z0] if with_initial_state else []) + (list(wg) if wg else [])
    names = ["q", "k", "v", "beta"] + (["M0", "z0"] if with_initial_state else []) + ["write_weight", "write_bias"]
    weights = torch.randn_like(out_ref)
    # the loss reaches the final memory too, so gradients through every write are compared
    loss_ref = (out_ref * weights).sum() + (M_ref.sum() + z_ref.sum()) * 1e-2
    loss = (out * weights).sum() + (state.M.sum() + state.z.sum()) * 1e-2
    grads_ref = torch.autograd.grad(loss_ref, inputs, allow_unused=True, materialize_grads=True)
    grads = torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    reads_memory = with_initial_state or length > N
    # without a memory read beta is unused; one query over one key gets softmax weight 1 whatever q is
    expect_zero = set() if reads_memory else {"beta"}
    if length == 1:  # and no segment is written, so k reaches nothing
        expect_zero |= {"k"} if reads_memory else {"k", "q"}
    if rule == "linear-causal":  # the read always sees the token itself: every input reaches the output
        expect_zero = set()
    if rule == "deltanet":  # (z0's gradient is the loss's own z term: the variant passes z through)
        if length < N:  # nothing written: the write strength reaches nothing
            expect_zero |= {"write_weight", "write_bias"}
    for name, g, g_ref in zip(names, grads, grads_ref):
        assert (g_ref.abs().sum() > 0) != (name in expect_zero), (
            f"grad {name} unexpectedly {'non-' * (name in expect_zero)}zero"
        )
        assert_close(g, g_ref, atol=1e-4, what=f"grad {name}")


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("split", [1, 5, N - 1, N, N + 1, 2 * N, 3 * N - 2])
def test_two_calls_carrying_state_equal_one_call(rule, split):
    q, k, v, beta, *_ = make_inputs(4 * N + 5, requires_grad=False)
    opts = dict(segment_len=N, rule=rule, rope=rope(), write_gate=write_gate(rule))
    out, state = infini_attention(q, k, v, beta, **opts)
    cut = slice(None, split), slice(split, None)
    out1, s1 = infini_attention(q[:, :, cut[0]], k[:, :, cut[0]], v[:, :, cut[0]], beta, **opts)
    out2, s2 = infini_attention(q[:, :, cut[1]], k[:, :, cut[1]], v[:, :, cut[1]], beta, state=s1, **opts)
    assert_close(torch.cat([out1, out2], dim=2), out, what="output")
    for name in ("M", "z", "k", "v"):
        assert_close(getattr(s2, name), getattr(state, name), what=name)


@pytest.mark.parametrize("rule", RULES)
def test_token_by_token_equals_one_call(rule):
    q, k, v, beta, *_ = make_inputs(3 * N + 2, requires_grad=False)
    opts = dict(segment_len=N, rule=rule, rope=rope(), write_gate=write_gate(rule))
    out, _ = infini_attention(q, k, v, beta, **opts)
    state, pieces = None, []
    for t in range(q.shape[2]):
        o, state = infini_attention(
            q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], beta, state=state, **opts
        )
        assert state.k.shape[2] < N, "the decoding window never exceeds one segment"
        pieces.append(o)
    assert_close(torch.cat(pieces, dim=2), out, what="token-by-token output")


@pytest.mark.parametrize("rule", RULES)
def test_causal(rule):
    q, k, v, beta, *_ = make_inputs(3 * N + 7, requires_grad=False)
    opts = dict(segment_len=N, rule=rule, rope=rope(), write_gate=write_gate(rule))
    out, _ = infini_attention(q, k, v, beta, **opts)
    for t in (0, N - 1, N, 2 * N + 3):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        q2[:, :, t:] += 1.0
        k2[:, :, t:] += 1.0
        v2[:, :, t:] += 1.0
        out2, _ = infini_attention(q2, k2, v2, beta, **opts)
        assert torch.equal(out2[:, :, :t], out[:, :, :t]), f"changing tokens >= {t} changed an earlier output"
        assert not torch.allclose(out2[:, :, t], out[:, :, t])


def test_first_segment_is_not_scaled_down_by_an_empty_memory():
    q, k, v, beta, *_ = make_inputs(N, requires_grad=False)
    out, _ = infini_attention(q, k, v, beta, segment_len=N, rope=rope())
    local, _ = infini_attention(q, k, v, None, segment_len=N, rope=rope())
    assert_close(out, local, what="first segment vs local attention")


def test_no_positional_encoding_reaches_the_memory():
    q, k, v, _, *_ = make_inputs(2 * N, requires_grad=False)
    gate_memory = torch.full((4,), 40.0)  # sigmoid(40) == 1 in float32: the output is the memory read alone
    with_rope, s1 = infini_attention(q, k, v, gate_memory, segment_len=N, rope=rope())
    without_rope, s2 = infini_attention(q, k, v, gate_memory, segment_len=N, rope=None)
    other_theta, _ = infini_attention(q, k, v, gate_memory, segment_len=N, rope=rope_cos_sin(torch.arange(N), DK, 7.0))
    assert torch.equal(s1.M, s2.M) and torch.equal(s1.z, s2.z)
    assert_close(with_rope[:, :, N:], without_rope[:, :, N:], what="memory read with and without RoPE")
    assert_close(with_rope[:, :, N:], other_theta[:, :, N:], what="memory read with another RoPE base")
    assert not torch.allclose(with_rope[:, :, :N], other_theta[:, :, :N]), "RoPE does act on the local path"


@pytest.mark.parametrize("rule", ["linear", "delta"])
def test_memory_is_read_before_it_is_updated(rule):
    """Segment s reads exactly M_{s-1}: eq 7 computed by hand from the first segment's write."""
    q, k, v, _, *_ = make_inputs(2 * N, batch=1, heads=1, kv_heads=1, requires_grad=False)
    out, _ = infini_attention(q, k, v, torch.tensor([40.0]), segment_len=N, rule=rule)
    sk = torch.nn.functional.elu(k[0, 0, :N]) + 1  # delta == linear for the first write: the memory is empty
    M1, z1 = sk.T @ v[0, 0, :N], sk.sum(0)
    sq = torch.nn.functional.elu(q[0, 0, N:]) + 1
    expected = (sq @ M1) / (sq @ z1 + 1e-6)[:, None]
    assert_close(out[0, 0, N:], expected, what="second segment's memory read")


@pytest.mark.parametrize("rule", ["linear", "delta", "linear-causal"])
@pytest.mark.parametrize("length", [N - 1, 3 * N + 5])
def test_feature_scale_matches_reference_outputs_and_gradients(rule, length):
    """The `sharpness` variant: sigma(scale * x) in the memory path, one scale per key/value head."""
    q, k, v, beta, M0, z0 = make_inputs(length)
    scale = torch.tensor([0.5, 3.0], requires_grad=True)
    opts = dict(segment_len=N, rule=rule, rope=rope(), feature_scale=scale)
    out_ref, (M_ref, z_ref) = infini_attention_naive(q, k, v, beta, initial_state=(M0, z0), **opts)
    state = InfiniState(M0, z0, k[:, :, :0].detach(), v[:, :, :0].detach())
    out, state = infini_attention(q, k, v, beta, state=state, **opts)
    assert_close(out, out_ref, what="output")
    assert_close(state.M, M_ref, what="M")
    weights = torch.randn_like(out_ref)
    inputs = [q, k, v, beta, M0, z0, scale]
    grads_ref = torch.autograd.grad((out_ref * weights).sum() + M_ref.sum() * 1e-2, inputs, allow_unused=True)
    grads = torch.autograd.grad((out * weights).sum() + state.M.sum() * 1e-2, inputs, allow_unused=True)
    for name, g, g_ref in zip("q k v beta M0 z0 scale".split(), grads, grads_ref):
        if g_ref is None:
            assert g is None or not g.any(), f"grad {name}"
            continue
        assert_close(g, g_ref, atol=1e-4, what=f"grad {name}")
    assert grads_ref[-1].abs().sum() > 0, "the scale is learned"
    plain, _ = infini_attention(
        q, k, v, beta, segment_len=N, rule=rule, rope=rope(), state=InfiniState(M0, z0, k[:, :, :0], v[:, :, :0])
    )
    assert not torch.allclose(out, plain), "the scale changes what the memory returns"


def test_deltanet_write_in_chunks_matches_the_reference():
    """Segments longer than the write's chunk (64 tokens) are folded chunk by chunk, exactly."""
    n = 150  # two full chunks and a partial one
    q, k, v = torch.randn(1, 2, 2 * n + 7, DK), torch.randn(1, 1, 2 * n + 7, DK), torch.randn(1, 1, 2 * n + 7, DK)
    gate = (torch.randn(1, DK), torch.randn(1))
    beta = torch.zeros(2)
    opts = dict(segment_len=n, rule="deltanet", write_gate=gate)
    out_ref, (M_ref, _) = infini_attention_naive(q, k, v, beta, **opts)
    out, state = infini_attention(q, k, v, beta, **opts)
    assert_close(state.M, M_ref, what="M after two 150-token segments")
    assert_close(out, out_ref, what="output")


def test_deltanet_memory_read_before_it_is_updated_and_bounded():
    """The variant's second segment reads unit(q) M_1, with M_1 written token by token by hand; a
    segment repeated many times stops changing the memory."""
    q, k, v, _, *_ = make_inputs(2 * N, batch=1, heads=1, kv_heads=1, requires_grad=False)
    w, b = torch.randn(1, DK), torch.randn(1)
    out, state = infini_attention(q, k, v, torch.tensor([40.0]), segment_len=N, rule="deltanet", write_gate=(w, b))
    M = torch.zeros(DK, DK)
    for t in range(N):
        key = k[0, 0, t] / k[0, 0, t].norm()
        s = torch.sigmoid(k[0, 0, t] @ w[0] + b[0])
        M = M + s * torch.outer(key, v[0, 0, t] - key @ M)
    uq = q[0, 0, N:] / q[0, 0, N:].norm(dim=-1, keepdim=True)
    assert_close(out[0, 0, N:], uq @ M, what="second segment's memory read")
    assert torch.equal(state.z, torch.zeros_like(state.z)), "deltanet keeps no normaliser"

    # The same segment written again and again (a repeated filler) converges: the linear rule's M would
    # grow by the same amount at every repeat.
    q, k, v, _, *_ = make_inputs(N, batch=1, heads=1, kv_heads=1, requires_grad=False)
    state, sizes = None, []
    for _ in range(60):
        _, state = infini_attention(
            q, k, v, torch.zeros(1), segment_len=N, rule="deltanet", write_gate=(w, b), state=state
        )
        sizes.append(state.M.clone())
    step_first, step_last = (sizes[1] - sizes[0]).norm(), (sizes[-1] - sizes[-2]).norm()
    assert step_last < 1e-3 * step_first, f"repeats still change the memory: {step_first:.3g} -> {step_last:.3g}"


def test_bf16_autocast_keeps_state_float32_and_finite():
    q, k, v, beta, *_ = make_inputs(40 * N, requires_grad=False)
    q, k, v = q * 4, k * 4, v * 4
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = infini_attention(
            q.bfloat16(), k.bfloat16(), v.bfloat16(), beta, segment_len=N, rule="delta", rope=rope()
        )
    assert state.M.dtype == torch.float32 and state.z.dtype == torch.float32
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all() and torch.isfinite(state.M).all()
    rounded = [t.bfloat16().float() for t in (q, k, v)]
    ref, ref_state = infini_attention(*rounded, beta, segment_len=N, rule="delta", rope=rope())
    assert (out.float() - ref).abs().mean() < 0.02 * ref.abs().mean()
    assert_close(state.M, ref_state.M, atol=1e-3, rtol=1e-3, what="memory written from bf16 inputs")


def test_float16_reads_a_memory_beyond_its_range_in_float32():
    """z sums every token ever read, so it outgrows float16 (max 65504): a float16 caller's memory
    read must not overflow to inf/nan (it runs in float32; bf16 shares float32's range)."""
    q, k, v, beta, M0, z0 = make_inputs(N, requires_grad=False)
    state = InfiniState(M0 * 1e6, z0 * 1e6, k[:, :, :0], v[:, :, :0])
    ref, _ = infini_attention(q, k, v, beta, segment_len=N, rope=rope(), state=state)
    half = InfiniState(state.M, state.z, k[:, :, :0].half(), v[:, :, :0].half())
    out, _ = infini_attention(q.half(), k.half(), v.half(), beta, segment_len=N, rope=rope(), state=half)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert_close(out.float(), ref, atol=1e-2, rtol=1e-2, what="float16 output")


def test_unknown_rule_is_rejected():
    q, k, v, beta, *_ = make_inputs(4, requires_grad=False)
    with pytest.raises(ValueError, match="rule"):
        infini_attention(q, k, v, beta, segment_len=N, rule="hebbian")
    with pytest.raises(ValueError, match="write_gate"):
        infini_attention(q, k, v, beta, segment_len=N, rule="deltanet")


def test_rope_tables_are_made_on_the_positions_device():
    """inv_freq follows the positions (a CPU-only table failed on CUDA positions; meta shows it without a GPU)."""
    cos, sin = rope_cos_sin(torch.arange(8, device="meta"), 16, 1e4)
    assert cos.device.type == sin.device.type == "meta" and cos.shape == (8, 16)

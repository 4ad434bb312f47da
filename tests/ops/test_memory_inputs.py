"""The op's memory_inputs variant: the memory reads and writes (q, k, v) of its own, the local attention the given ones.

Checked against the fp32 reference (outputs and gradients), carried state == one call, token by token,
and the two limits that define it: memory inputs equal to q, k, v give the paper's op exactly, and on the
first segment (nothing in memory) the memory inputs cannot change the output.
"""

import pytest
import torch
from test_op import N, make_inputs, rope, write_gate

from conftest import assert_close
from infini_attention.ops import infini_attention, infini_attention_naive

RULES = ["linear", "delta", "deltanet", "linear-causal"]


def memory_inputs(q, k, v, requires_grad=True):
    """Memory-path inputs that differ from q, k, v (as a low-rank delta would make them)."""
    return [(t.detach() + 0.5 * torch.randn_like(t)).requires_grad_(requires_grad) for t in (q, k, v)]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("length", [1, N - 1, N, N + 1, 3 * N + 5])
def test_memory_inputs_match_reference_outputs_and_gradients(rule, length):
    q, k, v, beta, *_ = make_inputs(length)
    mem = memory_inputs(q, k, v)
    wg = write_gate(rule)
    opts = dict(segment_len=N, rule=rule, rope=rope(), write_gate=wg)
    out_ref, (M_ref, z_ref) = infini_attention_naive(q, k, v, beta, memory_inputs=tuple(mem), **opts)
    out, state = infini_attention(q, k, v, beta, memory_inputs=tuple(mem), **opts)
    assert_close(out, out_ref, what="output")
    assert_close(state.M, M_ref, what="M")
    assert_close(state.z, z_ref, what="z")
    assert state.mem_k.shape[2] == state.k.shape[2] == length % N, "both pending windows are carried"

    inputs, names = [q, k, v, beta, *mem], ["q", "k", "v", "beta", "mem_q", "mem_k", "mem_v"]
    weights = torch.randn_like(out_ref)
    loss_ref = (out_ref * weights).sum() + M_ref.sum() * 1e-2
    loss = (out * weights).sum() + state.M.sum() * 1e-2
    grads_ref = torch.autograd.grad(loss_ref, inputs, allow_unused=True, materialize_grads=True)
    grads = torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    for name, g, g_ref in zip(names, grads, grads_ref):
        assert_close(g, g_ref, atol=1e-4, what=f"grad {name}")
    if length > N:  # the memory is read: its inputs reach the output, the local k only through the local path
        for name, g in zip(names, grads):
            if name != "beta":
                assert g.abs().sum() > 0, f"grad {name} is zero"


@pytest.mark.parametrize("rule", RULES)
def test_memory_inputs_equal_to_q_k_v_give_the_papers_op(rule):
    q, k, v, beta, *_ = make_inputs(3 * N + 2, requires_grad=False)
    opts = dict(segment_len=N, rule=rule, rope=rope(), write_gate=write_gate(rule))
    out, state = infini_attention(q, k, v, beta, **opts)
    out2, state2 = infini_attention(q, k, v, beta, memory_inputs=(q, k, v), **opts)
    assert torch.equal(out, out2)
    assert torch.equal(state.M, state2.M) and torch.equal(state.z, state2.z)


def test_memory_inputs_leave_the_first_segment_alone():
    """Nothing is in memory on the first segment: the output is the local attention, whatever the memory inputs."""
    q, k, v, beta, *_ = make_inputs(N, requires_grad=False)
    out, _ = infini_attention(q, k, v, beta, segment_len=N, rule="delta", rope=rope())
    mem = memory_inputs(q, k, v, requires_grad=False)
    out2, _ = infini_attention(q, k, v, beta, segment_len=N, rule="delta", rope=rope(), memory_inputs=tuple(mem))
    assert torch.equal(out, out2)
    longer = make_inputs(2 * N, requires_grad=False)
    mem = memory_inputs(*longer[:3], requires_grad=False)
    a, _ = infini_attention(*longer[:4], segment_len=N, rule="delta", rope=rope())
    b, _ = infini_attention(*longer[:4], segment_len=N, rule="delta", rope=rope(), memory_inputs=tuple(mem))
    assert torch.equal(a[:, :, :N], b[:, :, :N])
    assert (a[:, :, N:] - b[:, :, N:]).abs().max() > 1e-3, "the second segment reads the memory's own inputs"


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("split", [1, N - 1, N, N + 1, 2 * N + 3])
def test_memory_inputs_two_calls_carrying_state_equal_one_call(rule, split):
    q, k, v, beta, *_ = make_inputs(4 * N + 5, requires_grad=False)
    mem = memory_inputs(q, k, v, requires_grad=False)
    opts = dict(segment_len=N, rule=rule, rope=rope(), write_gate=write_gate(rule))
    out, state = infini_attention(q, k, v, beta, memory_inputs=tuple(mem), **opts)

    def part(cut):
        return [t[:, :, cut] for t in (q, k, v)], tuple(t[:, :, cut] for t in mem)

    (a, mem_a), (b, mem_b) = part(slice(None, split)), part(slice(split, None))
    out1, s1 = infini_attention(*a, beta, memory_inputs=mem_a, **opts)
    out2, s2 = infini_attention(*b, beta, state=s1, memory_inputs=mem_b, **opts)
    assert_close(torch.cat([out1, out2], dim=2), out, what="output")
    for name in ("M", "z", "k", "v", "mem_k", "mem_v"):
        assert_close(getattr(s2, name), getattr(state, name), what=name)


def test_memory_inputs_token_by_token_equal_one_call():
    q, k, v, beta, *_ = make_inputs(2 * N + 3, requires_grad=False)
    mem = memory_inputs(q, k, v, requires_grad=False)
    opts = dict(segment_len=N, rule="delta", rope=rope())
    out, _ = infini_attention(q, k, v, beta, memory_inputs=tuple(mem), **opts)
    state, pieces = None, []
    for t in range(q.shape[2]):
        one = slice(t, t + 1)
        o, state = infini_attention(
            q[:, :, one], k[:, :, one], v[:, :, one], beta, state=state,
            memory_inputs=tuple(x[:, :, one] for x in mem), **opts,
        )  # fmt: skip
        pieces.append(o)
    assert_close(torch.cat(pieces, dim=2), out, what="token-by-token output")


def test_memory_inputs_clear_errors():
    q, k, v, beta, *_ = make_inputs(N + 1, requires_grad=False)
    opts = dict(segment_len=N, rule="delta")
    with pytest.raises(ValueError, match="shape"):
        infini_attention(q, k, v, beta, memory_inputs=(q, k, v[..., :-1]), **opts)
    with pytest.raises(ValueError, match="sparse_cache"):
        infini_attention(q, k, v, beta, memory_inputs=(q, k, v), sparse_cache=16, sparse_block=16, **opts)
    with pytest.raises(ValueError, match="memory"):
        infini_attention(q, k, v, None, memory_inputs=(q, k, v), segment_len=N)
    _, state = infini_attention(q, k, v, beta, **opts)
    with pytest.raises(ValueError, match="mem_k"):
        infini_attention(q, k, v, beta, state=state, memory_inputs=(q, k, v), **opts)
    _, state = infini_attention(q, k, v, beta, memory_inputs=(q, k, v), **opts)
    with pytest.raises(ValueError, match="mem_k"):
        infini_attention(q, k, v, beta, state=state, **opts)

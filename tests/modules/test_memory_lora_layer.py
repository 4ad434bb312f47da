"""The memory LoRA part (modules/memory_lora.py) in an InfiniAttention layer, against a reference that computes
the memory's inputs by hand and calls the fp32 op (outputs and gradients); its shift taps likewise, and two calls
carrying their terms in the state equal one call."""

import pytest
import torch

from conftest import assert_close
from infini_attention.layers.attention import InfiniAttention
from infini_attention.ops import infini_attention_naive

N = 16  # segment length


def reference_op(layer, q, k, v, mem):
    """The fp32 reference op with the memory's own inputs `mem`, merged as the layer merges its heads."""
    rope = layer._segment_rope(q.device)
    o, _ = infini_attention_naive(
        q, k, v, layer.beta, segment_len=N, rule=layer.memory_rule(), rope=rope, memory_inputs=mem
    )
    return layer._merge(o)


def assert_same_outputs_and_gradients(out, ref, named_params: dict):
    """out == ref, and the gradients of a random cotangent w.r.t. each named parameter agree (and are not all zero)."""
    assert_close(out, ref, atol=1e-5, what="output")
    grad = torch.randn_like(out)
    params = list(named_params.values())
    fast = torch.autograd.grad(out, params, grad)
    slow = torch.autograd.grad(ref, params, grad)
    for name, f, s in zip(named_params, fast, slow):
        assert_close(f, s, atol=1e-4, what=f"grad {name}")
        assert s.abs().max() > 0, f"grad {name} is zero: the test would not see a wrong one"


def test_layer_with_memory_lora_matches_the_reference_in_outputs_and_gradients():
    """The layer against the fp32 reference op fed with memory inputs computed by hand: q + B_q A_q x, ..."""
    torch.manual_seed(0)
    layer = InfiniAttention(32, 4, 2, segment_len=N, rule="delta", memory_lora=3)
    with torch.no_grad():
        for b in (layer.memory_lora.lora_B_q, layer.memory_lora.lora_B_k, layer.memory_lora.lora_B_v):
            b.weight.normal_(std=0.3)
    x = torch.randn(2, 2 * N + 5, 32, requires_grad=True)
    out, _ = layer(x)

    def by_hand(x):
        q, k, v, _ = layer.project(x, None)
        lora = layer.memory_lora
        a = x @ lora.lora_A.weight.T * lora.scale
        a_q, a_k, a_v = a.split(lora.rank, dim=-1)

        def heads(t, h):
            return t.view(x.shape[0], x.shape[1], h, layer.head_dim).transpose(1, 2)

        mem = (
            q + heads(a_q @ lora.lora_B_q.weight.T, 4),
            k + heads(a_k @ lora.lora_B_k.weight.T, 2),
            v + heads(a_v @ lora.lora_B_v.weight.T, 2),
        )
        return reference_op(layer, q, k, v, mem)

    lora = layer.memory_lora
    params = {"x": x, "A": lora.lora_A.weight, "B_k": lora.lora_B_k.weight, "q_proj": layer.q_proj.weight}
    assert_same_outputs_and_gradients(out, by_hand(x), params)


def test_memory_lora_refuses_the_sparse_cache():
    with pytest.raises(ValueError, match="sparse_cache"):
        InfiniAttention(32, 4, 2, segment_len=N, rule="delta", sparse_cache=16, memory_lora=2)


def randomise_shift(layer, std=0.3):
    with torch.no_grad():
        for b in (layer.memory_lora.lora_B_q, layer.memory_lora.lora_B_k, layer.memory_lora.lora_B_v):
            b.weight.normal_(std=std)
        layer.memory_lora.shift_B_q.weight.normal_(std=std)
        layer.memory_lora.shift_B_k.weight.normal_(std=std)


def test_memory_lora_shift_matches_the_reference_in_outputs_and_gradients():
    """With shift taps: q_mem_t += s sum_j B_{q,j} A_s x_{t-j} (keys alike), written out by hand with explicit
    loops over the tokens, into the fp32 reference op."""
    torch.manual_seed(1)
    layer = InfiniAttention(32, 4, 2, segment_len=N, rule="delta", memory_lora=3)
    layer.memory_lora.add_shift(2)
    randomise_shift(layer)
    x = torch.randn(2, 2 * N + 5, 32, requires_grad=True)
    out, _ = layer(x)

    def by_hand(x):
        q, k, v, _ = layer.project(x, None)
        lora = layer.memory_lora
        q_mem, k_mem, v_mem = lora(x, q, k, v)
        a = x @ lora.shift_A.weight.T * lora.scale  # (B, L, r)
        dq = (a @ lora.shift_B_q.weight.T).view(x.shape[0], x.shape[1], 2, 4, layer.head_dim)
        dk = (a @ lora.shift_B_k.weight.T).view(x.shape[0], x.shape[1], 2, 2, layer.head_dim)
        q_rows, k_rows = [], []
        for t in range(x.shape[1]):
            q_t, k_t = q_mem[:, :, t], k_mem[:, :, t]
            for j in (1, 2):  # tap j: the token j positions back
                if t - j >= 0:
                    q_t = q_t + dq[:, t - j, j - 1]
                    k_t = k_t + dk[:, t - j, j - 1]
            q_rows.append(q_t)
            k_rows.append(k_t)
        mem = (torch.stack(q_rows, dim=2), torch.stack(k_rows, dim=2), v_mem)
        return reference_op(layer, q, k, v, mem)

    lora = layer.memory_lora
    params = {
        "x": x,
        "shift_A": lora.shift_A.weight,
        "shift_B_q": lora.shift_B_q.weight,
        "shift_B_k": lora.shift_B_k.weight,
    }
    assert_same_outputs_and_gradients(out, by_hand(x), params)


def test_memory_lora_shift_starts_as_nothing_and_two_calls_equal_one():
    torch.manual_seed(2)
    layer = InfiniAttention(32, 4, 2, segment_len=N, rule="delta", memory_lora=3)
    with torch.no_grad():
        layer.memory_lora.lora_B_k.weight.normal_(std=0.3)  # a trained memory LoRA without taps
    x = torch.randn(1, 3 * N + 7, 32)
    with torch.no_grad():
        before, _ = layer(x)
        layer.memory_lora.add_shift(1)
        after, _ = layer(x)
    assert torch.equal(before, after), "fresh taps (B = 0) change nothing"
    randomise_shift(layer)
    with torch.no_grad():
        whole, _ = layer(x)
        assert (whole[:, N:] - before[:, N:]).abs().max() > 1e-3, "trained taps change what the memory reads"
        assert torch.equal(whole[:, :N], before[:, :N]), "the first segment reads an empty memory"
        for cut in (5, N, N + 1, 2 * N + 3):
            first, state = layer(x[:, :cut])
            assert state.mem_shift.shape == (1, 2, 1, layer.head_dim)
            assert state.mem_query_shift.shape == (1, 4, 1, layer.head_dim)
            second, _ = layer(x[:, cut:], state)
            assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, what=f"cut at {cut}")
    with pytest.raises(ValueError, match="already has shift taps"):
        layer.memory_lora.add_shift(1)
    plain = InfiniAttention(32, 4, 2, segment_len=N, rule="delta", memory_lora=3)
    with pytest.raises(ValueError, match="mem_shift"):
        plain(x[:, N:], state)


def test_memory_lora_shift_terms_survive_a_saved_state(tmp_path):
    from infini_attention.state import ModelState

    torch.manual_seed(3)
    layer = InfiniAttention(32, 4, 2, segment_len=N, rule="delta", memory_lora=3)
    layer.memory_lora.add_shift(1)
    randomise_shift(layer)
    x = torch.randn(1, 2 * N + 9, 32)
    with torch.no_grad():
        whole, _ = layer(x)
        first, state = layer(x[:, : N + 3])
        ModelState([state]).save(tmp_path / "state.safetensors")
        loaded = ModelState.load(tmp_path / "state.safetensors").layers[0]
        assert torch.equal(loaded.mem_shift, state.mem_shift)
        assert torch.equal(loaded.mem_query_shift, state.mem_query_shift)
        second, _ = layer(x[:, N + 3 :], loaded)
    assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5)

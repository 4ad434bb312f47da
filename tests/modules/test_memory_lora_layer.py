"""The memory LoRA part (modules/memory_lora.py) in an InfiniAttention layer, against a reference that computes
the memory's inputs by hand and calls the fp32 op (outputs and gradients)."""

import pytest
import torch

from conftest import assert_close
from infini_attention.layers.attention import InfiniAttention
from infini_attention.ops import infini_attention_naive

N = 16  # segment length


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
        rope = layer._segment_rope(x.device)
        o, _ = infini_attention_naive(
            q, k, v, layer.beta, segment_len=N, rule=layer.memory_rule(), rope=rope, memory_inputs=mem
        )
        return layer._merge(o)

    ref = by_hand(x)
    assert_close(out, ref, atol=1e-5, what="output")
    grad = torch.randn_like(out)
    params = [x, layer.memory_lora.lora_A.weight, layer.memory_lora.lora_B_k.weight, layer.q_proj.weight]
    fast = torch.autograd.grad(out, params, grad)
    slow = torch.autograd.grad(ref, params, grad)
    for name, f, s in zip(("x", "A", "B_k", "q_proj"), fast, slow):
        assert_close(f, s, atol=1e-4, what=f"grad {name}")


def test_memory_lora_refuses_the_sparse_cache():
    with pytest.raises(ValueError, match="sparse_cache"):
        InfiniAttention(32, 4, 2, segment_len=N, rule="delta", sparse_cache=16, memory_lora=2)

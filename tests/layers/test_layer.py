"""The attention layers: carried state, GQA, shape checks, the gate's ability to learn."""

import pytest
import torch

from conftest import assert_close
from infini_attention import FullAttention, InfiniAttention, LocalAttention, MemorizingAttention, XLAttention
from infini_attention.ops import infini_attention_naive, rope_cos_sin

N = 8


def layer(cls=InfiniAttention, **kw):
    return cls(**{"hidden_size": 32, "num_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "segment_len": N, **kw})


@pytest.mark.parametrize(
    "cls,kw",
    [
        (InfiniAttention, {"rule": "linear"}),
        (InfiniAttention, {"rule": "delta"}),
        (InfiniAttention, {"rule": "deltanet"}),
        (InfiniAttention, {"rule": "linear-causal", "key_shift": 3, "query_shift": 2, "sharpness": True}),
        (InfiniAttention, {"rule": "delta", "sharpness": True}),
        (InfiniAttention, {"rule": "linear", "key_shift": 3, "query_shift": 2}),
        (InfiniAttention, {"rule": "delta", "sparse_cache": 16, "segment_len": 16}),
        (InfiniAttention, {"rule": "linear", "local_tail": 3, "local_sink": 1, "memory_lora": 2}),
        (LocalAttention, {}),
        (FullAttention, {}),
        (XLAttention, {}),
        (MemorizingAttention, {"top_k": 5, "max_memories": 2 * N + 3}),
    ],
)
@pytest.mark.parametrize("split", [1, 3, N, N + 5, 2 * N])
def test_two_calls_carrying_state_equal_one_call(cls, kw, split):
    attn = layer(cls, **kw)
    for name in ("shift_proj", "query_shift_proj"):  # they start at zero: make them do something
        if hasattr(attn, name):
            torch.nn.init.normal_(getattr(attn, name).weight, std=0.3)
    x = torch.randn(2, 4 * N + 3, 32)
    y, state = attn(x)
    y1, s1 = attn(x[:, :split])
    y2, s2 = attn(x[:, split:], s1)
    assert_close(torch.cat([y1, y2], dim=1), y, what=f"{cls.__name__} split at {split}")
    assert_close(s2.k, state.k, what="pending keys")


@pytest.mark.parametrize("rule", ["linear", "delta", "deltanet"])
def test_layer_matches_reference_op_with_its_projections(rule):
    attn = layer(rule=rule)
    with torch.no_grad():
        attn.beta.copy_(torch.randn(4))
        if rule == "deltanet":
            attn.write_weight.normal_(0.0, 0.5)
            attn.write_bias.normal_(0.0, 1.0)
    x = torch.randn(2, 3 * N + 1, 32)
    y, _ = attn(x)
    q = attn.q_proj(x).view(2, -1, 4, 8).transpose(1, 2)
    k = attn.k_proj(x).view(2, -1, 2, 8).transpose(1, 2)
    v = attn.v_proj(x).view(2, -1, 2, 8).transpose(1, 2)
    o, _ = infini_attention_naive(
        q,
        k,
        v,
        attn.beta,
        segment_len=N,
        rule=rule,
        rope=rope_cos_sin(torch.arange(N), 8, attn.rope_theta),
        write_gate=(attn.write_weight, attn.write_bias) if rule == "deltanet" else None,
    )
    assert_close(y, attn.o_proj(o.transpose(1, 2).reshape(2, -1, 32)), what="layer vs reference")


def test_full_attention_is_ordinary_causal_attention():
    attn = layer(FullAttention)
    x = torch.randn(1, 5 * N, 32)
    y, state = attn(x)
    assert state.k.shape[2] == 5 * N, "the KV cache of full attention grows with the input"
    # one long segment of the reference without memory is plain causal attention with RoPE
    q = attn.q_proj(x).view(1, -1, 4, 8).transpose(1, 2)
    k = attn.k_proj(x).view(1, -1, 2, 8).transpose(1, 2)
    v = attn.v_proj(x).view(1, -1, 2, 8).transpose(1, 2)
    o, _ = infini_attention_naive(
        q, k, v, torch.zeros(4), segment_len=5 * N, rope=rope_cos_sin(torch.arange(5 * N), 8, attn.rope_theta)
    )
    assert_close(y, attn.o_proj(o.transpose(1, 2).reshape(1, -1, 32)), what="full vs reference")


def test_state_size_does_not_depend_on_length():
    attn = layer()
    sizes = set()
    for length in (N, 10 * N, 100 * N):
        _, state = attn(torch.randn(1, length, 32))
        sizes.add(sum(t.numel() for t in (state.M, state.z, state.k, state.v)))
    assert len(sizes) == 1


def test_bad_input_gets_a_clear_error():
    attn = layer()
    with pytest.raises(ValueError, match="rank 2"):
        attn(torch.randn(4, 32))
    with pytest.raises(ValueError, match="hidden size 32"):
        attn(torch.randn(1, 4, 16))
    with pytest.raises(ValueError, match="empty sequence"):
        attn(torch.randn(1, 0, 32))
    with pytest.raises(ValueError, match="segment_len must be >= 1"):
        InfiniAttention(32, 4, segment_len=0)
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        InfiniAttention(32, 4, num_key_value_heads=3)
    _, other_state = InfiniAttention(32, 4, num_key_value_heads=4, head_dim=8, segment_len=N)(torch.randn(1, 3, 32))
    with pytest.raises(ValueError, match="other shapes"):
        attn(torch.randn(1, 3, 32), other_state)
    _, state = attn(torch.randn(1, 3, 32))
    with pytest.raises(ValueError, match="batch size"):
        attn(torch.randn(2, 3, 32), state)
    with pytest.raises(TypeError, match="InfiniState"):
        attn(torch.randn(1, 3, 32), layer(LocalAttention)(torch.randn(1, 3, 32))[1])


@pytest.mark.parametrize("target,direction", [("memory", 1.0), ("local", -1.0)])
def test_the_gate_learns_from_its_initial_value(target, direction):
    """From beta = 0, a few Adam steps move the gate towards whichever branch predicts the target."""
    attn = layer()
    assert torch.all(attn.beta == 0.0), "documented initial gate logit"
    x = torch.randn(2, 4 * N, 32)
    with torch.no_grad():
        pure_memory = layer()
        pure_memory.load_state_dict(attn.state_dict())
        pure_memory.beta.fill_(40.0 if target == "memory" else -40.0)
        y_target, _ = pure_memory(x)
    opt = torch.optim.Adam([attn.beta], lr=0.1)
    for _ in range(20):
        y, _ = attn(x)
        loss = (y - y_target)[:, N:].pow(2).mean()  # the first segment has no memory to read
        opt.zero_grad()
        loss.backward()
        assert attn.beta.grad.abs().min() > 0, "every head's gate receives a gradient"
        opt.step()
    assert torch.all(attn.beta * direction > 0.5), f"gate logits {attn.beta.tolist()} did not move towards {target}"

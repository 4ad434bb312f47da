"""The hedgehog feature map (Hedgehog / LoLCATs, a variant): shape, positivity, outputs and gradients
against the float64 reference, the module's identity start, and the op against the naive loop with it."""

import torch

from conftest import assert_close
from infini_attention.layers.attention import InfiniAttention
from infini_attention.modules import FEATURE_MAP_MODULES
from infini_attention.ops.infini import FEATURE_MAPS, infini_attention, infini_attention_naive, make_rule
from infini_attention.ops.infini.features import Hedgehog, hedgehog_reference

HKV, D = 2, 8


def test_shape_positivity_and_halves_summing_to_one():
    phi = FEATURE_MAPS["hedgehog"](torch.randn(HKV, D, D // 2))
    x = torch.randn(3, HKV, 5, D)
    f = phi(x)
    assert f.shape == x.shape and f.dtype == x.dtype
    assert (f > 0).all()
    big = phi(x * 1000)  # large inputs: no overflow (features may underflow to 0; the read's eps covers that)
    assert torch.isfinite(big).all() and (big >= 0).all()
    assert_close(f[..., : D // 2].sum(-1), torch.ones(3, HKV, 5), what="first half sums to 1")
    assert phi(x.bfloat16()).dtype == torch.bfloat16
    make_rule("linear", feature=phi)  # accepted by a rule with a normaliser: positive


def test_outputs_and_gradients_match_the_reference():
    w = (torch.eye(D, D // 2) + 0.3 * torch.randn(HKV, D, D // 2)).requires_grad_()
    x = torch.randn(2, HKV, 7, D, requires_grad=True)
    g = torch.randn(2, HKV, 7, D)
    (Hedgehog(w)(x) * g).sum().backward()
    fast = (x.grad.clone(), w.grad.clone())
    x.grad, w.grad = None, None
    ref = torch.stack([torch.stack([hedgehog_reference(x[b, j], w[j]) for j in range(HKV)]) for b in range(2)])
    assert_close(Hedgehog(w)(x), ref.float(), atol=1e-6, what="batched vs reference")
    for j in range(HKV):
        assert_close(Hedgehog(w)(x[1, j], head=j), ref[1, j].float(), atol=1e-6, what="one head vs reference")
    (ref * g.double()).sum().backward()
    assert_close(fast[0], x.grad, atol=1e-5, what="grad x")
    assert_close(fast[1], w.grad, atol=1e-5, what="grad W")
    wd, xd = w.detach().double().requires_grad_(), x.detach()[0, 0, :3].double().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: hedgehog_reference(a, b[0]), (xd, wd))


def test_module_starts_at_the_identity_and_learns_through_the_layer():
    fmap = FEATURE_MAP_MODULES["hedgehog"](HKV, D)
    assert torch.equal(fmap.op_map().weight, torch.eye(D, D // 2).expand(HKV, -1, -1))
    layer = InfiniAttention(32, 4, HKV, D, segment_len=8, rule="delta", feature_map="hedgehog")
    out, _ = layer(torch.randn(2, 21, 32))
    out.square().sum().backward()
    assert layer.feature_map.delta.grad.abs().sum() > 0


def test_op_matches_the_naive_loop_with_hedgehog_features():
    q, k, v = torch.randn(1, 4, 19, D), torch.randn(1, HKV, 19, D), torch.randn(1, HKV, 19, D)
    beta, w = torch.randn(4), torch.eye(D, D // 2) + 0.5 * torch.randn(HKV, D, D // 2)
    for rule in ("linear", "delta"):
        fast, state = infini_attention(q, k, v, beta, segment_len=6, rule=rule, feature_map=Hedgehog(w))
        slow, (M, z) = infini_attention_naive(q, k, v, beta, segment_len=6, rule=rule, feature_map=Hedgehog(w))
        assert_close(fast, slow, atol=1e-5, what=f"{rule} output")
        assert_close(state.M, M, atol=1e-5, what=f"{rule} memory")

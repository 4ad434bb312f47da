"""Memory rules and feature maps as parts: each rule's batched read/write equals its one-head reference,
a rule registered from outside runs through both ops, and the read share is what it says."""

import pytest
import torch

from conftest import assert_close
from infini_attention.ops.infini import FEATURE_MAPS, RULES, infini_attention, infini_attention_naive, make_rule
from infini_attention.ops.infini.features import ScaledELU1, sigma
from infini_attention.ops.infini.rules import Linear, register

B, HKV, G, D, N = 2, 2, 2, 8, 6


def rule_of(name):
    if name == "deltanet":
        return make_rule(name, write_gate=(torch.randn(HKV, D) * 0.3, torch.randn(HKV) * 0.3))
    return make_rule(name, feature=ScaledELU1(torch.tensor([0.7, 1.6]))) if name == "delta" else make_rule(name)


@pytest.mark.parametrize("name", sorted(RULES))
def test_batched_read_and_write_equal_the_one_head_reference(name):
    rule = rule_of(name)
    M, z = torch.randn(B, HKV, D, D) * 0.1, torch.rand(B, HKV, D) + 0.5
    k, v, q = torch.randn(B, HKV, N, D), torch.randn(B, HKV, N, D), torch.randn(B, HKV * G, 3, D)
    M2, z2 = rule.write(M, z, k, v)
    read = rule.read(q, M, z)
    for b in range(B):
        for j in range(HKV):
            M_ref, z_ref = rule.reference_write(k[b, j], v[b, j], M[b, j], z[b, j], j)
            assert_close(M2[b, j], M_ref, atol=1e-5, what=f"{name} write M")
            assert_close(z2[b, j], z_ref, atol=1e-5, what=f"{name} write z")
            for h in range(j * G, (j + 1) * G):
                assert_close(read[b, h], rule.reference_read(q[b, h], M[b, j], z[b, j], j), atol=1e-5, what="read")
    assert rule.written(M, z).all() and not rule.written(torch.zeros_like(M), torch.zeros_like(z)).any()


def test_a_rule_registered_from_outside_runs_through_both_ops():
    """Adding a rule = one class with @register (here: the linear rule writing half of each value)."""

    @register
    class HalfLinear(Linear):
        name = "half-linear"

        def new_values(self, sk, values, M, z):
            return 0.5 * values

        def reference_new_values(self, sk, v, M, z):
            return 0.5 * v

    try:
        q, k, v = torch.randn(1, 4, 3 * N + 2, D), torch.randn(1, 2, 3 * N + 2, D), torch.randn(1, 2, 3 * N + 2, D)
        beta = torch.zeros(4)
        out, state = infini_attention(q, k, v, beta, segment_len=N, rule="half-linear")
        ref, (M_ref, _) = infini_attention_naive(q, k, v, beta, segment_len=N, rule="half-linear")
        assert_close(out, ref, what="output")
        assert_close(state.M, M_ref, what="M")
        linear, _ = infini_attention(q, k, v, beta, segment_len=N, rule="linear")
        assert (out - linear).abs().max() > 1e-4, "the new rule is the one that ran"
    finally:
        RULES.pop("half-linear")


def test_read_share_is_the_share_of_the_normaliser():
    rule = make_rule("linear")
    k = torch.randn(1, HKV, N, D)
    M, z = rule.write(torch.zeros(1, HKV, D, D), torch.zeros(1, HKV, D), k, torch.randn(1, HKV, N, D))
    q = torch.randn(1, HKV * G, D)
    part = rule.key_mass(k[:, :, :2])
    share = rule.read_share(q, part, z)
    for h in range(HKV * G):
        sq = sigma(q[0, h])
        j = h // G
        expected = (sq @ sigma(k[0, j, :2]).sum(0)) / (sq @ z[0, j] + rule.eps)
        assert share[0, h].item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(rule.read_share(q, rule.key_mass(k), z), torch.ones(1, HKV * G), atol=1e-5)
    with pytest.raises(ValueError, match="no normaliser"):
        rule_of("deltanet").read_share(q, part, z)


def test_feature_maps_by_name_and_their_checks():
    assert set(FEATURE_MAPS) >= {"elu1", "sharpness", "unit"}
    x = torch.randn(2, HKV, 5, D)
    assert torch.equal(FEATURE_MAPS["elu1"]()(x), sigma(x))
    scaled = FEATURE_MAPS["sharpness"](torch.tensor([2.0, 0.5]))
    assert_close(scaled(x)[:, 1], sigma(0.5 * x[:, 1]), what="scale of head 1")
    assert_close(scaled(x[0, 0], head=0), sigma(2.0 * x[0, 0]), what="one head")
    with pytest.raises(ValueError, match="must be positive"):
        make_rule("linear", feature=FEATURE_MAPS["unit"]())
    with pytest.raises(ValueError, match="unknown memory rule"):
        make_rule("hebbian")

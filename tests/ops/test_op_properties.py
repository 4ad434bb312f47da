"""Property-based checks of the op (hypothesis): random shapes, segment lengths and split points keep
"two calls carrying the state equal one call" and causality, for every rule."""

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import assert_close  # noqa: E402
from infini_attention.ops.infini import RULES, infini_attention  # noqa: E402
from infini_attention.ops.rope import rope_cos_sin  # noqa: E402

shapes = st.fixed_dictionaries(
    {
        "rule": st.sampled_from(sorted(RULES)),
        "segment_len": st.integers(1, 9),
        "length": st.integers(1, 40),
        "kv_heads": st.integers(1, 2),
        "group": st.integers(1, 3),
        "dim": st.sampled_from([2, 4, 6]),
        "batch": st.integers(1, 2),
        "seed": st.integers(0, 2**16),
    }
)


def inputs(p):
    g = torch.Generator().manual_seed(p["seed"])
    heads = p["kv_heads"] * p["group"]
    q = torch.randn(p["batch"], heads, p["length"], p["dim"], generator=g)
    k = torch.randn(p["batch"], p["kv_heads"], p["length"], p["dim"], generator=g)
    v = torch.randn(p["batch"], p["kv_heads"], p["length"], p["dim"], generator=g)
    beta = torch.randn(heads, generator=g)
    options = dict(
        segment_len=p["segment_len"], rule=p["rule"], rope=rope_cos_sin(torch.arange(p["segment_len"]), p["dim"], 1e4)
    )
    if p["rule"] == "deltanet":
        options["write_gate"] = (
            torch.randn(p["kv_heads"], p["dim"], generator=g),
            torch.randn(p["kv_heads"], generator=g),
        )
    return q, k, v, beta, options


@settings(max_examples=60, deadline=None)
@given(shapes, st.data())
def test_two_calls_carrying_the_state_equal_one_call(p, data):
    q, k, v, beta, options = inputs(p)
    cut = data.draw(st.integers(0, p["length"]), label="split")
    whole, state = infini_attention(q, k, v, beta, **options)
    first, s1 = (
        infini_attention(q[:, :, :cut], k[:, :, :cut], v[:, :, :cut], beta, **options) if cut else (q[:, :, :0], None)
    )
    second, s2 = infini_attention(q[:, :, cut:], k[:, :, cut:], v[:, :, cut:], beta, state=s1, **options)
    assert_close(torch.cat([first, second], 2) if cut else second, whole, atol=1e-4, what=f"{p} split {cut}")
    assert_close(s2.M, state.M, atol=1e-4, what="M")


@settings(max_examples=40, deadline=None)
@given(shapes, st.data())
def test_no_output_depends_on_a_later_token(p, data):
    q, k, v, beta, options = inputs(p)
    t = data.draw(st.integers(0, p["length"] - 1), label="changed position")
    out, _ = infini_attention(q, k, v, beta, **options)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    q2[:, :, t:] += 1.0
    k2[:, :, t:] -= 1.0
    v2[:, :, t:] *= 2.0
    out2, _ = infini_attention(q2, k2, v2, beta, **options)
    assert_close(out2[:, :, :t], out[:, :, :t], atol=1e-5, what=f"{p}: outputs before {t}")

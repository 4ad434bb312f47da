"""Every rule and variant of the one InfiniAttention layer on converted Llama, Qwen2 and Mistral models."""

import json

import pytest
import torch

pytest.importorskip("transformers")

from test_hf import VOCAB, N, logits, tiny_model  # noqa: E402

from conftest import assert_close  # noqa: E402
from infini_attention.hf import InfiniCache, convert, force_local_gate, load_converted  # noqa: E402
from infini_attention.hf.attention import InfiniHFAttention  # noqa: E402
from infini_attention.layers import InfiniAttention  # noqa: E402
from infini_attention.state import ModelState  # noqa: E402

VARIANTS = {
    "delta": dict(rule="delta"),
    "linear+shifts": dict(rule="linear", key_shift=2, query_shift=1),
    "sharpness": dict(rule="delta", sharpness=True),
    "deltanet+shift": dict(rule="deltanet", key_shift=1),
    "linear-causal": dict(rule="linear-causal"),
    "sparse-cache": dict(rule="delta", key_shift=1, sparse_cache=16),
    "local-tail+sink": dict(rule="delta", local_tail=5, local_sink=2),
}
FAMILIES = ["llama", "qwen2", "mistral"]


def trained_like(model, shifts: bool = True):
    """Every gate and variant parameter moved off its initial value, as after training.

    shifts=False leaves the key/query shift taps at zero: they change the keys and queries of the
    local attention too, so a trained shift is not the original model even with the gate closed."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, InfiniHFAttention):
                module.beta.normal_(0.0, 1.0)
                for name in ("write_weight", "write_bias", "log_sharpness"):
                    if hasattr(module, name):
                        getattr(module, name).normal_(0.0, 0.3)
                for name in ("shift_proj", "query_shift_proj"):
                    if shifts and hasattr(module, name):
                        getattr(module, name).weight.normal_(0.0, 0.05)
    return model


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("family", FAMILIES)
def test_one_segment_with_the_gate_local_equals_the_original(family, variant):
    model = tiny_model(family)
    ids = torch.randint(0, VOCAB, (2, N))
    expected = logits(model, ids)
    trained_like(convert(model, segment_len=N, **VARIANTS[variant]), shifts=False)
    assert all(isinstance(layer.self_attn, InfiniAttention) for layer in model.model.layers), "the library's layer"
    with force_local_gate(model):
        assert_close(logits(model, ids), expected, atol=1e-4, what=f"{family} {variant}")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("family", FAMILIES)
def test_two_calls_carrying_the_cache_equal_one_call(family, variant):
    model = trained_like(convert(tiny_model(family), segment_len=N, **VARIANTS[variant]))
    ids = torch.randint(0, VOCAB, (2, 3 * N + 5))
    expected = logits(model, ids)
    for split in (1, N - 1, 2 * N + 3):
        cache = InfiniCache(model.config)
        first = logits(model, ids[:, :split], cache=cache)
        second = logits(model, ids[:, split:], cache=cache)
        assert_close(torch.cat([first, second], 1), expected, atol=1e-4, what=f"{family} {variant} split {split}")
    reset = torch.cat([logits(model, ids[:, s : s + N]) for s in range(0, 3 * N, N)], dim=1)
    assert (expected[:, N : 3 * N] - reset[:, N:]).abs().max() > 1e-3, "the memory changes later segments"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_save_load_and_state_round_trip(variant, tmp_path):
    model = trained_like(convert(tiny_model("qwen2"), segment_len=N, **VARIANTS[variant]))
    ids = torch.randint(0, VOCAB, (1, 3 * N + 2))
    expected = logits(model, ids)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["infini_attention"]
    assert {k: saved[k] for k in VARIANTS[variant]} == VARIANTS[variant]
    loaded = load_converted(tmp_path).eval()
    assert_close(logits(loaded, ids), expected, atol=1e-5, what=f"{variant} reloaded")
    cache = InfiniCache(model.config)
    logits(model, ids[:, :-3], cache=cache)
    cache.to_model_state().save(tmp_path / "state.safetensors")
    resumed = InfiniCache.from_model_state(ModelState.load(tmp_path / "state.safetensors"))
    assert_close(logits(loaded, ids[:, -3:], cache=resumed), expected[:, -3:], atol=1e-5, what=f"{variant} resumed")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_generate_equals_the_forward_argmax(variant):
    model = trained_like(convert(tiny_model("mistral"), segment_len=N, **VARIANTS[variant]))
    prompt = torch.randint(1, VOCAB, (1, 2 * N + 3))  # no 0: generate() would read it as padding
    out = model.generate(prompt, max_new_tokens=N, do_sample=False, pad_token_id=0)
    new = out[:, prompt.shape[1] :]
    assert torch.equal(new, logits(model, out)[:, prompt.shape[1] - 1 : -1].argmax(-1))


def test_variant_settings_are_checked():
    with pytest.raises(ValueError, match="sharpness"):
        convert(tiny_model("llama"), segment_len=N, rule="deltanet", sharpness=True)
    with pytest.raises(ValueError, match="key_shift"):
        convert(tiny_model("llama"), segment_len=N, key_shift=-1)


def test_the_sparse_cache_can_be_switched_on_after_conversion():
    from infini_attention.hf.modeling import set_sparse_cache

    model = trained_like(convert(tiny_model("llama"), segment_len=N, rule="linear"))
    ids = torch.randint(0, VOCAB, (1, 4 * N + 3))
    plain = logits(model, ids)
    set_sparse_cache(model, 4 * N)  # holds every past token: nothing is written, the memory stays empty
    assert model.config.infini_attention["sparse_cache"] == 4 * N
    whole = logits(model, ids)
    assert (whole[:, N:] - plain[:, N:]).abs().max() > 1e-3, "the cache changes what later segments see"
    assert_close(whole[:, :N], plain[:, :N], atol=1e-5, what="the first segment")
    set_sparse_cache(model, 0)
    assert_close(logits(model, ids), plain, atol=1e-5, what="switched off again")
    with pytest.raises(ValueError, match="sparse_cache"):
        set_sparse_cache(model, -2)


def test_the_local_tail_and_sink_can_be_switched_on_after_conversion():
    """Like the sparse cache: no parameters, the first segment unchanged, later segments see more, and the
    state that carries them goes through the cache and a save/load round trip."""
    from infini_attention.hf.modeling import set_local_tail

    model = trained_like(convert(tiny_model("llama"), segment_len=N, rule="delta"))
    ids = torch.randint(0, VOCAB, (1, 4 * N + 3))
    plain = logits(model, ids)
    set_local_tail(model, N // 2, sink=2)
    assert model.config.infini_attention["local_tail"] == N // 2 and model.config.infini_attention["local_sink"] == 2
    whole = logits(model, ids)
    assert (whole[:, N:] - plain[:, N:]).abs().max() > 1e-3, "later segments see the tail and sink"
    assert_close(whole[:, :N], plain[:, :N], atol=1e-5, what="the first segment")
    cache = InfiniCache(model.config)
    first = model(ids[:, : 2 * N + 1], past_key_values=cache, use_cache=True).logits
    state = cache.to_model_state()
    assert state.layers[0].tail_k.shape[2] == N // 2 and state.layers[0].sink_k.shape[2] == 2
    rest = model(ids[:, 2 * N + 1 :], past_key_values=InfiniCache.from_model_state(state), use_cache=True).logits
    assert_close(torch.cat([first, rest], dim=1), whole, atol=1e-5, what="two calls carrying the cache")
    set_local_tail(model, 0)
    assert_close(logits(model, ids), plain, atol=1e-5, what="switched off again")
    with pytest.raises(ValueError, match="less than segment_len"):
        set_local_tail(model, N - 1, sink=1)

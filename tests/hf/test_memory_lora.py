"""Memory LoRA (modules/memory_lora.py, hf/lora.py:add_memory_lora): deltas on the memory path's q/k/v only.

On a converted model: a fresh one changes nothing; with deltas, the first segment is still the original
model's exactly (nothing in memory) while later segments change; two calls carrying the state == one call;
all of it with the shift taps on the memory's queries and keys too (`shift`);
token-by-token decoding == the forward; the adapter files rebuild it. (The layer against its reference:
tests/modules/test_memory_lora.py.)
"""

import json

import pytest
import torch

pytest.importorskip("transformers")

from test_lora import converted, ids, randomise_lora  # noqa: E402  (the tiny converted model and inputs of LoRA's tests)

from conftest import assert_close  # noqa: E402
from hf_tiny import tiny_llama  # noqa: E402
from infini_attention.hf.lora import (  # noqa: E402
    add_memory_lora,
    attention_modules,
    load_adapter,
    memory_lora_settings,
    save_adapter,
)

N = 16  # segment length (test_lora's)


def randomise(model):
    randomise_lora(model, part=".memory_lora.", std=0.3)


def test_fresh_memory_lora_changes_nothing_and_is_recorded():
    model = converted()
    x = ids()
    with torch.no_grad():
        before, _ = model(x)
        add_memory_lora(model, rank=4, alpha=8)
        after, _ = model(x)
    assert_close(before, after, atol=0)
    assert memory_lora_settings(model) == {"rank": 4, "alpha": 8.0}
    with pytest.raises(ValueError, match="already has a memory LoRA"):
        add_memory_lora(model, rank=4)
    with pytest.raises(TypeError, match="no converted"):
        add_memory_lora(tiny_llama(), rank=2)
    shifted = add_memory_lora(converted(), rank=4, shift=2)
    with torch.no_grad():
        assert_close(before, shifted(x)[0], atol=0)  # fresh taps start at zero too
    assert memory_lora_settings(shifted) == {"rank": 4, "alpha": 4.0, "shift": 2}


@pytest.mark.parametrize("shift", [0, 2])
def test_memory_lora_leaves_the_first_segment_the_original_models(shift):
    model = converted()
    x = ids()
    with torch.no_grad():
        before, _ = model(x)
        randomise(add_memory_lora(model, rank=4, shift=shift))
        after, _ = model(x)
    assert torch.equal(before[:, :N], after[:, :N]), "one segment: nothing in memory, the deltas cannot act"
    assert (before[:, N:] - after[:, N:]).abs().max() > 1e-3, "later segments read the memory's own inputs"


@pytest.mark.parametrize("shift", [0, 2])
def test_two_calls_and_token_by_token_equal_one_call_with_memory_lora(shift):
    model = add_memory_lora(converted(), rank=4, shift=shift)
    randomise(model)
    x = ids()
    with torch.no_grad():
        whole, _ = model(x)
        first, state = model(x[:, : 2 * N + 3])
        second, _ = model(x[:, 2 * N + 3 :], state)
        assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5)
        state, pieces = None, []
        for t in range(x.shape[1]):
            out, state = model(x[:, t : t + 1], state)
            pieces.append(out)
    assert_close(torch.cat(pieces, dim=1), whole, atol=1e-4, what="token by token")


@pytest.mark.parametrize("shift", [0, 1])
def test_memory_lora_adapter_round_trip(tmp_path, shift):
    model = add_memory_lora(converted(), rank=4, alpha=8, shift=shift)
    randomise(model)
    for name, p in model.named_parameters():
        p.requires_grad_(".memory_lora." in name or name.endswith(".beta"))
    save_adapter(model, tmp_path)
    fresh = converted()  # no memory LoRA yet: load_adapter adds it as adapter.json says
    load_adapter(fresh, tmp_path)
    assert memory_lora_settings(fresh) == {"rank": 4, "alpha": 8.0, **({"shift": shift} if shift else {})}
    x = ids()
    with torch.no_grad():
        assert_close(fresh(x)[0], model(x)[0], atol=0)


def test_an_adapter_loads_into_a_model_with_more_shift_taps(tmp_path):
    """A shift-1 adapter loaded into a model given 3 taps (runs/smollm2_finetune.py --memory-shift 3 --adapter ...):
    its tap kept, the new ones at zero, the same outputs; a model with fewer taps than an adapter's is an error."""

    def saved(model, folder):
        for name, p in model.named_parameters():
            p.requires_grad_(".memory_lora." in name or name.endswith(".beta"))
        save_adapter(model, folder)
        return folder

    model = add_memory_lora(converted(), rank=4, alpha=8, shift=1)
    randomise(model)
    grown = load_adapter(add_memory_lora(converted(), rank=4, alpha=8, shift=3), saved(model, tmp_path / "one"))
    for old, new in zip(attention_modules(model), attention_modules(grown), strict=True):
        for b in ("shift_B_q", "shift_B_k"):
            w_old, w_new = getattr(old.memory_lora, b).weight, getattr(new.memory_lora, b).weight
            rows = w_old.shape[0]
            assert w_new.shape[0] == 3 * rows
            assert_close(w_new[:rows], w_old, atol=0)
            assert w_new[rows:].abs().max() == 0
    x = ids()
    with torch.no_grad():
        assert_close(grown(x)[0], model(x)[0], atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        load_adapter(add_memory_lora(converted(), rank=4, alpha=8, shift=2), saved(grown, tmp_path / "three"))


def test_stretched_writes_on_the_converted_model():
    """train/stretch.py on a converted model (delta rule, Hedgehog maps, memory LoRA with taps), as
    runs/smollm2_finetune.py --stretch-max uses it: weights of 1 are the ordinary forward; a weight on one
    segment leaves the segments up to it as they were and changes what the later ones read."""
    from infini_attention.train.stretch import forward_with_write_weights

    model = converted()
    randomise(add_memory_lora(model, rank=4, shift=1))
    x = ids()
    segments = -(-x.shape[1] // N)
    assert model.config.rule == "delta" and segments >= 3
    with torch.no_grad():
        expected, _ = model(x, output_hidden=True)
        ones, _ = forward_with_write_weights(model, x, torch.ones(x.shape[0], segments), output_hidden=True)
        weights = torch.ones(x.shape[0], segments)
        weights[:, 1] = 8.0
        stretched, _ = forward_with_write_weights(model, x, weights, output_hidden=True)
    assert_close(ones, expected, atol=1e-5, rtol=1e-5)
    assert_close(stretched[:, : 2 * N], expected[:, : 2 * N], atol=1e-5, rtol=1e-5)
    assert (stretched[:, 2 * N :] - expected[:, 2 * N :]).abs().max() > 1e-3


def test_an_adapter_that_records_a_local_tail_and_sink_switches_them_on(tmp_path):
    """adapter.json's local_tail / local_sink (what runs/smollm2_finetune.py records) come back with the weights."""
    from infini_attention.hf.modeling import set_local_tail

    model = add_memory_lora(converted(), rank=4, alpha=8)
    randomise(model)
    save_adapter(model, tmp_path)
    meta = json.loads((tmp_path / "adapter.json").read_text())
    (tmp_path / "adapter.json").write_text(json.dumps({**meta, "local_tail": N // 2, "local_sink": 2}))
    fresh = load_adapter(converted(), tmp_path)
    assert (fresh.config.local_tail, fresh.config.local_sink) == (N // 2, 2)
    x = ids()
    with torch.no_grad():
        plain = model(x)[0]
        set_local_tail(model, N // 2, sink=2)
        assert_close(fresh(x)[0], model(x)[0], atol=0)
        assert (fresh(x)[0] - plain).abs().max() > 1e-4, "the look back changes the later segments"

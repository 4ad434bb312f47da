"""LoRA on a converted model (hf/lora.py): the layer against its merged-weight reference (outputs and
gradients), a fresh LoRA changes nothing, two calls carrying the state == one call, and the adapter files."""

import pytest
import torch

pytest.importorskip("transformers")

from conftest import assert_close  # noqa: E402
from hf_tiny import TINY_LLAMA, tiny_llama  # noqa: E402
from infini_attention.hf.lora import (  # noqa: E402
    LoRALinear,
    add_lora,
    load_adapter,
    lora_settings,
    merged_weight,
    read_adapter_meta,
    save_adapter,
)
from infini_attention.hf.training import HFTrainingModel  # noqa: E402
from infini_attention.hf.transfer import convert_for_transfer  # noqa: E402

N = 16  # segment length


def converted(seed=0):
    return HFTrainingModel(convert_for_transfer(tiny_llama(seed), segment_len=N, feature_map="hedgehog")).eval()


def ids(length=4 * N + 5, seed=1):
    return torch.randint(0, TINY_LLAMA["vocab_size"], (2, length), generator=torch.Generator().manual_seed(seed))


def randomise_lora(model, seed=2, part=".lora_", std=0.1):
    """Random values for the parameters named with `part` and for the gates."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if part in name or name.endswith(".beta"):
                p.copy_(torch.randn(p.shape, generator=g) * std)


def test_lora_layer_matches_its_merged_weight_in_outputs_and_gradients():
    torch.manual_seed(0)
    base = torch.nn.Linear(12, 8, bias=False)
    layer = LoRALinear(base, rank=3, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.weight.normal_()
    x = torch.randn(4, 5, 12, requires_grad=True)
    out = layer(x)
    w = merged_weight(layer)
    assert_close(out, x @ w.T, atol=1e-5)

    # gradients: the fast layer against the reference built from the same leaves
    grad = torch.randn_like(out)
    gx, ga, gb = torch.autograd.grad(out, (x, layer.lora_A.weight, layer.lora_B.weight), grad)
    a, b = layer.lora_A.weight.detach().requires_grad_(), layer.lora_B.weight.detach().requires_grad_()
    x2 = x.detach().requires_grad_()
    ref = x2 @ (base.weight + layer.scale * b @ a).T
    rx, ra, rb = torch.autograd.grad(ref, (x2, a, b), grad)
    for fast, slow in ((gx, rx), (ga, ra), (gb, rb)):
        assert_close(fast, slow, atol=1e-5)


def test_fresh_lora_changes_nothing_and_is_recorded():
    model = converted()
    x = ids()
    with torch.no_grad():
        before, _ = model(x)
        add_lora(model, rank=4, alpha=8)
        after, _ = model(x)
    assert_close(before, after, atol=0)
    assert lora_settings(model) == {"rank": 4, "alpha": 8, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, rank=4, alpha=8)


def test_two_calls_carrying_the_state_equal_one_call_with_lora():
    model = add_lora(converted(), rank=4, alpha=8)
    randomise_lora(model)
    x = ids()
    with torch.no_grad():
        whole, _ = model(x)
        first, state = model(x[:, : 2 * N + 3])
        second, _ = model(x[:, 2 * N + 3 :], state)
    assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5)


def test_adapter_round_trip_rebuilds_the_model(tmp_path):
    model = add_lora(converted(), rank=4, alpha=8)
    randomise_lora(model)
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name or name.endswith(".beta") or ".feature_map." in name)
    save_adapter(model, tmp_path, meta={"note": "test"})
    fresh = converted()  # no LoRA yet: load_adapter adds it as adapter.json says
    load_adapter(fresh, tmp_path)
    x = ids()
    with torch.no_grad():
        assert_close(fresh(x)[0], model(x)[0], atol=0)


def test_adapter_saves_the_parameters_given_frozen_or_not(tmp_path):
    """save_adapter(parameters=...): a trainer that freezes a group it keeps as loaded (smollm2_finetune.py --lr 0)
    still saves it, and the files rebuild the model."""
    model = add_lora(converted(), rank=4, alpha=8)
    randomise_lora(model)
    adapter = [p for name, p in model.named_parameters() if ".lora_" in name or name.endswith(".beta")]
    for p in model.parameters():
        p.requires_grad_(False)  # nothing requires grad: by default there would be nothing to save
    with pytest.raises(ValueError, match="nothing to save"):
        save_adapter(model, tmp_path / "none")
    save_adapter(model, tmp_path, parameters=adapter)
    assert read_adapter_meta(tmp_path)["parameters"] == sum(p.numel() for p in adapter)
    fresh = converted()
    load_adapter(fresh, tmp_path)
    x = ids()
    with torch.no_grad():
        assert_close(fresh(x)[0], model(x)[0], atol=0)


def test_adapter_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter.json"):
        load_adapter(converted(), tmp_path)
    model = add_lora(converted(), rank=4, alpha=8)
    save_adapter(model, tmp_path / "rank4")
    other = add_lora(converted(), rank=2, alpha=8)  # LoRA of another rank already in place
    with pytest.raises(ValueError, match="shape"):
        load_adapter(other, tmp_path / "rank4")
    with pytest.raises(TypeError, match="no converted"):
        add_lora(tiny_llama(), rank=2, alpha=2)

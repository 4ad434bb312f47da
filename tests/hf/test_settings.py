"""The conversion settings (hf/settings.py): the feature map is one of them, checked, recorded in the
config, and read back by every loader of a converted folder."""

import json

import pytest
import torch

pytest.importorskip("transformers")


from conftest import assert_close  # noqa: E402
from hf_tiny import TINY_LLAMA, tiny_llama  # noqa: E402
from infini_attention.hf import InfiniSettings, convert, load_converted  # noqa: E402
from infini_attention.hf.training import HFTrainingModel  # noqa: E402
from infini_attention.hf.transfer import infini_layers, install_feature_map  # noqa: E402

N = 16  # segment length
VOCAB = 128
TINY = TINY_LLAMA


def trained_maps(model):
    """Every gate and Hedgehog delta moved off its initial value, as after attention transfer."""
    with torch.no_grad():
        for attn in infini_layers(model):
            attn.beta.normal_(0.0, 1.0)
            attn.feature_map.delta.normal_(0.0, 0.3)
    return model


@torch.no_grad()
def logits(model, x):
    return model(input_ids=x).logits


def test_feature_map_is_checked_and_spelled_one_way():
    assert InfiniSettings(segment_len=N).feature_map == "elu1"
    with pytest.raises(ValueError, match="unknown feature map 'softmax'.*elu1.*hedgehog"):
        InfiniSettings(segment_len=N, feature_map="softmax")
    with pytest.raises(ValueError, match="feature_map must be"):
        InfiniSettings(segment_len=N, feature_map=None)
    with pytest.raises(ValueError, match="sharpness=True is feature_map='sharpness'"):
        InfiniSettings(segment_len=N, feature_map="hedgehog", sharpness=True)
    with pytest.raises(ValueError, match="deltanet"):
        InfiniSettings(segment_len=N, rule="deltanet", feature_map="hedgehog")
    with pytest.raises(ValueError, match="unknown feature map"):
        convert(tiny_llama(), segment_len=N, feature_map="softmax")
    # sharpness=True is the older spelling of feature_map="sharpness": both give the same settings
    old, new = InfiniSettings(segment_len=N, sharpness=True), InfiniSettings(segment_len=N, feature_map="sharpness")
    assert old == new and new.sharpness
    # the paper's σ is the default and is left out of the config, as before the field existed
    assert InfiniSettings(segment_len=N).to_dict() == {"segment_len": N, "rule": "delta", "beta_init": 0.0}


def test_hedgehog_conversion_saves_and_reloads_with_identical_logits(tmp_path):
    model = trained_maps(convert(tiny_llama(), segment_len=N, feature_map="hedgehog"))
    assert all(attn.feature_map.name == "hedgehog" for attn in infini_layers(model))
    x = torch.randint(0, VOCAB, (2, 3 * N + 5), generator=torch.Generator().manual_seed(1))
    expected = logits(model, x)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["infini_attention"]
    assert saved == {"segment_len": N, "rule": "delta", "beta_init": 0.0, "feature_map": "hedgehog"}
    loaded = load_converted(tmp_path).eval()
    assert loaded.infini_settings.feature_map == "hedgehog"
    assert torch.equal(logits(loaded, x), expected), "load_converted: the same logits"
    wrapped = HFTrainingModel.load(str(tmp_path)).eval()  # what load_eval_model and --from-hf call
    assert wrapped.hf.infini_settings.feature_map == "hedgehog"
    assert_close(logits(wrapped.hf, x), expected, atol=0.0, what="HFTrainingModel.load")


def test_installing_a_map_after_conversion_is_recorded_in_the_config(tmp_path):
    model = convert(tiny_llama(), segment_len=N)  # the paper's σ
    install_feature_map(model, "hedgehog")
    trained_maps(model)
    assert model.infini_settings.feature_map == "hedgehog"
    x = torch.randint(0, VOCAB, (1, 2 * N + 3), generator=torch.Generator().manual_seed(2))
    expected = logits(model, x)
    model.save_pretrained(tmp_path)
    assert torch.equal(logits(load_converted(tmp_path).eval(), x), expected)
    with pytest.raises(ValueError, match="unknown feature map"):
        install_feature_map(model, "softmax")

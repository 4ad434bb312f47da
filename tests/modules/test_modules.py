"""Layer parts: parameter tags, feature-map modules, token shift, and checkpoints written before them."""

import pytest
import torch

from conftest import assert_close
from infini_attention import InfiniTransformer, ModelConfig
from infini_attention.layers import InfiniAttention
from infini_attention.modules import FEATURE_MAP_MODULES, TokenShift, parameter_tags, tag
from infini_attention.train import TrainConfig, parameter_groups


def test_tags_reach_the_initialiser_and_the_optimizer_groups():
    model = InfiniTransformer(ModelConfig.from_name("tiny", sharpness=True, key_shift=2, beta_init=0.5))
    tags = parameter_tags(model)
    betas = [layer.self_attn.beta for layer in model.layers]
    assert all(tags[id(b)]["lr"] == "gate" and bool((b == 0.5).all()) for b in betas)
    assert all(bool((layer.self_attn.shift_proj.weight == 0).all()) for layer in model.layers)
    groups = {g["name"]: g for g in parameter_groups(model, TrainConfig(sharpness_lr=0.05))}
    assert {id(p) for p in groups["gate"]["params"]} == {id(b) for b in betas}
    assert groups["sharpness"]["lr"] == 0.05 and len(groups["sharpness"]["params"]) == model.config.num_layers
    with pytest.raises(ValueError, match="unknown parameter tags"):
        tag(model, "lm_head", colour="red")


def test_sharpness_map_is_the_scaled_elu_and_old_checkpoints_load():
    attn = InfiniAttention(32, 4, 2, 8, segment_len=8, sharpness=True)
    assert isinstance(attn.feature_map, FEATURE_MAP_MODULES["sharpness"])
    with torch.no_grad():
        attn.log_sharpness.copy_(torch.tensor([0.3, -0.2]))
    old = {k.replace("feature_map.", ""): v for k, v in attn.state_dict().items()}  # the layout before the modules
    assert "log_sharpness" in old
    fresh = InfiniAttention(32, 4, 2, 8, segment_len=8, sharpness=True)
    fresh.load_state_dict(old)
    assert_close(fresh.feature_scale(), torch.tensor([0.3, -0.2]).exp(), what="scales read from the old key")
    with pytest.raises(ValueError, match="feature map"):
        InfiniAttention(32, 4, 2, 8, segment_len=8, feature_map="nope")


@pytest.mark.parametrize("split", [1, 2, 5])
def test_token_shift_two_calls_equal_one(split):
    shift = TokenShift(16, heads=2, head_dim=4, taps=3)
    with torch.no_grad():
        shift.weight.normal_()
    x, base = torch.randn(2, 9, 16), torch.randn(2, 2, 9, 4)
    whole, pending = shift.shift(x, base, None)
    first, carried = shift.shift(x[:, :split], base[:, :, :split], None)
    second, pending2 = shift.shift(x[:, split:], base[:, :, split:], carried)
    assert_close(torch.cat([first, second], 2), whole, what="shifted")
    assert_close(pending2, pending, what="carried terms")

"""API inputs a model cannot take get one clear error, not a raw torch one."""

import pytest
import torch

from infini_attention import InfiniTransformer, ModelConfig
from infini_attention.generate import sample


def test_ids_batch_and_logits_to_keep():
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=8))
    with pytest.raises(TypeError, match="pass input_ids.long"):
        model(torch.ones(1, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        model(torch.ones(0, 4, dtype=torch.long))
    for bad in (-1, 5, True):
        with pytest.raises(ValueError, match="logits_to_keep must be None or in"):
            model(torch.ones(1, 4, dtype=torch.long), logits_to_keep=bad)
    assert model(torch.ones(1, 4, dtype=torch.int32))[0].shape == (1, 4, 256)


def test_sampling_settings():
    logits = torch.randn(2, 10)
    for t in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="temperature must be a finite number"):
            sample(logits, temperature=t)
    with pytest.raises(ValueError, match="top_p"):
        sample(logits, temperature=1.0, top_p=float("nan"))


def test_hf_conversion_settings_and_ids():
    pytest.importorskip("transformers")
    from transformers import LlamaConfig, LlamaForCausalLM

    from infini_attention.hf import convert

    def tiny():
        config = LlamaConfig(
            vocab_size=50,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=64,
        )
        return LlamaForCausalLM(config)

    with pytest.raises(ValueError, match="beta_init must be a finite number"):
        convert(tiny(), segment_len=8, beta_init=float("nan"))
    model = convert(tiny(), segment_len=8)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 50\)"):
        model(torch.tensor([[1, 50]]))

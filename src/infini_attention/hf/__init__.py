"""Hugging Face transformers integration: the only part of the library that imports transformers.

    from infini_attention.hf import convert, load_converted
    model = convert(AutoModelForCausalLM.from_pretrained(...), segment_len=2048, rule="delta")
    model.save_pretrained("out")            # weights + gates (safetensors), config records the settings
    model = load_converted("out")           # or AutoModelForCausalLM.from_pretrained after this import
    model.generate(ids, max_new_tokens=20)  # an InfiniCache bounded by the segment length
    HFTrainingModel.load("out")             # the trainer's interface (infini train --from-hf out)

Needs the `hf` extra: pip install "infini-attention[hf]".
"""

try:
    import transformers  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('infini_attention.hf needs transformers: pip install "infini-attention[hf]"') from e

from infini_attention.hf.attention import InfiniHFAttention
from infini_attention.hf.cache import InfiniCache, InfiniCacheLayer
from infini_attention.hf.modeling import (
    CONVERSIONS,
    InfiniLlamaConfig,
    InfiniLlamaForCausalLM,
    InfiniMistralConfig,
    InfiniMistralForCausalLM,
    InfiniQwen2Config,
    InfiniQwen2ForCausalLM,
    InfiniSettings,
    convert,
    force_local_gate,
    gates,
    load_converted,
    set_local_tail,
    set_sparse_cache,
)
from infini_attention.hf.training import HFTrainingModel, ModelView

__all__ = [
    "CONVERSIONS",
    "HFTrainingModel",
    "InfiniCache",
    "InfiniCacheLayer",
    "InfiniHFAttention",
    "InfiniLlamaConfig",
    "InfiniLlamaForCausalLM",
    "InfiniMistralConfig",
    "InfiniMistralForCausalLM",
    "InfiniQwen2Config",
    "InfiniQwen2ForCausalLM",
    "InfiniSettings",
    "ModelView",
    "convert",
    "force_local_gate",
    "gates",
    "load_converted",
    "set_local_tail",
    "set_sparse_cache",
]

"""Infini-attention (Munkhdalai et al., 2024): Transformers that read inputs of any length with bounded memory."""

from infini_attention.generate import decode_one_token, generate, prefill, sample
from infini_attention.layers import FullAttention, InfiniAttention, LocalAttention
from infini_attention.layers.memorizing import MemorizingAttention
from infini_attention.layers.xl import XLAttention
from infini_attention.models import ATTENTION_KINDS, PRESETS, InfiniTransformer, ModelConfig
from infini_attention.ops import infini_attention, infini_attention_naive
from infini_attention.state import InfiniState, KNNState, KVState, ModelState, XLState

__version__ = "0.1.0"

__all__ = [
    "ATTENTION_KINDS",
    "PRESETS",
    "FullAttention",
    "InfiniAttention",
    "InfiniState",
    "InfiniTransformer",
    "KNNState",
    "KVState",
    "LocalAttention",
    "MemorizingAttention",
    "ModelConfig",
    "ModelState",
    "XLAttention",
    "XLState",
    "decode_one_token",
    "generate",
    "infini_attention",
    "infini_attention_naive",
    "prefill",
    "sample",
]

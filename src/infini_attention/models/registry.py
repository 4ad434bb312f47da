"""The one name -> class map for attention kinds. Each class takes the arguments of `_Attention`."""

import math

from infini_attention.layers.attention import FullAttention, InfiniAttention, LocalAttention
from infini_attention.layers.memorizing import MemorizingAttention
from infini_attention.layers.xl import XLAttention

ATTENTION_KINDS = {
    "infini": InfiniAttention,  # the paper: local attention + compressive memory
    "local": LocalAttention,  # segment-local attention only: the no-memory ablation
    "full": FullAttention,  # ordinary causal attention, KV cache grows with the input
    "xl": XLAttention,  # baseline: Transformer-XL, attends to the previous segment's detached K/V
    "memorizing": MemorizingAttention,  # baseline: Memorizing Transformer, kNN memory at config.memory_layer only
}


def memory_layer_index(config) -> int:
    """The 0-based layer of a `memorizing` model that holds the kNN memory (see ModelConfig.memory_layer)."""
    if config.memory_layer is not None:
        return config.memory_layer
    return max(0, math.ceil(3 * config.num_layers / 4) - 1)


def build_attention(config, layer_index: int | None = None):
    """The attention module of block `layer_index` (0-based) for a ModelConfig.

    Only the `memorizing` kind needs layer_index: its memory layer is a MemorizingAttention and
    every other layer is a LocalAttention.
    """
    cls = ATTENTION_KINDS[config.attention]
    if cls is MemorizingAttention:
        if layer_index is None:
            raise ValueError("build_attention needs layer_index for the 'memorizing' kind")
        if layer_index != memory_layer_index(config):
            cls = LocalAttention
    kwargs = dict(
        hidden_size=config.hidden_size,
        num_heads=config.num_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        segment_len=config.segment_len,
        rope_theta=config.rope_theta,
    )
    if cls is InfiniAttention:
        kwargs.update(
            rule=config.rule,
            beta_init=config.beta_init,
            key_shift=config.key_shift,
            query_shift=config.query_shift,
            sharpness=config.sharpness,
            sparse_cache=config.sparse_cache,
            local_tail=config.local_tail,
            local_sink=config.local_sink,
        )
    elif cls is MemorizingAttention:
        kwargs.update(top_k=config.knn_top_k, max_memories=config.knn_max_memories, beta_init=config.beta_init)
    return cls(**kwargs)

from infini_attention.layers.attention import FullAttention, InfiniAttention, LocalAttention

__all__ = ["FullAttention", "InfiniAttention", "LocalAttention"]

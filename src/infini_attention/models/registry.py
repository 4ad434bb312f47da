"""The one name -> class map for attention kinds. Each class takes the arguments of `_Attention`."""

from infini_attention.layers.attention import FullAttention, InfiniAttention, LocalAttention

ATTENTION_KINDS = {
    "infini": InfiniAttention,  # the paper: local attention + compressive memory
    "local": LocalAttention,  # segment-local attention only: the no-memory ablation
    "full": FullAttention,  # ordinary causal attention, KV cache grows with the input
}


def build_attention(config):
    """The attention module of one block for a ModelConfig."""
    cls = ATTENTION_KINDS[config.attention]
    kwargs = dict(
        hidden_size=config.hidden_size,
        num_heads=config.num_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        segment_len=config.segment_len,
        rope_theta=config.rope_theta,
    )
    if cls is InfiniAttention:
        kwargs.update(rule=config.rule, beta_init=config.beta_init)
    return cls(**kwargs)

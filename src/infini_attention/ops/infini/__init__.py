from infini_attention.ops.infini.fast import empty_state, infini_attention
from infini_attention.ops.infini.naive import RULES, infini_attention_naive, sigma

__all__ = ["RULES", "empty_state", "infini_attention", "infini_attention_naive", "sigma"]

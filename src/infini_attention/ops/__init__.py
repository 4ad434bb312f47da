from infini_attention.ops.infini import empty_state, infini_attention, infini_attention_naive
from infini_attention.ops.rope import apply_rope, rope_cos_sin

__all__ = ["apply_rope", "empty_state", "infini_attention", "infini_attention_naive", "rope_cos_sin"]

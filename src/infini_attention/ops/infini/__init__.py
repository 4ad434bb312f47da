from infini_attention.ops.infini import (
    causal,  # noqa: F401  (registers the linear-causal rule)
    deltanet,  # noqa: F401  (registers the deltanet rule)
)
from infini_attention.ops.infini.fast import empty_state, infini_attention
from infini_attention.ops.infini.features import FEATURE_MAPS, sigma
from infini_attention.ops.infini.naive import infini_attention_naive
from infini_attention.ops.infini.rules import RULES, Rule, make_rule, register

__all__ = [
    "FEATURE_MAPS",
    "RULES",
    "Rule",
    "empty_state",
    "infini_attention",
    "infini_attention_naive",
    "make_rule",
    "register",
    "sigma",
]

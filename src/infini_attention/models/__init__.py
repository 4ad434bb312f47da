from infini_attention.models.config import PRESETS, ModelConfig
from infini_attention.models.registry import ATTENTION_KINDS
from infini_attention.models.transformer import InfiniTransformer

__all__ = ["ATTENTION_KINDS", "PRESETS", "InfiniTransformer", "ModelConfig"]

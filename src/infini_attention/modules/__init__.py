"""Small parts of a layer, each an nn.Module registered by name: feature maps, token shifts, memory LoRA, tags."""

from infini_attention.modules.feature_maps import FEATURE_MAP_MODULES, feature_map_module
from infini_attention.modules.memory_lora import MemoryLoRA
from infini_attention.modules.tags import module_tags, parameter_tags, tag
from infini_attention.modules.token_shift import TokenShift

__all__ = [
    "FEATURE_MAP_MODULES",
    "MemoryLoRA",
    "TokenShift",
    "feature_map_module",
    "module_tags",
    "parameter_tags",
    "tag",
]

"""Feature maps of the memory path as modules, by name: the parameters a feature map learns live here,
and `op_map()` hands the op (ops/infini/features.py) a pure function of them.

- "elu1": the paper's σ = ELU + 1, no parameters;
- "sharpness": σ(exp(a_j) x), one learned a_j per key/value head starting at 0 (the paper's σ): a
  variant, not the paper's. A larger scale makes the features sparser, so that filler keys match a
  query less.
- "hedgehog": [softmax(x W_j), softmax(-x W_j)] with W_j = I[:, :d/2] + D_j per key/value head, D_j
  learned from 0 (Hedgehog / LoLCATs, arXiv 2402.04347 / 2410.10254): a variant, not the paper's,
  trained by attention transfer (hf/transfer.py) to imitate softmax attention.

A new feature map (e.g. a learned per-head map, Hedgehog-style) is one class here with `op_map()`,
and its pure function in ops/infini/features.py.
"""

from __future__ import annotations

import torch
from torch import nn

from infini_attention.modules.tags import tag
from infini_attention.ops.infini.features import ELU1, Hedgehog, ScaledELU1


class ELU1Map(nn.Module):
    name = "elu1"

    def __init__(self, kv_heads: int, head_dim: int, device=None):
        super().__init__()

    def op_map(self):
        return ELU1()

    def scale(self) -> torch.Tensor | None:
        return None


class SharpnessMap(nn.Module):
    name = "sharpness"

    def __init__(self, kv_heads: int, head_dim: int, device=None):
        super().__init__()
        self.log_sharpness = nn.Parameter(torch.zeros(kv_heads, device=device))
        tag(self, "log_sharpness", init="zeros", lr="sharpness")

    def scale(self) -> torch.Tensor:
        """The scale c_j = exp(a_j) per key/value head."""
        return self.log_sharpness.exp()

    def op_map(self):
        return ScaledELU1(self.scale())


class HedgehogMap(nn.Module):
    """The Hedgehog map's weights W_j = I[:, :d/2] + delta_j, (Hkv, d, d/2).

    The learned part `delta` starts at zero (a tag every initialiser knows), so the map starts as
    the softmax of the first d/2 coordinates and of their negatives.
    """

    name = "hedgehog"

    def __init__(self, kv_heads: int, head_dim: int, device=None):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"the hedgehog feature map needs an even head_dim, got {head_dim}")
        self.delta = nn.Parameter(torch.zeros(kv_heads, head_dim, head_dim // 2, device=device))
        tag(self, "delta", init="zeros")

    def weight(self) -> torch.Tensor:
        d = self.delta.shape[1]
        eye = torch.eye(d, d // 2, device=self.delta.device, dtype=self.delta.dtype)
        return eye + self.delta

    def op_map(self):
        return Hedgehog(self.weight())

    def scale(self) -> torch.Tensor | None:
        return None


FEATURE_MAP_MODULES = {cls.name: cls for cls in (ELU1Map, SharpnessMap, HedgehogMap)}


def feature_map_module(name: str, kv_heads: int, head_dim: int, device=None) -> nn.Module:
    if name not in FEATURE_MAP_MODULES:
        raise ValueError(f"unknown feature map {name!r}: expected one of {', '.join(FEATURE_MAP_MODULES)}")
    return FEATURE_MAP_MODULES[name](kv_heads, head_dim, device=device)

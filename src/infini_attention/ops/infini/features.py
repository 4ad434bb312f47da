"""Feature maps of the memory path, by name: what the memory sees of a query or key (eq 7's σ).

A feature map is called on the un-rotated queries or keys of the memory path, either all key/value
heads at once, x of shape (B, Hkv, rows, d) (the fast op), or one head, x of shape (rows, d) with
`head=j` (the reference loop). Feature maps with learned parameters get them as tensors from the
layer that owns them (`modules/feature_maps.py`), so the op stays a pure function.

- "elu1": σ(x) = ELU(x) + 1, the paper's (eq 7); always positive, so z > 0 after any write.
- "sharpness": σ(c_j x) with a learned scale c_j per key/value head (a variant, not the paper's).
- "unit": x / ||x||, the `deltanet` rule's (a variant, not the paper's).

A new feature map is one class here, added to FEATURE_MAPS, and one test beside test_features.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigma(x: torch.Tensor) -> torch.Tensor:
    """The paper's feature map: ELU + 1 (eq 7), always positive."""
    return F.elu(x) + 1.0


def unit(x: torch.Tensor) -> torch.Tensor:
    """x / ||x|| along the last dimension."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class ELU1:
    """σ(x) = ELU(x) + 1 (eq 7)."""

    name = "elu1"
    positive = True  # features > 0: a normaliser z = Σ σ(k) can divide the read

    def __call__(self, x: torch.Tensor, head: int | None = None) -> torch.Tensor:
        return sigma(x)


class ScaledELU1:
    """σ(c_j x) with one scale c_j per key/value head, scale: (Hkv,). A larger c makes the features sparser."""

    name = "sharpness"
    positive = True

    def __init__(self, scale: torch.Tensor):
        self.scale = scale

    def __call__(self, x: torch.Tensor, head: int | None = None) -> torch.Tensor:
        if head is not None:
            return sigma(self.scale[head].to(x.dtype) * x)
        return sigma(x * self.scale.to(x.dtype)[None, :, None, None])


class UnitNorm:
    """x / ||x||: bounded features for a rule without a normaliser."""

    name = "unit"
    positive = False

    def __call__(self, x: torch.Tensor, head: int | None = None) -> torch.Tensor:
        return F.normalize(x, dim=-1) if head is None else unit(x)


FEATURE_MAPS = {cls.name: cls for cls in (ELU1, ScaledELU1, UnitNorm)}

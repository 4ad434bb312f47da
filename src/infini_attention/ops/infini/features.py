"""Feature maps of the memory path, by name: what the memory sees of a query or key (eq 7's σ).

A feature map is called on the un-rotated queries or keys of the memory path, either all key/value
heads at once, x of shape (B, Hkv, rows, d) (the fast op), or one head, x of shape (rows, d) with
`head=j` (the reference loop). Feature maps with learned parameters get them as tensors from the
layer that owns them (`modules/feature_maps.py`), so the op stays a pure function.

- "elu1": σ(x) = ELU(x) + 1, the paper's (eq 7); always positive, so z > 0 after any write.
- "sharpness": σ(c_j x) with a learned scale c_j per key/value head (a variant, not the paper's).
- "unit": x / ||x||, the `deltanet` rule's (a variant, not the paper's).
- "hedgehog": [softmax(x W_j), softmax(-x W_j)] with a learned W_j (d x d/2) per key/value head
  (Hedgehog, arXiv 2402.04347, as LoLCATs uses it; a variant, not the paper's). d/2 + d/2 features
  keep the memory's shape (d x d_v); always positive.

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


class Hedgehog:
    """φ(x) = [softmax(x W_j), softmax(-x W_j)] per key/value head j, weight: (Hkv, d, d/2) -> d features.

    Each half is a softmax: features > 0 that sum to 1, so φ(q)·z is a proper normaliser (an entry far
    below its half's maximum can underflow to 0; the read's eps covers that). The softmaxes run in
    float32 (a bf16 softmax over 32 features loses the small ones); features come back in x's dtype.
    """

    name = "hedgehog"
    positive = True

    def __init__(self, weight: torch.Tensor):
        if weight.dim() != 3 or 2 * weight.shape[2] != weight.shape[1]:
            raise ValueError(f"weight must be (kv_heads, d, d/2), got {tuple(weight.shape)}")
        self.weight = weight

    def __call__(self, x: torch.Tensor, head: int | None = None) -> torch.Tensor:
        w = self.weight[head] if head is not None else self.weight[None]  # (d, d/2) or (1, Hkv, d, d/2)
        u = x.float() @ w.float()  # (rows, d/2) or (B, Hkv, rows, d/2)
        return torch.cat([u.softmax(dim=-1), (-u).softmax(dim=-1)], dim=-1).to(x.dtype)


def hedgehog_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Hedgehog features of one head, x (rows, d), weight (d, d/2), written out in float64: exp / sum."""
    u = x.double() @ weight.double()
    pos, neg = (u - u.max(-1, keepdim=True).values).exp(), (-u - (-u).max(-1, keepdim=True).values).exp()
    return torch.cat([pos / pos.sum(-1, keepdim=True), neg / neg.sum(-1, keepdim=True)], dim=-1)


FEATURE_MAPS = {cls.name: cls for cls in (ELU1, ScaledELU1, UnitNorm, Hedgehog)}

"""Rotary position embedding (RoPE), in the Hugging Face Llama convention (rotate_half).

Infini-attention applies RoPE to the segment-local dot-product attention only; the compressive
memory always sees un-rotated queries and keys (PAPER.md, "No positional encoding ever touches
the memory path").
"""

import torch


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (len(positions), head_dim) for integer positions, computed in float64."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim))
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # (n, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (n, head_dim)
    return angles.cos().float(), angles.sin().float()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., n, head_dim) by cos/sin (n, head_dim); returns x's dtype."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_half(x) * sin

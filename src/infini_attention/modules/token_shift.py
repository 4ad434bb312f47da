"""Token shift (a variant, not the paper's): previous-token taps on the memory's keys or queries.

    k_t = W_k x_t + sum_{j=1..S} W_{s,j} x_{t-j}

so that a key can say which tokens came before it: the order information that an ordered recall
through the memory needs (runs/EXPERIMENTS.md, E5-E15). The taps start at zero: the layer starts as
the paper's. Carried state: the terms that tokens already read owe to the next call's first tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from infini_attention.modules.tags import tag


class TokenShift(nn.Linear):
    """[W_1 x; ...; W_S x] in one matmul (weight rows [W_1; ...; W_S]), added S positions apart.

    A subclass of Linear, so that its weight keeps the name `<attribute>.weight` of the layers that
    held a plain Linear before (checkpoints load unchanged).
    """

    def __init__(self, hidden_size: int, heads: int, head_dim: int, taps: int, device=None, dtype=None):
        super().__init__(hidden_size, taps * heads * head_dim, bias=False, device=device, dtype=dtype)
        self.heads, self.head_dim, self.taps = heads, head_dim, taps
        nn.init.zeros_(self.weight)
        tag(self, "weight", init="zeros")

    def shift(self, x: torch.Tensor, base: torch.Tensor, carried: torch.Tensor | None):
        """base (B, heads, L, d) + sum_j W_j x_{t-j}, and the terms owed to the next call (B, heads, taps, d).

        Token t's term W_j x_t belongs to position t + j; positions past this call (L .. L + taps - 1)
        are returned as `pending`, which the next call adds to its first tokens: two calls carrying it
        give exactly one call's result.
        """
        return add_shifted(self(x), base, carried, self.taps)


def add_shifted(terms: torch.Tensor, base: torch.Tensor, carried: torch.Tensor | None, taps: int):
    """(base + the shifted terms, pending): terms (B, L, taps * heads * d) hold [W_1 x_t; ...; W_S x_t] per token,
    base (B, heads, L, d); term j of token t lands on position t + j, and the ones past this call come back as
    `pending` (B, heads, taps, d) for the next call's first tokens (`carried` is the previous call's)."""
    batch, length, _ = terms.shape
    heads, d = base.shape[1], base.shape[-1]
    terms = terms.view(batch, length, taps, heads, d).permute(2, 0, 3, 1, 4)  # (taps, B, heads, L, d)
    if carried is None:
        total = base.new_zeros(batch, heads, length + taps, d)
    else:
        total = F.pad(carried.to(base.dtype), (0, 0, 0, length))
    for j in range(1, taps + 1):
        total = total + F.pad(terms[j - 1].to(base.dtype), (0, 0, j, taps - j))  # W_j x_t lands on t + j
    return base + total[:, :, :length], total[:, :, length:]


def grow_taps(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """A tap projection's weight [W_1; ...; W_S] padded with zero rows to `rows` rows (more taps, one block of heads x
    head_dim rows each): the old taps are kept, the new ones start at zero, so a model with more taps starts as the
    one the weight came from."""
    if rows < weight.shape[0]:
        raise ValueError(f"cannot grow a tap projection of {weight.shape[0]} rows to {rows}")
    return torch.cat([weight, weight.new_zeros(rows - weight.shape[0], *weight.shape[1:])])

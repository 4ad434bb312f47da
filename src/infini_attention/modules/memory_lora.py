"""Memory LoRA (a variant, not the paper's): low-rank deltas on the memory path's own queries, keys and values.

    q_mem = q + s B_q A_q x,   k_mem = k + s B_k A_k x,   v_mem = v + s B_v A_v x     (s = alpha / rank)

The memory reads with q_mem and writes (k_mem, v_mem) (eqs 7-9); the local attention keeps q, k, v
(ops/infini/fast.py: `memory_inputs`). Fine-tuning a converted model's memory this way leaves its
local attention exactly the original's, and on the first segment, where nothing is in memory yet,
the layer's output is the local attention whatever the deltas: a one-segment input is the original
model's by construction. LoRA on q/k/v/o (hf/lora.py) instead changes both paths.

B starts at zero (the layer starts as it was), A as LoRA's (Kaiming-uniform, a = sqrt(5); a native model's
`init_weights` draws it as its other linear weights).

shift = S > 0 (opt-in; `add_shift` adds it to a built one) gives the memory's queries and keys low-rank taps on the
S tokens before them, as token_shift.py does for a layer's own keys but on the memory path only:

    q_mem_t += s sum_{j=1..S} B_{q,j} A_s x_{t-j},   k_mem_t += s sum_{j=1..S} B_{k,j} A_s x_{t-j}

A memory keyed by one token cannot tell two successors of the same digit apart (in 8920999 the 9 is followed by 2
and by 9): runs/tools/miss_kinds.py finds nearly every wrong answer of the SmolLM2 adapters there. The taps' B
start at zero; the terms owed to the next call ride in the layer's state (InfiniState.mem_shift / mem_query_shift),
so that two calls carrying it equal one call.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from infini_attention.modules.tags import tag
from infini_attention.modules.token_shift import add_shifted


class MemoryLoRA(nn.Module):
    """forward(x (B, L, hidden), q (B, H, L, d), k (B, Hkv, L, d), v) -> the memory's (q, k, v), same shapes."""

    def __init__(
        self,
        hidden_size: int,
        heads: int,
        kv_heads: int,
        head_dim: int,
        rank: int,
        alpha: float | None = None,
        shift: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if rank < 1:
            raise ValueError(f"memory LoRA rank must be >= 1, got {rank}")
        self.rank, self.alpha = int(rank), float(alpha if alpha is not None else rank)
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        # A_q, A_k, A_v stacked: one matmul reads x once
        self.lora_A = nn.Linear(hidden_size, 3 * rank, bias=False, device=device, dtype=dtype)
        self.lora_B_q = nn.Linear(rank, heads * head_dim, bias=False, device=device, dtype=dtype)
        self.lora_B_k = nn.Linear(rank, kv_heads * head_dim, bias=False, device=device, dtype=dtype)
        self.lora_B_v = nn.Linear(rank, kv_heads * head_dim, bias=False, device=device, dtype=dtype)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # (untagged: a model's init_weights may redraw it)
        for b in (self.lora_B_q, self.lora_B_k, self.lora_B_v):
            nn.init.zeros_(b.weight)
            tag(b, "weight", init="zeros")
        self.shift = 0
        if shift:
            self.add_shift(shift)

    def add_shift(self, taps: int) -> None:
        """Give the memory's queries and keys low-rank taps on the `taps` tokens before them (B = 0: nothing changes
        until they are trained)."""
        if taps < 1:
            raise ValueError(f"memory LoRA shift must be >= 1 tap, got {taps}")
        if self.shift:
            raise ValueError("this memory LoRA already has shift taps")
        A = self.lora_A.weight
        self.shift = int(taps)
        self.shift_A = nn.Linear(A.shape[1], self.rank, bias=False, device=A.device, dtype=A.dtype)
        nn.init.kaiming_uniform_(self.shift_A.weight, a=math.sqrt(5))
        d = self.head_dim
        self.shift_B_q = nn.Linear(self.rank, taps * self.heads * d, bias=False, device=A.device, dtype=A.dtype)
        self.shift_B_k = nn.Linear(self.rank, taps * self.kv_heads * d, bias=False, device=A.device, dtype=A.dtype)
        for b in (self.shift_B_q, self.shift_B_k):
            nn.init.zeros_(b.weight)
            tag(b, "weight", init="zeros")

    def shifted(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, carried_q, carried_k):
        """(q + the query taps' terms, k + the key taps', pending_q, pending_k): q (B, H, L, d) and k (B, Hkv, L, d)
        as forward returns them; carried_* are the previous call's pending terms (None on the first call)."""
        a = self.shift_A(x) * self.scale  # (B, L, r)
        q, pending_q = add_shifted(self.shift_B_q(a), q, carried_q, self.shift)
        k, pending_k = add_shifted(self.shift_B_k(a), k, carried_k, self.shift)
        return q, k, pending_q, pending_k

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        batch, length, _ = x.shape
        a_q, a_k, a_v = (self.lora_A(x) * self.scale).split(self.rank, dim=-1)  # (B, L, r) each

        def delta(b: nn.Linear, a: torch.Tensor, heads: int, like: torch.Tensor) -> torch.Tensor:
            # (B, L, heads * d) -> (B, heads, L, d)
            return b(a).view(batch, length, heads, self.head_dim).transpose(1, 2).to(like.dtype)

        return (
            q + delta(self.lora_B_q, a_q, self.heads, q),
            k + delta(self.lora_B_k, a_k, self.kv_heads, k),
            v + delta(self.lora_B_v, a_v, self.kv_heads, v),
        )

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}" + (f", shift={self.shift}" if self.shift else "")

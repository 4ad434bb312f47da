"""The reference: Infini-attention written straight from the paper's equations 7-10.

Slow on purpose: explicit loops over segments, batch and heads, an explicit causal mask and an
explicit softmax, everything in float32. The fast op in `fast.py` is tested against this function
(outputs and gradients). Read `README.md` beside this file for the choices the paper leaves open.
"""

import math

import torch
import torch.nn.functional as F

from infini_attention.ops.rope import apply_rope

EPS = 1e-6  # added to every memory denominator sigma(q) z; see README.md
RULES = ("linear", "delta", "deltanet")  # eq 8, eq 9, and a variant that is not the paper's (README.md)


def sigma(x: torch.Tensor) -> torch.Tensor:
    """The memory's feature map: ELU + 1 (eq 7), always positive."""
    return F.elu(x) + 1.0


def unit(x: torch.Tensor) -> torch.Tensor:
    """The `deltanet` variant's feature map: x / ||x|| along the last dimension."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


def infini_attention_naive(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    segment_len: int,
    rule: str = "linear",
    rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    eps: float = EPS,
    write_gate: tuple[torch.Tensor, torch.Tensor] | None = None,
    feature_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Infini-attention over a sequence that starts on a segment boundary.

    q: (batch, heads, length, dk); k: (batch, kv_heads, length, dk); v: (batch, kv_heads, length, dv);
    beta: (heads,) gate logits; rope: (cos, sin) tables of shape (>= segment_len, dk) or None;
    initial_state: (M (batch, kv_heads, dk, dv), z (batch, kv_heads, dk)) or None for an empty memory.
    Query head h reads key/value head h // (heads // kv_heads), as in grouped-query attention.
    write_gate: (weight (kv_heads, dk), bias (kv_heads,)) of the `deltanet` rule's write strength
    sigmoid(k . weight + bias); that rule only (see README.md).
    feature_scale: (kv_heads,) or None, the `sharpness` variant: the memory sees sigma(scale * x)
    instead of sigma(x) for the queries and keys of each key/value head (linear and delta rules).

    Returns the output (batch, heads, length, dv) in float32 and (M, z) after the last complete
    segment; a final partial segment is attended to but not written to the memory. The `deltanet`
    rule neither reads nor writes z (it is returned as given).
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}")
    if (rule == "deltanet") != (write_gate is not None):
        raise ValueError("write_gate is needed by the deltanet rule and only by it")
    if feature_scale is not None and rule == "deltanet":
        raise ValueError("feature_scale has no effect under the deltanet rule (unit-norm keys)")
    q, k, v, beta = q.float(), k.float(), v.float(), beta.float()
    scale = torch.ones(k.shape[1]) if feature_scale is None else feature_scale.float()
    batch, heads, length, dk = q.shape
    kv_heads, dv = k.shape[1], v.shape[-1]
    group = heads // kv_heads
    if initial_state is None:
        M = [[torch.zeros(dk, dv) for _ in range(kv_heads)] for _ in range(batch)]
        z = [[torch.zeros(dk) for _ in range(kv_heads)] for _ in range(batch)]
    else:
        M = [[initial_state[0][b, j].float() for j in range(kv_heads)] for b in range(batch)]
        z = [[initial_state[1][b, j].float() for j in range(kv_heads)] for b in range(batch)]

    outputs = []  # one (batch, heads, n, dv) tensor per segment
    for start in range(0, length, segment_len):
        n = min(segment_len, length - start)
        seg = slice(start, start + n)
        per_batch = []
        for b in range(batch):
            per_head = []
            for h in range(heads):
                j = h // group
                qs, ks, vs = q[b, h, seg], k[b, j, seg], v[b, j, seg]

                # Segment-local causal dot-product attention; RoPE (positions 0..n-1) here only.
                qr, kr = qs, ks
                if rope is not None:
                    qr = apply_rope(qs, rope[0][:n], rope[1][:n])
                    kr = apply_rope(ks, rope[0][:n], rope[1][:n])
                scores = qr @ kr.T / math.sqrt(dk)
                causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
                scores = scores.masked_fill(~causal, float("-inf"))
                weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
                weights = weights / weights.sum(dim=-1, keepdim=True)
                a_dot = weights @ vs

                # Eq 7: read the memory left by the previous segments, before this segment's update.
                empty = (M[b][j] == 0).all() if rule == "deltanet" else z[b][j].sum() == 0
                if empty:
                    # Empty memory (first segment): the output is the local attention, unscaled.
                    per_head.append(a_dot)
                    continue
                if rule == "deltanet":
                    a_mem = unit(qs) @ M[b][j]  # no normaliser: unit keys keep M bounded
                else:
                    sq = sigma(scale[j] * qs)
                    a_mem = (sq @ M[b][j]) / (sq @ z[b][j] + eps)[:, None]
                # Eq 10: the learned gate mixes memory and local attention.
                g = torch.sigmoid(beta[h])
                per_head.append(g * a_mem + (1 - g) * a_dot)
            per_batch.append(torch.stack(per_head))
        outputs.append(torch.stack(per_batch))

        if n < segment_len:
            break  # a partial segment is never written to the memory
        for b in range(batch):
            for j in range(kv_heads):
                ks, vs = k[b, j, seg], v[b, j, seg]
                if rule == "deltanet":
                    # One token at a time: move the memory's answer for key t a fraction s_t of the
                    # way to v_t (M stays bounded because every key has norm 1 and s_t < 1).
                    for t in range(n):
                        kt = unit(ks[t])
                        s_t = torch.sigmoid(ks[t] @ write_gate[0][j].float() + write_gate[1][j].float())
                        M[b][j] = M[b][j] + s_t * torch.outer(kt, vs[t] - kt @ M[b][j])
                    continue
                sk = sigma(scale[j] * ks)
                if rule == "delta":
                    # Eq 9: write only what the memory does not already return for these keys.
                    vs = vs - (sk @ M[b][j]) / (sk @ z[b][j] + eps)[:, None]
                M[b][j] = M[b][j] + sk.T @ vs  # eq 8 (linear) or eq 9 (delta)
                z[b][j] = z[b][j] + sk.sum(dim=0)  # eqs 8-9
    out = torch.cat(outputs, dim=2)
    M_final = torch.stack([torch.stack(row) for row in M])
    z_final = torch.stack([torch.stack(row) for row in z])
    return out, (M_final, z_final)

"""The reference: Infini-attention written straight from the paper's equations 7-10.

Slow on purpose: explicit loops over segments, batch and heads, an explicit causal mask and an
explicit softmax, everything in float32. The fast op in `fast.py` is tested against this function
(outputs and gradients). Read `README.md` beside this file for the choices the paper leaves open.
"""

import math

import torch

from infini_attention.ops.infini import sparse_cache as sparse
from infini_attention.ops.infini.features import sigma, unit
from infini_attention.ops.infini.rules import EPS, RULES, rule_from_options
from infini_attention.ops.rope import apply_rope

__all__ = ["EPS", "RULES", "infini_attention_naive", "sigma", "unit"]


def infini_attention_naive(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    segment_len: int,
    rule="linear",
    rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    eps: float = EPS,
    write_gate: tuple[torch.Tensor, torch.Tensor] | None = None,
    feature_scale: torch.Tensor | None = None,
    feature_map=None,
    sparse_cache: int = 0,
    sparse_block: int = sparse.BLOCK,
    initial_cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    memory_inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    local_tail: int = 0,
    initial_tail: tuple[torch.Tensor, torch.Tensor] | None = None,
    local_sink: int = 0,
    initial_sink: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Infini-attention over a sequence that starts on a segment boundary.

    q: (batch, heads, length, dk); k: (batch, kv_heads, length, dk); v: (batch, kv_heads, length, dv);
    beta: (heads,) gate logits; rope: (cos, sin) tables of shape (>= segment_len, dk) or None;
    initial_state: (M (batch, kv_heads, dk, dv), z (batch, kv_heads, dk)) or None for an empty memory.
    Query head h reads key/value head h // (heads // kv_heads), as in grouped-query attention.
    write_gate: (weight (kv_heads, dk), bias (kv_heads,)) of the `deltanet` rule's write strength
    sigmoid(k . weight + bias); that rule only (see README.md).
    feature_scale: (kv_heads,) or None, the `sharpness` variant: the memory sees sigma(scale * x)
    instead of sigma(x) for the queries and keys of each key/value head (linear and delta rules).
    rule: a name of rules.RULES or a Rule; feature_map: a feature map of features.py (default: the rule's).
    The memory's read and write are the rule's `reference_*` methods, one head at a time.
    sparse_cache: C > 0 for the sparse-cache variant (sparse_cache.py): up to C past tokens per key/value
    head kept exactly and attended to at RoPE position 0, chosen in blocks of sparse_block tokens;
    initial_cache: its (keys, values) to start from.
    memory_inputs: (q, k, v) shaped like q, k, v: what the memory reads with and writes instead of q, k, v
    (the memory path's own projections, a variant); the local attention always uses q, k, v.
    local_tail: T > 0 for the local-tail variant: every segment's local attention also sees the previous
    complete segment's last T keys and values, at RoPE positions -T..-1; initial_tail: the (keys, values)
    of the tail to start from. local_sink: S > 0 for the local-sink variant: the stream's first S keys and
    values (kept when the first segment is complete), seen before the tail at positions -(S+T)..-(T+1);
    initial_sink: the (keys, values) of the sink to start from.

    Returns the output (batch, heads, length, dv) in float32 and (M, z) after the last complete
    segment, with the cache's (keys, values) after them when sparse_cache > 0, then the tail's (keys, values)
    when local_tail > 0 and the sink's when local_sink > 0; a final partial segment
    is attended to but not written to the memory. The `deltanet`
    rule neither reads nor writes z (it is returned as given).
    """
    memory = rule_from_options(rule, eps, write_gate, feature_scale, feature_map)
    q, k, v, beta = q.float(), k.float(), v.float(), beta.float()
    if memory_inputs is not None and sparse_cache:
        raise ValueError("memory_inputs and sparse_cache do not combine (the cache keeps the local keys)")
    mq, mk, mv = (t.float() for t in memory_inputs) if memory_inputs is not None else (q, k, v)
    batch, heads, length, dk = q.shape
    kv_heads, dv = k.shape[1], v.shape[-1]
    group = heads // kv_heads
    if initial_state is None:
        M = [[torch.zeros(dk, dv) for _ in range(kv_heads)] for _ in range(batch)]
        z = [[torch.zeros(dk) for _ in range(kv_heads)] for _ in range(batch)]
    else:
        M = [[initial_state[0][b, j].float() for j in range(kv_heads)] for b in range(batch)]
        z = [[initial_state[1][b, j].float() for j in range(kv_heads)] for b in range(batch)]
    # tokens kept beside the memory, per batch element and key/value head: lists of (n, d) tensors
    cache_k, cache_v = _kept_tokens(initial_cache, batch, kv_heads, dk, dv)  # the sparse cache
    tail_k, tail_v = _kept_tokens(initial_tail, batch, kv_heads, dk, dv)  # the previous segment's last tokens
    sink_k, sink_v = _kept_tokens(initial_sink, batch, kv_heads, dk, dv)  # the stream's first tokens

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
                # The sparse cache's tokens (if any) come first, at position 0, then the stream's first tokens
                # (the sink) and the previous segment's last ones (the tail), if any, at positions -t..-1; every
                # query sees them all.
                ck, cv = cache_k[b][j], cache_v[b][j]
                tk, tv = torch.cat([sink_k[b][j], tail_k[b][j]]), torch.cat([sink_v[b][j], tail_v[b][j]])
                qr, kr = qs, torch.cat([ck, tk, ks])
                if rope is not None:
                    qr = apply_rope(qs, rope[0][:n], rope[1][:n])
                    positions = [0] * len(ck) + list(range(-len(tk), 0)) + list(range(n))
                    cos = torch.stack([rope[0][abs(i)] for i in positions])  # cos(-x) = cos(x)
                    sin = torch.stack([rope[1][abs(i)] * (1 if i >= 0 else -1) for i in positions])  # sin(-x) = -sin(x)
                    kr = apply_rope(kr, cos, sin)
                scores = qr @ kr.T / math.sqrt(dk)
                causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
                visible = torch.cat([torch.ones(n, len(ck) + len(tk), dtype=torch.bool), causal], dim=1)
                scores = scores.masked_fill(~visible, float("-inf"))
                weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
                weights = weights / weights.sum(dim=-1, keepdim=True)
                a_dot = weights @ torch.cat([cv, tv, vs])

                if memory.reads_own_segment:  # a variant (causal.py): this segment's keys up to t too
                    mqs, mks, mvs = mq[b, h, seg], mk[b, j, seg], mv[b, j, seg]
                    a_mem = memory.reference_read_segment(mqs, mks, mvs, M[b][j], z[b][j], j)
                    g = torch.sigmoid(beta[h])
                    per_head.append(g * a_mem + (1 - g) * a_dot)
                    continue
                # Eq 7: read the memory left by the previous segments, before this segment's update.
                if not memory.reference_written(M[b][j], z[b][j]):
                    # Empty memory (first segment): the output is the local attention, unscaled.
                    per_head.append(a_dot)
                    continue
                a_mem = memory.reference_read(mq[b, h, seg], M[b][j], z[b][j], j)
                # Eq 10: the learned gate mixes memory and local attention.
                g = torch.sigmoid(beta[h])
                per_head.append(g * a_mem + (1 - g) * a_dot)
            per_batch.append(torch.stack(per_head))
        outputs.append(torch.stack(per_batch))

        if n < segment_len:
            break  # a partial segment is never written to the memory
        for b in range(batch):
            for j in range(kv_heads):  # eq 8 / eq 9 (or the rule's own write)
                if local_tail:  # the next segment's local attention sees this one's last tokens
                    tail_k[b][j], tail_v[b][j] = k[b, j, seg][-local_tail:], v[b, j, seg][-local_tail:]
                if local_sink and len(sink_k[b][j]) < local_sink:  # the stream's first segment: its first tokens
                    sink_k[b][j], sink_v[b][j] = k[b, j, seg][:local_sink], v[b, j, seg][:local_sink]
                wk, wv = mk[b, j, seg], mv[b, j, seg]
                if sparse_cache:  # the most novel blocks stay cached, the others are written
                    cache_k[b][j], cache_v[b][j], wk, wv = sparse.reference_select(
                        sparse_cache, cache_k[b][j], cache_v[b][j], wk, wv, sparse_block
                    )
                if len(wk):  # (the cache may take every token while it fills up)
                    M[b][j], z[b][j] = memory.reference_write(wk, wv, M[b][j], z[b][j], j)
    out = torch.cat(outputs, dim=2)
    kept = [(sparse_cache, (cache_k, cache_v)), (local_tail, (tail_k, tail_v)), (local_sink, (sink_k, sink_v))]
    extras = [part for on, parts in kept if on for part in parts]
    return out, tuple(_stacked(per_head) for per_head in (M, z, *extras))


def _stacked(per_head: list) -> torch.Tensor:
    """Lists [b][j] of per-head tensors back into one (batch, kv_heads, ...) tensor."""
    return torch.stack([torch.stack(row) for row in per_head])


def _kept_tokens(initial, batch: int, kv_heads: int, dk: int, dv: int) -> tuple[list, list]:
    """(keys, values) as lists [b][j] of (n, dk) and (n, dv) float32 tensors: initial's (keys (B, Hkv, n, dk),
    values) split per batch element and key/value head, or empty (n = 0) when initial is None."""
    if initial is None:
        return (
            [[torch.zeros(0, dk) for _ in range(kv_heads)] for _ in range(batch)],
            [[torch.zeros(0, dv) for _ in range(kv_heads)] for _ in range(batch)],
        )
    return tuple([[t[b, j].float() for j in range(kv_heads)] for b in range(batch)] for t in initial)

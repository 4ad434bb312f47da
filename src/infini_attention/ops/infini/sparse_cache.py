"""The `sparse cache`: a bounded exact side memory beside (M, z). A variant, not the paper's (after LoLA,
McDermott et al., 2025, arXiv 2505.23666); opt in with `sparse_cache=C` (C > 0 tokens per key/value head).

In the paper every token of a finished segment is folded into the compressive memory, where a rare
fact (a pass key) is one term of a sum over thousands of tokens. With a sparse cache, each key/value
head also keeps up to C past tokens exactly (their un-rotated keys and values), and the local softmax
attention of every later segment attends to them beside the segment's own tokens. The tokens not kept
are written to the memory by the rule (eqs 8-9), so every past token is in exactly one place: the
cache or M. The state grows by 2 C d numbers per key/value head and stays bounded.

Which tokens: when a segment is finished, the cached tokens and the segment's (in order of arrival)
are the candidates, cut into blocks of BLOCK consecutive tokens. Each token is scored by how badly exact
attention over the candidates *before* it recalls its value (a novelty score):

    error_i = || v_i - Σ_{j<i} softmax_j(k_i·k_j / √d) v_j ||²      (error_0 = ||v_0||²)

A text repeated in the haystack is recalled from its earlier copy (error ~ 0) while its first copy and
a fact stated once are not. A block scores the largest error of its tokens; the C / BLOCK blocks with
the largest scores stay (ties: the earlier block), the others are written to M. Blocks, not single
tokens, keep a fact with its neighbours (the digits of a number, the words before it), which an
induction-style read needs.

Measured alternatives (runs/EXPERIMENTS.md, session 7; the transferred SmolLM2, the paper's passkey on
its filler): LoLA's self-recall error against the memory (|| v - σ(k) M / σ(k) z ||²) keeps filler
tokens whose values lie far from the memory's blurred average and loses the needle beyond ~1K tokens;
single tokens instead of blocks keep parts of the needle, and the answer breaks between its digits;
keeping each block's score from when it arrived (instead of scoring the cache again with every
segment) lost more needles placed at the start of the input (4000 tokens: 2 of 4 against 3 of 4).

Positions: the cached keys are un-rotated and enter the local attention at RoPE position 0 (the
segment's first position), whatever segment they came from, so relative distances stay within
the segment length however long the stream is. The selection is discrete (no gradient flows
through the choice); gradients flow through the cached keys and values themselves.

`select` is batched; `reference_select` is the same for one batch element and key/value head,
plainly (naive.py).
"""

from __future__ import annotations

import math

import torch

BLOCK = 16  # tokens per block of the selection; the layers need sparse_cache and segment_len multiples of it


def check_sizes(size: int, segment_len: int, block: int = BLOCK) -> None:
    """The cache holds whole blocks, and a segment is cut into whole blocks."""
    if size % block or segment_len % block:
        raise ValueError(
            f"sparse_cache ({size}) and segment_len ({segment_len}) must be multiples of the selection's "
            f"block of {block} tokens"
        )


def novelty(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """error_i of the module docstring for candidates keys (B, Hkv, n, dk), values (B, Hkv, n, dv):
    (B, Hkv, n) float32."""
    with torch.no_grad(), torch.autocast(keys.device.type, enabled=False):
        k, v = keys.float(), values.float()
        n = k.shape[2]
        scores = k @ k.transpose(-1, -2) / math.sqrt(k.shape[-1])
        earlier = torch.ones(n, n, dtype=torch.bool, device=k.device).tril(diagonal=-1)
        weights = scores.masked_fill(~earlier, float("-inf")).softmax(dim=-1)
        weights = torch.nan_to_num(weights, nan=0.0)  # the first token has nothing before it: recalls 0
        return (v - weights @ v).square().sum(dim=-1)


def select(size: int, cache_k, cache_v, keys, values, block: int = BLOCK):
    """Split a finished segment's tokens and the cache into what stays cached and what is written.

    cache_k, cache_v: (B, Hkv, c, d) the cache (c <= size, a multiple of block); keys, values: (B, Hkv,
    N, d) the segment (N a multiple of block). Returns (cache_k, cache_v, write_k, write_v): the kept
    tokens (at most `size`) and the others, each in their order of arrival (cache first, then the segment).
    """
    cand_k, cand_v = torch.cat([cache_k, keys], dim=2), torch.cat([cache_v, values], dim=2)
    batch, heads, n, _ = cand_k.shape
    if n <= size:
        return cand_k, cand_v, cand_k[:, :, :0], cand_v[:, :, :0]
    scores = novelty(cand_k, cand_v).reshape(batch, heads, n // block, block).amax(dim=-1)  # per block
    order = scores.argsort(dim=-1, descending=True, stable=True)
    keep_blocks = order[..., : size // block].sort(dim=-1).values
    drop_blocks = order[..., size // block :].sort(dim=-1).values
    steps = torch.arange(block, device=cand_k.device)

    def take(t, blocks):  # the tokens of these blocks (B, Hkv, b), in arrival order
        index = (blocks[..., None] * block + steps).flatten(-2)
        return t.gather(2, index[..., None].expand(*index.shape, t.shape[-1]))

    return take(cand_k, keep_blocks), take(cand_v, keep_blocks), take(cand_k, drop_blocks), take(cand_v, drop_blocks)


def reference_select(size: int, cache_k, cache_v, k, v, block: int = BLOCK):
    """One key/value head, plainly: cache (c, d) and segment (N, d) -> (cache_k, cache_v, write_k, write_v)."""
    cand_k, cand_v = torch.cat([cache_k, k]), torch.cat([cache_v, v])
    n, d = cand_k.shape
    if n <= size:
        return cand_k, cand_v, cand_k[:0], cand_v[:0]
    error = []
    with torch.no_grad():
        for i in range(n):
            if i == 0:
                recalled = torch.zeros_like(cand_v[0])
            else:
                scores = torch.stack([cand_k[i] @ cand_k[j] / math.sqrt(d) for j in range(i)])
                weights = torch.exp(scores - scores.max())
                recalled = (weights / weights.sum()) @ cand_v[:i]
            error.append(float(((cand_v[i] - recalled) ** 2).sum()))
    block_scores = [max(error[b * block : (b + 1) * block]) for b in range(n // block)]
    order = sorted(range(len(block_scores)), key=lambda b: -block_scores[b])  # stable: ties keep arrival order
    keep_blocks, drop_blocks = sorted(order[: size // block]), sorted(order[size // block :])
    keep = [b * block + t for b in keep_blocks for t in range(block)]
    drop = [b * block + t for b in drop_blocks for t in range(block)]
    return cand_k[keep], cand_v[keep], cand_k[drop], cand_v[drop]

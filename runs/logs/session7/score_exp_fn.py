import math, torch
def copy_error(memory, keys, values, M, z):
    """causal: each candidate recalled by softmax attention over the earlier candidates only"""
    with torch.no_grad(), torch.autocast(keys.device.type, enabled=False):
        k, v = keys.float(), values.float()
        n = k.shape[2]
        scores = k @ k.transpose(-1, -2) / math.sqrt(k.shape[-1])
        past = torch.ones(n, n, dtype=torch.bool, device=k.device).tril(-1)
        scores = scores.masked_fill(~past, float("-inf"))
        weights = torch.nan_to_num(scores.softmax(-1), nan=0.0)
        recalled = weights @ v
        return (v - recalled).square().sum(-1)

from infini_attention.ops.infini import sparse_cache as _sc
_orig_error = _sc.recall_error
BLOCK = 16
def block_select(memory, size, cache_k, cache_v, keys, values, M, z, error_fn=None):
    cand_k, cand_v = torch.cat([cache_k, keys], dim=2), torch.cat([cache_v, values], dim=2)
    n = cand_k.shape[2]
    if n <= size:
        return cand_k, cand_v, cand_k[:, :, :0], cand_v[:, :, :0]
    error = (error_fn or _sc.recall_error)(memory, cand_k, cand_v, M, z)  # B,H,n
    nb = n // BLOCK
    block_err = error[..., : nb * BLOCK].reshape(*error.shape[:2], nb, BLOCK).amax(-1)
    order = block_err.argsort(dim=-1, descending=True, stable=True)
    kb = size // BLOCK
    keepb, dropb = order[..., :kb].sort(-1).values, order[..., kb:].sort(-1).values
    ar = torch.arange(BLOCK)
    keep = (keepb[..., None] * BLOCK + ar).flatten(-2)
    drop = (dropb[..., None] * BLOCK + ar).flatten(-2)
    take = lambda t, i: t.gather(2, i[..., None].expand(*i.shape, t.shape[-1]))
    return take(cand_k, keep), take(cand_v, keep), take(cand_k, drop), take(cand_v, drop)

SPAN = 8
def pooled_select(memory, size, cache_k, cache_v, keys, values, M, z):
    cand_k, cand_v = torch.cat([cache_k, keys], dim=2), torch.cat([cache_v, values], dim=2)
    n = cand_k.shape[2]
    if n <= size:
        return cand_k, cand_v, cand_k[:, :, :0], cand_v[:, :, :0]
    error = copy_error(memory, cand_k, cand_v, M, z)
    B, H, _ = error.shape
    pooled = torch.nn.functional.max_pool1d(error.reshape(B * H, 1, n), 2 * SPAN + 1, stride=1, padding=SPAN).reshape(B, H, n)
    order = pooled.argsort(dim=-1, descending=True, stable=True)
    keep, drop = order[..., :size].sort(-1).values, order[..., size:].sort(-1).values
    take = lambda t, i: t.gather(2, i[..., None].expand(*i.shape, t.shape[-1]))
    return take(cand_k, keep), take(cand_v, keep), take(cand_k, drop), take(cand_v, drop)

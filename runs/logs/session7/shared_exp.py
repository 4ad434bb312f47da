"""runs/smollm2_sparse.py with the sparse cache's blocks chosen per layer (scores summed over kv heads)."""
import sys

import torch

from infini_attention.ops.infini import sparse_cache as sc


def shared_select(size, cache_k, cache_v, keys, values, block=sc.BLOCK):
    cand_k, cand_v = torch.cat([cache_k, keys], dim=2), torch.cat([cache_v, values], dim=2)
    batch, heads, n, _ = cand_k.shape
    if n <= size:
        return cand_k, cand_v, cand_k[:, :, :0], cand_v[:, :, :0]
    scores = sc.novelty(cand_k, cand_v).reshape(batch, heads, n // block, block).amax(dim=-1)
    scores = scores.sum(dim=1, keepdim=True).expand(-1, heads, -1)  # one choice per layer
    order = scores.argsort(dim=-1, descending=True, stable=True)
    keep_blocks = order[..., : size // block].sort(dim=-1).values
    drop_blocks = order[..., size // block :].sort(dim=-1).values
    steps = torch.arange(block)

    def take(t, blocks):
        index = (blocks[..., None] * block + steps).flatten(-2)
        return t.gather(2, index[..., None].expand(*index.shape, t.shape[-1]))

    return take(cand_k, keep_blocks), take(cand_v, keep_blocks), take(cand_k, drop_blocks), take(cand_v, drop_blocks)


sc.select = shared_select
sys.argv[0] = "runs/smollm2_sparse.py"
exec(open("runs/smollm2_sparse.py").read())

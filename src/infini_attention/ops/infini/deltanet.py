"""The `deltanet` memory rule: a variant, not the paper's (opt in with rule="deltanet"; README.md).

Unit-norm keys and queries, no normaliser z, and a learned write strength s_t = sigmoid(K_t · w + b)
per key/value head (write_gate = (w (Hkv, dk), b (Hkv,)), parameters of the layer):

    read:  A_mem = unit(Q) M_{s-1}
    write: M_t = M_{t-1} + s_t k_t (v_t − k_t M_{t-1}), k_t = unit(K_t), token by token
"""

from __future__ import annotations

import torch

from infini_attention.ops.infini.features import UnitNorm
from infini_attention.ops.infini.rules import EPS, Rule, group_heads, read_dtype, register

WRITE_CHUNK = 64  # tokens per triangular solve of the write


@register
class DeltaNet(Rule):
    name = "deltanet"
    normalised = False

    def __init__(self, write_gate: tuple[torch.Tensor, torch.Tensor] | None = None, feature=None, eps: float = EPS):
        if write_gate is None:
            raise ValueError("the deltanet rule needs write_gate = (weight (Hkv, dk), bias (Hkv,))")
        if feature is not None and not isinstance(feature, UnitNorm):
            raise ValueError("the deltanet rule keeps unit-norm keys: its feature map cannot be changed")
        super().__init__(UnitNorm(), eps)
        self.write_gate = write_gate

    def written(self, M, z) -> torch.Tensor:
        return M.ne(0).flatten(2).any(-1)  # (B, Hkv)

    def read(self, q, M, z):
        """unit(Q) M_{s-1}, no normaliser, grouped and in the compute dtype as the linear rule's read."""
        batch, heads, m, _ = q.shape
        dtype = read_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            a_mem = self.feature(group_heads(q.to(dtype), M.shape[1])) @ M.to(dtype)
        return a_mem.reshape(batch, heads, m, M.shape[-1])

    def write(self, M, z, keys, values):
        """The token-by-token delta rule over one finished segment, a chunk at a time; z is returned as given.

        Unrolled over a chunk of C tokens, M_C = M_0 + K^T U where the rows u_t = s_t (v_t - k_t M_0 -
        sum_{i<t} (k_t . k_i) u_i) solve the unit lower triangular system (I + diag(s) tril(K K^T, -1)) U
        = diag(s) (V - K M_0) (Yang et al., 2024): one C x C triangular solve instead of C sequential
        steps. Chunks of WRITE_CHUNK tokens run in turn (exact: the rule is sequential), so the cost
        grows as N C d, not N^2 d as one solve over the whole segment would.
        """
        weight, bias = self.write_gate
        with torch.autocast(keys.device.type, enabled=False):
            keys, values = keys.float(), values.float()
            unit_keys = self.feature(keys)  # (B, Hkv, N, dk)
            # write strength s_t = sigmoid(k_t . w + b) per key/value head: (B, Hkv, N, 1)
            strength = torch.sigmoid(keys @ weight.float()[None, :, :, None] + bias.float()[None, :, None, None])
            chunks = zip(*(t.split(WRITE_CHUNK, dim=2) for t in (unit_keys, values, strength)))
            for k, v, s in chunks:
                rhs = s * (v - k @ M)
                # only the strictly lower triangle is read (unitriangular): the diagonal counts as 1
                system = s * (k @ k.transpose(-1, -2))
                updates = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
                M = M + k.transpose(-1, -2) @ updates
            return M, z

    def reference_written(self, M, z) -> bool:
        return bool((M != 0).any())

    def reference_read(self, q, M, z, head):
        return self.feature(q, head) @ M

    def reference_write(self, k, v, M, z, head):
        """One token at a time: move the memory's answer for key t a fraction s_t of the way to v_t."""
        weight, bias = self.write_gate
        for t in range(k.shape[0]):
            kt = self.feature(k[t], head)
            s_t = torch.sigmoid(k[t] @ weight[head].float() + bias[head].float())
            M = M + s_t * torch.outer(kt, v[t] - kt @ M)
        return M, z

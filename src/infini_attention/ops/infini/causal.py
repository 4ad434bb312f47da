"""The `linear-causal` memory rule: a variant, not the paper's (opt in with rule="linear-causal").

The paper's memory read at a token of segment s sees M_{s-1}: what the segments before s wrote
(eq 7). A fact in the token's own segment reaches it only through the local softmax attention, and
a fact that straddles the segment boundary is split between the two paths. Here the read at token
t of segment s also sees the writes its own segment has made up to t, as linear attention over the
whole prefix does:

    A_mem(t) = (σ(q_t) M_{s-1} + Σ_{j<=t in s} (σ(q_t)·σ(k_j)) v_j) / (σ(q_t) z_{s-1} + Σ_{j<=t in s} σ(q_t)·σ(k_j))

The state and the write are the linear rule's (eq 8), once per finished segment, so the memory stays
(dk x dv + dk) per head and the streaming state is exactly the paper's; only the read changes, at a
cost of O(N²) per segment like the local attention beside it. Because the read is never empty (a
token always sees itself), the gate mixes the memory in from the first segment on.
"""

from __future__ import annotations

import torch

from infini_attention.ops.infini.rules import Linear, group_heads, memory_with_norm, register


@register
class CausalLinear(Linear):
    name = "linear-causal"
    reads_own_segment = True

    def read_segment(self, q, keys, values, M, z):
        """A_mem for queries q (B, H, m, dk) at positions p..p+m-1 of a segment whose keys/values so far
        are keys (B, Hkv, p+m, dk) and values; M, z: the memory before this segment. In float32."""
        batch, heads, m, dk = q.shape
        kv_heads, n = keys.shape[1], keys.shape[2]
        group = heads // kv_heads
        with torch.autocast(q.device.type, enabled=False):
            # the feature map takes (B, Hkv, tokens, dk) (per-head scales broadcast over dim 1)
            sq = self.feature(group_heads(q.float(), kv_heads)).reshape(batch, kv_heads, group, m, dk)
            sk = self.feature(keys.float())  # (B, Hkv, n, dk)
            past = sq @ memory_with_norm(M, z)[:, :, None]  # (B, Hkv, G, m, dv+1)
            scores = sq @ sk[:, :, None].transpose(-1, -2)  # (B, Hkv, G, m, n)
            mask = torch.ones(m, n, dtype=torch.bool, device=q.device).tril(diagonal=n - m)
            scores = scores * mask
            own = scores @ values.float()[:, :, None]  # (B, Hkv, G, m, dv)
            num = past[..., :-1] + own
            den = past[..., -1:] + scores.sum(-1, keepdim=True)
            a_mem = num / (den + self.eps)
        return a_mem.reshape(batch, heads, m, values.shape[-1])

    def reference_read_segment(self, q, k, v, M, z, head):
        """One head, plainly: q (m, dk) at the last m positions of a segment with keys k (n, dk), values v."""
        m, n = q.shape[0], k.shape[0]
        rows = []
        for i in range(m):
            sq = self.feature(q[i : i + 1], head)[0]
            t = n - m + i
            num, den = sq @ M, sq @ z
            for j in range(t + 1):
                w = sq @ self.feature(k[j : j + 1], head)[0]
                num, den = num + w * v[j], den + w
            rows.append(num / (den + self.eps))
        return torch.stack(rows)

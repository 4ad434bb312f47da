"""Memory rules, by name: how the compressive memory (M, z) is read (eq 7) and written (eqs 8-9).

A rule is a small class with the fast batched methods the op calls and a reference beside them
that the plain loop of `naive.py` calls, one batch element and key/value head at a time:

    read(q, M, z) -> A_mem            q (B, H, m, dk) un-rotated; M (B, Hkv, dk, dv), z (B, Hkv, dk) float32
    write(M, z, k, v) -> (M, z)       one finished segment's keys (B, Hkv, N, dk) and values, float32
    written(M, z) -> (B, Hkv) bool    whether anything was written (an empty memory is not read)
    reference_read / reference_write / reference_written: the same for one head, plainly

The feature map (features.py) is the rule's `feature`. The paper's two rules live here ("linear",
eq 8; "delta", eq 9); `deltanet.py` and `causal.py` add variants the same way. A new rule is one source file that
registers a Rule subclass with `@register`, imported by `ops/infini/__init__.py`, and one test file
that compares it with its reference (tests/ops/test_rules.py shows how).
"""

from __future__ import annotations

import torch

from infini_attention.ops.infini.features import ELU1, ScaledELU1

EPS = 1e-6  # added to every memory denominator σ(q) z; see README.md
RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    RULES[cls.name] = cls
    return cls


def make_rule(rule: str | Rule, **options) -> Rule:
    """A Rule from a name (with its options: feature=, eps=, write_gate=, ...) or an instance as it is."""
    if isinstance(rule, Rule):
        return rule
    if rule not in RULES:
        raise ValueError(f"unknown memory rule {rule!r}: expected one of {', '.join(RULES)}")
    return RULES[rule](**options)


def rule_from_options(rule, eps=EPS, write_gate=None, feature_scale=None, feature_map=None) -> Rule:
    """The Rule of the ops' keyword arguments: a rule name or Rule, the deltanet rule's write_gate,
    and the feature map (feature_scale: the sharpness variant's scales, shorthand for ScaledELU1)."""
    if isinstance(rule, str) and (rule == "deltanet") != (write_gate is not None):
        raise ValueError("write_gate is needed by the deltanet rule and only by it")
    if feature_scale is not None:
        if rule == "deltanet":
            raise ValueError("feature_scale has no effect under the deltanet rule (unit-norm keys)")
        feature_map = ScaledELU1(feature_scale)
    options = {"feature": feature_map} if feature_map is not None else {}
    if write_gate is not None:
        options["write_gate"] = write_gate
    return make_rule(rule, eps=eps, **options)


def read_dtype(q: torch.Tensor) -> torch.dtype:
    """The memory read's matmul dtype: q's, unless its range is too small for z (float16 overflows
    at 65504, and z is a sum over every token read), in which case float32."""
    return torch.float32 if q.dtype == torch.float16 else q.dtype


def group_heads(q: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """(B, H, m, d) -> (B, Hkv, G*m, d): the query heads that read key/value head j side by side."""
    batch, heads, m, d = q.shape
    return q.reshape(batch, kv_heads, (heads // kv_heads) * m, d)


class Rule:
    """The interface; see the module docstring."""

    name = ""
    normalised = True  # keeps z and divides the read by σ(q) z
    additive_writes = False  # a segment's write is the same whatever the memory holds (stretch.py: exact)
    # a segment's write depends on the memory only through its normalised read, which one copy of the segment moves
    # by about its key mass over z: counted w times, it is w copies to first order (stretch.py)
    first_order_writes = False
    reads_own_segment = False  # the read also sees its own segment's keys so far (causal.py: read_segment)

    def __init__(self, feature=None, eps: float = EPS):
        self.feature = feature if feature is not None else ELU1()
        self.eps = eps
        if self.normalised and not getattr(self.feature, "positive", False):
            raise ValueError(f"the {self.name} rule divides by σ(q) z: its feature map must be positive")

    def read(self, q, M, z):
        raise NotImplementedError

    def write(self, M, z, keys, values):
        raise NotImplementedError

    def written(self, M, z) -> torch.Tensor:
        return z.sum(-1) > 0  # features > 0: z > 0 after any write

    def key_mass(self, keys: torch.Tensor) -> torch.Tensor:
        """Σ_t φ(k_t) over keys (B, Hkv, n, dk): what these tokens add to z, (B, Hkv, dk) float32."""
        return self.feature(keys.float()).sum(dim=2)

    def read_share(self, q: torch.Tensor, mass: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The share of the read's normaliser φ(q)·z (eq 7) that comes from tokens of key mass `mass`.

        q: (B, H, dk) one query per head; mass, z: (B, Hkv, dk). Returns (B, H) in [0, 1] when `mass`
        is part of what was written into z. Only rules with a normaliser have one.
        """
        if not self.normalised:
            raise ValueError(f"the {self.name} rule has no normaliser z: its read has no share to report")
        batch, heads, dk = q.shape
        sq = self.feature(group_heads(q.float()[:, :, None], z.shape[1]))  # (B, Hkv, G, dk)
        part = (sq @ mass.float()[..., None]).squeeze(-1)
        whole = (sq @ z.float()[..., None]).squeeze(-1)
        return (part / (whole + self.eps)).reshape(batch, heads)

    def reference_read(self, q, M, z, head):
        raise NotImplementedError

    def reference_write(self, k, v, M, z, head):
        raise NotImplementedError

    def reference_written(self, M, z) -> bool:
        return bool(z.sum() != 0)


def memory_with_norm(M: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """[M | z] of shape (B, Hkv, dk, dv+1): one matmul then gives numerator and denominator.

    Stored column-major (a transposed view of (dv+1, dk)): BLAS takes it as a transposed operand
    without a copy, and that runs ~20% faster than a row-major matrix 129 columns wide.
    """
    return torch.cat([M.transpose(-1, -2), z[..., None, :]], dim=-2).transpose(-1, -2)


def normalised(read: torch.Tensor, eps: float) -> torch.Tensor:
    """Numerator / (denominator + eps) of a read against [M | z] (..., dv+1)."""
    # split, not two slices: its backward is one cat instead of two zero-filled full-size grads
    num, den = read.split([read.shape[-1] - 1, 1], dim=-1)
    return num / (den + eps)


@register
class Linear(Rule):
    """Eq 7 read, eq 8 write: M += σ(K)ᵀ V, z += Σ σ(K)."""

    name = "linear"
    additive_writes = True

    def read(self, q, M, z):
        """Eq 7: A_mem = σ(Q) M / (σ(Q) z), query heads grouped over kv heads.

        The matmul runs in the compute dtype (`read_dtype`: bf16 under bf16 autocast, like every other
        matmul of the layer) against a copy of the float32 [M | z] in that dtype; the division runs in
        float32. M and z themselves are never stored in anything but float32.
        """
        batch, heads, m, _ = q.shape
        dtype = read_dtype(q)
        with torch.autocast(q.device.type, enabled=False):
            sq = self.feature(group_heads(q.to(dtype), M.shape[1]))
            read = sq @ memory_with_norm(M, z).to(dtype)  # (B, Hkv, G*m, dv+1)
            a_mem = normalised(read.float(), self.eps)
        return a_mem.reshape(batch, heads, m, M.shape[-1])

    def write(self, M, z, keys, values):
        """Eq 8, in float32 with autocast off."""
        with torch.autocast(keys.device.type, enabled=False):
            sk = self.feature(keys.float())
            values = self.new_values(sk, values.float(), M, z)
            return M + sk.transpose(-1, -2) @ values, z + sk.sum(dim=2)

    def new_values(self, sk, values, M, z):
        """What the write adds for each key: the value itself (eq 8)."""
        return values

    def reference_read(self, q, M, z, head):
        sq = self.feature(q, head)
        return (sq @ M) / (sq @ z + self.eps)[:, None]

    def reference_write(self, k, v, M, z, head):
        sk = self.feature(k, head)
        v = self.reference_new_values(sk, v, M, z)
        return M + sk.T @ v, z + sk.sum(dim=0)

    def reference_new_values(self, sk, v, M, z):
        return v


@register
class Delta(Linear):
    """Eq 9: write only what the memory does not already return for these keys."""

    name = "delta"
    additive_writes = False
    first_order_writes = True

    def new_values(self, sk, values, M, z):
        return values - normalised(sk @ memory_with_norm(M, z), self.eps)

    def reference_new_values(self, sk, v, M, z):
        return v - (sk @ M) / (sk @ z + self.eps)[:, None]

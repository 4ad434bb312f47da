"""Infini-attention as used by the layers: segment-local SDPA plus a float32 compressive memory.

The input may start in the middle of a segment: the state carries the keys and values of the
unfinished segment, so that two calls carrying the state give exactly the output of one call, and
token-by-token decoding is the same computation as the forward pass. Each piece of the input that
lies inside one segment is handled by `_attend_piece`; a segment is written to the memory when its
last token arrives. Equation numbers are the paper's; `README.md` beside this file explains the
choices the paper leaves open (empty memory, epsilon, dtypes).
"""

import dataclasses

import torch
import torch.nn.functional as F

from infini_attention.ops.infini.naive import EPS, RULES, sigma
from infini_attention.ops.rope import apply_rope
from infini_attention.ops.segments import map_segment_pieces
from infini_attention.state import InfiniState, KVState


def empty_state(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, memory: bool) -> InfiniState | KVState:
    """A fresh state for inputs shaped like k and v: no pending tokens and, if `memory`, M = 0 and z = 0."""
    batch, kv_heads, _, dk = k.shape
    dv = v.shape[-1]
    window_k, window_v = k.new_zeros(batch, kv_heads, 0, dk), v.new_zeros(batch, kv_heads, 0, dv)
    if not memory:
        return KVState(window_k, window_v)
    M = torch.zeros(batch, kv_heads, dk, dv, dtype=torch.float32, device=k.device)
    z = torch.zeros(batch, kv_heads, dk, dtype=torch.float32, device=k.device)
    return InfiniState(M, z, window_k, window_v)


def infini_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor | None,
    *,
    segment_len: int,
    rule: str = "linear",
    rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    state: InfiniState | KVState | None = None,
    eps: float = EPS,
    write_gate: tuple[torch.Tensor, torch.Tensor] | None = None,
    feature_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, InfiniState | KVState]:
    """Infini-attention over q (B, H, L, dk), k (B, Hkv, L, dk), v (B, Hkv, L, dv); any L >= 1.

    beta: (H,) gate logits, or None for segment-local attention without memory (the `local` kind).
    rope: (cos, sin) tables of shape (>= segment_len, dk) for positions inside a segment, or None.
    state: what a previous call returned, or None to start a new stream on a segment boundary.
    rule: "linear" (eq 8), "delta" (eq 9) or "deltanet" (a variant, not the paper's: unit-norm keys
    and queries, a per-token write strength sigmoid(k . w + b) from write_gate = (w (Hkv, dk), b (Hkv,)),
    the exact token-by-token delta rule inside a segment and no normaliser z; see README.md).
    feature_scale: (Hkv,) or None, the `sharpness` variant (linear and delta rules): the memory
    sees sigma(scale * x) instead of sigma(x), one learned scale per key/value head.
    Returns the output (B, H, L, dv) in q's dtype and the new state (M and z in float32).
    """
    if rule not in RULES:
        raise ValueError(f"unknown memory rule {rule!r}: expected one of {', '.join(RULES)}")
    if beta is not None and (rule == "deltanet") != (write_gate is not None):
        raise ValueError("write_gate is needed by the deltanet rule and only by it")
    if feature_scale is not None and rule == "deltanet":
        raise ValueError("feature_scale has no effect under the deltanet rule (unit-norm keys)")
    if state is None:
        state = empty_state(q, k, v, memory=beta is not None)
    memory = _Memory(rule, eps, write_gate, feature_scale)

    def attend_piece(q, k, v, state):
        return _attend_piece(q, k, v, beta, state, segment_len, rope, memory)

    return map_segment_pieces(q, k, v, state, segment_len, attend_piece)


@dataclasses.dataclass(frozen=True)
class _Memory:
    """How the memory is read and written: the rule and its options (see `infini_attention`)."""

    rule: str
    eps: float
    write_gate: tuple[torch.Tensor, torch.Tensor] | None
    feature_scale: torch.Tensor | None


def _attend_piece(q, k, v, beta, state, segment_len, rope, memory: _Memory):
    """Tokens p..p+m-1 of one segment, where the state holds the segment's first p tokens."""
    p, m = state.k.shape[2], q.shape[2]
    keys = torch.cat([state.k, k], dim=2) if p else k  # (B, Hkv, p+m, dk), un-rotated
    values = torch.cat([state.v, v], dim=2) if p else v
    a_dot = _local_attention(q, keys, values, rope)

    if beta is None:
        out = a_dot
    else:
        # eq 7, from M_{s-1}: before this segment's write
        if memory.rule == "deltanet":
            a_mem = _retrieve_unit(q, state.M)
            written = state.M.ne(0).flatten(2).any(-1)  # (B, Hkv)
        else:
            a_mem = _retrieve(q, state.M, state.z, memory.eps, memory.feature_scale)
            written = state.z.sum(-1) > 0
        gate = torch.sigmoid(beta.float())[None, :, None, None]  # eq 10, (1, H, 1, 1)
        # An empty memory (nothing written yet: the first segment) has nothing to say: its gate
        # share goes to the local attention instead of scaling the output down.
        group = q.shape[1] // state.z.shape[1]
        has_memory = written.repeat_interleave(group, dim=1)  # (B, H)
        gate = gate * has_memory[:, :, None, None]
        # lerp = a_dot + gate * (a_mem - a_dot) in one pass instead of three, in the compute dtype
        out = torch.lerp(a_dot, a_mem.to(a_dot.dtype), gate.to(a_dot.dtype))

    if p + m < segment_len:  # the segment is unfinished: keep its keys and values for later
        if beta is None:
            return out, KVState(keys, values)
        return out, dataclasses.replace(state, k=keys, v=values)
    # new empty tensors, not keys[:, :, :0]: a view would keep the whole call's projections alive
    # in the state until the next call
    empty_k = keys.new_empty(*keys.shape[:2], 0, keys.shape[3])
    empty_v = values.new_empty(*values.shape[:2], 0, values.shape[3])
    if beta is None:
        return out, KVState(empty_k, empty_v)
    if memory.rule == "deltanet":
        M, z = _write_unit(state.M, keys, values, memory.write_gate), state.z
    else:  # eqs 8-9
        M, z = _write(state.M, state.z, keys, values, memory.rule, memory.eps, memory.feature_scale)
    return out, dataclasses.replace(state, M=M, z=z, k=empty_k, v=empty_v)


def _local_attention(q, keys, values, rope):
    """Causal softmax attention of queries at positions p..p+m-1 over keys at 0..p+m-1 of a segment."""
    m, n = q.shape[2], keys.shape[2]
    p = n - m
    if rope is not None:
        cos, sin = rope
        q = apply_rope(q, cos[p:n], sin[p:n])
        keys = apply_rope(keys, cos[:n], sin[:n])
    gqa = q.shape[1] != keys.shape[1]
    if m == 1:  # one query sees every key: no mask
        return F.scaled_dot_product_attention(q, keys, values, enable_gqa=gqa)
    if p == 0:
        return F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=gqa)
    mask = torch.ones(m, n, dtype=torch.bool, device=q.device).tril(diagonal=p)  # query i sees keys <= p+i
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=gqa)


def _memory_with_norm(M: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """[M | z] of shape (B, Hkv, dk, dv+1): one matmul then gives numerator and denominator.

    Stored column-major (a transposed view of (dv+1, dk)): BLAS takes it as a transposed operand
    without a copy, and that runs ~20% faster than a row-major matrix 129 columns wide.
    """
    return torch.cat([M.transpose(-1, -2), z[..., None, :]], dim=-2).transpose(-1, -2)


def _normalised(read: torch.Tensor, eps: float) -> torch.Tensor:
    """Numerator / (denominator + eps) of a read against [M | z] (..., dv+1)."""
    # split, not two slices: its backward is one cat instead of two zero-filled full-size grads
    num, den = read.split([read.shape[-1] - 1, 1], dim=-1)
    return num / (den + eps)


def _read_dtype(q: torch.Tensor) -> torch.dtype:
    """The memory read's matmul dtype: q's, unless its range is too small for z (float16 overflows
    at 65504, and z is a sum over every token read), in which case float32."""
    return torch.float32 if q.dtype == torch.float16 else q.dtype


def _per_kv_head(scale: torch.Tensor | None, dtype: torch.dtype):
    """A (Hkv,) feature scale shaped to multiply (B, Hkv, rows, d) tensors, or None."""
    return None if scale is None else scale.to(dtype)[None, :, None, None]


def _retrieve(q, M, z, eps, feature_scale=None):
    """Eq 7: A_mem = sigma(Q) M / (sigma(Q) z) for query heads grouped over kv heads.

    The matmul runs in the compute dtype (`_read_dtype`: bf16 under bf16 autocast, like every other
    matmul of the layer) against a copy of the float32 [M | z] in that dtype; the division runs in
    float32. M and z themselves are never stored in anything but float32.
    """
    batch, heads, m, dk = q.shape
    kv_heads, dv = M.shape[1], M.shape[-1]
    dtype = _read_dtype(q)
    with torch.autocast(q.device.type, enabled=False):
        sq = q.to(dtype).reshape(batch, kv_heads, (heads // kv_heads) * m, dk)  # heads grouped by kv head
        if feature_scale is not None:
            sq = sq * _per_kv_head(feature_scale, dtype)
        sq = sigma(sq)
        read = sq @ _memory_with_norm(M, z).to(dtype)  # (B, Hkv, G*m, dv+1)
        a_mem = _normalised(read.float(), eps)
    return a_mem.reshape(batch, heads, m, dv)


def _write(M, z, keys, values, rule, eps, feature_scale=None):
    """Eqs 8-9: fold one finished segment's keys (B, Hkv, N, dk) and values into M and z, in float32."""
    with torch.autocast(keys.device.type, enabled=False):
        keys = keys.float()
        if feature_scale is not None:
            keys = keys * _per_kv_head(feature_scale, torch.float32)
        sk = sigma(keys)
        values = values.float()
        if rule == "delta":  # eq 9: subtract what the memory already returns for these keys
            values = values - _normalised(sk @ _memory_with_norm(M, z), eps)
        M = M + sk.transpose(-1, -2) @ values  # eq 8 / eq 9
        z = z + sk.sum(dim=2)
    return M, z


def _retrieve_unit(q, M):
    """`deltanet` read: unit(Q) M_{s-1}, no normaliser, grouped and in the compute dtype as in `_retrieve`."""
    batch, heads, m, dk = q.shape
    kv_heads, dv = M.shape[1], M.shape[-1]
    dtype = _read_dtype(q)
    with torch.autocast(q.device.type, enabled=False):
        uq = F.normalize(q.to(dtype), dim=-1).reshape(batch, kv_heads, (heads // kv_heads) * m, dk)
        a_mem = uq @ M.to(dtype)
    return a_mem.reshape(batch, heads, m, dv)


WRITE_CHUNK = 64  # tokens per triangular solve of the deltanet write


def _write_unit(M, keys, values, write_gate):
    """`deltanet` write of one finished segment: the token-by-token delta rule, a chunk at a time.

    Token by token, M_t = M_{t-1} + s_t k_t (v_t - k_t M_{t-1}) with unit keys k_t. Unrolled over a
    chunk of C tokens, M_C = M_0 + K^T U where the rows u_t = s_t (v_t - k_t M_0 - sum_{i<t} (k_t . k_i) u_i)
    solve the unit lower triangular system (I + diag(s) tril(K K^T, -1)) U = diag(s) (V - K M_0)
    (Yang et al., 2024): one C x C triangular solve instead of C sequential steps. Chunks of
    WRITE_CHUNK tokens run in turn (exact: the rule is sequential), so the cost grows as N C d,
    not N^2 d as one solve over the whole segment would.
    """
    weight, bias = write_gate
    with torch.autocast(keys.device.type, enabled=False):
        keys, values = keys.float(), values.float()
        unit_keys = F.normalize(keys, dim=-1)  # (B, Hkv, N, dk)
        # write strength s_t = sigmoid(k_t . w + b) per key/value head: (B, Hkv, N, 1)
        strength = torch.sigmoid(keys @ weight.float()[None, :, :, None] + bias.float()[None, :, None, None])
        chunks = zip(*(t.split(WRITE_CHUNK, dim=2) for t in (unit_keys, values, strength)))
        for k, v, s in chunks:
            rhs = s * (v - k @ M)
            # only the strictly lower triangle is read (unitriangular): the diagonal counts as 1
            system = s * (k @ k.transpose(-1, -2))
            updates = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
            M = M + k.transpose(-1, -2) @ updates
        return M


_EAGER = {"_retrieve": _retrieve, "_write": _write, "_retrieve_unit": _retrieve_unit, "_write_unit": _write_unit}


def compile_memory_path(enable: bool = True, **compile_kwargs) -> None:
    """Opt-in: run the memory read (eq 7) and write (eqs 8-9, and the deltanet variant's) through `torch.compile`.

    Inductor fuses sigma, the normalising division and the float32 casts around the matmuls. The
    default path stays eager because compiling costs seconds to minutes per new shape and needs a
    C++ compiler on CPU (or Triton on GPU). Process-wide; `enable=False` restores the eager path.
    Shapes vary between pieces (a segment's last piece, decoding), hence `dynamic=True` by default.
    """
    compile_kwargs.setdefault("dynamic", True)
    for name, fn in _EAGER.items():
        globals()[name] = torch.compile(fn, **compile_kwargs) if enable else fn

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

from infini_attention.ops.infini import sparse_cache as sparse
from infini_attention.ops.infini.rules import EPS, RULES, Rule, rule_from_options
from infini_attention.ops.rope import apply_rope
from infini_attention.ops.segments import map_segment_pieces
from infini_attention.state import InfiniState, KVState


def empty_state(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    memory: bool,
    sparse_cache: int = 0,
    memory_inputs: bool = False,
    local_tail: int = 0,
    local_sink: int = 0,
) -> InfiniState | KVState:
    """A fresh state for inputs shaped like k and v: no pending tokens and, if `memory`, M = 0 and z = 0
    (and an empty sparse cache if `sparse_cache` > 0: the variant of sparse_cache.py; empty pending
    memory keys and values if `memory_inputs`: the memory path has inputs of its own; an empty tail
    if `local_tail` > 0 and an empty sink if `local_sink` > 0: what the local attention sees before a segment)."""
    batch, kv_heads, _, dk = k.shape
    dv = v.shape[-1]
    window_k, window_v = k.new_zeros(batch, kv_heads, 0, dk), v.new_zeros(batch, kv_heads, 0, dv)
    if not memory:
        return KVState(window_k, window_v)
    M = torch.zeros(batch, kv_heads, dk, dv, dtype=torch.float32, device=k.device)
    z = torch.zeros(batch, kv_heads, dk, dtype=torch.float32, device=k.device)
    parts = {}
    if sparse_cache:
        parts.update(cache_k=window_k.clone(), cache_v=window_v.clone())
    if memory_inputs:
        parts.update(mem_k=window_k.clone(), mem_v=window_v.clone())
    if local_tail:
        parts.update(tail_k=window_k.clone(), tail_v=window_v.clone())
    if local_sink:
        parts.update(sink_k=window_k.clone(), sink_v=window_v.clone())
    return InfiniState(M, z, window_k, window_v, **parts)


def infini_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor | None,
    *,
    segment_len: int,
    rule: str | Rule = "linear",
    rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    state: InfiniState | KVState | None = None,
    eps: float = EPS,
    write_gate: tuple[torch.Tensor, torch.Tensor] | None = None,
    feature_scale: torch.Tensor | None = None,
    feature_map=None,
    sparse_cache: int = 0,
    sparse_block: int = sparse.BLOCK,
    memory_inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    local_tail: int = 0,
    local_sink: int = 0,
) -> tuple[torch.Tensor, InfiniState | KVState]:
    """Infini-attention over q (B, H, L, dk), k (B, Hkv, L, dk), v (B, Hkv, L, dv); any L >= 1.

    beta: (H,) gate logits, or None for segment-local attention without memory (the `local` kind).
    rope: (cos, sin) tables of shape (>= segment_len, dk) for positions inside a segment, or None.
    state: what a previous call returned, or None to start a new stream on a segment boundary.
    rule: a memory rule (rules.py) by name or as a Rule: "linear" (eq 8), "delta" (eq 9) or
    "deltanet" (a variant, not the paper's: unit-norm keys and queries, a per-token write strength
    sigmoid(k . w + b) from write_gate = (w (Hkv, dk), b (Hkv,)), the exact token-by-token delta rule
    inside a segment and no normaliser z; deltanet.py and README.md).
    feature_map: the memory's feature map (features.py; default: the rule's, the paper's σ for eqs 8-9);
    feature_scale: (Hkv,) shorthand for the `sharpness` variant's map σ(scale * x).
    sparse_cache: C > 0 keeps up to C past tokens per key/value head exactly, the most novel blocks
    (sparse_cache.py), and the local attention sees them (a variant, not the paper's: sparse_cache.py); 0: the paper.
    sparse_block: tokens per block of its selection (sparse_cache and segment_len must be multiples of it).
    memory_inputs: (q, k, v) shaped like q, k, v that the memory reads with and writes (a variant, not the
    paper's: the memory path's own projections, modules/memory_lora.py), while the local attention uses
    q, k, v; None: the memory reads q and writes k, v (the paper).
    local_tail: T > 0 lets the local attention of every segment also see the previous segment's last T tokens
    (their keys and values, at RoPE positions -T..-1), which the state carries (a variant, not the paper's:
    a token that opens a segment still sees the words just before it); 0: the paper.
    local_sink: S > 0 lets the local attention of every later segment also see the stream's first S tokens
    (at RoPE positions -(S+T)..-(T+1)): the attention sink of a pretrained model (StreamingLLM, Xiao et al.,
    2023), which a window that does not start a segment lacks (a variant, not the paper's); 0: the paper.
    S + T < segment_len.
    Returns the output (B, H, L, dv) in q's dtype and the new state (M and z in float32).
    """
    memory = None if beta is None else rule_from_options(rule, eps, write_gate, feature_scale, feature_map)
    if sparse_cache < 0 or (sparse_cache and beta is None):
        raise ValueError(f"sparse_cache must be >= 0 and needs a memory (beta), got {sparse_cache}")
    if sparse_cache:
        sparse.check_sizes(sparse_cache, segment_len, sparse_block)
    if memory_inputs is not None:
        _check_memory_inputs(memory_inputs, q, k, v, beta, sparse_cache)
    look_back = (local_sink, local_tail)
    check_look_back(*look_back, segment_len)
    if (local_tail or local_sink) and beta is None:
        raise ValueError("local_tail and local_sink need a memory (beta): the state that carries them is the memory's")
    if state is None:
        memory_inputs_on = memory_inputs is not None
        state = empty_state(
            q, k, v, beta is not None, sparse_cache, memory_inputs_on, local_tail=local_tail, local_sink=local_sink
        )
    if beta is not None and (state.cache_k is not None) != bool(sparse_cache):
        held = "holds a" if state.cache_k is not None else "has no"
        raise ValueError(f"the state {held} sparse cache, but sparse_cache={sparse_cache}")
    if beta is not None and (state.mem_k is not None) != (memory_inputs is not None):
        held = "holds" if state.mem_k is not None else "has no"
        given = "given" if memory_inputs is not None else "None"
        raise ValueError(f"the state {held} pending memory keys (mem_k), but memory_inputs is {given}")
    if beta is not None:
        _check_look_back(state, *look_back)

    def attend_piece(q, k, v, state, mem=None):
        sparse_options = (sparse_cache, sparse_block)
        return _attend_piece(q, k, v, beta, state, segment_len, rope, memory, sparse_options, mem, look_back)

    return map_segment_pieces(q, k, v, state, segment_len, attend_piece, extra=memory_inputs or ())


def check_look_back(local_sink: int, local_tail: int, segment_len: int) -> None:
    """Sink and tail are whole numbers of tokens, together shorter than a segment (their RoPE positions
    -(S+T)..-1 use the segment's tables at 1..S+T)."""
    for name, tokens in (("local_sink", local_sink), ("local_tail", local_tail)):
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"{name} must be a number of tokens >= 0, got {tokens!r}")
    if local_sink + local_tail >= segment_len:
        raise ValueError(
            f"local_sink + local_tail must be less than segment_len = {segment_len}, got {local_sink} + {local_tail}"
        )


def _check_look_back(state: InfiniState, local_sink: int, local_tail: int) -> None:
    for name, tokens, held in (("tail", local_tail, state.tail_k), ("sink", local_sink, state.sink_k)):
        if (held is not None) != bool(tokens):
            holds = "holds a" if held is not None else "has no"
            raise ValueError(f"the state {holds} {name} ({name}_k), but local_{name}={tokens}")
        if tokens and held.shape[2] > tokens:
            raise ValueError(f"the state's {name} holds {held.shape[2]} tokens, more than local_{name}={tokens}")


def _check_memory_inputs(memory_inputs, q, k, v, beta, sparse_cache):
    if beta is None:
        raise ValueError("memory_inputs need a memory (beta)")
    if sparse_cache:
        raise ValueError("memory_inputs and sparse_cache do not combine (the cache keeps the local keys)")
    if len(memory_inputs) != 3:
        raise ValueError(f"memory_inputs must be (q, k, v), got {len(memory_inputs)} tensors")
    for name, mine, local in zip("qkv", memory_inputs, (q, k, v)):
        if mine.shape != local.shape:
            raise ValueError(f"memory_inputs' {name} has shape {tuple(mine.shape)}, {name} has {tuple(local.shape)}")


def _attend_piece(
    q, k, v, beta, state, segment_len, rope, memory: Rule | None, sparse_cache=(0, 1), mem=None, look_back=(0, 0)
):
    """Tokens p..p+m-1 of one segment, where the state holds the segment's first p tokens.
    mem: the memory's own (q, k, v) of these tokens, or None (the memory reads q and writes k, v).
    look_back: (local_sink, local_tail): the stream's first tokens and the previous segment's last ones that the
    local attention also sees (state.sink_k/v, state.tail_k/v), when > 0."""
    p, m = state.k.shape[2], q.shape[2]
    keys = torch.cat([state.k, k], dim=2) if p else k  # (B, Hkv, p+m, dk), un-rotated
    values = torch.cat([state.v, v], dim=2) if p else v
    if mem is None:
        mem_q, mem_keys, mem_values = q, keys, values
    else:
        mem_q = mem[0]
        mem_keys = torch.cat([state.mem_k, mem[1]], dim=2) if p else mem[1]
        mem_values = torch.cat([state.mem_v, mem[2]], dim=2) if p else mem[2]
    cache_size, block = sparse_cache
    cached = (state.cache_k, state.cache_v) if cache_size else None
    local_sink, local_tail = look_back
    a_dot = _local_attention(q, keys, values, rope, cached, _before_segment(state, local_sink, local_tail))

    if memory is None:
        out = a_dot
    else:
        gate = torch.sigmoid(beta.float())[None, :, None, None]  # eq 10, (1, H, 1, 1)
        if memory.reads_own_segment:  # a variant (causal.py): the read also sees this segment so far
            a_mem = memory.read_segment(mem_q, mem_keys, mem_values, state.M, state.z)
        else:
            a_mem = memory.read(mem_q, state.M, state.z)  # eq 7, from M_{s-1}: before this segment's write
            # An empty memory (nothing written yet: the first segment) has nothing to say: its gate
            # share goes to the local attention instead of scaling the output down.
            group = q.shape[1] // state.z.shape[1]
            has_memory = memory.written(state.M, state.z).repeat_interleave(group, dim=1)  # (B, H)
            gate = gate * has_memory[:, :, None, None]
        # lerp = a_dot + gate * (a_mem - a_dot) in one pass instead of three, in the compute dtype
        out = torch.lerp(a_dot, a_mem.to(a_dot.dtype), gate.to(a_dot.dtype))

    if p + m < segment_len:  # the segment is unfinished: keep its keys and values for later
        if memory is None:
            return out, KVState(keys, values)
        pending = {} if mem is None else {"mem_k": mem_keys, "mem_v": mem_values}
        return out, dataclasses.replace(state, k=keys, v=values, **pending)
    # new empty tensors, not keys[:, :, :0]: a view would keep the whole call's projections alive
    # in the state until the next call
    empty_k = keys.new_empty(*keys.shape[:2], 0, keys.shape[3])
    empty_v = values.new_empty(*values.shape[:2], 0, values.shape[3])
    if memory is None:
        return out, KVState(empty_k, empty_v)
    if local_sink and state.sink_k.shape[2] < local_sink:  # the stream's first segment: its first tokens stay
        state = dataclasses.replace(
            state, sink_k=keys[:, :, :local_sink].clone(), sink_v=values[:, :, :local_sink].clone()
        )
    if local_tail:  # the finished segment's last tokens: the next segment's look back (copies, not views)
        state = dataclasses.replace(
            state, tail_k=keys[:, :, -local_tail:].clone(), tail_v=values[:, :, -local_tail:].clone()
        )
    if cache_size:  # the variant of sparse_cache.py: the most novel blocks stay cached, the rest is written
        cache_k, cache_v, keys, values = sparse.select(cache_size, state.cache_k, state.cache_v, keys, values, block)
        state = dataclasses.replace(state, cache_k=cache_k, cache_v=cache_v)
        mem_keys, mem_values = keys, values  # (no memory_inputs with a cache: checked above)
        if not keys.shape[2]:  # the cache took every token (it is still filling up): nothing to write
            return out, dataclasses.replace(state, k=empty_k, v=empty_v)
    M, z = memory.write(state.M, state.z, mem_keys, mem_values)  # eqs 8-9, or the rule's own
    emptied = {} if mem is None else {"mem_k": empty_k, "mem_v": empty_v}
    return out, dataclasses.replace(state, M=M, z=z, k=empty_k, v=empty_v, **emptied)


def _before_segment(state: InfiniState, local_sink: int, local_tail: int):
    """(keys, values) that the local attention sees before the segment's own tokens: the sink, then the tail;
    None when neither is on."""
    parts = []
    if local_sink:
        parts.append((state.sink_k, state.sink_v))
    if local_tail:
        parts.append((state.tail_k, state.tail_v))
    if not parts:
        return None
    return torch.cat([k for k, _ in parts], dim=2), torch.cat([v for _, v in parts], dim=2)


def _local_attention(q, keys, values, rope, cached=None, before=None):
    """Causal softmax attention of queries at positions p..p+m-1 over keys at 0..p+m-1 of a segment.

    cached: (keys (B, Hkv, c, dk) un-rotated, values) of the sparse cache (sparse_cache.py), or None:
    every query sees them, at RoPE position 0.
    before: (keys (B, Hkv, t, dk) un-rotated, values) of tokens that come just before the segment (the sink and
    the tail), or None: every query sees them, at RoPE positions -t..-1 (cos is even and sin odd, so the tables
    at 1..t serve)."""
    m, n = q.shape[2], keys.shape[2]
    p = n - m
    if rope is not None:
        cos, sin = rope
        q = apply_rope(q, cos[p:n], sin[p:n])
        keys = apply_rope(keys, cos[:n], sin[:n])
    if before is not None and before[0].shape[2]:
        t = before[0].shape[2]
        before_k = before[0] if rope is None else apply_rope(before[0], cos[1 : t + 1].flip(0), -sin[1 : t + 1].flip(0))
        keys = torch.cat([before_k.to(keys.dtype), keys], dim=2)
        values = torch.cat([before[1].to(values.dtype), values], dim=2)
    if cached is not None and cached[0].shape[2]:
        cache_k = apply_rope(cached[0], cos[:1], sin[:1]) if rope is not None else cached[0]
        keys = torch.cat([cache_k.to(keys.dtype), keys], dim=2)
        values = torch.cat([cached[1].to(values.dtype), values], dim=2)
    n, p = keys.shape[2], keys.shape[2] - m  # the cache's, sink's and tail's tokens come before every query
    gqa = q.shape[1] != keys.shape[1]
    if m == 1:  # one query sees every key: no mask
        return F.scaled_dot_product_attention(q, keys, values, enable_gqa=gqa)
    if p == 0:
        return F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=gqa)
    mask = torch.ones(m, n, dtype=torch.bool, device=q.device).tril(diagonal=p)  # query i sees keys <= p+i
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=gqa)


_EAGER: dict = {}  # (rule class, method name) -> the eager method, while the compiled path is on


def compile_memory_path(enable: bool = True, **compile_kwargs) -> None:
    """Opt-in: run every rule's memory read (eq 7) and write (eqs 8-9, the deltanet variant's) through `torch.compile`.

    Inductor fuses sigma, the normalising division and the float32 casts around the matmuls. The
    default path stays eager because compiling costs seconds to minutes per new shape and needs a
    C++ compiler on CPU (or Triton on GPU). Process-wide; `enable=False` restores the eager path.
    Shapes vary between pieces (a segment's last piece, decoding), hence `dynamic=True` by default.
    """
    compile_kwargs.setdefault("dynamic", True)
    for cls in RULES.values():
        for name in ("read", "write"):
            eager = _EAGER.setdefault((cls, name), cls.__dict__.get(name))
            if eager is None:  # inherited: compiled (or restored) with the class that defines it
                continue
            setattr(cls, name, torch.compile(eager, **compile_kwargs) if enable else eager)
    if not enable:
        _EAGER.clear()

"""Attention layers: projections + an op + state in, state out.

- `InfiniAttention`: segment-local attention with RoPE plus the compressive memory (the paper).
- `LocalAttention`: the same without memory (the no-memory ablation); no gate parameter.
- `FullAttention`: ordinary causal attention over everything read so far (a growing KV cache).

All share the Hugging Face parameter names `q_proj`, `k_proj`, `v_proj`, `o_proj`, so that
pretrained Llama-family weights load by name, and all support grouped-query attention. A layer
builds its own projections and RoPE tables, or takes them in (`projections=`, `rope=`): that is how
`hf/` wraps a pretrained model's own `q/k/v/o_proj` and rotary embedding in this same layer.
"""

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from infini_attention.modules import FEATURE_MAP_MODULES, MemoryLoRA, TokenShift, feature_map_module, tag
from infini_attention.ops.infini import RULES, empty_state, infini_attention, make_rule
from infini_attention.ops.infini.fast import check_look_back
from infini_attention.ops.infini.sparse_cache import BLOCK as SPARSE_BLOCK
from infini_attention.ops.infini.sparse_cache import check_sizes as sparse_sizes
from infini_attention.ops.rope import apply_rope, rope_cos_sin
from infini_attention.state import InfiniState, KVState


class _Attention(nn.Module):
    """Projections, shape checks and RoPE shared by every attention kind."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        num_key_value_heads: int | None = None,
        head_dim: int | None = None,
        segment_len: int = 2048,
        rope_theta: float = 10000.0,
        bias: bool = False,
        projections: dict[str, nn.Linear] | None = None,
        rope: Callable[[torch.device], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        """projections: existing q_proj, k_proj, v_proj, o_proj modules to use (e.g. a pretrained model's),
        instead of new ones; rope: device -> (cos, sin) tables for in-segment positions 0..segment_len-1,
        instead of this layer's own (rope_theta)."""
        super().__init__()
        num_key_value_heads = num_key_value_heads or num_heads
        head_dim = head_dim or hidden_size // num_heads
        if segment_len < 1:
            raise ValueError(f"segment_len must be >= 1, got {segment_len}")
        if num_heads % num_key_value_heads != 0:
            raise ValueError(
                f"num_heads ({num_heads}) must be a multiple of num_key_value_heads ({num_key_value_heads})"
            )
        if head_dim % 2 != 0:
            raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, head_dim
        self.num_key_value_heads, self.segment_len, self.rope_theta = num_key_value_heads, segment_len, rope_theta
        shapes = {  # name -> (out_features, in_features)
            "q_proj": (num_heads * head_dim, hidden_size),
            "k_proj": (num_key_value_heads * head_dim, hidden_size),
            "v_proj": (num_key_value_heads * head_dim, hidden_size),
            "o_proj": (hidden_size, num_heads * head_dim),
        }
        if projections is None:
            projections = {name: nn.Linear(i, o, bias=bias and name != "o_proj") for name, (o, i) in shapes.items()}
        for name, shape in shapes.items():
            if name not in projections or tuple(projections[name].weight.shape) != shape:
                got = tuple(projections[name].weight.shape) if name in projections else "missing"
                raise ValueError(f"{name} must be a Linear with weight of shape {shape}, got {got}")
        self.q_proj, self.k_proj = projections["q_proj"], projections["k_proj"]
        self.v_proj, self.o_proj = projections["v_proj"], projections["o_proj"]
        self.rope_provider = rope  # a plain attribute: a provider's modules belong to whoever made it

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.dim() != 3:
            raise ValueError(f"expected x of shape (batch, length, hidden), got rank {x.dim()} shape {tuple(x.shape)}")
        batch, length, hidden = x.shape
        if hidden != self.hidden_size:
            raise ValueError(f"expected hidden size {self.hidden_size}, got {hidden}")
        if length < 1:
            raise ValueError("empty sequence: x must hold at least one token")
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, d)
        k = (
            self.k_proj(x).view(batch, length, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        )  # (B, Hkv, L, d)
        v = self.v_proj(x).view(batch, length, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        batch, _, length, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))  # (B, L, hidden)

    def _check_window(self, state: KVState | InfiniState, batch: int, max_len: int | None) -> None:
        expected = (batch, self.num_key_value_heads, self.head_dim)
        for name in ("k", "v"):
            t = getattr(state, name)
            got = (t.shape[0], t.shape[1], t.shape[3]) if t.dim() == 4 else tuple(t.shape)
            if got != expected:
                raise ValueError(
                    f"state.{name} has shape {tuple(t.shape)}, this layer expects (batch={batch}, "
                    f"kv_heads={self.num_key_value_heads}, tokens, head_dim={self.head_dim}): "
                    "was the state made by a model with other shapes or another batch size?"
                )
        if max_len is not None and state.k.shape[2] > max_len:
            raise ValueError(f"state holds {state.k.shape[2]} pending tokens, more than segment_len - 1 = {max_len}")

    def _segment_rope(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin for positions 0..segment_len-1: the local path restarts its positions every segment."""
        if self.rope_provider is not None:
            return self.rope_provider(device)
        # Cached: rebuilding the float64 tables on every call showed in profiles of decoding (cos and sin
        # alone ~4% of a token, tiny preset). A plain dict, not a buffer: module.to(dtype) must not round them.
        key = (str(device), self.segment_len, self.head_dim, self.rope_theta)
        cache = self.__dict__.setdefault("_rope_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = rope_cos_sin(torch.arange(self.segment_len, device=device), self.head_dim, self.rope_theta)
        return cache[key]


def check_memory_options(
    rule: str,
    key_shift: bool | int = 0,
    query_shift: int = 0,
    sharpness: bool = False,
    feature_map: str | None = None,
    sparse_cache: int = 0,
    segment_len: int | None = None,
    local_tail: int = 0,
    local_sink: int = 0,
) -> str:
    """Check an Infini layer's memory options (the one place: the layer, ModelConfig and the Hugging Face
    conversion settings call it); returns the feature map's name (sharpness=True is feature_map="sharpness").
    segment_len: needed to check a sparse cache's size (both must be whole blocks of its selection) and
    a local sink and tail's (together shorter than a segment)."""
    if rule not in RULES:
        raise ValueError(f"unknown memory rule {rule!r}: expected one of {', '.join(RULES)}")
    if isinstance(sparse_cache, bool) or not isinstance(sparse_cache, int) or sparse_cache < 0:
        raise ValueError(f"sparse_cache must be a number of tokens >= 0, got {sparse_cache!r}")
    if sparse_cache:
        sparse_sizes(sparse_cache, segment_len)
    if local_tail or local_sink:
        check_look_back(local_sink, local_tail, segment_len)
    for name, taps in (("key_shift", key_shift), ("query_shift", query_shift)):
        if not isinstance(taps, bool | int) or taps < 0:
            raise ValueError(f"{name} must be a bool or a number of previous tokens >= 0, got {taps!r}")
    feature_map = feature_map or ("sharpness" if sharpness else "elu1")
    if sharpness and feature_map != "sharpness":
        raise ValueError(f"sharpness=True is feature_map='sharpness', not {feature_map!r}")
    if feature_map not in FEATURE_MAP_MODULES:
        raise ValueError(f"unknown feature map {feature_map!r}: expected one of {', '.join(FEATURE_MAP_MODULES)}")
    if feature_map != "elu1" and rule == "deltanet":
        raise ValueError(f"{feature_map} is a feature map of the linear and delta rules (deltanet keys have norm 1)")
    return feature_map


class InfiniAttention(_Attention):
    """Infini-attention (Munkhdalai et al., 2024): local attention + compressive memory, gated per head.

    forward(x (batch, length, hidden), state=None) -> (y (batch, length, hidden), InfiniState).
    `beta` holds the per-head gate logits of eq 10; it starts at `beta_init` (default 0: gate 0.5,
    where sigmoid's gradient is largest; -100 or +10 as in some public code cannot learn).
    rule: a memory rule of ops/infini/rules.py: "linear" (eq 8), "delta" (eq 9), or "deltanet", a
    variant that is not the paper's (unit-norm keys, a learned per-token write strength in
    `write_weight`/`write_bias`, no normaliser; see ops/infini/README.md).
    feature_map: a feature map of modules/feature_maps.py ("elu1", the paper's σ, by default;
    sharpness=True is the older spelling of feature_map="sharpness").
    key_shift / query_shift: previous-token taps on the memory's keys / queries (modules/token_shift.py).
    sparse_cache: C > 0 keeps up to C past tokens per key/value head exactly, the most novel blocks of 16, for
    the local attention to see (ops/infini/sparse_cache.py; no parameters, part of the state).
    memory_lora: r > 0 gives the memory path low-rank deltas of its own on q, k and v (modules/memory_lora.py;
    the local attention keeps the layer's projections); `add_memory_lora` adds them to a built layer.
    local_tail: T > 0 lets every segment's local attention also see the previous segment's last T tokens
    (ops/infini/fast.py; no parameters, part of the state): a token that opens a segment still sees the
    words before it. local_sink: S > 0 lets it also see the stream's first S tokens, the attention sink of a
    pretrained model (StreamingLLM), which a window that does not start a segment lacks; use with local_tail.
    Every variant is off by default and starts as the paper's layer.
    """

    def __init__(
        self,
        *args,
        rule: str = "linear",
        beta_init: float = 0.0,
        key_shift: bool | int = False,
        query_shift: int = 0,
        sharpness: bool = False,
        feature_map: str | None = None,
        sparse_cache: int = 0,
        memory_lora: int = 0,
        local_tail: int = 0,
        local_sink: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        feature_map = check_memory_options(
            rule,
            key_shift,
            query_shift,
            sharpness,
            feature_map,
            sparse_cache=sparse_cache,
            segment_len=self.segment_len,
            local_tail=local_tail,
            local_sink=local_sink,
        )
        self.rule, self.sparse_cache = rule, sparse_cache
        self.local_tail, self.local_sink = local_tail, local_sink
        # new parameters live where the projections do (a pretrained model may sit on a GPU); gates and
        # memory-path scalars in float32, shift projections in the projections' dtype
        device, dtype = self.q_proj.weight.device, self.q_proj.weight.dtype
        self.beta = nn.Parameter(torch.full((self.num_heads,), float(beta_init), device=device))
        tag(self, "beta", init=("constant", float(beta_init)), lr="gate", decay=False)
        if rule == "deltanet":
            # write strength sigmoid(k_t . w + b) per key/value head; w = 0, b = 0: every token at 0.5
            self.write_weight = nn.Parameter(torch.zeros(self.num_key_value_heads, self.head_dim, device=device))
            self.write_bias = nn.Parameter(torch.zeros(self.num_key_value_heads, device=device))
            tag(self, "write_weight", init="zeros")
            tag(self, "write_bias", init="zeros")
        self.feature_map = feature_map_module(feature_map, self.num_key_value_heads, self.head_dim, device=device)
        self.sharpness = feature_map == "sharpness"
        self.key_shift, self.query_shift = int(key_shift), int(query_shift)
        d, h, hkv = self.head_dim, self.num_heads, self.num_key_value_heads
        if self.key_shift:
            self.shift_proj = TokenShift(self.hidden_size, hkv, d, self.key_shift, device=device, dtype=dtype)
        if self.query_shift:
            self.query_shift_proj = TokenShift(self.hidden_size, h, d, self.query_shift, device=device, dtype=dtype)
        self.memory_lora = None
        if memory_lora:
            self.add_memory_lora(memory_lora)
        self._register_load_state_dict_pre_hook(_rename_old_keys)

    def add_memory_lora(self, rank: int, alpha: float | None = None, shift: int = 0) -> MemoryLoRA:
        """Give the memory path its own low-rank deltas on q, k, v (modules/memory_lora.py), with `shift` taps on
        the tokens before (0: none); B = 0, so the layer computes what it did before. Returns the new module."""
        if self.memory_lora is not None:
            raise ValueError("this layer already has a memory LoRA")
        if self.sparse_cache:
            raise ValueError("memory LoRA and sparse_cache do not combine (the cache keeps the local keys)")
        device, dtype = self.q_proj.weight.device, self.q_proj.weight.dtype
        h, hkv, d = self.num_heads, self.num_key_value_heads, self.head_dim
        self.memory_lora = MemoryLoRA(self.hidden_size, h, hkv, d, rank, alpha, shift, device=device, dtype=dtype)
        return self.memory_lora

    def project(self, x: torch.Tensor, state: InfiniState | None) -> tuple[torch.Tensor, ...]:
        """(q (B, H, L, d), k (B, Hkv, L, d), v, state): the projections the op receives, token shifts
        included, and the state with the shifts' carried terms advanced (a new one if None). Probes
        call it too."""
        q, k, v = self._project(x)
        if state is None:
            memory_inputs = self.memory_lora is not None
            state = empty_state(
                q, k, v, True, self.sparse_cache, memory_inputs, local_tail=self.local_tail, local_sink=self.local_sink
            )
        if self.key_shift:
            k, pending = self.shift_proj.shift(x, k, state.shift)
            state = dataclasses.replace(state, shift=pending)
        if self.query_shift:
            q, pending = self.query_shift_proj.shift(x, q, state.query_shift)
            state = dataclasses.replace(state, query_shift=pending)
        return q, k, v, state

    def forward(self, x: torch.Tensor, state: InfiniState | None = None) -> tuple[torch.Tensor, InfiniState]:
        if state is not None:
            self.check_state(state, x.shape[0])
        q, k, v, state = self.project(x, state)
        memory_inputs, state = self.memory_inputs(x, q, k, v, state)
        out, state = infini_attention(
            q,
            k,
            v,
            self.beta,
            segment_len=self.segment_len,
            rule=self.memory_rule(),
            rope=self._segment_rope(x.device),
            state=state,
            sparse_cache=self.sparse_cache,
            memory_inputs=memory_inputs,
            local_tail=self.local_tail,
            local_sink=self.local_sink,
        )
        return self._merge(out), state

    def memory_inputs(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: InfiniState):
        """(inputs, state): what the memory reads with and writes, from project()'s q, k, v and state: the memory
        LoRA's (q, k, v), or None when the memory uses q, k, v themselves (the paper); the state with the memory
        LoRA's shift terms advanced (when it has shift taps)."""
        lora = self.memory_lora
        if lora is None:
            return None, state
        q_mem, k_mem, v_mem = lora(x, q, k, v)
        if lora.shift:
            q_mem, k_mem, pending_q, pending_k = lora.shifted(x, q_mem, k_mem, state.mem_query_shift, state.mem_shift)
            state = dataclasses.replace(state, mem_shift=pending_k, mem_query_shift=pending_q)
        return (q_mem, k_mem, v_mem), state

    def call_inputs(self, args: tuple, kwargs: dict) -> tuple[torch.Tensor, InfiniState | None]:
        """(x, state) that a call of this layer with these arguments reads (for forward pre-hooks)."""
        x = args[0] if args else kwargs["x"]
        return x, args[1] if len(args) > 1 else kwargs.get("state")

    def memory_rule(self):
        """The op's memory rule with this layer's parameters (ops/infini/rules.py)."""
        if self.rule == "deltanet":
            return make_rule("deltanet", write_gate=(self.write_weight, self.write_bias))
        return make_rule(self.rule, feature=self.feature_map.op_map())

    @property
    def log_sharpness(self) -> nn.Parameter:
        """The sharpness variant's log-scales (they live in `feature_map`; the older name still works)."""
        return self.feature_map.log_sharpness

    def feature_scale(self) -> torch.Tensor | None:
        """The `sharpness` variant's scale inside sigma per key/value head, or None (the paper's sigma)."""
        return self.feature_map.scale()

    def check_state(self, state: InfiniState, batch: int) -> None:
        if not isinstance(state, InfiniState):
            raise TypeError(f"InfiniAttention needs an InfiniState, got {type(state).__name__}")
        memory_taps = self.memory_lora.shift if self.memory_lora is not None else 0
        shifts = (
            ("shift", "key_shift", self.key_shift, self.num_key_value_heads),
            ("query_shift", "query_shift", self.query_shift, self.num_heads),
            ("mem_shift", "memory LoRA shift", memory_taps, self.num_key_value_heads),
            ("mem_query_shift", "memory LoRA shift", memory_taps, self.num_heads),
        )
        for name, flag, taps, heads in shifts:
            carried = getattr(state, name)
            if carried is None:
                continue
            if not taps:
                raise ValueError(f"the state carries {name} terms but this layer has {flag}=0")
            expected = (batch, heads, taps, self.head_dim)
            if tuple(carried.shape) != expected:
                raise ValueError(
                    f"state.{name} has shape {tuple(carried.shape)}, this layer ({flag}={taps}) expects {expected}"
                )
        self._check_window(state, batch, self.segment_len - 1)
        expected_M = (batch, self.num_key_value_heads, self.head_dim, self.head_dim)
        if tuple(state.M.shape) != expected_M or tuple(state.z.shape) != expected_M[:3]:
            raise ValueError(
                f"memory has M {tuple(state.M.shape)} and z {tuple(state.z.shape)}, this layer expects "
                f"M {expected_M} and z {expected_M[:3]}: was the state made by a model with other shapes?"
            )
        if state.M.dtype != torch.float32 or state.z.dtype != torch.float32:
            raise TypeError(f"memory must be float32, got M {state.M.dtype} and z {state.z.dtype}")
        expected = (batch, self.num_key_value_heads, self.head_dim)
        # the kept tokens' shapes (sparse cache, tail, sink); one where none belongs is refused by the op
        for name in ("cache_k", "cache_v", "tail_k", "tail_v", "sink_k", "sink_v"):
            t = getattr(state, name)
            if t is not None and (t.dim() != 4 or (t.shape[0], t.shape[1], t.shape[3]) != expected):
                raise ValueError(
                    f"state.{name} has shape {tuple(t.shape)}, this layer expects "
                    f"({batch}, {self.num_key_value_heads}, tokens, {self.head_dim})"
                )
        if self.sparse_cache and state.cache_k is not None:
            for name in ("cache_k", "cache_v"):
                t = getattr(state, name)
                if t.shape[2] > self.sparse_cache:
                    raise ValueError(
                        f"state.{name} holds {t.shape[2]} tokens, more than sparse_cache={self.sparse_cache}"
                    )
            if state.cache_k.shape[2] % SPARSE_BLOCK:
                raise ValueError(
                    f"state.cache_k holds {state.cache_k.shape[2]} tokens, not whole blocks of {SPARSE_BLOCK}"
                )

    def reset_memory(self, state: InfiniState) -> InfiniState:
        """The same state with an empty memory (for the memory-reset ablation); the sparse cache, part of the
        long-term memory, is emptied too. A local sink and tail stay, like the unfinished segment: all are the
        local attention's window."""
        state = dataclasses.replace(state, M=torch.zeros_like(state.M), z=torch.zeros_like(state.z))
        if state.cache_k is not None:
            empty = {name: getattr(state, name)[:, :, :0].clone() for name in ("cache_k", "cache_v")}
            state = dataclasses.replace(state, **empty)
        return state


def _rename_old_keys(state_dict, prefix, *args):
    """Checkpoints written before the feature maps became modules kept the sharpness scales at
    `<layer>.log_sharpness`: read them into `<layer>.feature_map.log_sharpness`."""
    old = prefix + "log_sharpness"
    if old in state_dict:
        state_dict[prefix + "feature_map.log_sharpness"] = state_dict.pop(old)


class LocalAttention(_Attention):
    """Segment-local causal attention only: Infini-attention with the memory removed."""

    def forward(self, x: torch.Tensor, state: KVState | None = None) -> tuple[torch.Tensor, KVState]:
        q, k, v = self._project(x)
        if state is None:
            state = empty_state(q, k, v, memory=False)
        if not isinstance(state, KVState):
            raise TypeError(f"LocalAttention needs a KVState, got {type(state).__name__}")
        self._check_window(state, x.shape[0], self.segment_len - 1)
        out, state = infini_attention(
            q, k, v, None, segment_len=self.segment_len, rope=self._segment_rope(x.device), state=state
        )
        return self._merge(out), state


class FullAttention(_Attention):
    """Ordinary causal attention over every token read so far; the KV cache grows with the input."""

    def forward(self, x: torch.Tensor, state: KVState | None = None) -> tuple[torch.Tensor, KVState]:
        q, k, v = self._project(x)
        if state is None:
            state = empty_state(q, k, v, memory=False)
        if not isinstance(state, KVState):
            raise TypeError(f"FullAttention needs a KVState, got {type(state).__name__}")
        self._check_window(state, x.shape[0], None)
        keys, values = torch.cat([state.k, k], dim=2), torch.cat([state.v, v], dim=2)
        n, m = keys.shape[2], q.shape[2]
        cos, sin = rope_cos_sin(torch.arange(n, device=x.device), self.head_dim, self.rope_theta)
        q_rot, k_rot = apply_rope(q, cos[n - m :], sin[n - m :]), apply_rope(keys, cos, sin)
        mask = None if m == 1 else torch.ones(m, n, dtype=torch.bool, device=x.device).tril(diagonal=n - m)
        out = F.scaled_dot_product_attention(
            q_rot, k_rot, values, attn_mask=mask, enable_gqa=self.num_heads != self.num_key_value_heads
        )
        return self._merge(out), KVState(keys, values)

"""Memory footprint of each attention kind: the paper's Table 1 formulas, and the measured state size.

`memory_footprint` gives the number of floats a model keeps per sequence to carry context from one
segment to the next (Table 1 of Munkhdalai et al., 2024, with N the segment length, S segments,
l layers, H heads):

    infini      d_k * (d_v + 1) * H * l       M (d_k x d_v) and z (d_k) per head and layer
                + (d_k + d_v) * H * C * l     with the sparse-cache variant of C tokens (not the paper's), or
                                              the local tail and sink of T + S tokens (C = T + S; not the paper's)
    xl          (d_k + d_v) * H * N * l       keys and values of the previous segment, every layer
    memorizing  (d_k + d_v) * H * N * S       keys and values of S past segments, at one layer
    local       (d_k + d_v) * H * (N - 1) * l nothing crosses a segment boundary: its window only
    full        (d_k + d_v) * H * T * l       the whole KV cache after T tokens

H counts key/value heads (grouped-query attention stores one memory per kv head).

How the paper's figures for its LM (12 layers, 8 heads, d_k = d_v = 128, N = 2048) come out, in
decimal millions of floats:
- Infini-Transformer: 128 * 129 * 8 * 12 = 1,585,152 -> "1.6M".
- Transformer-XL: 256 * 8 * 2048 * 12 = 50,331,648 -> "50M".
- Memorizing Transformers, "65K kNN memory": the formula alone gives 256 * 8 * 65,536 = 134M, not
  183M. 183M is what one gets by adding the Transformer-XL cache that Wu et al.'s model also keeps
  at every layer, with 65K read as 65,000 tokens: 50,331,648 + 256 * 8 * 65,000 = 183,451,648
  -> "183M" (with 65,536 tokens the sum is 184.5M). `xl_cache=True` adds that cache; this
  library's `memorizing` kind uses segment-local attention in its other layers, so its own
  footprint is the kNN memory alone.
- "114x less" is 183 / 1.6 from the rounded figures (the unrounded ratio is 115.7).

None of the Table 1 figures counts the keys and values of the segment being read, which every
segmented kind keeps while it reads it (at most N - 1 tokens per layer in this library's state,
since a finished segment is folded away at once); `window=True` adds them, giving the largest size
the state reaches mid-segment. `measured_footprint` runs a model and counts its real state, so the
two can be compared: at a segment boundary they agree exactly (see tests/eval/test_footprint.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import NamedTuple

import torch

KINDS = ("infini", "xl", "memorizing", "local", "full")


def memory_footprint(
    config_or_fields,
    kind: str | None = None,
    *,
    length: int | None = None,
    memory_tokens: int | None = None,
    window: bool = False,
    xl_cache: bool = False,
) -> int:
    """Floats of state per sequence for `kind` (default: the config's `attention`), by the formulas above.

    config_or_fields: a ModelConfig, or a mapping with num_layers, num_heads, head_dim, segment_len
        and optionally num_key_value_heads (default num_heads), v_head_dim (default head_dim),
        knn_max_memories and attention.
    length: tokens read so far; needed by `full`, and bounds the `memorizing` memory
        (N * floor(length / N) tokens, at most knn_max_memories).
    memory_tokens: size N * S of the `memorizing` kNN memory in tokens (overrides length and the cap).
    window: add the keys and values of the unfinished segment (N - 1 tokens per layer at most).
    xl_cache: `memorizing` only: add a Transformer-XL cache at every layer, as Wu et al.'s model
        keeps and as the paper's 183M counts.
    """
    get = _getter(config_or_fields)
    kind = kind if kind is not None else get("attention", None)
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}: choose one of {list(KINDS)}")
    layers, n_seg, d_k = get("num_layers"), get("segment_len"), get("head_dim")
    heads = get("num_key_value_heads", None) or get("num_heads")
    d_v = get("v_head_dim", None) or d_k
    for name, value in (("num_layers", layers), ("segment_len", n_seg), ("head_dim", d_k), ("heads", heads)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if length is not None and length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if xl_cache and kind != "memorizing":
        raise ValueError("xl_cache applies to the 'memorizing' kind only")
    per_token = (d_k + d_v) * heads  # one token's key and value, one layer
    window_floats = per_token * (n_seg - 1) * layers

    if kind == "infini":
        # the sparse-cache variant (ops/infini/sparse_cache.py) adds the keys and values of its C tokens, the
        # local tail and sink (ops/infini/fast.py) those of their T + S tokens
        cache = sum(get(name, 0) or 0 for name in ("sparse_cache", "local_tail", "local_sink"))
        carried = d_k * (d_v + 1) * heads * layers + per_token * cache * layers
    elif kind == "xl":
        carried = per_token * n_seg * layers
    elif kind == "memorizing":
        if memory_tokens is None:
            cap = get("knn_max_memories", None)
            if cap is None and length is None:
                raise ValueError("memorizing needs memory_tokens, length or a knn_max_memories field")
            read = n_seg * (length // n_seg) if length is not None else cap
            memory_tokens = read if cap is None else min(cap, read)
        if memory_tokens < 0:
            raise ValueError(f"memory_tokens must be >= 0, got {memory_tokens}")
        carried = per_token * memory_tokens + (per_token * n_seg * layers if xl_cache else 0)
    elif kind == "local":
        return window_floats
    else:  # full: one growing cache, no segments
        if length is None:
            raise ValueError("the 'full' kind's cache grows with the input: pass length")
        return per_token * length * layers
    return carried + (window_floats if window else 0)


class StateSize(NamedTuple):
    floats: int  # elements of every state tensor, per sequence
    nbytes: int  # bytes, per sequence (ModelState.nbytes / batch)


def state_size(state) -> StateSize:
    """The size of a ModelState per sequence."""
    batch = state.batch_size
    return StateSize(state.numel() // batch, state.nbytes() // batch)


@torch.no_grad()
def measured_footprint(model, length: int, *, batch_size: int = 1, seed: int = 0) -> StateSize:
    """Stream `length` random tokens through `model` and measure the state it hands back, per sequence."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    ids = torch.randint(0, model.config.vocab_size, (batch_size, length), generator=generator).to(device)
    block = 16 * model.config.segment_len  # blocks only bound the logits' size; the state is the same
    state = None
    for start in range(0, length, block):
        _, state = model(ids[:, start : start + block], state, logits_to_keep=1)
    return state_size(state)


def _getter(config_or_fields):
    if isinstance(config_or_fields, Mapping):
        source = dict(config_or_fields)
    elif is_dataclass(config_or_fields):
        source = asdict(config_or_fields)
    else:
        raise TypeError(f"expected a ModelConfig or a mapping of fields, got {type(config_or_fields).__name__}")

    def get(name, *default):
        if name in source:
            return source[name]
        if default:
            return default[0]
        raise ValueError(f"missing field {name!r}")

    return get

"""The model configuration: one dataclass, a comment per field, and named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass
class ModelConfig:
    vocab_size: int = 256  # 256 = the byte-level tokenizer
    hidden_size: int = 64  # model width
    num_layers: int = 2  # decoder blocks
    num_heads: int = 4  # query heads
    num_key_value_heads: int = 2  # key/value heads (grouped-query attention when < num_heads)
    head_dim: int = 16  # per-head dimension of queries, keys and values
    ffn_size: int = 128  # SwiGLU inner width
    segment_len: int = 64  # N: tokens per segment of local attention / memory update
    attention: str = "infini"  # attention kind, a key of models.registry.ATTENTION_KINDS
    # memory update of the `infini` kind: "linear" (eq 8), "delta" (eq 9) or "deltanet" (a variant, not
    # the paper's: unit-norm keys, learned write strength, no normaliser; ops/infini/README.md)
    rule: str = "linear"
    beta_init: float = 0.0  # initial gate logit of eq 10 (sigmoid(0) = 0.5, where the gate learns fastest)
    # `infini` variants, not in the paper: keys (queries) also see the previous key_shift (query_shift) tokens;
    # key_shift=True is 1
    key_shift: bool | int = False
    query_shift: int = 0
    sharpness: bool = False  # `infini` variant, not in the paper: a learned scale inside sigma per kv head
    # `infini` variant, not in the paper (after LoLA): up to this many past tokens per kv head kept exactly, the
    # most novel blocks of 16, seen by the local attention (ops/infini/sparse_cache.py); 0 = off
    sparse_cache: int = 0
    # `infini` variant, not in the paper: every segment's local attention also sees the previous segment's last
    # local_tail tokens (ops/infini/fast.py); 0 = off
    local_tail: int = 0
    # `infini` variant, not in the paper: ... and the stream's first local_sink tokens, the attention sink; 0 = off
    local_sink: int = 0
    rope_theta: float = 10000.0  # RoPE base, local attention only
    norm_eps: float = 1e-6  # RMSNorm epsilon
    tie_embeddings: bool = False  # share the input embedding with the output projection
    init_std: float = 0.02  # standard deviation of the weight initialisation (see init_weights)
    # `memorizing` only: the one layer (0-based) with a kNN memory, the others being `local`;
    # None = ceil(3 * num_layers / 4) - 1, the 9th of 12 layers as in Wu et al. (2022)
    memory_layer: int | None = None
    knn_top_k: int = 32  # `memorizing`: memories retrieved per query and head (Wu et al.: 32)
    knn_max_memories: int = 65536  # `memorizing`: kNN memory capacity in tokens per sequence; oldest dropped first

    def __post_init__(self):
        from infini_attention.models.registry import ATTENTION_KINDS

        for f in dataclasses.fields(self):  # types first: a string where a number belongs is one clear line
            value, kind = getattr(self, f.name), str(f.type)
            if kind in ("int", "float") and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise TypeError(f"{f.name} must be a number, got {value!r}")
            if kind == "int" and not isinstance(value, int):
                raise TypeError(f"{f.name} must be an integer, got {value!r}")
            if kind == "str" and not isinstance(value, str):
                raise TypeError(f"{f.name} must be a string, got {value!r}")

        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {self.attention!r}: choose one of {sorted(ATTENTION_KINDS)}")
        from infini_attention.layers.attention import check_memory_options

        check_memory_options(
            self.rule,
            self.key_shift,
            self.query_shift,
            self.sharpness,
            sparse_cache=self.sparse_cache,
            segment_len=self.segment_len,
            local_tail=self.local_tail,
            local_sink=self.local_sink,
        )
        for variant in ("key_shift", "query_shift", "sharpness", "sparse_cache", "local_tail", "local_sink"):
            if getattr(self, variant) and self.attention != "infini":
                raise ValueError(f"{variant} is a variant of the 'infini' kind, not of {self.attention!r}")
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_key_value_heads",
            "head_dim",
            "ffn_size",
            "segment_len",
            "knn_top_k",
            "knn_max_memories",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.memory_layer is not None and not 0 <= self.memory_layer < self.num_layers:
            raise ValueError(f"memory_layer must be in [0, num_layers={self.num_layers}), got {self.memory_layer}")
        if self.num_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_key_value_heads ({self.num_key_value_heads})"
            )

    @classmethod
    def from_name(cls, name: str, **overrides) -> ModelConfig:
        """A preset by name (see PRESETS), with fields replaced by `overrides`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **overrides) -> ModelConfig:
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


PRESETS: dict[str, dict] = {
    # For tests and the streaming demo: a few hundred thousand parameters, byte vocabulary.
    "tiny": dict(
        vocab_size=256,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        ffn_size=128,
        segment_len=64,
    ),
    # For passkey and long-document runs on a CPU: ~3M parameters with the byte vocabulary.
    "small": dict(
        vocab_size=256,
        hidden_size=256,
        num_layers=4,
        num_heads=4,
        num_key_value_heads=4,
        head_dim=64,
        ffn_size=768,
        segment_len=128,
    ),
    # The paper's long-context LM (section 4.1): 12 layers, 8 heads of dim 128, FFN 4096, N = 2048.
    "paper-lm": dict(
        vocab_size=32000,
        hidden_size=1024,
        num_layers=12,
        num_heads=8,
        num_key_value_heads=8,
        head_dim=128,
        ffn_size=4096,
        segment_len=2048,
    ),
}

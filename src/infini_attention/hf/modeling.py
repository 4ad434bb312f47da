"""Plug-and-play conversion of pretrained Llama, Qwen2 and Mistral causal LMs to Infini-attention.

`convert(model, segment_len=...)` swaps every attention module for `InfiniHFAttention` in place
(the pretrained projections are kept as they are; one gate `beta` per head is added) and turns the
model into the matching `Infini*ForCausalLM` class below. These classes are ordinary
`PreTrainedModel`s whose config records `infini_attention = {segment_len, rule, beta_init}` under
their own `model_type` (`infini_llama`, ...), registered with `AutoConfig` and
`AutoModelForCausalLM` when this package is imported: `save_pretrained` writes the gates with the
weights, and `load_converted(path)` (or `AutoModelForCausalLM.from_pretrained` after
`import infini_attention.hf`) reads them back.

The forward pass feeds the decoder one segment at a time, carrying an `InfiniCache`, so the mask,
the activations and the cache stay bounded by the segment length whatever the input length.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers import initialization as hf_init
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils.generic import can_return_tuple

from infini_attention.hf.attention import InfiniHFAttention, SegmentRope
from infini_attention.hf.cache import InfiniCache
from infini_attention.hf.settings import (
    _FAMILIES,
    CONFIG_KEY,
    InfiniSettings,
    _check_compatible,
    _Family,
    _head_dim,
    _projection_shapes,
)
from infini_attention.models.transformer import check_input_ids, stream_segments
from infini_attention.modules import module_tags
from infini_attention.state import ModelState


def _install(model, family: _Family, settings: InfiniSettings) -> None:
    """Replace each decoder layer's `self_attn` by InfiniHFAttention, moving its projections over by name."""
    config = model.config
    shapes = _projection_shapes(config)
    expected_bias = {"q_proj": family.qkv_bias(config), "k_proj": family.qkv_bias(config)}
    expected_bias |= {"v_proj": family.qkv_bias(config), "o_proj": family.o_bias(config)}
    rope = SegmentRope(model.model.rotary_emb, settings.segment_len)
    for i, layer in enumerate(model.model.layers):
        old = layer.self_attn
        projections = {}
        for name, (out_features, in_features) in shapes.items():
            linear = getattr(old, name)
            if tuple(linear.weight.shape) != (out_features, in_features):
                raise ValueError(
                    f"layer {i} {name}.weight has shape {tuple(linear.weight.shape)}, "
                    f"expected {(out_features, in_features)} from the config"
                )
            has_bias = linear.bias is not None
            if has_bias != expected_bias[name]:
                raise ValueError(f"layer {i} {name}: bias {'present' if has_bias else 'absent'}, config says otherwise")
            if has_bias and tuple(linear.bias.shape) != (out_features,):
                raise ValueError(
                    f"layer {i} {name}.bias has shape {tuple(linear.bias.shape)}, expected ({out_features},)"
                )
            projections[name] = linear
        layer.self_attn = InfiniHFAttention(
            projections,
            num_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads,
            head_dim=_head_dim(config),
            layer_idx=i,
            segment_len=settings.segment_len,
            rule=settings.rule,
            beta_init=settings.beta_init,
            rope=rope,
            **settings.layer_options(),
        )
    # from_pretrained initialises what a checkpoint lacks module by module, with the _init_weights of the
    # nearest PreTrainedModel: for the gates that is the inner `model`, whose class does not know them.
    model.model._init_weights = functools.partial(_init_weights_and_gates, model.model, settings.beta_init)


def _init_weights_and_gates(inner, beta_init: float, module: nn.Module) -> None:
    type(inner)._init_weights(inner, module)
    if isinstance(module, InfiniHFAttention):  # hf_init skips a parameter that was loaded from the checkpoint
        for owner in module.modules():  # the gates and the variants' parameters, by their tags (modules/tags.py)
            for name, tags in module_tags(owner).items():
                p, init = getattr(owner, name), tags.get("init")
                if init == "zeros":
                    hf_init.zeros_(p)
                elif init is not None:
                    hf_init.constant_(p, beta_init if p is module.beta else init[1])


class _InfiniCausalLM:
    """What the converted classes add to their transformers base class (mixed in first)."""

    _family: str
    _is_stateful = True  # transformers refuses assisted generation: the memory cannot roll back

    def __init__(self, config):
        super().__init__(config)
        settings = InfiniSettings.from_config(config)
        _check_compatible(config, _FAMILIES[self._family], settings)
        _install(self, _FAMILIES[self._family], settings)

    @property
    def infini_settings(self) -> InfiniSettings:
        return InfiniSettings.from_config(self.config)

    def generate(self, *args, **kwargs):
        """`GenerationMixin.generate` with an InfiniCache (bounded by the segment length) instead of a KV cache."""
        if getattr(self.generation_config, "cache_implementation", None) or kwargs.get("cache_implementation"):
            raise ValueError("a converted Infini-attention model uses its own InfiniCache: unset cache_implementation")
        use_cache = kwargs.get("use_cache", self.generation_config.use_cache)
        if kwargs.get("cache") is None and kwargs.get("past_key_values") is None and use_cache is not False:
            kwargs["cache"] = InfiniCache(self.config)
        return super().generate(*args, **kwargs)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: InfiniCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """The base forward, one segment-bounded piece at a time, carrying an InfiniCache.

        `position_ids` are not used: positions are implied by the stream (in-segment, restarting
        at every segment boundary). `attention_mask` may only mark every token as real: padding
        would be written into the memory.
        """
        cache = cache if cache is not None else kwargs.pop("past_key_values", None)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if input_ids is not None:
            check_input_ids(input_ids, self.config.vocab_size)
        if attention_mask is not None and (attention_mask.dim() != 2 or not bool(attention_mask.bool().all())):
            raise NotImplementedError(
                "Infini-attention does not support padding or custom attention masks (padded tokens would be "
                "written into the memory): pass unpadded sequences of equal length"
            )
        if cache is None:
            cache = InfiniCache(self.config)
        elif not isinstance(cache, InfiniCache):
            raise TypeError(f"a converted Infini-attention model needs an InfiniCache, got {type(cache).__name__}")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_hidden_states = kwargs.pop("output_hidden_states", None)
        if output_hidden_states is not None:
            kwargs["output_hidden_states"] = output_hidden_states
        key = "input_ids" if input_ids is not None else "inputs_embeds"
        all_hidden = []

        def run(piece, layer_states, position):  # the cache carries the layers' states
            offset = position % self.infini_settings.segment_len  # in-segment positions (RoPE)
            positions = torch.arange(offset, offset + piece.shape[1], device=piece.device)[None]
            out = self.model(
                **{key: piece}, position_ids=positions.expand(piece.shape[0], -1), cache=cache, use_cache=True, **kwargs
            )
            if output_hidden_states:
                all_hidden.append(out.hidden_states)
            return out.last_hidden_state, layer_states

        # the one segment loop of the library (models/transformer.py); generate() asks for the last
        # logits only: keep a tail of hidden states, not one per token
        tail = logits_to_keep if isinstance(logits_to_keep, int) and logits_to_keep > 0 and labels is None else None
        inputs = input_ids if input_ids is not None else inputs_embeds
        start = ModelState([None] * len(cache.layers), cache.get_seq_length())
        hidden, _ = stream_segments(
            run, lambda h: h, inputs, start, self.infini_settings.segment_len, logits_to_keep=tail
        )
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        hidden_states = None
        if output_hidden_states:
            hidden_states = tuple(torch.cat(layer_parts, dim=1) for layer_parts in zip(*all_hidden))
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=cache if use_cache else None, hidden_states=hidden_states
        )


class InfiniLlamaConfig(LlamaConfig):
    model_type = "infini_llama"


class InfiniQwen2Config(Qwen2Config):
    model_type = "infini_qwen2"


class InfiniMistralConfig(MistralConfig):
    model_type = "infini_mistral"


class InfiniLlamaForCausalLM(_InfiniCausalLM, LlamaForCausalLM):
    config: InfiniLlamaConfig
    config_class = InfiniLlamaConfig
    _family = "llama"


class InfiniQwen2ForCausalLM(_InfiniCausalLM, Qwen2ForCausalLM):
    config: InfiniQwen2Config
    config_class = InfiniQwen2Config
    _family = "qwen2"


class InfiniMistralForCausalLM(_InfiniCausalLM, MistralForCausalLM):
    config: InfiniMistralConfig
    config_class = InfiniMistralConfig
    _family = "mistral"


# original class -> converted class; exact types only: a subclass may change what the weights mean
CONVERSIONS: dict[type, type] = {
    LlamaForCausalLM: InfiniLlamaForCausalLM,
    Qwen2ForCausalLM: InfiniQwen2ForCausalLM,
    MistralForCausalLM: InfiniMistralForCausalLM,
}

for _cls in CONVERSIONS.values():
    AutoConfig.register(_cls.config_class.model_type, _cls.config_class, exist_ok=True)
    AutoModelForCausalLM.register(_cls.config_class, _cls, exist_ok=True)


def convert(model, segment_len: int, rule: str = "delta", beta_init: float = 0.0, **variants):
    """Turn a pretrained LlamaForCausalLM, Qwen2ForCausalLM or MistralForCausalLM into Infini-attention, in place.

    Every attention module is replaced by one that keeps the original q/k/v/o projections and adds
    a gate logit per head (eq 10) set to `beta_init`. variants: feature_map="hedgehog" | "sharpness"
    (default "elu1", the paper's σ), key_shift=S, query_shift=S, sharpness=True (the older spelling of
    feature_map="sharpness"); each is off by default and starts as the paper's layer. Returns the same object, now an
    `Infini*ForCausalLM` whose config holds `infini_attention = {segment_len, rule, beta_init, ...}`.
    Until the model is fine-tuned its memory reads are untrained; `force_local_gate` turns them off.
    """
    if type(model) in CONVERSIONS.values():
        raise ValueError(f"the model is already converted ({type(model).__name__})")
    target = CONVERSIONS.get(type(model))
    if target is None:
        supported = ", ".join(cls.__name__ for cls in CONVERSIONS)
        raise ValueError(f"cannot convert {type(model).__name__}: supported architectures are {supported}")
    settings = InfiniSettings(segment_len=segment_len, rule=rule, beta_init=beta_init, **variants)
    family = _FAMILIES[target._family]
    _check_compatible(model.config, family, settings)
    _install(model, family, settings)
    config = model.config
    config.__class__ = target.config_class  # same fields, the converted model_type; shared by all submodules
    config.__dict__.pop("model_type", None)  # a model_type read from a file would shadow the class's
    setattr(config, CONFIG_KEY, settings.to_dict())
    model.__class__ = target
    return model


def load_converted(path: str | os.PathLike, **kwargs):
    """A converted model saved with `save_pretrained`; kwargs go to `from_pretrained` (dtype, device_map, ...)."""
    config_file = Path(path) / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} not found: expected a folder written by save_pretrained")
    model_type = json.loads(config_file.read_text()).get("model_type")
    classes = {cls.config_class.model_type: cls for cls in CONVERSIONS.values()}
    if model_type not in classes:
        raise ValueError(
            f"{path} holds a {model_type!r} model, not a converted Infini-attention model "
            f"(one of {sorted(classes)}): convert it with infini_attention.hf.convert"
        )
    return classes[model_type].from_pretrained(path, **kwargs)


def gates(model) -> list[nn.Parameter]:
    """The gate logits `beta` of every converted layer (give them their own optimizer group, no weight decay)."""
    return [m.beta for m in model.modules() if isinstance(m, InfiniHFAttention)]


def set_sparse_cache(model, size: int):
    """Switch the sparse-cache variant (ops/infini/sparse_cache.py) on (size > 0 tokens per key/value head)
    or off (0) in every converted layer, and record it in the config. It has no parameters, so a model
    trained without it can be evaluated with it; states made with another size are refused. `model`: a
    converted transformers model or hf/training.py's HFTrainingModel around one. Returns the model."""
    return _set_layer_options(model, sparse_cache=size)


def set_local_tail(model, tokens: int, sink: int = 0):
    """Switch the local-tail variant (ops/infini/fast.py `local_tail`) on (tokens > 0: every segment's local
    attention also sees the previous segment's last `tokens` tokens) or off (0) in every converted layer, with
    `sink` > 0 of the stream's first tokens before them (`local_sink`: the attention sink, without which the
    tail alone made the shipped adapter repeat digits), and record both in the config. No parameters, like
    `set_sparse_cache`: a model trained without them can be evaluated with them. Returns the model."""
    return _set_layer_options(model, local_tail=tokens, local_sink=sink)


def _set_layer_options(model, **values: int):
    """Set variants without parameters on every converted layer and in the configs; `model`: a converted
    transformers model or hf/training.py's HFTrainingModel around one."""
    hf = getattr(model, "hf", model)  # HFTrainingModel keeps the transformers model in .hf
    settings = dataclasses.replace(hf.infini_settings, **values)  # validates the values
    for module in hf.modules():
        if isinstance(module, InfiniHFAttention):
            for name, value in values.items():
                setattr(module, name, value)
    setattr(hf.config, CONFIG_KEY, settings.to_dict())
    if hf is not model:  # the wrapper's view of the config (state identity, evaluations)
        model.config = dataclasses.replace(model.config, **values)
    return model


@contextlib.contextmanager
def force_local_gate(model):
    """Inside this block every gate is sigmoid(-inf) = 0: the output is the local attention only (eq 10).

    With an input no longer than one segment the converted model then computes exactly what the
    original model computed, which is how the conversion is checked. The gates are restored on exit.
    """
    saved = [beta.detach().clone() for beta in gates(model)]
    try:
        with torch.no_grad():
            for beta in gates(model):
                beta.fill_(float("-inf"))
        yield model
    finally:
        with torch.no_grad():
            for beta, value in zip(gates(model), saved):
                beta.copy_(value)

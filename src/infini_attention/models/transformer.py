"""The decoder LM: embeddings, pre-norm blocks (RMSNorm, attention, RMSNorm, SwiGLU), RMSNorm, LM head.

The forward pass walks the input one segment at a time through all layers, carrying each layer's
state, so that peak memory under `torch.no_grad()` does not grow with the input length, and so that
a call may begin or end anywhere inside a segment. This file imports nothing from training, data or
evaluation code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from infini_attention.models.config import ModelConfig
from infini_attention.models.registry import build_attention
from infini_attention.modules import parameter_tags
from infini_attention.state import ModelState


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, ffn_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, ffn_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, ffn_size, bias=False)
        self.down_proj = nn.Linear(ffn_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer_index: int | None = None):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.self_attn = build_attention(config, layer_index)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.ffn_size)

    def forward(self, x: torch.Tensor, state=None):
        y, state = self.self_attn(self.input_layernorm(x), state)
        x = x + y
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, state


class InfiniTransformer(nn.Module):
    """Decoder-only LM whose attention kind is `config.attention`.

    forward(input_ids (batch, length) integer, state=None) -> (logits (batch, length, vocab), ModelState)
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Initialise every parameter.

        - embed_tokens, q/k/v_proj, gate_proj, up_proj, lm_head: normal(0, init_std)
        - o_proj, down_proj (the residual writes): normal(0, init_std / sqrt(2 * num_layers))
        - parameters tagged with an init where they are made (modules/tags.py): that init. These are
          beta (gate logits of Infini-attention and the Memorizing baseline: beta_init, default 0, gate
          0.5) and the variants' parameters (token-shift taps, deltanet write strengths, sharpness
          scales: 0, so that every variant starts as the paper's layer)
        - RMSNorm weights: 1
        """
        std = self.config.init_std
        tags = parameter_tags(self)
        for name, p in self.named_parameters():
            init = tags.get(id(p), {}).get("init")
            if init == "zeros":
                p.zero_()
            elif init is not None:  # ("constant", value)
                p.fill_(init[1])
            elif "norm" in name:
                p.fill_(1.0)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                p.normal_(0.0, std / math.sqrt(2 * self.config.num_layers))
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, std)

    def gate_parameters(self) -> list[nn.Parameter]:
        """The per-head gate logits (beta) of every Infini-attention layer: give them their own optimizer group."""
        tags = parameter_tags(self)
        return [p for p in self.parameters() if tags.get(id(p), {}).get("lr") == "gate"]

    def forward(
        self,
        input_ids: torch.Tensor,
        state: ModelState | None = None,
        *,
        logits_to_keep: int | None = None,
        gradient_checkpointing: bool = False,
        detach_every: int | None = None,
    ) -> tuple[torch.Tensor, ModelState]:
        """Logits for input_ids (batch, length), continuing from `state` (None: a new stream).

        logits_to_keep: compute logits for the last k positions only (a long prefill needs one).
        gradient_checkpointing: recompute each segment in the backward pass (same gradients, memory
            bounded by the number of segments times the hidden size instead of all activations).
        detach_every: cut the gradient through the memory after every k segments (truncated BPTT);
            None back-propagates through all segments.
        """
        check_input_ids(input_ids, self.config.vocab_size)
        batch = input_ids.shape[0]
        logits, state = stream_segments(
            self._run,
            lambda hidden: self.lm_head(self.norm(hidden)),
            input_ids,
            check_model_state(state, self.config),
            self.config.segment_len,
            logits_to_keep=logits_to_keep,
            gradient_checkpointing=gradient_checkpointing,
            detach_every=detach_every,
        )
        state.model = state_identity(self.config)
        if logits is None:  # logits_to_keep=0
            logits = self.lm_head.weight.new_zeros(batch, 0, self.config.vocab_size)
        return logits, state

    def _run(self, ids: torch.Tensor, layer_states: list, position: int) -> tuple[torch.Tensor, list]:
        """One segment-bounded piece of token ids through every block: (hidden (B, piece, hidden), new states)."""
        x = self.embed_tokens(ids)
        new_states = []
        for layer, layer_state in zip(self.layers, layer_states):
            x, layer_state = layer(x, layer_state)
            new_states.append(layer_state)
        return x, new_states

    def reset_memory(self, state: ModelState) -> ModelState:
        """The same state with every long-term memory emptied (the memory-reset ablation).

        Each attention kind with a memory defines `reset_memory(layer_state)`; the others keep theirs.
        """
        return reset_memories(self.layers, state)

    def save_weights(self, folder) -> None:
        """This model's folder: model.safetensors + config.json (models/io.py)."""
        from infini_attention.models.io import save_model

        save_model(self, folder)

    def load_weights(self, folder) -> None:
        """Load the weights that `save_weights` wrote, exactly (every key accounted for)."""
        from infini_attention.models.io import load_weights_into

        load_weights_into(self, folder)


def reset_memories(layers: nn.ModuleList, state: ModelState) -> ModelState:
    """`state` with every long-term memory emptied: each decoder layer's attention that has a memory
    empties its own (`reset_memory(layer_state)`); the others keep theirs. Every model kind uses this."""
    states = [
        layer.self_attn.reset_memory(s) if s is not None and hasattr(layer.self_attn, "reset_memory") else s
        for layer, s in zip(layers, state.layers)
    ]
    return ModelState(states, state.position, state.model)


def check_input_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """Clear errors for token ids that a model's forward cannot take: (batch, length >= 1) integers in [0, vocab)."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"input_ids must be int64 (or int32), got dtype {input_ids.dtype}: pass input_ids.long()")
    if input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must have shape (batch, length), got shape {tuple(input_ids.shape)}"
            + (" (add a batch dimension with input_ids[None])" if input_ids.dim() == 1 else "")
        )
    if input_ids.shape[1] < 1:
        raise ValueError("empty sequence: input_ids must hold at least one token")
    if input_ids.shape[0] < 1:
        raise ValueError("empty batch: input_ids must hold at least one sequence")
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got values in [{low}, {high}]")


IDENTITY_FIELDS = (  # what a state depends on: a state from a model that differs in one of these is refused
    "attention",
    "rule",
    "segment_len",
    "num_layers",
    "num_heads",
    "num_key_value_heads",
    "head_dim",
    "key_shift",
    "query_shift",
    "sharpness",
    "sparse_cache",
    "local_tail",
    "local_sink",
    "memory_layer",
)


# identity fields added after states were first saved: a state that does not record one was made with it off
ADDED_LATER = {"local_tail": 0, "local_sink": 0}


def state_identity(config) -> dict:
    """The fields of a model's config that its states depend on (ModelConfig or the HF adapter's view)."""
    return {name: getattr(config, name, None) for name in IDENTITY_FIELDS}


def check_model_state(state: ModelState | None, config) -> ModelState:
    """The state a forward continues from: a fresh one for None, else checked against the model: its layers,
    the model that made it (when the state records one) and its pending tokens against its position.
    config: the model's ModelConfig (or the HF adapter's view of its config)."""
    num_layers = config.num_layers
    if state is None:
        return ModelState([None] * num_layers, 0)
    if not isinstance(state, ModelState):
        raise TypeError(f"state must be a ModelState, got {type(state).__name__}")
    if len(state.layers) != num_layers:
        raise ValueError(
            f"state has {len(state.layers)} layers, this model has {num_layers}: was it made by another model?"
        )
    if state.model is not None:
        own, recorded = state_identity(config), {**ADDED_LATER, **state.model}
        differ = [f"{k} {recorded.get(k)!r} (this model: {own[k]!r})" for k in own if recorded.get(k) != own[k]]
        if differ:
            raise ValueError(f"the state was made by another kind of model: {', '.join(differ)}")
    if getattr(config, "attention", None) != "full":  # full attention keeps every token
        expected = state.position % config.segment_len
        for s in state.layers:
            pending = getattr(s, "k", None)
            if pending is not None and pending.dim() == 4 and pending.shape[2] != expected:
                raise ValueError(
                    f"the state's position {state.position} implies {expected} pending tokens in the unfinished "
                    f"segment, but a layer holds {pending.shape[2]}: the state is inconsistent"
                )
    return state


def stream_segments(
    run,
    head,
    input_ids: torch.Tensor,
    state: ModelState,
    segment_len: int,
    *,
    logits_to_keep: int | None = None,
    gradient_checkpointing: bool = False,
    detach_every: int | None = None,
) -> tuple[torch.Tensor | None, ModelState]:
    """The segment loop of a forward pass (InfiniTransformer and the Hugging Face adapter share it).

    run(ids_piece, layer_states, position) -> (hidden, layer_states) reads one piece that lies inside
    one segment; head(hidden) -> logits. Pieces end on segment boundaries counted from the stream's
    start (state.position), so a call may begin or end anywhere inside a segment. Returns the logits
    of the last `logits_to_keep` positions (all if None; None if 0) and the new state.
    """
    length = input_ids.shape[1]
    if logits_to_keep is not None and (isinstance(logits_to_keep, bool) or not 0 <= logits_to_keep <= length):
        raise ValueError(
            f"logits_to_keep must be None or in [0, {length}] (the input's length), got {logits_to_keep!r}"
        )
    layer_states, position = list(state.layers), state.position
    keep_from = 0 if logits_to_keep is None else length - logits_to_keep
    logits, start = [], 0
    while start < length:
        end = min(length, start + segment_len - position % segment_len)  # stop at the segment's end
        piece = input_ids[:, start:end]
        if gradient_checkpointing and torch.is_grad_enabled():
            hidden, layer_states = checkpoint(run, piece, layer_states, position, use_reentrant=False)
        else:
            hidden, layer_states = run(piece, layer_states, position)
        if end > keep_from:
            logits.append(head(hidden[:, max(0, keep_from - start) :]))
        position += end - start
        if detach_every and position % segment_len == 0 and (position // segment_len) % detach_every == 0:
            layer_states = ModelState(layer_states, position).detach().layers
        start = end
    return (torch.cat(logits, dim=1) if logits else None), ModelState(layer_states, position)

"""Generation with bounded state: prefill the prompt by segments, then decode one token at a time.

While decoding, each Infini-attention layer keeps the keys and values of the current segment only
(at most segment_len - 1 tokens) plus its memory; when the segment fills, it is folded into the
memory exactly as the forward pass does, because decoding *is* the forward pass, one token long.
"""

from __future__ import annotations

import math

import torch

from infini_attention.state import ModelState


@torch.no_grad()
def prefill(
    model,
    input_ids: torch.Tensor,
    state: ModelState | None = None,
    *,
    progress: bool = False,
    block_len: int | None = None,
    reset_memory: bool = False,
    on_block=None,
) -> tuple[torch.Tensor, ModelState]:
    """Read a prompt (batch, length) of any length; returns the last position's logits (batch, vocab) and the state.

    reset_memory: the memory ablation of the evaluations: every compressive memory is emptied at each
    segment boundary (the prompt is then read one segment per call), so that the local attention alone
    sees anything. on_block(tokens): called after each block with the number of token ids it held.
    """
    block_len = model.config.segment_len if reset_memory else block_len or 16 * model.config.segment_len
    length = input_ids.shape[1]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=length, unit="tok", unit_scale=True, desc="prefill", leave=False)
    logits = None
    for start in range(0, length, block_len):
        block = input_ids[:, start : start + block_len]
        logits, state = model(block, state, logits_to_keep=1)
        state = _reset_at_boundary(model, state, reset_memory)
        if bar is not None:
            bar.update(block.shape[1])
        if on_block is not None:
            on_block(block.numel())
    if bar is not None:
        bar.close()
    if logits is None:
        raise ValueError("empty prompt: input_ids must hold at least one token")
    return logits[:, -1], state


@torch.no_grad()
def decode_one_token(
    model, token: torch.Tensor, state: ModelState, *, reset_memory: bool = False
) -> tuple[torch.Tensor, ModelState]:
    """Feed one token per sequence (batch,) and return the next-token logits (batch, vocab).

    reset_memory: the ablation of `prefill`, continued while decoding."""
    logits, state = model(token[:, None], state)
    return logits[:, -1], _reset_at_boundary(model, state, reset_memory)


def _reset_at_boundary(model, state: ModelState, reset_memory: bool) -> ModelState:
    """The state with every memory emptied when `reset_memory` and a segment has just been written."""
    if reset_memory and state.position % model.config.segment_len == 0:
        return model.reset_memory(state)
    return state


def sample(
    logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Next tokens (batch,) from logits (batch, vocab): greedy when temperature == 0, else nucleus sampling."""
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always survives)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    state: ModelState | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    *,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, ModelState]:
    """Continue `input_ids` (batch, length) by up to `max_new_tokens` tokens.

    Returns (new_tokens (batch, n), state). The state covers the prompt and every generated token
    except the last one, which has not been read yet; pass it back with the next prompt to go on.
    Stops early once every sequence has produced `eos_token_id`.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    logits, state = prefill(model, input_ids, state, progress=progress)
    tokens = []
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for i in range(max_new_tokens):
        token = sample(logits, temperature, top_p, generator)
        if eos_token_id is not None:
            token = token.masked_fill(finished, eos_token_id)
            finished |= token == eos_token_id
        tokens.append(token)
        if i + 1 == max_new_tokens or finished.all():
            break
        logits, state = decode_one_token(model, token, state)
    new_tokens = torch.stack(tokens, dim=1) if tokens else input_ids.new_zeros(input_ids.shape[0], 0)
    return new_tokens, state

"""Stretched memory writes: train on short inputs that the memory sees as much longer ones.

Under the paper's linear rule (eq 8) what a segment adds to the memory, sigma(K)^T V to M and the
sum of sigma(K) to z, does not depend on what the memory already holds. Adding it w times leaves
the memory exactly as if the segment had been read w times in a row. So a 4K-token passkey prompt
whose filler-only segments are written with weight w = 100 presents the memory with the dilution
of a prompt ~100x longer (the needle's share of z falls as in a 400K haystack), while the model
still reads 4K tokens and back-propagates through 4K tokens. A model trained only at its real
lengths never sees that dilution, and its retrieval fades beyond them (runs/EXPERIMENTS.md, E7-E10).

`forward_with_write_weights` runs the model one segment at a time, carrying the state, and after
each whole segment moves every layer's (M, z) from the previous segment's value to
previous + w * (the segment's write). With all weights 1 it is the model's ordinary forward.

Exact "w copies" only for the memory of the first layer: later layers' keys depend on what the
earlier layers read, which the weights change as a longer input would.

The delta rule (eq 9) is allowed too, to first order: its write depends on the memory only through
the normalised read σ(K) M / σ(K) z, which each copy of a segment moves by about the segment's key
mass over z. So once z holds many segments, weight w is close to w copies, and the gap shrinks as z
grows (tests/train/test_stretch.py: the memory's increment is off by ~30% of itself after 4
segments, ~2% after 64). Early segments, where z is small, are the least exact.
"""

from __future__ import annotations

import dataclasses

import torch

from infini_attention.ops.infini import RULES
from infini_attention.state import InfiniState, ModelState


def forward_with_write_weights(
    model, input_ids: torch.Tensor, weights: torch.Tensor, **forward_kwargs
) -> tuple[torch.Tensor, ModelState]:
    """(logits, state) of `model` over input_ids (batch, length), segment i's memory write counted weights[:, i] times.

    weights: (batch, segments) with segments = ceil(length / segment_len), values >= 1 (a weight
    on the last, unfinished segment has no effect: it is never written). forward_kwargs go to
    each segment's model call (gradient_checkpointing, ...). The stream starts empty.
    """
    config = model.config
    rule = getattr(config, "rule", None)
    if rule not in RULES or not (RULES[rule].additive_writes or RULES[rule].first_order_writes):
        raise ValueError(
            f"stretched writes need the linear or delta memory rule (or a variant with their writes), this model has "
            f"rule={rule!r}"
        )
    if getattr(config, "sparse_cache", 0):
        raise ValueError("stretched writes replay a segment's write; with a sparse cache part of it is not written")
    batch, length = input_ids.shape
    segment_len = config.segment_len
    segments = -(-length // segment_len)
    if tuple(weights.shape) != (batch, segments):
        raise ValueError(f"weights must have shape ({batch}, {segments}), got {tuple(weights.shape)}")
    if bool((weights < 1).any()):
        raise ValueError("write weights must be >= 1 (a weight w stands for the segment read w times)")
    weights = weights.float()
    state, logits = None, []
    for i in range(segments):
        piece = input_ids[:, i * segment_len : (i + 1) * segment_len]
        out, new_state = model(piece, state, **forward_kwargs)
        logits.append(out)
        if piece.shape[1] == segment_len:  # a whole segment: its write happened, weight it
            previous = state.layers if state is not None else [None] * len(new_state.layers)
            layers = [_weighted(old, new, weights[:, i]) for old, new in zip(previous, new_state.layers)]
            new_state = ModelState(layers, new_state.position, new_state.model)
        state = new_state
    return torch.cat(logits, dim=1), state


def _weighted(old: InfiniState | None, new, weight: torch.Tensor):
    """new's memory with its last write counted `weight` (batch,) times; other state kinds as they are."""
    if not isinstance(new, InfiniState):
        return new
    w = weight.to(new.M.device)
    old_M = old.M if old is not None else torch.zeros_like(new.M)
    old_z = old.z if old is not None else torch.zeros_like(new.z)
    M = old_M + w[:, None, None, None] * (new.M - old_M)
    z = old_z + w[:, None, None] * (new.z - old_z)
    return dataclasses.replace(new, M=M, z=z)

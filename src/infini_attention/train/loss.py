"""The training loss: summed cross-entropy over the labelled positions, from the logits or, chunked,
from the final hidden states and the output weight without materialising the logits.

    loss, count = cross_entropy(logits, labels)                          # reference: full logits
    loss, count = chunked_cross_entropy(hidden, head.weight, labels, 512) # the same, 512 tokens at a time
    weights = first_value_weights(labels, tokenizer, 4.0)  # a needle key's first token weighted 4x

The reference makes (tokens, vocab) logits, their float32 copy, the log-softmax and its gradient:
for 2048 tokens of a 49152-word vocabulary ~400 MB each. The chunked version keeps only the
labelled rows, and for each chunk of `chunk` of them computes the logits, the loss and at once the
gradients of the hidden states and of the weight (softmax - one-hot, eq. of the cross-entropy's
derivative), then drops the chunk's logits; the backward pass only scales the stored gradients.
Under autocast the logits are multiplied in the autocast dtype and the loss taken in float32, as
the reference does (lm_head under autocast, then `.float()`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # the label of a position without loss


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over labelled positions (labels != -100) and their count (the reference)."""
    count = int((labels != IGNORE).sum())
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    return loss, count


def chunked_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, int]:
    """cross_entropy(hidden @ weight.T, labels), `chunk` labelled tokens at a time.

    hidden: (batch, length, hidden) final (normed) hidden states; weight: (vocab, hidden), the output
    projection (no bias); labels: (batch, length). Returns (summed loss, float32 scalar; count).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    flat = hidden.flatten(0, 1)  # (tokens, hidden)
    targets = labels.flatten().to(flat.device)
    keep = targets != IGNORE
    count = int(keep.sum())
    if count < targets.numel():  # e.g. passkey: the loss is on the answer only
        flat, targets = flat[keep], targets[keep]
    if count == 0:
        return (flat.sum() * 0.0 + weight.sum() * 0.0).float(), 0
    device = flat.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.result_type(flat, weight)
    with torch.autocast(device, enabled=False):
        loss = _ChunkedCrossEntropy.apply(flat, weight, targets, chunk, dtype)
    return loss, count


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of (hidden @ weight.T) with the gradients computed in the forward pass."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int, dtype: torch.dtype):
        # hidden: (tokens, d); weight: (vocab, d); targets: (tokens,) all labelled
        w = weight.to(dtype)  # one cast for all chunks (autocast would cast once too)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_h else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk].to(dtype)  # (c, d)
            t = targets[start : start + chunk]
            logits = (h @ w.T).float()  # (c, vocab): the only vocab-sized tensor, one chunk's
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if not (need_h or need_w):
                continue
            # d loss / d logits = softmax - one-hot, in place of the logits
            grad = logits.sub_(lse[:, None]).exp_()
            grad[torch.arange(t.shape[0], device=t.device), t] -= 1.0
            grad = grad.to(dtype)
            if need_h:
                grad_hidden[start : start + chunk] = grad @ w  # (c, d)
            if need_w:
                grad_weight += (grad.T @ h).float()  # (vocab, d)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype, ctx.hidden_dtype = weight.dtype, hidden.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = (grad_hidden * grad_output).to(ctx.hidden_dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_output).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None


def first_value_weights(labels: torch.Tensor, tokenizer, first: float) -> torch.Tensor | None:
    """(batch, length) weights of the labelled tokens for a weighted mean of their losses: `first` at each
    row's first label that decodes to more than white space, 1 elsewhere; None when first == 1 (a plain mean).

    In a needle task that token is the key's first (" 30999" is " ", "3", ... in SmolLM2's tokenizer). Weighted
    4x it did not fix E47's wrong first digits at 32,000 tokens (E48, runs/EXPERIMENTS.md session 16): those
    came from the prompt ending on a segment boundary."""
    if first == 1.0:
        return None
    weights = torch.ones(labels.shape)
    for row, label in enumerate(labels.tolist()):
        for pos, token in enumerate(label):
            if token != IGNORE and tokenizer.decode([token]).strip():
                weights[row, pos] = first
                break
    return weights

"""Walking an input one segment at a time, for every attention kind whose state holds an unfinished segment."""

from collections.abc import Callable

import torch


def map_segment_pieces(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state,
    segment_len: int,
    attend_piece: Callable,
    extra: tuple[torch.Tensor, ...] = (),
) -> tuple[torch.Tensor, object]:
    """Apply attend_piece(q, k, v, state) -> (out, state) to each piece of the input inside one segment.

    q, k, v: (batch, heads, length, d). The state holds the first p tokens of the unfinished segment
    (`state.k` has p positions), so the first piece is segment_len - p tokens long and every later
    piece starts on a segment boundary. Returns the outputs concatenated along the length and the
    last state. extra: more (batch, heads, length, d) tensors split the same way and passed on as
    attend_piece(q, k, v, state, extra_pieces) (the memory's own inputs, when there are some).
    """
    length, first = q.shape[2], segment_len - state.k.shape[2]  # the first piece ends the unfinished segment
    sizes = [min(first, length)]
    sizes += [segment_len] * ((length - sizes[0]) // segment_len)  # later pieces: whole segments...
    if sum(sizes) < length:
        sizes.append(length - sum(sizes))  # ...and maybe a partial last one
    # split, not one slice per piece: the backward of a slice fills a zero tensor as large as the
    # whole input for every piece (quadratic in the number of segments), split's is one cat
    outputs = []
    extra_pieces = list(zip(*(t.split(sizes, dim=2) for t in extra))) if extra else None
    for i, piece in enumerate(zip(q.split(sizes, dim=2), k.split(sizes, dim=2), v.split(sizes, dim=2))):
        if extra_pieces is None:
            out, state = attend_piece(*piece, state)
        else:
            out, state = attend_piece(*piece, state, extra_pieces[i])
        outputs.append(out)
    return (torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]), state

"""Walking an input one segment at a time, for every attention kind whose state holds an unfinished segment."""

from collections.abc import Callable

import torch


def map_segment_pieces(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state, segment_len: int, attend_piece: Callable
) -> tuple[torch.Tensor, object]:
    """Apply attend_piece(q, k, v, state) -> (out, state) to each piece of the input inside one segment.

    q, k, v: (batch, heads, length, d). The state holds the first p tokens of the unfinished segment
    (`state.k` has p positions), so the first piece is segment_len - p tokens long and every later
    piece starts on a segment boundary. Returns the outputs concatenated along the length and the
    last state.
    """
    outputs, start, length = [], 0, q.shape[2]
    while start < length:
        end = min(length, start + segment_len - state.k.shape[2])  # stop at the segment's end
        piece = slice(start, end)
        out, state = attend_piece(q[:, :, piece], k[:, :, piece], v[:, :, piece], state)
        outputs.append(out)
        start = end
    return (torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]), state

"""The copy task: associative recall of a random string through the memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from infini_attention.data import passkey
from infini_attention.data.tokenizers import get_tokenizer
from infini_attention.train.tasks.common import Batch, LengthOptions, draw_length, stack_padded, step_rng


@dataclass(frozen=True)
class CopyOptions(LengthOptions):
    """What the copy task reads (TrainConfig's comments say what each field means)."""

    copy_len: int


class CopyTask:
    """Associative recall through the memory: a random string early, filler, then the string again.

    Sequence: "The code is S. <filler ...> The code is S." with S a random string of
    `copy_len` digits and letters; the loss is taken on the second S only. Every token of the
    repeat is predictable only by recalling what followed the same context before, which for
    sequences longer than a segment must go through the memory: dense supervision for the
    ordered recall that the passkey answer needs.
    """

    ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

    def __init__(self, cfg, segment_len: int):
        self.cfg, self.segment_len = CopyOptions.from_config(cfg), segment_len
        self.tokenizer = get_tokenizer(cfg.tokenizer)

    def batch(self, step: int, rank: int = 0, micro: int = 0) -> Batch:
        c, tok = self.cfg, self.tokenizer
        rng = step_rng(c.seed, step, rank, micro)
        length = draw_length(rng, c, step)
        filler = tok.encode(passkey.FILLER)
        inputs, labels = [], []
        for _ in range(c.batch_size):
            code = "".join(rng.choice(self.ALPHABET) for _ in range(c.copy_len))
            head = tok.encode(f"The code is {code}.")
            tail = tok.encode(f" The code is {code}.")
            gap = max(0, length - len(head) - len(tail))
            ids = head + [filler[i % len(filler)] for i in range(gap)] + tail
            label = [-100] * len(ids)
            start = len(ids) - len(tail) + len(tok.encode(" The code is"))
            for t in range(start, len(ids) - 1):  # position t - 1 predicts token t
                label[t - 1] = ids[t]
            inputs.append(torch.tensor(ids))
            labels.append(torch.tensor(label))
        return Batch(stack_padded(inputs, 0), stack_padded(labels, -100))

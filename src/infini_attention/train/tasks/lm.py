"""The long-document language-model task: windows of tokenized documents (data/documents.py)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch

from infini_attention.data.documents import load_corpus
from infini_attention.data.tokenizers import get_tokenizer
from infini_attention.eval.perplexity import chunked_nll
from infini_attention.train.tasks.common import Batch, TaskOptions


@dataclass(frozen=True)
class LMOptions(TaskOptions):
    """What the long-document LM task reads (TrainConfig's comments say what each field means)."""

    data: str | None
    data_split: str
    val_docs: float
    bf16: bool


class LMTask:
    """Next-token prediction on windows of `seq_len + 1` tokens cut from single training documents.

    batch(step, rank, micro) is a pure function of (cfg.seed, step, rank, micro). A window never
    crosses a document boundary. Documents are drawn in proportion to their token counts (every
    token about equally likely), the window's start uniformly inside the document. A document
    shorter than a window is used whole and right-padded: input id 0 and label -100 past its end
    (padding, not skipping, so that corpora of short documents still train; with long documents the
    proportional draw makes short ones rare anyway).
    """

    EVAL_WINDOWS = 8  # fixed validation windows read by evaluate()

    def __init__(self, cfg, segment_len: int, progress: bool = True):
        if not cfg.data:
            raise ValueError("task 'lm' needs --data: a text file, a folder, a .jsonl file or hf:<dataset>")
        vocab = cfg.model_config().vocab_size
        self.cfg, self.segment_len = LMOptions.from_config(cfg), segment_len
        cfg = self.cfg
        self.tokenizer = get_tokenizer(cfg.tokenizer)
        if self.tokenizer.vocab_size > vocab:
            raise ValueError(
                f"tokenizer {self.tokenizer.name} has {self.tokenizer.vocab_size} ids but the model's vocab_size "
                f"is {vocab}: add --model vocab_size={self.tokenizer.vocab_size}"
            )
        self.corpus = load_corpus(cfg.data, self.tokenizer, cfg.data_split, progress=progress)
        train, self.val_docs = self.corpus.split(cfg.val_docs)
        lengths = self.corpus.lengths
        self.train_docs = [d for d in train if lengths[d] >= 2]  # one token predicts nothing
        if not self.train_docs:
            raise ValueError(f"{cfg.data}: no training document has 2 tokens or more")
        self.cumulative = np.cumsum([lengths[d] for d in self.train_docs])
        self.val_windows = self._validation_windows()

    def _window(self, d: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and labels (seq_len each) of the window of document d that starts at `start`."""
        seq_len = self.cfg.seq_len
        tokens = torch.from_numpy(self.corpus.doc(d)[start : start + seq_len + 1].astype(np.int64))
        ids = torch.zeros(seq_len, dtype=torch.long)
        labels = torch.full((seq_len,), -100, dtype=torch.long)
        n = len(tokens)
        ids[: min(n, seq_len)] = tokens[:seq_len]
        labels[: n - 1] = tokens[1:]
        return ids, labels

    def batch(self, step: int, rank: int = 0, micro: int = 0) -> Batch:
        c = self.cfg
        rng = random.Random(f"lm-{c.seed}-{step}-{rank}-{micro}")
        rows = []
        for _ in range(c.batch_size):
            pick = int(np.searchsorted(self.cumulative, rng.random() * self.cumulative[-1], side="right"))
            d = self.train_docs[min(pick, len(self.train_docs) - 1)]
            start = rng.randint(0, max(0, int(self.corpus.lengths[d]) - (c.seq_len + 1)))
            rows.append(self._window(d, start))
        return Batch(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]))

    def _validation_windows(self) -> list[tuple[int, int]]:
        """(document, start) of EVAL_WINDOWS windows spread evenly over the validation documents."""
        docs = [d for d in self.val_docs if self.corpus.lengths[d] >= 2]
        if not docs:
            return []
        per_doc = math.ceil(self.EVAL_WINDOWS / len(docs))
        windows = []
        for d in docs:
            last = max(0, int(self.corpus.lengths[d]) - (self.cfg.seq_len + 1))
            starts = sorted({round(last * i / max(1, per_doc - 1)) for i in range(per_doc)})
            windows += [(d, s) for s in starts]
        return windows[: self.EVAL_WINDOWS]

    @torch.no_grad()
    def evaluate(self, model, device, train_cfg=None) -> dict:
        """Validation loss (nats per token) and perplexity on the fixed windows; {} without validation documents."""
        if not self.val_windows:
            return {}
        cfg, total, count = self.cfg, 0.0, 0
        for i in range(0, len(self.val_windows), cfg.batch_size):
            rows = [self._window(d, s) for d, s in self.val_windows[i : i + cfg.batch_size]]
            ids = torch.stack([r[0] for r in rows]).to(device)
            labels = torch.stack([r[1] for r in rows]).to(device)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=cfg.bf16):
                nll, n = chunked_nll(model, ids, labels, chunk_len=4 * self.segment_len)
            total, count = total + nll, count + n
        loss = total / max(count, 1)
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0)), "val_tokens": count}

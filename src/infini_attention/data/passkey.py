"""The passkey retrieval task (Mohtashami & Jaggi 2023; PAPER.md gives the prompt).

An instance is a prompt of an exact number of tokens: the instruction, filler text repeated, the
needle ("The pass key is 71432. Remember it. 71432 is the pass key.") at a chosen depth, and the
question; the answer is the key. Instances are described by spans of repeated token units, so a
1M-token haystack is generated lazily, segment by segment (`PasskeyInstance.chunks`), and never
exists as one string.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from infini_attention.data import haystack as haystacks
from infini_attention.data.formats import PaperPasskey, get_format, random_key
from infini_attention.data.haystack import Span
from infini_attention.data.templates import get_template
from infini_attention.data.tokenizers import Tokenizer

__all__ = ["PasskeyInstance", "Span", "make_instance", "random_key", "training_instances", "batch_tensors"]

# The paper's prompt (data/formats.py holds it and the other formats; these names stay for callers)
PREFIX = PaperPasskey.PREFIX
FILLER = haystacks.FILLER
NEEDLE = PaperPasskey.NEEDLE
QUESTION = PaperPasskey.QUESTION
NUMBERED_NEEDLE = PaperPasskey.NUMBERED_NEEDLE
NUMBERED_QUESTION = PaperPasskey.NUMBERED_QUESTION


@dataclass
class PasskeyInstance:
    keys: list[str]  # one key per needle
    ask: int  # index of the needle the question asks for
    depths: list[float]  # where each needle sits: 0 = start of the haystack, 1 = its end
    spans: list[Span]  # the prompt, in order
    needle_spans: list[tuple[int, int]]  # [start, end) token positions of each needle
    answer_ids: list[int]  # the tokens of " <key>"
    prefix_len: int = 0  # tokens of the instruction before the haystack
    question_len: int = 0  # tokens of the question after it
    end_ids: list[int] = field(default_factory=list)  # the template's end of an answer ("." / end of turn)

    @property
    def key(self) -> str:
        return self.keys[self.ask]

    @property
    def length(self) -> int:
        """Prompt tokens (the answer excluded)."""
        return sum(s.length for s in self.spans)

    def chunks(self, chunk_len: int) -> Iterator[list[int]]:
        """The prompt's tokens, `chunk_len` at a time (the last chunk may be shorter)."""
        buffer: list[int] = []
        for span in self.spans:
            pos = 0
            while pos < span.length:
                take = min(span.length - pos, chunk_len - len(buffer))
                buffer.extend(span.tokens(pos, pos + take))
                pos += take
                if len(buffer) == chunk_len:
                    yield buffer
                    buffer = []
        if buffer:
            yield buffer

    def prompt_ids(self) -> torch.Tensor:
        """The whole prompt as a tensor (length,): for short instances (training)."""
        return torch.tensor([t for chunk in self.chunks(1 << 16) for t in chunk], dtype=torch.long)

    def question_segment(self, segment_len: int) -> int:
        """The segment of the prompt's last token, from which the first answer token is predicted."""
        return (self.length - 1) // segment_len

    def in_memory_only(self, segment_len: int) -> bool:
        """True when the asked needle ends before the question's segment: only the memory can bring it back."""
        return self.needle_spans[self.ask][1] <= self.question_segment(segment_len) * segment_len


def make_instance(
    tokenizer: Tokenizer,
    length: int,
    depth: float | list[float] = 0.5,
    seed: int = 0,
    digits: int | None = None,
    filler: str | Path | None = None,
    ask: int | None = None,
    doubled: bool = False,
    *,
    fmt: str = "passkey",
    haystack=None,
    words: list[str] | None = None,
    template: str = "plain",
) -> PasskeyInstance:
    """A needle prompt of exactly `length` tokens with needles at the given depths.

    depth: a fraction of the haystack in [0, 1], or a list of them for several needles (each with
        its own key; the question asks for needle `ask`, chosen by the seed if None).
    fmt: the prompt format (data/formats.py): "passkey" (the paper's), "ruler", "ruler-multikey",
        "paraphrase"; digits: the key length (default: the format's, 5 or 7).
    haystack: a haystack object or name (data/haystack.py: "paper", or text file paths); running
        text is read from a random sentence chosen by the seed, and needles go between sentences.
    filler: the older option: a text, or a text file, repeated as the haystack.
    words: the word list of RULER keys (default: the haystack's words).
    doubled: every key holds one digit written twice in a row (hard keys, for training).
    template: how the prompt is presented (data/templates.py): "plain", or "chat" (one user turn of the
        tokenizer's chat template, the answer in the assistant's turn).
    The keys, `ask` and the haystack's start follow from `seed`: the same arguments give the same instance.
    """
    depths = [depth] if isinstance(depth, int | float) else list(depth)
    if not depths or any(not 0.0 <= d <= 1.0 for d in depths):
        raise ValueError(f"depths must lie in [0, 1], got {depths}")
    if ask is not None and not 0 <= ask < len(depths):
        raise ValueError(f"ask must index one of the {len(depths)} needles, got {ask}")
    form = get_format(fmt)
    source = _haystack(haystack, filler)
    if words is None and fmt.startswith("ruler"):
        words = source.words or None
    rng = random.Random(seed)
    prompt = form.draw(rng, len(depths), digits or form.default_digits, doubled, words, ask)
    shape = get_template(template)
    prompt = shape.wrap(prompt, tokenizer)
    needles = [tokenizer.encode(t) for t in prompt.needles]
    question = tokenizer.encode(prompt.question)
    prefix = tokenizer.encode(prompt.prefix)
    size = length - len(prefix) - len(question) - sum(len(n) for n in needles)
    if size < 0:
        raise ValueError(
            f"length {length} is too short: the instruction, needles and question alone take {length - size} tokens"
        )
    hay = source.draw(tokenizer, size, random.Random(f"haystack-{seed}"))

    # Needles go in depth order at sentence boundaries of the haystack.
    order = sorted(range(len(depths)), key=lambda i: depths[i])
    spans, needle_spans = [Span(prefix, len(prefix))], [(0, 0)] * len(depths)
    position, used = len(prefix), 0
    for i in order:
        cut = hay.snap(int(depths[i] * size), floor=used)
        spans.append(hay.piece(used, cut))
        position, used = position + cut - used, cut
        spans.append(Span(needles[i], len(needles[i])))
        needle_spans[i] = (position, position + len(needles[i]))
        position += len(needles[i])
    spans.append(hay.piece(used, size))
    spans.append(Span(question, len(question)))
    spans = [s for s in spans if s.length > 0]
    answer, end = tokenizer.encode(prompt.answer), tokenizer.encode(shape.end(tokenizer))
    return PasskeyInstance(
        prompt.keys, prompt.ask, depths, spans, needle_spans, answer, len(prefix), len(question), end
    )


def _haystack(haystack, filler):
    """The haystack object for make_instance's `haystack` (a name or object) or older `filler` argument."""
    if haystack is not None and filler is not None:
        raise ValueError("give haystack or filler, not both")
    if haystack is not None:
        return haystacks.get_haystack(haystack) if isinstance(haystack, str) else haystack
    if filler is None:
        return haystacks.get_haystack(None)
    is_file = isinstance(filler, Path) or Path(str(filler)).is_file()
    text = Path(filler).read_text() if is_file else str(filler)
    return haystacks.RepeatedFiller(" " + " ".join(text.split()))


def training_batch(
    tokenizer: Tokenizer,
    batch_size: int,
    length: int,
    rng: random.Random,
    digits: int = 5,
    local_fraction: float = 0.0,
    segment_len: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) of shape (batch, length + answer): prompt + answer, labels -100 except on the answer.

    local_fraction: the share of instances whose needle is placed in the question's own segment
    (a local-first curriculum); the others get a needle depth chosen so that the key lies in an
    earlier segment, reachable only through the memory.
    """
    instances = training_instances(tokenizer, batch_size, length, rng, digits, local_fraction, segment_len)
    return batch_tensors(instances)


def training_instances(
    tokenizer: Tokenizer,
    batch_size: int,
    length: int,
    rng: random.Random,
    digits: int | None = 5,
    local_fraction: float = 0.0,
    segment_len: int | None = None,
    doubled_fraction: float = 0.0,
    needles: int = 1,
    **prompt,
) -> list[PasskeyInstance]:
    """The instances of `training_batch` (same arguments, same rng draws); a share `doubled_fraction`
    of them gets a key with a digit written twice in a row (`random_key`).

    needles: needles per prompt (the question asks for one); prompt: make_instance's fmt, haystack
    and words.
    """
    instances = []
    for _ in range(batch_size):
        seed = rng.getrandbits(32)
        doubled = doubled_fraction > 0 and rng.random() < doubled_fraction  # no draw when off
        make = functools.partial(make_instance, tokenizer, length, seed=seed, digits=digits, doubled=doubled, **prompt)

        def depths():
            return rng.random() if needles == 1 else [rng.random() for _ in range(needles)]

        if segment_len is not None and length > segment_len:
            local = rng.random() < local_fraction
            inst = _instance_with_placement(make, depths, local, segment_len, needles)
        else:
            inst = make(depths())
        instances.append(inst)
    return instances


def batch_tensors(instances: list[PasskeyInstance], ends: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) for instances of one length: prompt + answer, labels on the answer only;
    `ends`: the answer followed by its template's end (end_ids: "." or the end of the chat turn), labelled too.

    Answers of different lengths are right-padded (id 0, label -100): harmless for a causal model.
    """
    inputs, labels = [], []
    for inst in instances:
        prompt = inst.prompt_ids()
        answer = torch.tensor(inst.answer_ids + (inst.end_ids if ends else []), dtype=torch.long)
        inputs.append(torch.cat([prompt, answer]))
        label = torch.full_like(inputs[-1], -100)
        label[len(prompt) - 1 : -1] = answer  # position t predicts token t + 1
        labels.append(label)
    width = max(len(r) for r in inputs)
    inputs = [torch.cat([r, r.new_zeros(width - len(r))]) for r in inputs]
    labels = [torch.cat([r, r.new_full((width - len(r),), -100)]) for r in labels]
    return torch.stack(inputs), torch.stack(labels)


def filler_segments(inst: PasskeyInstance, segment_len: int) -> list[bool]:
    """For each segment of prompt + answer: True when it is whole and holds filler only (no token
    of the instruction, a needle, the question or the answer)."""
    total = inst.length + len(inst.answer_ids)
    special = [(0, inst.prefix_len), *inst.needle_spans, (inst.length - inst.question_len, total)]  # [start, end) spans
    return [
        (i + 1) * segment_len <= total
        and not any(start < (i + 1) * segment_len and end > i * segment_len for start, end in special)
        for i in range(-(-total // segment_len))
    ]


def _instance_with_placement(make, depths, local: bool, segment_len: int, needles: int = 1, tries: int = 50):
    """An instance whose asked needle is (local=True) or is not (local=False) in the question's segment."""
    for _ in range(tries):
        inst = make(depths())
        if inst.in_memory_only(segment_len) != local:
            return inst
    # the random depths missed: put the asked needle at the very end (local) or start (memory)
    edge = 1.0 if local else 0.0
    return make(edge) if needles == 1 else make([edge] + [0.5] * (needles - 1), ask=0)

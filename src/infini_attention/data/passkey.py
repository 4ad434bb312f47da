"""The passkey retrieval task (Mohtashami & Jaggi 2023; PAPER.md gives the prompt).

An instance is a prompt of an exact number of tokens: the instruction, filler text repeated, the
needle ("The pass key is 71432. Remember it. 71432 is the pass key.") at a chosen depth, and the
question; the answer is the key. Instances are described by spans of repeated token units, so a
1M-token haystack is generated lazily, segment by segment (`PasskeyInstance.chunks`), and never
exists as one string.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from infini_attention.data.tokenizers import Tokenizer

PREFIX = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = " What is the pass key? The pass key is"
# With several needles each key is numbered and the question asks for one of them.
NUMBERED_NEEDLE = " The pass key number {i} is {key}. Remember it. {key} is the pass key number {i}."
NUMBERED_QUESTION = " What is the pass key number {i}? The pass key number {i} is"


@dataclass
class Span:
    """`length` tokens read cyclically from `unit`, starting at its beginning."""

    unit: list[int]
    length: int

    def tokens(self, start: int, end: int) -> list[int]:
        n = len(self.unit)
        return [self.unit[i % n] for i in range(start, end)]


@dataclass
class PasskeyInstance:
    keys: list[str]  # one key per needle
    ask: int  # index of the needle the question asks for
    depths: list[float]  # where each needle sits: 0 = start of the haystack, 1 = its end
    spans: list[Span]  # the prompt, in order
    needle_spans: list[tuple[int, int]]  # [start, end) token positions of each needle
    answer_ids: list[int]  # the tokens of " <key>"

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


def random_key(rng: random.Random, digits: int, doubled: bool = False) -> str:
    """A random key of `digits` digits (no leading zero); `doubled`: one digit is written twice in a row."""
    if not 1 <= digits <= 10:
        raise ValueError(f"keys have 1 to 10 digits, got {digits}")
    key = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(digits - 1))
    if doubled and digits >= 2:
        i = rng.randrange(1, digits)
        key = key[:i] + key[i - 1] + key[i + 1 :]
    return key


def make_instance(
    tokenizer: Tokenizer,
    length: int,
    depth: float | list[float] = 0.5,
    seed: int = 0,
    digits: int = 5,
    filler: str | Path | None = None,
    ask: int | None = None,
    doubled: bool = False,
) -> PasskeyInstance:
    """A passkey prompt of exactly `length` tokens with needles at the given depths.

    depth: a fraction of the haystack in [0, 1], or a list of them for several needles (each with
        its own numbered key; the question asks for needle `ask`, chosen by the seed if None).
    filler: text, or a path to a text file, repeated as the haystack (default: the paper's filler).
    doubled: every key holds one digit written twice in a row (hard keys, for training).
    The key and `ask` follow from `seed`; the same arguments always give the same instance.
    """
    depths = [depth] if isinstance(depth, int | float) else list(depth)
    if not depths or any(not 0.0 <= d <= 1.0 for d in depths):
        raise ValueError(f"depths must lie in [0, 1], got {depths}")
    rng = random.Random(seed)
    keys = [random_key(rng, digits, doubled) for _ in depths]
    if ask is None:
        ask = rng.randrange(len(depths))
    if not 0 <= ask < len(depths):
        raise ValueError(f"ask must index one of the {len(depths)} needles, got {ask}")
    if len(depths) == 1:
        needles = [tokenizer.encode(NEEDLE.format(key=keys[0]))]
        question = tokenizer.encode(QUESTION)
    else:
        needles = [tokenizer.encode(NUMBERED_NEEDLE.format(i=i + 1, key=k)) for i, k in enumerate(keys)]
        question = tokenizer.encode(NUMBERED_QUESTION.format(i=ask + 1))
    prefix = tokenizer.encode(PREFIX)
    if filler is None:
        unit = tokenizer.encode(FILLER)
    else:
        text = Path(filler).read_text() if isinstance(filler, Path) or Path(str(filler)).is_file() else str(filler)
        unit = tokenizer.encode(" " + " ".join(text.split()))
        if not unit:
            raise ValueError("the filler text is empty")
    haystack = length - len(prefix) - len(question) - sum(len(n) for n in needles)
    if haystack < 0:
        raise ValueError(
            f"length {length} is too short: the instruction, needles and question alone take {length - haystack} tokens"
        )

    # Needles go in depth order at whole filler units (sentence boundaries for the default filler).
    order = sorted(range(len(depths)), key=lambda i: depths[i])
    spans, needle_spans = [Span(prefix, len(prefix))], [(0, 0)] * len(depths)
    position, used = len(prefix), 0
    for i in order:
        before = int(depths[i] * haystack)
        if len(unit) <= 256:  # snap to a unit boundary so that no sentence is cut before a needle
            before -= before % len(unit)
        before = max(before - used, 0)
        spans.append(Span(unit, before))
        position, used = position + before, used + before
        spans.append(Span(needles[i], len(needles[i])))
        needle_spans[i] = (position, position + len(needles[i]))
        position += len(needles[i])
    spans.append(Span(unit, haystack - used))
    spans.append(Span(question, len(question)))
    spans = [s for s in spans if s.length > 0]
    answer = tokenizer.encode(" " + keys[ask])
    return PasskeyInstance(keys, ask, depths, spans, needle_spans, answer)


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
    digits: int = 5,
    local_fraction: float = 0.0,
    segment_len: int | None = None,
    doubled_fraction: float = 0.0,
) -> list[PasskeyInstance]:
    """The instances of `training_batch` (same arguments, same rng draws); a share `doubled_fraction`
    of them gets a key with a digit written twice in a row (`random_key`)."""
    instances = []
    for _ in range(batch_size):
        seed = rng.getrandbits(32)
        doubled = doubled_fraction > 0 and rng.random() < doubled_fraction  # no draw when off
        if segment_len is not None and length > segment_len:
            local = rng.random() < local_fraction
            inst = _instance_with_placement(tokenizer, length, rng, seed, digits, local, segment_len, doubled)
        else:
            inst = make_instance(tokenizer, length, rng.random(), seed, digits, doubled=doubled)
        instances.append(inst)
    return instances


def batch_tensors(instances: list[PasskeyInstance]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) for instances of one length: prompt + answer, labels on the answer only."""
    inputs, labels = [], []
    for inst in instances:
        prompt = inst.prompt_ids()
        answer = torch.tensor(inst.answer_ids, dtype=torch.long)
        inputs.append(torch.cat([prompt, answer]))
        label = torch.full_like(inputs[-1], -100)
        label[len(prompt) - 1 : -1] = answer  # position t predicts token t + 1
        labels.append(label)
    return torch.stack(inputs), torch.stack(labels)


def filler_segments(inst: PasskeyInstance, segment_len: int) -> list[bool]:
    """For each segment of prompt + answer: True when it is whole and holds filler only (no token
    of the instruction, a needle, the question or the answer)."""
    total = inst.length + len(inst.answer_ids)
    instruction, question = inst.spans[0].length, inst.spans[-1].length
    special = [(0, instruction), *inst.needle_spans, (inst.length - question, total)]  # [start, end) spans
    return [
        (i + 1) * segment_len <= total
        and not any(start < (i + 1) * segment_len and end > i * segment_len for start, end in special)
        for i in range(-(-total // segment_len))
    ]


def _instance_with_placement(tokenizer, length, rng, seed, digits, local, segment_len, doubled=False, tries=50):
    """An instance whose needle is (local=True) or is not (local=False) in the question's segment."""
    for _ in range(tries):
        inst = make_instance(tokenizer, length, rng.random(), seed, digits, doubled=doubled)
        if inst.in_memory_only(segment_len) != local:
            return inst
    # the random depth missed: put the needle at the very end (local) or start (memory)
    return make_instance(tokenizer, length, 1.0 if local else 0.0, seed, digits, doubled=doubled)

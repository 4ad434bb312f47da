"""Haystacks for needle prompts: the paper's repeated filler, or running text cut at sentence boundaries.

A haystack hands out `length` tokens as spans (`Span`, read lazily, so that a
1M-token repeated filler never exists as one list) and says where a needle may go: at a sentence
boundary at or before a wanted position. Choose one by name with `get_haystack`:

- "paper" (or None): the paper's filler, "The grass is green. ... There and back again." repeated;
- a path to a text file (or several, comma-separated): its paragraphs as running text. Each
  instance starts at a random sentence (from the instance's seed) and reads on, paragraph after
  paragraph, wrapping around at the end of the text.
"""

from __future__ import annotations

import bisect
import functools
import random
import re
from dataclasses import dataclass
from pathlib import Path

from infini_attention.data.tokenizers import Tokenizer

FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

# a sentence ends at . ! ? (and a closing quote or bracket) followed by white space
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]?\s+")


@dataclass
class Span:
    """`length` tokens read cyclically from `unit`, starting at its beginning."""

    unit: list[int]
    length: int

    def tokens(self, start: int, end: int) -> list[int]:
        n = len(self.unit)
        return [self.unit[i % n] for i in range(start, end)]


@dataclass
class HaystackDraw:
    """`length` haystack tokens of one instance, with the places where a needle may go."""

    length: int
    unit: list[int] | None = None  # the repeated unit (repeated filler) ...
    tokens: list[int] | None = None  # ... or the tokens themselves (running text)
    boundaries: list[int] | None = None  # sorted sentence starts in [0, length], for running text

    def snap(self, position: int, floor: int = 0) -> int:
        """The last sentence boundary at or before `position` (and at or after `floor`)."""
        if self.unit is not None:  # whole units of a short filler; a long one is cut anywhere
            return max(floor, position - position % len(self.unit)) if len(self.unit) <= 256 else max(floor, position)
        i = bisect.bisect_right(self.boundaries, position) - 1
        return max(floor, self.boundaries[i] if i >= 0 else 0)

    def piece(self, start: int, end: int):
        """Haystack tokens [start, end) as one span (a repeated filler restarts its unit at `start`)."""
        if self.unit is not None:
            return Span(self.unit, end - start)
        return Span(self.tokens[start:end], end - start)


class RepeatedFiller:
    """A short text repeated: the paper's filler by default."""

    name = "paper"

    def __init__(self, text: str = FILLER):
        self.text = text

    def draw(self, tokenizer: Tokenizer, length: int, rng: random.Random) -> HaystackDraw:
        unit = tokenizer.encode(self.text)
        if not unit:
            raise ValueError("the filler text is empty")
        return HaystackDraw(length, unit=unit)

    @functools.cached_property
    def words(self) -> list[str]:
        """The filler's words (keys for RULER needles)."""
        return sorted({w.lower() for w in re.findall(r"[A-Za-z]{3,}", self.text)})


class TextHaystack:
    """Running text from paragraphs, one instance at a random sentence; cut only between sentences."""

    def __init__(self, paragraphs: list[str], name: str = "text"):
        self.name = name
        sentences, starts = [], []  # every sentence, and whether it opens a paragraph
        for para in paragraphs:
            parts = [s for s in SENTENCE_END.split(" ".join(para.split())) if s]
            sentences += parts
            starts += [True] + [False] * (len(parts) - 1)
        if not sentences:
            raise ValueError(f"haystack {name}: the text holds no sentences")
        self.sentences, self.paragraph_start = sentences, starts

    @classmethod
    def from_files(cls, paths: list[str | Path]) -> TextHaystack:
        paragraphs = []
        for path in paths:
            path = Path(path)
            if not path.is_file():
                raise ValueError(f"haystack file {path} does not exist")
            text = path.read_text(errors="replace")
            # one paragraph a line, or paragraphs separated by blank lines
            blocks = re.split(r"\n\s*\n", text) if "\n\n" in text else text.splitlines()
            paragraphs += [b for b in blocks if b.strip()]
        return cls(paragraphs, name=",".join(Path(p).name for p in paths))

    def draw(self, tokenizer: Tokenizer, length: int, rng: random.Random) -> HaystackDraw:
        i = rng.randrange(len(self.sentences))
        tokens, boundaries = [], []
        while len(tokens) < length:
            boundaries.append(len(tokens))
            sep = "\n" if self.paragraph_start[i] and tokens else " "
            tokens += tokenizer.encode(sep + self.sentences[i])
            i = (i + 1) % len(self.sentences)
        boundaries.append(length)
        return HaystackDraw(length, tokens=tokens[:length], boundaries=[b for b in boundaries if b <= length])

    @functools.cached_property
    def words(self) -> list[str]:
        """The text's most frequent words (keys for RULER needles), computed once per haystack."""
        return word_list(" ".join(self.sentences[:200_000]))


def word_list(text: str, size: int = 2000) -> list[str]:
    """The `size` most frequent lower-case words of 4-10 letters in `text` (keys for RULER needles)."""
    counts: dict[str, int] = {}
    for w in re.findall(r"\b[a-z]{4,10}\b", text):
        counts[w] = counts.get(w, 0) + 1
    return sorted(sorted(counts, key=lambda w: (-counts[w], w))[:size])


@functools.lru_cache(maxsize=8)
def get_haystack(spec: str | None) -> RepeatedFiller | TextHaystack:
    """A haystack by name: None or "paper" (the paper's filler), else text file path(s), comma-separated."""
    if spec is None or spec == "paper":
        return RepeatedFiller()
    return TextHaystack.from_files(spec.split(","))

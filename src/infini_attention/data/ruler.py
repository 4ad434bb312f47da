"""RULER's synthetic tasks (Hsieh et al. 2024, arXiv 2404.06654), generated offline, registered by name.

Each task draws one `RulerInstance` of a given length in tokens from a `random.Random`: the prompt
as token ids (instruction, context, question, then RULER's answer prefix, which the model continues)
and the strings a correct answer holds. Scoring is RULER's: `string_match_all` (the share of the
expected strings found in the prediction, case-insensitive) and `string_match_part` (any of them).

Tasks, with RULER's settings (scripts/synthetic.yaml of NVIDIA/RULER):

| name | what it asks |
|---|---|
| niah_single_1 | one needle, word key, 7-digit value, noise haystack (the repeated filler) |
| niah_single_2 | the same in a text haystack (`haystack=`; the noise filler if none is given) |
| niah_single_3 | the same with a UUID value |
| niah_multikey_1 | the asked needle plus 3 needles with other keys, in the text haystack |
| niah_multikey_2 | the haystack is made of needles with other keys ("needle" haystack) |
| niah_multikey_3 | the same with UUID keys and UUID values |
| niah_multivalue | one key holds 4 values; all 4 are asked |
| niah_multiquery | 4 needles; the values of all 4 keys are asked |
| vt | variable tracking: one chain of 4 hops ("VAR ABCDE = 12345", "VAR FGHIJ = VAR ABCDE ") in noise |
| cwe | common words extraction: the 10 words repeated 30 times in a numbered list of words seen 3 times |
| fwe | frequent words extraction: the 3 most frequent coded words in a Zipf (alpha 2) text |

RULER's published templates and answer prefixes are kept word for word (its "assgined" included).
Adapted, and said so in every report: the word keys are pairs of words from the haystack's own
word list (RULER draws adjective-noun pairs from the `wonderwords` package); the cwe words come
from that list, then from made-up syllable words when a long list needs more distinct words than
it holds; the prompts have no in-context example (RULER prepends one to vt, cwe and fwe), since
our small models are not instruction-tuned; the length counts the prompt plus the answer budget
(`tokens_to_generate`), as RULER's max_seq_length does, and the context is filled to it piece by
piece (each piece tokenised alone) instead of by RULER's binary search over the whole text.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field

from infini_attention.data.formats import DEFAULT_WORDS, RulerNeedle, needle_value, random_uuid, word_pair
from infini_attention.data.haystack import FILLER, RepeatedFiller, TextHaystack
from infini_attention.data.templates import chat_turn
from infini_attention.data.tokenizers import Tokenizer

NIAH_TEMPLATE = (
    "Some special magic {kind} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {kind} afterwards.\n{context}\n"
    "What are all the special magic {kind} for {query} mentioned in the provided text?"
)
NIAH_ANSWER = " The special magic {kind} for {query} mentioned in the provided text are"
NEEDLE = RulerNeedle.NEEDLE.strip()  # "One of the special magic {kind} for {key} is: {value}."
VT_TEMPLATE = (
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
    "Question: Find all variables that are assigned the value {query} in the text above."
)
VT_ANSWER = (
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
    "assgined the value {query}, they are: "
)
CWE_TEMPLATE = (
    "Below is a numbered list of words. In these words, some appear more often than others. "
    "Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the "
    "above list?"
)
CWE_ANSWER = " Answer: The top 10 words that appear most often in the list are:"
FWE_TEMPLATE = (
    "Read the following coded text and track the frequency of each coded word. Find the three most frequently "
    "appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
    "What are the three most frequently appeared words in the above coded text?"
)
FWE_ANSWER = " Answer: According to the coded text above, the three most frequently appeared words are:"
NOISE = FILLER.strip()  # RULER's noise haystack: "The grass is green. ... There and back again."
DEPTHS = [round(100 * i / 39) for i in range(40)]  # RULER's 40 needle depths (percent)


@dataclass
class RulerInstance:
    task: str
    prompt_ids: list[int]  # the whole prompt, answer prefix included: the model continues it
    outputs: list[str]  # what a correct answer holds
    tokens_to_generate: int
    meta: dict = field(default_factory=dict)  # needle depths, values, ... (for the JSON)

    @property
    def length(self) -> int:
        return len(self.prompt_ids)


def string_match_all(prediction: str, outputs: list[str]) -> float:
    """RULER's score of one answer: the share of the expected strings it contains (case-insensitive)."""
    pred = prediction.lower()
    return sum(o.lower() in pred for o in outputs) / len(outputs)


def string_match_part(prediction: str, outputs: list[str]) -> float:
    """RULER's score for its QA tasks: 1 if any expected string is in the answer."""
    pred = prediction.lower()
    return float(any(o.lower() in pred for o in outputs))


class Wrapper:
    """How a prompt is wrapped around the task's text: plain, or one user turn of a chat template.

    `before` and `after` are token ids around the user's text (empty without a chat template); the
    answer prefix follows `after`, where the assistant's turn begins.
    """

    def __init__(self, before: list[int] | None = None, after: list[int] | None = None):
        self.before, self.after = before or [], after or []

    @classmethod
    def chat(cls, hf_tokenizer, tokenizer: Tokenizer) -> Wrapper:
        """The token ids a chat template puts around a user message (data/templates.py:chat_turn)."""
        before, after = chat_turn(hf_tokenizer)
        return cls(tokenizer.encode(before), tokenizer.encode(after))


class Builder:
    """Token ids of one prompt, piece by piece, with a budget for the context."""

    def __init__(self, tokenizer: Tokenizer, wrapper: Wrapper | None = None):
        self.tok = tokenizer
        self.wrapper = wrapper or Wrapper()
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str, cache: bool = False) -> list[int]:
        if not cache:
            return self.tok.encode(text)
        if text not in self._cache:
            self._cache[text] = self.tok.encode(text)
        return self._cache[text]

    def budget(self, length: int, template: str, answer: str, tokens_to_generate: int, **fields) -> int:
        """Tokens left for the context when the whole prompt plus the answer budget is `length`."""
        frame = template.format(context="", **fields) + answer.format(**fields)
        used = len(self.wrapper.before) + len(self.wrapper.after) + len(self.encode(frame)) + tokens_to_generate
        room = length - used
        if room < 16:
            raise ValueError(f"length {length} leaves {room} tokens for the context (the prompt needs {used})")
        return room

    def prompt(self, template: str, answer: str, context: list[int], **fields) -> list[int]:
        head, tail = template.split("{context}")
        return (
            self.wrapper.before
            + self.encode(head.format(**fields))
            + context
            + self.encode(tail.format(**fields))
            + self.wrapper.after
            + self.encode(answer.format(**fields))
        )


def _key(rng: random.Random, kind: str, words: list[str]) -> str:
    return word_pair(rng, words) if kind == "words" else random_uuid(rng)


def _haystack_words(haystack) -> list[str]:
    words = getattr(haystack, "words", None) or []
    return words if len(words) >= 40 else list(DEFAULT_WORDS)


def _sentences(haystack, rng: random.Random, builder: Builder, room: int) -> list[list[int]]:
    """Haystack sentences as token lists, from a random start, until `room` tokens are filled."""
    if isinstance(haystack, TextHaystack):
        i = rng.randrange(len(haystack.sentences))
        out, total = [], 0
        while total < room:
            ids = builder.encode(" " + haystack.sentences[i])
            out.append(ids)
            total += len(ids)
            i = (i + 1) % len(haystack.sentences)
        return out
    text = haystack.text if isinstance(haystack, RepeatedFiller) else NOISE
    unit = builder.encode(" " + text.strip(), cache=True)
    return [unit] * max(1, math.ceil(room / len(unit)))


def _fill(pieces: list[list[int]], inserts: dict[int, list[list[int]]], room: int) -> list[int]:
    """The pieces with `inserts` placed before piece i (i = len(pieces): at the end); at most `room` tokens."""
    out: list[int] = []
    for i in range(len(pieces) + 1):
        for x in inserts.get(i, []):
            out += x
        if i < len(pieces):
            out += pieces[i]
    if len(out) > room:  # the callers size the pieces to fit
        raise AssertionError(f"context of {len(out)} tokens for a room of {room}")
    return out


class Niah:
    """RULER's needle in a haystack: niah_single_*, niah_multikey_*, niah_multivalue, niah_multiquery."""

    tokens_to_generate = 128

    def __init__(self, haystack="noise", key="words", value="numbers", needles_k=1, needles_v=1, needles_q=1):
        self.haystack_kind, self.key_kind, self.value_kind = haystack, key, value
        self.needles_k, self.needles_v, self.needles_q = needles_k, needles_v, needles_q

    def draw(self, builder: Builder, length: int, rng: random.Random, haystack=None) -> RulerInstance:
        words = _haystack_words(haystack)
        keys: list[str] = []
        while len(keys) < max(self.needles_k, self.needles_q):
            k = _key(rng, self.key_kind, words)
            if k not in keys:
                keys.append(k)
        values = [[needle_value(rng, self.value_kind, words) for _ in range(self.needles_v)] for _ in keys]
        needles = [(k, v) for k, vs in zip(keys, values) for v in vs]
        rng.shuffle(needles)
        asked = keys[: self.needles_q]
        query = asked[0] if len(asked) == 1 else ", ".join(asked[:-1]) + ", and " + asked[-1]
        kind = self.value_kind
        fields = dict(kind=kind, query=query)
        room = builder.budget(length, NIAH_TEMPLATE, NIAH_ANSWER, self.tokens_to_generate, **fields)
        needle_ids = [builder.encode(" " + NEEDLE.format(kind=kind, key=k, value=v)) for k, v in needles]
        room_hay = room - sum(len(n) for n in needle_ids)
        if room_hay < 0:
            raise ValueError(f"length {length} is too short for {len(needles)} needles")
        if self.haystack_kind == "needle":
            pieces = self._needle_haystack(builder, rng, words, set(keys), room_hay, kind)
        else:
            pieces = _sentences(haystack if self.haystack_kind == "essay" else None, rng, builder, room_hay)
            pieces = _trim(pieces, room_hay)
        depths = sorted(rng.sample(DEPTHS, len(needles)))
        inserts: dict[int, list[list[int]]] = {}
        for depth, ids in zip(depths, needle_ids):
            inserts.setdefault(round(len(pieces) * depth / 100), []).append(ids)
        context = _fill(pieces, inserts, room)
        outputs = [v for k, vs in zip(keys, values) if k in asked for v in vs]
        meta = {"depths": depths, "keys": asked}
        return RulerInstance(
            "", builder.prompt(NIAH_TEMPLATE, NIAH_ANSWER, context, **fields), outputs, self.tokens_to_generate, meta
        )

    def _needle_haystack(self, builder, rng, words, taken, room, kind) -> list[list[int]]:
        pieces, total = [], 0
        while total < room:
            k = _key(rng, self.key_kind, words)
            if k in taken:
                continue
            ids = builder.encode(" " + NEEDLE.format(kind=kind, key=k, value=needle_value(rng, self.value_kind, words)))
            pieces.append(ids)
            total += len(ids)
        return _trim(pieces, room)


def _trim(pieces: list[list[int]], room: int) -> list[list[int]]:
    """Whole pieces up to `room` tokens (at least one)."""
    out, total = [], 0
    for p in pieces:
        if out and total + len(p) > room:
            break
        out.append(p)
        total += len(p)
    return out


class VariableTracking:
    """RULER's vt: a chain "VAR A = 12345", "VAR B = VAR A ", ... hidden in noise lines; all its variables asked."""

    tokens_to_generate = 30

    def __init__(self, chains: int = 1, hops: int = 4):
        self.chains, self.hops = chains, hops

    def draw(self, builder: Builder, length: int, rng: random.Random, haystack=None) -> RulerInstance:
        names: list[str] = []
        while len(names) < self.chains * (self.hops + 1):
            name = "".join(rng.choices(string.ascii_uppercase, k=5))
            if name not in names:
                names.append(name)
        chains = []
        for c in range(self.chains):
            var = names[c * (self.hops + 1) : (c + 1) * (self.hops + 1)]
            lines = [f"VAR {var[0]} = {rng.randint(10000, 99999)}"]
            lines += [f"VAR {var[j + 1]} = VAR {var[j]} " for j in range(self.hops)]
            chains.append((var, lines))
        query = chains[0][1][0].split("=")[-1].strip()
        fields = dict(query=query, num_v=self.hops + 1)
        room = builder.budget(length, VT_TEMPLATE, VT_ANSWER, self.tokens_to_generate, **fields)
        noise = builder.encode(NOISE + "\n\n", cache=True)
        chain_ids = [[builder.encode(line + "\n") for line in lines] for _, lines in chains]
        room_noise = room - sum(len(x) for ids in chain_ids for x in ids)
        pieces = [noise] * (room_noise // len(noise))
        if len(pieces) < len(chain_ids[0]):  # short inputs: RULER cuts the noise into sentences
            sentence = builder.encode("The grass is green.\n", cache=True)
            pieces = [sentence] * (room_noise // len(sentence))
        if len(pieces) < len(chain_ids[0]):
            raise ValueError(f"length {length} is too short for vt's chain")
        inserts: dict[int, list[list[int]]] = {}
        for ids in chain_ids:  # each chain in order, at sorted random places
            for pos, line in zip(sorted(rng.sample(range(len(pieces)), len(ids))), ids):
                inserts.setdefault(pos, []).append(line)
        context = _fill(pieces, inserts, room)
        return RulerInstance(
            "",
            builder.prompt(VT_TEMPLATE, VT_ANSWER, context, **fields),
            chains[0][0],
            self.tokens_to_generate,
            {"chain": chains[0][1]},
        )


def syllable_words(rng: random.Random, n: int, avoid: set[str]) -> list[str]:
    """`n` distinct made-up words of 2-3 syllables (for lists longer than a word list)."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    out: set[str] = set()
    while len(out) < n:
        w = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 3)))
        if w not in avoid:
            out.add(w)
    return sorted(out)


class CommonWords:
    """RULER's cwe: a numbered list where 10 words appear 30 times and the others 3 times; the 10 are asked.

    Where 300 items do not fit the length, the common words repeat fewer times (at least 5)."""

    tokens_to_generate = 120

    def __init__(self, common: int = 10, common_repeats: int = 30, uncommon_repeats: int = 3):
        self.common, self.common_repeats, self.uncommon_repeats = common, common_repeats, uncommon_repeats

    def draw(self, builder: Builder, length: int, rng: random.Random, haystack=None) -> RulerInstance:
        room = builder.budget(length, CWE_TEMPLATE, CWE_ANSWER, self.tokens_to_generate)
        words = list(_haystack_words(haystack))
        rng.shuffle(words)
        common, pool = words[: self.common], words[self.common :]
        per_item = sum(len(builder.encode(f" {i + 1}. {w}")) for i, w in enumerate(common)) / self.common
        repeats = self.common_repeats  # fewer where the common words alone would not fit (short lengths)
        while repeats > self.uncommon_repeats + 1 and self.common * repeats * per_item * 1.1 > room:
            repeats -= 1
        fixed = self.common * repeats * per_item
        n_uncommon = max(0, int((room - fixed) / (per_item * self.uncommon_repeats)))
        if n_uncommon > len(pool):
            pool += syllable_words(rng, n_uncommon - len(pool), set(words))
        while True:  # RULER's search: fewer uncommon words until the list fits
            items = common * repeats + pool[:n_uncommon] * self.uncommon_repeats
            rng.shuffle(items)
            context = []
            for i, w in enumerate(items):
                context += builder.encode(f"{'' if i == 0 else ' '}{i + 1}. {w}")
            if len(context) <= room:
                break
            if n_uncommon > 0:
                n_uncommon = int(n_uncommon * 0.97)
            elif repeats > self.uncommon_repeats + 2:  # numbers of 3-4 digits make items longer than estimated
                repeats -= 1
            else:
                raise ValueError(f"length {length} is too short for cwe's {len(items)} list items")
        return RulerInstance(
            "",
            builder.prompt(CWE_TEMPLATE, CWE_ANSWER, context),
            common,
            self.tokens_to_generate,
            {"uncommon": n_uncommon, "common_repeats": repeats},
        )


class FrequentWords:
    """RULER's fwe: coded words with Zipf counts (alpha 2); the 3 most frequent (after the '....' noise) are asked."""

    tokens_to_generate = 50

    def __init__(self, alpha: float = 2.0, vocab_size: int = 2000, word_len: int = 6):
        self.alpha, self.vocab_size, self.word_len = alpha, vocab_size, word_len

    def draw(self, builder: Builder, length: int, rng: random.Random, haystack=None) -> RulerInstance:
        room = builder.budget(length, FWE_TEMPLATE, FWE_ANSWER, self.tokens_to_generate)
        vocab: set[str] = set()
        while len(vocab) < self.vocab_size:
            vocab.add("".join(rng.choices(string.ascii_lowercase, k=self.word_len)))
        vocab = sorted(vocab)
        rng.shuffle(vocab)
        vocab[0] = "...."  # RULER: the top-ranked word is noise
        zeta = sum(k**-self.alpha for k in range(1, 100_000))
        per_word = sum(len(builder.encode(" " + w)) for w in vocab[:50]) / 50
        best, num_words = None, int(room / per_word)
        while True:  # RULER's incremental search: the most words whose text fits (the Zipf counts round down)
            counts = [int(num_words * (k**-self.alpha) / zeta) for k in range(1, len(vocab) + 1)]
            words = [w for w, c in zip(vocab, counts) for _ in range(c)]
            size = sum(len(builder.encode(" " + w, cache=True)) for w in words)
            if size > room:
                break
            best, num_words = words, max(num_words + 1, int(num_words * 1.05))
        if best is None or not best:
            raise ValueError(f"length {length} is too short for fwe")
        words = best
        rng.shuffle(words)
        context = [t for w in words for t in builder.encode(" " + w, cache=True)]
        return RulerInstance(
            "",
            builder.prompt(FWE_TEMPLATE, FWE_ANSWER, context),
            vocab[1:4],
            self.tokens_to_generate,
            {"words": len(words)},
        )


TASKS = {
    "niah_single_1": lambda: Niah("noise", "words", "numbers"),
    "niah_single_2": lambda: Niah("essay", "words", "numbers"),
    "niah_single_3": lambda: Niah("essay", "words", "uuids"),
    "niah_multikey_1": lambda: Niah("essay", "words", "numbers", needles_k=4),
    "niah_multikey_2": lambda: Niah("needle", "words", "numbers"),
    "niah_multikey_3": lambda: Niah("needle", "uuids", "uuids"),
    "niah_multivalue": lambda: Niah("essay", "words", "numbers", needles_v=4),
    "niah_multiquery": lambda: Niah("essay", "words", "numbers", needles_k=4, needles_q=4),
    "vt": VariableTracking,
    "cwe": CommonWords,
    "fwe": FrequentWords,
}


def get_task(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown RULER task {name!r}: choose from {', '.join(TASKS)}")
    return TASKS[name]()


def make_instance(
    task: str, tokenizer: Tokenizer, length: int, seed: int, haystack=None, wrapper: Wrapper | None = None
) -> RulerInstance:
    """One instance of `task` with `length` tokens at most (prompt + answer budget), from `seed`."""
    inst = get_task(task).draw(Builder(tokenizer, wrapper), length, random.Random(seed), haystack=haystack)
    inst.task = task
    return inst

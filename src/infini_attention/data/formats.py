"""Needle prompt formats, registered by name: what the instruction, the needles and the question say.

A format turns random draws into the texts of one prompt (`Prompt`): the instruction before the
haystack, one needle per depth, the question after it and the answer the model must give.

- "passkey": the paper's prompt (PAPER.md); with several needles, numbered keys.
- "ruler": RULER's single needle (Hsieh et al. 2024, niah_single): "One of the special magic
  numbers for {key} is: {value}." with a word key and a 7-digit value.
- "ruler-multikey": RULER's niah_multikey: the asked needle plus needles with other word keys
  (one per extra depth; 4 needles in all in RULER).
- "ruler-words", "ruler-uuid": RULER's single needle with a word-pair value or a UUID value (RULER's
  niah_single_3), "special magic words" / "special magic uuids";
- "paraphrase": a fact stated in one of several phrasings ("The access code is ...", "Remember
  this: the secret number is ..."), asked in another: for training, so that a model does not learn
  one sentence by heart.
- "varied": the same idea with many more names, statements, questions and instructions, each drawn on
  its own (16 x 12 x 12 x 7), none of them "unseen"'s.
- "unseen": like "paraphrase", but with names, needle sentences, questions and instructions that no
  training format uses, for evaluation only (the trainer refuses it): does the memory retrieve a fact
  stated and asked in words it never trained on?

A new format is one class with `draw(rng, needles, digits, doubled, words, ask)` added to FORMATS.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass


@dataclass
class Prompt:
    prefix: str  # the instruction, before the haystack
    needles: list[str]  # one text per needle, each starting with a space
    question: str  # after the haystack; the answer follows it
    keys: list[str]  # the value each needle holds
    ask: int  # the needle the question asks for

    @property
    def answer(self) -> str:
        return " " + self.keys[self.ask]


def random_key(rng: random.Random, digits: int, doubled: bool = False) -> str:
    """A random key of `digits` digits (no leading zero); `doubled`: one digit is written twice in a row."""
    if not 1 <= digits <= 10:
        raise ValueError(f"keys have 1 to 10 digits, got {digits}")
    key = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(digits - 1))
    if doubled and digits >= 2:
        i = rng.randrange(1, digits)
        key = key[:i] + key[i - 1] + key[i + 1 :]
    return key


class PaperPasskey:
    """The paper's passkey prompt; several needles are numbered and one of them is asked."""

    PREFIX = (
        "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
        "I will quiz you about the important information there."
    )
    NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
    QUESTION = " What is the pass key? The pass key is"
    NUMBERED_NEEDLE = " The pass key number {i} is {key}. Remember it. {key} is the pass key number {i}."
    NUMBERED_QUESTION = " What is the pass key number {i}? The pass key number {i} is"
    default_digits = 5
    default_needles = 1

    def draw(self, rng: random.Random, needles: int, digits: int, doubled=False, words=None, ask=None) -> Prompt:
        keys = [random_key(rng, digits, doubled) for _ in range(needles)]
        ask = rng.randrange(needles) if ask is None else ask
        if needles == 1:
            return Prompt(self.PREFIX, [self.NEEDLE.format(key=keys[0])], self.QUESTION, keys, 0)
        texts = [self.NUMBERED_NEEDLE.format(i=i + 1, key=k) for i, k in enumerate(keys)]
        return Prompt(self.PREFIX, texts, self.NUMBERED_QUESTION.format(i=ask + 1), keys, ask)


def word_key(rng: random.Random, words: list[str]) -> str:
    """A RULER-style word key: one word, or two joined by a hyphen (RULER's "adjective-noun")."""
    if rng.random() < 0.5:
        return rng.choice(words)
    return word_pair(rng, words)


def word_pair(rng: random.Random, words: list[str]) -> str:
    """RULER's "adjective-noun" key or value: two words of the list joined by a hyphen."""
    return f"{rng.choice(words)}-{rng.choice(words)}"


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def needle_value(rng: random.Random, kind: str, words: list[str], digits: int = 7, doubled: bool = False) -> str:
    """A RULER needle's value of a kind: "numbers" (`digits` digits), "words" (a word pair) or "uuids"."""
    if kind == "words":
        return word_pair(rng, words)
    if kind == "uuids":
        return random_uuid(rng)
    return random_key(rng, digits, doubled)


DEFAULT_WORDS = (
    "apple river stone garden silver window forest candle mirror thunder harbor velvet meadow lantern "
    "marble orange pepper rocket saddle tunnel violin wander yellow zipper bridge castle dragon falcon "
    "glacier hollow island jungle kettle ladder magnet needle oyster pillow quiver ribbon shadow timber"
).split()


class RulerNeedle:
    """RULER's needle-in-a-haystack format (niah_single with a word key and a number value)."""

    PREFIX = (
        "Some special magic {kind} are hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the {kind} afterwards."
    )
    NEEDLE = " One of the special magic {kind} for {key} is: {value}."
    QUESTION = (
        " What are all the special magic {kind} for {key} mentioned in the provided text?"
        " The special magic {kind} for {key} mentioned in the provided text are"
    )
    default_digits = 7
    default_needles = 1
    multikey = False
    kind = "numbers"  # of the values: numbers, words or uuids

    def draw(self, rng: random.Random, needles: int, digits: int, doubled=False, words=None, ask=None) -> Prompt:
        words = words or DEFAULT_WORDS
        if needles > 1 and not self.multikey:
            raise ValueError("the ruler format has one needle; use ruler-multikey for several")
        names: list[str] = []
        while len(names) < needles:  # distinct keys
            name = word_key(rng, words)
            if name not in names:
                names.append(name)
        values = [needle_value(rng, self.kind, words, digits, doubled) for _ in range(needles)]
        ask = rng.randrange(needles) if ask is None else ask
        texts = [self.NEEDLE.format(kind=self.kind, key=n, value=v) for n, v in zip(names, values)]
        question = self.QUESTION.format(kind=self.kind, key=names[ask])
        return Prompt(self.PREFIX.format(kind=self.kind), texts, question, values, ask)


class RulerMultikey(RulerNeedle):
    """RULER's niah_multikey: several needles with different word keys, one asked."""

    multikey = True
    default_needles = 4  # RULER's niah_multikey_1


class RulerWords(RulerNeedle):
    """RULER's single needle with a word-pair value ("special magic words")."""

    kind = "words"


class RulerUUID(RulerNeedle):
    """RULER's niah_single_3: a UUID value ("special magic uuids")."""

    kind = "uuids"


class Paraphrase:
    """One fact in one of several phrasings, asked in one of several others (training variety)."""

    NAMES = ["pass key", "secret code", "access code", "magic number", "special number", "secret number", "PIN"]
    PREFIXES = [
        "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them.",
        "Read the text below carefully. A number is hidden in it; remember it.",
        "Somewhere in this document there is a code. Keep it in mind.",
        "",
    ]
    NEEDLES = [
        " The {name} is {key}.",
        " The {name} is {key}. Remember it. {key} is the {name}.",
        " Remember this: the {name} is {key}.",
        " Note that the {name} is {key}.",
        " Important: the {name} is {key}. Do not forget it.",
    ]
    QUESTIONS = [
        " What is the {name}? The {name} is",
        " Question: what is the {name}? Answer: the {name} is",
        " Now recall the number. The {name} is",
        " The {name} mentioned in the text is",
    ]
    default_digits = 5
    default_needles = 1

    label = "paraphrase"  # the format's name in errors

    def draw(self, rng: random.Random, needles: int, digits: int, doubled=False, words=None, ask=None) -> Prompt:
        if needles > len(self.NAMES):
            raise ValueError(f"the {self.label} format has at most {len(self.NAMES)} needles")
        names = rng.sample(self.NAMES, needles)
        keys = [random_key(rng, digits, doubled) for _ in range(needles)]
        ask = rng.randrange(needles) if ask is None else ask
        texts = [
            rng.choice(self.NEEDLES).format(name=n, Name=n[0].upper() + n[1:], key=k) for n, k in zip(names, keys)
        ]  # {Name}: the name opening a sentence
        question = rng.choice(self.QUESTIONS).format(name=names[ask])
        return Prompt(rng.choice(self.PREFIXES), texts, question, keys, ask)


class Unseen(Paraphrase):
    """Phrasings kept out of every training format: an evaluation of generality, never trained on."""

    label = "unseen"

    NAMES = ["vault combination", "locker number", "ticket number", "room code", "serial number", "tracking code"]
    PREFIXES = [
        "Below is a long document. One fact in it matters later.",
        "The following text contains a detail you will be asked about.",
        "",
    ]
    NEEDLES = [
        " By the way, the {name} is {key}.",
        " Keep in mind that the {name} is {key}.",
        " For the record, the {name} is {key}.",
        " The {name} you will need is {key}.",
    ]
    QUESTIONS = [
        " Which {name} was given in the text? It was",
        " Please state the {name}. The {name} is",
        " The {name} given in the document above is",
    ]


class Varied(Paraphrase):
    """A fact in one of many phrasings, asked in one of many others, each part drawn on its own (training variety,
    wider than "paraphrase": 16 names x 12 statements x 12 questions x 7 instructions). None of its names,
    statements, questions or instructions is one of "unseen"'s, and no question ends on "unseen"'s answer leads
    ("It was", "... given in the document above is"), so "unseen" still measures phrasings the model never read."""

    NAMES = [
        "account number", "door code", "reference number", "order number", "booking code", "safe code",
        "badge number", "confirmation code", "member number", "invoice number", "licence number", "parcel code",
        "lucky number", "alarm code", "gate code", "customer number",
    ]  # fmt: skip
    PREFIXES = [
        "",
        "Read the following text.",
        "A number in the text below will matter later.",
        "Here is a long text. Remember any code or number it gives.",
        "Pay attention: somewhere below there is a number to remember.",
        "The following document is long, but one line of it is important.",
        "Memorize the number hidden in this text; you will be asked for it.",
    ]
    NEEDLES = [
        " The {name} is {key}.",
        " Here is the {name}: {key}.",
        " Write this down: the {name} is {key}.",
        " Your {name} is {key}.",
        " Please remember that my {name} is {key}.",
        " {Name}: {key}.",
        " The {name} for today is {key}.",
        " Someone said the {name} was {key}.",
        " Do not lose this {name}: {key}.",
        " I set the {name} to {key}.",
        " Note: {key} is the {name}.",
        " The {name} has been changed to {key}.",
    ]
    QUESTIONS = [
        " What was the {name}? The {name} was",
        " Tell me the {name}. Answer:",
        " Recall the {name} from the text. The {name} is",
        " Q: What is the {name}? A:",
        " What {name} was mentioned above? The {name} mentioned above is",
        " Do you remember the {name}? Yes, it is",
        " Find the {name} in the text above. The {name} is",
        " What is my {name}? Your {name} is",
        " Question: which number is the {name}? Answer:",
        " Repeat the {name}. The {name}:",
        " The {name} was",
        " Now, the {name}. It is",
    ]
    label = "varied"


FORMATS = {
    "passkey": PaperPasskey,
    "ruler": RulerNeedle,
    "ruler-multikey": RulerMultikey,
    "ruler-words": RulerWords,
    "ruler-uuid": RulerUUID,
    "paraphrase": Paraphrase,
    "varied": Varied,
    "unseen": Unseen,
}
EVALUATION_ONLY = {"unseen"}  # formats the trainer refuses


def get_format(name: str):
    if name not in FORMATS:
        raise ValueError(f"unknown prompt format {name!r}: choose one of {', '.join(FORMATS)}")
    return FORMATS[name]()

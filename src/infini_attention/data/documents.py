"""Long documents for language modelling: read whole, tokenized once, cached as memory-mapped arrays.

Sources (`load_corpus(source, tokenizer, split)`):
- a plain-text file: one document, or several by a split rule (below);
- a folder: every .txt/.md/.rst/.text file under it (recursively, sorted by path), each split by the
  same rule, and every .jsonl file read as JSON lines;
- a .jsonl file: one document per line, from its "text" field (named by "id" or "title" if present);
- "hf:<dataset>[:<config>]": the "train" split of a Hugging Face dataset, "text" field (needs
  `datasets`, imported only here, and the dataset already in the local cache when offline).

Split rules for text files:
- "file": the whole file is one document;
- "blank": documents are separated by one or more blank lines;
- "verse": one document per book of a Bible printed one verse a line with a prefix such as
  `Ge1:1 ...` (KJV) or `Genesis 1:1: ...` (WEB); lines without a prefix continue the current verse
  (WEB's poetry); the prefixes stay in the text;
- "regex:<pattern>": a new document starts at every line that matches the pattern, e.g.
  `regex:^CHAPTER [IVXLC]+`; text before the first match is a document of its own;
- "auto" (default): "verse" when the file's first lines carry verse prefixes, otherwise "file".

The token ids of all documents go into one flat `tokens.bin` (uint16 when the vocabulary fits, else
uint32) with `offsets.npy` (document d is tokens[offsets[d]:offsets[d+1]]) and `index.json`, in
`$INFINI_ATTENTION_CACHE`, else `$XDG_CACHE_HOME/infini-attention`, else `~/.cache/infini-attention`
(not beside the data: corpora often sit in read-only folders, and `hf:` sources have none). The
cache key hashes the source (paths, sizes, modification times), the split rule, the tokenizer (name,
vocabulary size and a fingerprint of its vocabulary) and CACHE_VERSION: editing the data or changing
the tokenizer builds a new cache (an `hf:` source is keyed by its name only: delete its cache folder
to re-read a dataset that changed).

Train/validation split: by whole documents, by a hash of each document's name, so it does not depend
on the training seed, on the order of the files, or on the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from infini_attention.data.tokenizers import Tokenizer, get_tokenizer

CACHE_VERSION = 1
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
# `Ge1:1 `, `SSol1:1 `, `1Sm2:3 ` (KJV) and `Genesis 1:1: `, `II John 1:1: `, `Revelation of John 22:21: ` (WEB)
VERSE_PREFIX = re.compile(r"^\s*(?P<book>[1-3]? ?[A-Z][A-Za-z]*(?: [A-Za-z]+)*?) ?\d+:\d+:? ")
SPLIT_RULES = ("auto", "file", "blank", "verse", "regex:<pattern>")


# ---------------------------------------------------------------------------------------------
# Reading documents


def split_text(text: str, rule: str = "auto", name: str = "doc") -> list[tuple[str, str]]:
    """(name, text) documents of one text by a split rule (see the module docstring); empty ones dropped."""
    if rule == "auto":
        rule = "verse" if _looks_like_verses(text) else "file"
    if rule == "file":
        docs = [(name, text)]
    elif rule == "blank":
        parts = re.split(r"\n[ \t]*\n(?:[ \t]*\n)*", text)
        docs = [(f"{name}#{i}", part) for i, part in enumerate(parts)]
    elif rule == "verse":
        docs = _split_verses(text, name)
    elif rule.startswith("regex:"):
        try:
            pattern = re.compile(rule[len("regex:") :], re.MULTILINE)
        except re.error as e:
            raise ValueError(f"bad split pattern {rule!r}: {e}") from None
        starts = sorted({0} | {m.start() for m in pattern.finditer(text)})
        ends = [*starts[1:], len(text)]
        docs = [(f"{name}#{i}", text[s:e]) for i, (s, e) in enumerate(zip(starts, ends))]
    else:
        raise ValueError(f"unknown split rule {rule!r}: choose one of {', '.join(SPLIT_RULES)}")
    return [(n, t) for n, t in docs if t.strip()]


def _looks_like_verses(text: str, lines: int = 20) -> bool:
    head = [line for line in text[:20_000].splitlines() if line.strip()][:lines]
    return len(head) > 0 and sum(bool(VERSE_PREFIX.match(line)) for line in head) >= 0.8 * len(head)


def _split_verses(text: str, name: str) -> list[tuple[str, str]]:
    """One document per book: a new document starts where the verse prefix names another book."""
    docs: list[tuple[str, list[str]]] = []
    current = None
    for line in text.splitlines(keepends=True):
        match = VERSE_PREFIX.match(line)
        if match and match["book"] != current:
            current = match["book"]
            docs.append((f"{name}:{current}", []))
        elif not docs:  # a preamble before the first verse is a document of its own
            docs.append((f"{name}:preamble", []))
        docs[-1][1].append(line)
    return [(n, "".join(lines)) for n, lines in docs]


def _source_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in (*TEXT_SUFFIXES, ".jsonl")
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise ValueError(f"{path}: no {'/'.join(TEXT_SUFFIXES)} or .jsonl files in this folder")
        return files
    return [path]


def _read_jsonl(path: Path, name: str) -> Iterator[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not JSON ({e})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}:{lineno}: expected an object with a string 'text' field")
            doc_id = record.get("id", record.get("title", lineno))
            yield f"{name}:{doc_id}", record["text"]


def iter_documents(source: str, split: str = "auto") -> Iterator[tuple[str, str]]:
    """(name, text) for every document of a source (see the module docstring), in a fixed order."""
    if source.startswith("hf:"):
        yield from _hf_documents(source[3:])
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data source {source} not found (a text file, folder, .jsonl file or hf:<dataset>)")
    for file in _source_files(path):
        name = str(file.relative_to(path)) if path.is_dir() else file.name
        if file.suffix.lower() == ".jsonl":
            yield from _read_jsonl(file, name)
        else:
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{file}: not UTF-8 text") from None
            yield from split_text(text, split, name)


def _hf_documents(spec: str) -> Iterator[tuple[str, str]]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"data source hf:{spec} needs the datasets package: pip install datasets") from None
    name, _, config = spec.partition(":")
    dataset = datasets.load_dataset(name, config or None, split="train")
    if "text" not in dataset.column_names:
        raise ValueError(f"hf:{spec} has no 'text' column (columns: {dataset.column_names})")
    for i, record in enumerate(dataset):
        yield f"{name}:{record.get('id', record.get('short_book_title', i))}", record["text"]


def _source_fingerprint(source: str) -> list:
    if source.startswith("hf:"):
        return [source]
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"data source {source} not found (a text file, folder, .jsonl file or hf:<dataset>)")
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in _source_files(path)]


# ---------------------------------------------------------------------------------------------
# The tokenized, memory-mapped corpus


def cache_root() -> Path:
    if os.environ.get("INFINI_ATTENTION_CACHE"):
        return Path(os.environ["INFINI_ATTENTION_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "infini-attention"


def tokenizer_key(tokenizer: Tokenizer) -> str:
    return f"{tokenizer.name}|{tokenizer.vocab_size}|{getattr(tokenizer, 'fingerprint', '')}"


class TokenizedCorpus:
    """Documents as token ids, memory-mapped: `doc(d)` is a read-only numpy view of document d."""

    def __init__(self, folder: Path, from_cache: bool):
        self.folder, self.from_cache = folder, from_cache
        self.index = json.loads((folder / "index.json").read_text())
        self.names: list[str] = self.index["names"]
        self.offsets = np.load(folder / "offsets.npy")
        total = int(self.offsets[-1])
        dtype = np.dtype(self.index["dtype"])
        # np.memmap refuses a zero-length file; a corpus is never empty (load_corpus checks)
        self.tokens = np.memmap(folder / "tokens.bin", dtype=dtype, mode="r", shape=(total,))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc(self, d: int) -> np.ndarray:
        return self.tokens[self.offsets[d] : self.offsets[d + 1]]

    def split(self, val: float) -> tuple[list[int], list[int]]:
        return split_documents(self.names, val)


def split_documents(names: list[str], val: float) -> tuple[list[int], list[int]]:
    """(train, validation) document indices, disjoint, each in corpus order.

    val: a fraction of the documents (0 < val < 1, at least one) or a count (val >= 1); 0 = no
    validation. The documents held out are those whose names hash lowest, so the split is the same
    on every machine and for every training seed.
    """
    n = len(names)
    if val < 0 or (val >= 1 and val != int(val)):
        raise ValueError(f"validation documents: a fraction in [0, 1) or a whole count, got {val}")
    count = 0 if val == 0 else (max(1, round(val * n)) if val < 1 else int(val))
    if count and count >= n:
        raise ValueError(
            f"the corpus has {n} document(s): cannot hold out {count} for validation and still train "
            "(split a single text file into documents with a split rule, e.g. --data-split blank)"
        )
    order = sorted(range(n), key=lambda i: hashlib.sha256(names[i].encode("utf-8")).digest())
    held_out = set(order[:count])
    return [i for i in range(n) if i not in held_out], sorted(held_out)


def load_corpus(
    source: str,
    tokenizer: str | Tokenizer = "byte",
    split: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> TokenizedCorpus:
    """Tokenize every document of `source` once (cached); later calls map the cache without reading the text."""
    tokenizer = get_tokenizer(tokenizer)
    key = json.dumps(
        {
            "version": CACHE_VERSION,
            "source": _source_fingerprint(source),
            "split": split,
            "tokenizer": tokenizer_key(tokenizer),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source.rstrip("/")).name or "data")[:40]
    folder = Path(cache_dir or cache_root() / "documents") / f"{slug}-{digest}"
    if (folder / "index.json").exists():
        return TokenizedCorpus(folder, from_cache=True)
    _build(source, tokenizer, split, folder, key, progress)
    return TokenizedCorpus(folder, from_cache=False)


def _build(source: str, tokenizer: Tokenizer, split: str, folder: Path, key: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    # uint16 halves the cache for vocabularies under 65536 (GPT-2's 50257 included)
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names, offsets, seen = [], [0], set()
    bar = tqdm(desc=f"tokenizing {Path(source).name}", unit="char", unit_scale=True, disable=not progress)
    with open(tmp / "tokens.bin", "wb") as out:
        for name, text in iter_documents(source, split):
            ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
            if len(ids) and (ids.min() < 0 or ids.max() >= tokenizer.vocab_size):
                raise ValueError(f"{tokenizer.name} produced ids outside [0, {tokenizer.vocab_size})")
            bar.update(len(text))
            if len(ids) == 0:
                continue
            unique, k = name, 1
            while unique in seen:  # names must be unique: the train/validation split hashes them
                unique, k = f"{name}~{k}", k + 1
            seen.add(unique)
            out.write(ids.astype(dtype).tobytes())
            names.append(unique)
            offsets.append(offsets[-1] + len(ids))
    bar.close()
    if not names:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"data source {source}: no documents (empty, or only whitespace)")
    np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    index = {
        "version": CACHE_VERSION,
        "key": json.loads(key),
        "source": source,
        "tokenizer": tokenizer.name,
        "dtype": np.dtype(dtype).name,
        "documents": len(names),
        "tokens": offsets[-1],
        "names": names,
    }
    (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process (a DDP rank) finished the same cache first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "index.json").exists():
            raise


# ---------------------------------------------------------------------------------------------
# The language-modelling task of the trainer

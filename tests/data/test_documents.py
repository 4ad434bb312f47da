"""Tokenizers, long-document corpora (splits, cache, train/validation) and the LM task's batches."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA
from infini_attention.data import documents
from infini_attention.data.documents import load_corpus, split_documents, split_text
from infini_attention.data.tokenizers import ByteTokenizer, GPT2Tokenizer, HFTokenizer, get_tokenizer
from infini_attention.train import TrainConfig
from infini_attention.train.tasks.lm import LMTask

TINY = DATA / "tiny_corpus.txt"
TINY_BOOKS = ["Ruth", "Psa", "Jonah", "Phmn", "2Jn", "3Jn"]
MIXED_TEXT = "Hello world! It's 2024.\n\n  Tabs\tand  spaces   \nÜnïcödé, 日本語, emoji 😀 and ĝ.\n"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFINI_ATTENTION_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------
# tokenizers


def test_byte_round_trip():
    tok = get_tokenizer("byte")
    assert tok.decode(tok.encode(MIXED_TEXT)) == MIXED_TEXT
    assert tok.encode("A") == [65]


def test_gpt2_known_ids_and_round_trip():
    tok = get_tokenizer("gpt2")
    assert tok.vocab_size == 50257 and tok.eos_id == 50256
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" the") == [262]
    assert tok.encode("It's") == [1026, 338]
    assert tok.decode([15496, 995]) == "Hello world"
    assert tok.decode(tok.encode(MIXED_TEXT)) == MIXED_TEXT
    text = TINY.read_text()
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < len(text) / 3  # BPE compresses English ~4 bytes a token


def test_gpt2_matches_hf_tokenizers():
    """Our plain-Python BPE gives the ids of Hugging Face's Rust byte-level BPE on the same files."""
    tokenizers = pytest.importorskip("tokenizers")
    from infini_attention.data.tokenizers import gpt2_files

    encoder, merges = gpt2_files()
    reference = tokenizers.ByteLevelBPETokenizer(str(encoder), str(merges))
    text = TINY.read_text()[:3000] + MIXED_TEXT
    assert get_tokenizer("gpt2").encode(text) == reference.encode(text).ids


def test_gpt2_explicit_files_must_come_in_pairs(tmp_path):
    with pytest.raises(ValueError, match="both"):
        GPT2Tokenizer(encoder_json=tmp_path / "encoder.json")


def test_unknown_tokenizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt5'"):
        get_tokenizer("gpt5")
    with pytest.raises(ValueError, match="needs a folder"):
        get_tokenizer("hf:")


def test_hf_tokenizer_object_and_folder(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = {"[UNK]": 0, "the": 1, "cat": 2, "sat": 3}
    raw = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    wrapped = HFTokenizer(raw)
    assert wrapped.vocab_size == 4 and wrapped.encode("the cat sat") == [1, 2, 3]
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    fast.save_pretrained(tmp_path / "tok")
    loaded = get_tokenizer(f"hf:{tmp_path / 'tok'}")
    assert loaded.name == f"hf:{tmp_path / 'tok'}"
    assert loaded.encode("the cat dog") == [1, 2, 0] and loaded.decode([1, 2]) == "the cat"
    with pytest.raises(FileNotFoundError):
        get_tokenizer(f"hf:{tmp_path / 'missing'}")


def test_importing_data_modules_does_not_import_transformers():
    code = (
        "import sys, infini_attention.data.tokenizers, infini_attention.data.documents, "
        "infini_attention.eval.perplexity; assert 'transformers' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# reading and splitting documents


def test_verse_split_gives_books_kjv_and_web_styles():
    docs = split_text(TINY.read_text(), "auto", "tiny")
    assert [name for name, _ in docs] == [f"tiny:{b}" for b in TINY_BOOKS]
    assert "".join(text for _, text in docs) == TINY.read_text()  # nothing lost, the prefixes kept
    web = (
        "Genesis 1:1: In the beginning.\nGenesis 1:2: A poem\n  that continues.\n"
        "  II John 1:1: The elder.\nRevelation of John 22:21: Amen.\n"
    )
    assert [n for n, _ in split_text(web, "verse", "w")] == ["w:Genesis", "w:II John", "w:Revelation of John"]
    assert "that continues" in split_text(web, "verse", "w")[0][1]


def test_other_split_rules():
    prose = "Chapter one.\nStill one.\n\n\nChapter two.\n \nChapter three.\n"
    assert [t.strip() for _, t in split_text(prose, "blank")] == [
        "Chapter one.\nStill one.",
        "Chapter two.",
        "Chapter three.",
    ]
    assert len(split_text(prose, "auto")) == 1  # no verse prefixes: the file is one document
    by_regex = split_text("preface\nCHAPTER I\na\nCHAPTER II\nb\n", r"regex:^CHAPTER ")
    assert [t for _, t in by_regex] == ["preface\n", "CHAPTER I\na\n", "CHAPTER II\nb\n"]
    with pytest.raises(ValueError, match="unknown split rule"):
        split_text(prose, "chapters")
    with pytest.raises(ValueError, match="bad split pattern"):
        split_text(prose, "regex:(")


def test_folder_and_jsonl_sources(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("first file")
    (tmp_path / "b" / "c.md").write_text("second file")
    (tmp_path / "b" / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "third", "id": "x"}) + "\n\n" + json.dumps({"text": "4th"}))
    docs = list(documents.iter_documents(str(tmp_path)))
    assert docs == [("a.txt", "first file"), ("b/c.md", "second file"), ("d.jsonl:x", "third"), ("d.jsonl:3", "4th")]
    (tmp_path / "bad.jsonl").write_text('{"body": "no text field"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: expected an object with a string 'text'"):
        load_corpus(str(tmp_path / "bad.jsonl"))


def test_hf_dataset_source(monkeypatch):
    """hf:<name>[:<config>] reads the train split's "text" column through datasets.load_dataset."""
    import types

    calls = []

    class FakeDataset(list):
        column_names = ["id", "text"]

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return FakeDataset([{"id": "a", "text": "first book"}, {"id": "b", "text": "second book"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    corpus = load_corpus("hf:pg19:books", "byte", progress=False)
    assert calls == [("pg19", "books", "train")] and corpus.names == ["pg19:a", "pg19:b"]
    assert bytes(corpus.doc(1).tolist()).decode() == "second book"
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed: a clear error
    with pytest.raises(ValueError, match="needs the datasets package"):
        load_corpus("hf:other", "byte", progress=False)


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_corpus(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("  \n\n ")
    with pytest.raises(ValueError, match="no documents"):
        load_corpus(str(tmp_path / "empty.txt"))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(ValueError, match="no .* files"):
        load_corpus(str(tmp_path / "empty_folder"))


# ---------------------------------------------------------------------------------------------
# the cache


def test_corpus_tokens_match_the_tokenizer():
    corpus = load_corpus(str(TINY), "byte", progress=False)
    assert len(corpus) == 6 and corpus.tokens.dtype == np.uint16
    for d, (_, text) in enumerate(split_text(TINY.read_text(), "auto", "x")):
        assert corpus.doc(d).tolist() == ByteTokenizer().encode(text)


def test_cache_reused_then_invalidated(tmp_path, monkeypatch):
    data = tmp_path / "corpus.txt"
    data.write_text(TINY.read_text())
    first = load_corpus(str(data), "byte", progress=False)
    assert not first.from_cache

    def no_encoding(self, text):
        raise AssertionError("the cached corpus was tokenized again")

    monkeypatch.setattr(ByteTokenizer, "encode", no_encoding)
    second = load_corpus(str(data), "byte", progress=False)
    assert second.from_cache and second.folder == first.folder
    assert np.array_equal(np.asarray(second.tokens), np.asarray(first.tokens))
    monkeypatch.undo()
    monkeypatch.setenv("INFINI_ATTENTION_CACHE", str(tmp_path / "cache"))

    other = load_corpus(str(data), "gpt2", progress=False)  # another tokenizer: another cache
    assert not other.from_cache and other.folder != first.folder
    assert get_tokenizer("gpt2").decode(other.doc(0)) == get_tokenizer("byte").decode(first.doc(0))
    split = load_corpus(str(data), "byte", split="file", progress=False)  # another split rule: another cache
    assert not split.from_cache and len(split) == 1
    data.write_text(TINY.read_text() + "Ex1:1 Now these are the names.\n")  # the data changed: rebuilt
    edited = load_corpus(str(data), "byte", progress=False)
    assert not edited.from_cache and len(edited) == 7


# ---------------------------------------------------------------------------------------------
# train / validation split


def test_split_by_document_is_disjoint_and_deterministic():
    corpus = load_corpus(str(TINY), "byte", progress=False)
    train, val = corpus.split(2)
    assert len(val) == 2 and sorted(train + val) == list(range(6)) and not set(train) & set(val)
    assert corpus.split(2) == (train, val)
    # the split depends on the names only, not on their order
    names = list(corpus.names)
    shuffled = names[::-1]
    _, val_shuffled = split_documents(shuffled, 2)
    assert {shuffled[i] for i in val_shuffled} == {names[i] for i in val}
    assert len(corpus.split(0.34)[1]) == 2 and len(corpus.split(0.01)[1]) == 1 and corpus.split(0)[1] == []
    with pytest.raises(ValueError, match="cannot hold out 6"):
        corpus.split(6)
    with pytest.raises(ValueError, match="whole count"):
        corpus.split(1.5)


# ---------------------------------------------------------------------------------------------
# the LM task


def _cfg(data, **kw) -> TrainConfig:
    return TrainConfig(**{"task": "lm", "data": str(data), "seq_len": 48, "batch_size": 6, "val_docs": 1, **kw})


def _alphabet_corpus(tmp_path) -> tuple[Path, list[str]]:
    """Documents over disjoint alphabets, of lengths below, at and above a window of 49 tokens."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "alphabets"
    folder.mkdir()
    texts = []
    for i, length in enumerate([30, 49, 50, 200, 333, 90]):
        letters = "abcdefghijklmnopqrstuvwxyz"[3 * i : 3 * i + 3]
        texts.append("".join(rng.choice(list(letters), size=length)))
        (folder / f"doc{i}.txt").write_text(texts[-1])
    return folder, texts


def test_lm_windows_stay_inside_one_document(tmp_path):
    folder, texts = _alphabet_corpus(tmp_path)
    task = LMTask(_cfg(folder, val_docs=0), segment_len=16, progress=False)
    seen_docs, padded = set(), 0
    for step in range(40):
        ids, labels = task.batch(step)
        assert ids.shape == labels.shape == (6, 48) and ids.dtype == labels.dtype == torch.long
        for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
            n_labels = sum(label != -100 for label in row_labels)
            assert all(label == -100 for label in row_labels[n_labels:])  # labels only at the front
            tokens = row_ids[:1] + row_labels[:n_labels]  # the window's real tokens
            text = bytes(tokens).decode()
            owners = [i for i, t in enumerate(texts) if text in t]
            assert len(owners) == 1, f"window {text!r} is not inside one document"
            shifted = row_ids[1 : n_labels + 1]  # labels are the inputs shifted by one
            assert shifted == row_labels[: len(shifted)]
            seen_docs.add(owners[0])
            if n_labels < 48:
                padded += 1
                assert len(texts[owners[0]]) < 49 and n_labels == len(texts[owners[0]]) - 1  # a short document, whole
                assert all(i == 0 for i in row_ids[n_labels + 1 :])
    assert seen_docs == set(range(6)) and padded > 0


def test_lm_batches_are_a_pure_function_of_step_rank_micro(tmp_path):
    cfg = _cfg(TINY)
    a, b = LMTask(cfg, 16, progress=False), LMTask(cfg, 16, progress=False)
    for step in (0, 7):
        assert all(torch.equal(x, y) for x, y in zip(a.batch(step), b.batch(step)))
    base = a.batch(3)[0]
    for other in (
        a.batch(4)[0],
        a.batch(3, rank=1)[0],
        a.batch(3, micro=1)[0],
        LMTask(_cfg(TINY, seed=1), 16, progress=False).batch(3)[0],
    ):
        assert not torch.equal(base, other)
    train_names = {a.corpus.names[d] for d in a.train_docs}
    assert train_names.isdisjoint(a.corpus.names[d] for d in a.val_docs)


def test_lm_evaluate_is_fixed_and_finite(tmp_path):
    from infini_attention.models import InfiniTransformer, ModelConfig

    task = LMTask(_cfg(TINY, seq_len=100, batch_size=3), 16, progress=False)
    assert len(task.val_windows) == LMTask.EVAL_WINDOWS
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=16)).eval()
    first = task.evaluate(model, "cpu", task.cfg)
    assert set(first) == {"val_loss", "val_ppl", "val_tokens"} and first["val_tokens"] == 8 * 100
    assert np.isfinite(first["val_loss"])
    assert abs(first["val_ppl"] - np.exp(first["val_loss"])) < 1e-6 * first["val_ppl"]
    assert task.evaluate(model, "cpu", task.cfg) == first
    assert LMTask(_cfg(TINY, val_docs=0), 16, progress=False).evaluate(model, "cpu", task.cfg) == {}


def test_lm_task_errors():
    with pytest.raises(ValueError, match="needs --data"):
        LMTask(TrainConfig(task="lm"), 16)
    with pytest.raises(ValueError, match="vocab_size=50257"):
        LMTask(_cfg(TINY, tokenizer="gpt2"), 16, progress=False)

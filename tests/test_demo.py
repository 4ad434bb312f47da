"""The demo and the shipped checkpoint."""

import json

from infini_attention.checkpoint import load_model
from infini_attention.cli.demo import DEFAULT_CHECKPOINT
from infini_attention.cli.main import main as cli
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.eval.passkey import evaluate_length


def test_shipped_checkpoint_finds_keys_through_the_memory_and_not_without_it():
    model = load_model(DEFAULT_CHECKPOINT)
    real = evaluate_length(model, ByteTokenizer(), 2048, [0.0, 0.5], keys=4, seed=1)
    reset = evaluate_length(model, ByteTokenizer(), 2048, [0.0, 0.5], keys=4, seed=1, reset_memory=True)
    assert all(r.in_memory for r in real), "the needles lie before the question's segment"
    assert sum(r.accuracy for r in real) / 2 >= 0.75, [r.answers for r in real]
    assert sum(r.accuracy for r in reset) == 0.0, [r.answers for r in reset]


def test_demo_runs_and_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo", "--lengths", "1K", "2K", "--depths", "0", "--keys", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "variants: key_shift" in text, "the demo says which variants the checkpoint uses"
    assert "| 2K | 0.00 |" in text and "KV cache" in text
    data = json.loads((out / "passkey.json").read_text())
    assert len(data["rows"]) == 4 and (out / "passkey.png").stat().st_size > 2000


def test_shipped_checkpoint_reads_prose_haystacks_in_both_formats():
    """Needles in running text (the repo's KJV chapters; the WEB Bible, the same text in modern English,
    was among the training prose) in the paper's and RULER's formats: found through the memory, not without it."""
    from conftest import DATA

    model = load_model(DEFAULT_CHECKPOINT)
    # RULER's question repeats the needle's words, which the linear-causal read also sees in the question's own
    # segment: 8 of 12 here (9 of 12 with the linear read of assets/passkey-e17; runs/EXPERIMENTS.md, session 5)
    for fmt, least in (("passkey", 0.75), ("ruler", 0.6)):
        kwargs = dict(keys=6, seed=2, haystack=str(DATA / "tiny_corpus.txt"), fmt=fmt)
        real = evaluate_length(model, ByteTokenizer(), 3000, [0.0, 0.5], **kwargs)
        reset = evaluate_length(model, ByteTokenizer(), 3000, [0.0, 0.5], reset_memory=True, **kwargs)
        assert all(r.in_memory for r in real)
        assert sum(r.accuracy * r.keys for r in real) / 12 >= least, [r.answers for r in real]
        assert sum(r.accuracy for r in reset) == 0.0, [r.answers for r in reset]

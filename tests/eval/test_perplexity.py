"""Streaming perplexity: carried state == one pass, the memory ablation, gates, and the train -> eval ppl CLI."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import DATA, assert_close
from infini_attention.cli.main import main
from infini_attention.eval.perplexity import (
    bucket_edges,
    chunked_nll,
    evaluate_perplexity,
    format_report,
    gate_table,
    gate_values,
    plot_gates,
)
from infini_attention.models import InfiniTransformer, ModelConfig

TINY = DATA / "tiny_corpus.txt"
SEG = 16


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFINI_ATTENTION_CACHE", str(tmp_path / "cache"))


def _model(attention: str = "infini") -> InfiniTransformer:
    # a large init makes the memory's contribution big enough to see in the ablation
    cfg = ModelConfig.from_name("tiny", segment_len=SEG, attention=attention, init_std=0.3)
    return InfiniTransformer(cfg).eval()


def _document(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (length,), generator=torch.Generator().manual_seed(seed))


def _one_pass_nll(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits, _ = model(tokens[None, :-1])
    return F.cross_entropy(logits[0].float(), tokens[1:], reduction="none").double()


def test_bucket_edges():
    assert bucket_edges()[:6] == [0, 2048, 8192, 32768, 131072, 524288]


@pytest.mark.parametrize("attention", ["infini", "local"])
def test_streaming_equals_one_pass(attention):
    """A document of 6+ segments, read 2 segments a call with the state carried, scores as one forward pass."""
    model = _model(attention)
    doc = _document(6 * SEG + 7)
    nll = _one_pass_nll(model, doc)
    result = evaluate_perplexity(model, [("doc", doc.numpy())], chunk_segments=2, first_bucket=SEG, progress=False)
    assert result["tokens"] == len(doc) - 1
    assert_close(torch.tensor(result["loss"]), nll.mean(), atol=1e-6, rtol=1e-6, what="streamed loss")
    # buckets by the predicted token's position: [1, 16), [16, 64), [64, 103)
    for row, (lo, hi) in zip(result["buckets"], [(1, 16), (16, 64), (64, len(doc))]):
        expected = math.exp(nll[lo - 1 : hi - 1].mean())
        assert row["tokens"] == hi - lo
        assert_close(torch.tensor(row["ppl"]), torch.tensor(expected), atol=0, rtol=1e-6, what=row["bucket"])
    assert len(result["buckets"]) == 3


def test_chunked_nll_equals_one_pass_with_labels():
    model = _model()
    ids = torch.stack([_document(5 * SEG + 3, seed) for seed in range(2)])
    labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], dim=1)
    labels[1, 40:] = -100
    with torch.no_grad():
        logits, _ = model(ids)
        expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
        total, count = chunked_nll(model, ids, labels, chunk_len=3 * SEG)
    assert count == int((labels != -100).sum())
    assert_close(torch.tensor(total), expected, atol=1e-4, rtol=1e-6, what="chunked sum")


def test_memory_is_bounded_by_the_chunk():
    """No forward call sees more than chunk_segments segments, however long the document."""
    model = _model()
    longest = []
    original = model.forward

    def spy(ids, state=None, **kw):
        longest.append(ids.shape[1])
        return original(ids, state, **kw)

    model.forward = spy
    evaluate_perplexity(model, [("doc", _document(20 * SEG + 5).numpy())], chunk_segments=3, progress=False)
    assert max(longest) == 3 * SEG and len(longest) > 7


def test_ablation_differs_for_infini_and_not_for_local():
    doc = _document(5 * SEG + 9, seed=1).numpy()
    infini = evaluate_perplexity(_model("infini"), [("doc", doc)], first_bucket=SEG, progress=False)
    first, *later = infini["buckets"]
    # the first segment reads an empty memory in both runs; later segments read it only in the real run
    assert_close(torch.tensor(first["ppl_reset"]), torch.tensor(first["ppl"]), atol=0, rtol=1e-6, what="segment 0")
    for row in later:
        assert abs(row["ppl_reset"] / row["ppl"] - 1) > 1e-3, f"memory reset changed nothing in {row['bucket']}"
    local = evaluate_perplexity(_model("local"), [("doc", doc)], first_bucket=SEG, progress=False)
    assert_close(torch.tensor(local["ppl_reset"]), torch.tensor(local["ppl"]), atol=0, rtol=1e-6, what="local")
    assert "ppl reset" in format_report(infini)


def test_gates_table_and_plot(tmp_path):
    model = _model()
    with torch.no_grad():
        model.layers[1].self_attn.beta.copy_(torch.tensor([-3.0, 0.0, 1.0, 3.0]))
    gates = gate_values(model)
    assert len(gates) == 2 and len(gates[0]) == 4
    assert_close(torch.tensor(gates[1]), torch.sigmoid(torch.tensor([-3.0, 0.0, 1.0, 3.0])), what="gates")
    assert "0.05  0.50  0.73  0.95" in gate_table(gates)
    assert plot_gates(gates, tmp_path / "gates.png")
    assert (tmp_path / "gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    local_gates = gate_values(_model("local"))
    assert local_gates == [None, None] and not plot_gates(local_gates, tmp_path / "none.png")
    assert "no gates" in gate_table(local_gates)


def test_errors():
    with pytest.raises(ValueError, match="no document"):
        evaluate_perplexity(_model(), [("short", [3])], progress=False)


def test_train_lm_then_eval_ppl_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--task",
            "lm",
            "--data",
            str(TINY),
            "--steps",
            "3",
            "--seq-len",
            "96",
            "--batch-size",
            "2",
            "--eval-every",
            "3",
            "--save-every",
            "3",
            "--warmup-steps",
            "1",
            "--model",
            f"segment_len={SEG}",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert math.isfinite(metrics[-1]["loss"]) and metrics[-1]["val_tokens"] > 0 and "val_ppl" in metrics[-1]
    assert (out / "checkpoint" / "model.safetensors").exists() and (out / "checkpoint" / "config.json").exists()
    capsys.readouterr()

    prefix = tmp_path / "ppl" / "kjv"
    code = main(
        [
            "eval",
            "ppl",
            "--checkpoint",
            str(out / "checkpoint"),
            "--data",
            str(TINY),
            "--max-tokens",
            "300",
            "--first-bucket",
            "64",
            "--out",
            str(prefix),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ppl reset" in printed and "layer" in printed
    result = json.loads(prefix.with_suffix(".json").read_text())
    assert result["documents"] == 1 and result["tokens"] == 299  # val_docs 0.05 of 6 -> 1 document
    assert [r["bucket"] for r in result["buckets"]] == ["0-64", "64-256", "256-1K"]
    assert prefix.with_suffix(".png").exists()
    assert main(["eval", "ppl", "--checkpoint", str(out / "checkpoint"), "--data", str(tmp_path / "none.txt")]) == 2

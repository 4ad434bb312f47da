"""The RULER evaluation: rows, scoring of what the model generates, the ablation, the report and the CLI."""

import json
import re
from types import SimpleNamespace

import pytest
import torch

from infini_attention import InfiniTransformer, ModelConfig
from infini_attention.cli.main import main
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.eval.models import EvalModel
from infini_attention.eval.ruler import evaluate_ruler, format_table, instance_seed, plot_heatmap, summary
from infini_attention.models.io import save_model

TOK = ByteTokenizer()


class Oracle(torch.nn.Module):
    """Reads the prompt it is fed and answers with the needle's value (or `wrong` digits): a stand-in for a
    model whose answer is known, so that the runner's generation and scoring can be checked."""

    def __init__(self, wrong=False):
        super().__init__()
        self.config = SimpleNamespace(segment_len=64, vocab_size=256)
        self.wrong, self.seen, self.answer, self.resets = wrong, [], None, 0

    def forward(self, ids, state=None, logits_to_keep=None):
        state = state or SimpleNamespace(position=0)
        self.seen += ids[0].tolist()
        found = re.findall(r"is: (\d+)\.", TOK.decode(self.seen))
        if self.answer is None and found:
            self.answer = list(TOK.encode(" " + ("0000000" if self.wrong else found[-1])))
        token = self.answer.pop(0) if self.answer else 10
        logits = torch.full((1, 1, 256), -1e9)
        logits[0, 0, token] = 0.0
        return logits, SimpleNamespace(position=state.position + ids.shape[1])

    def reset_memory(self, state):
        self.resets += 1
        return state


def oracle_model(wrong=False):
    model = Oracle(wrong)
    em = EvalModel(model, TOK, "oracle")
    return em, model


def test_the_generated_answer_is_scored():
    em, model = oracle_model()
    rows = evaluate_ruler(em, ["niah_single_1"], [1500], samples=1, ablation=False, progress=False)
    assert rows[0].score == 1.0 and rows[0].all_found == 1.0
    em, _ = oracle_model(wrong=True)
    rows = evaluate_ruler(em, ["niah_single_1"], [1500], samples=1, ablation=False, progress=False)
    assert rows[0].score == 0.0 and rows[0].answers[0]["prediction"].startswith(" 0000000")


def test_the_ablation_empties_the_memory_at_every_segment_boundary():
    em, model = oracle_model()
    rows = evaluate_ruler(em, ["niah_single_1"], [1500], samples=1, ablation=True, progress=False)
    assert [r.reset_memory for r in rows] == [False, True]
    assert model.resets >= rows[1].prompt_tokens // 64


def test_rows_of_a_real_model_and_the_report(tmp_path):
    torch.manual_seed(0)
    em = EvalModel(InfiniTransformer(ModelConfig.from_name("tiny", segment_len=64)).eval(), TOK, "tiny")
    rows = evaluate_ruler(em, ["niah_single_1", "vt"], [800, 1200], samples=2, ablation=800, progress=False)
    assert len(rows) == 2 * (2 + 1)
    for r in rows:
        assert 0.0 <= r.all_found <= r.score <= 1.0 or r.score < 1.0
        assert r.prompt_tokens <= r.length and r.samples == 2 and len(r.answers) == 2
    table = format_table(rows)
    assert table.count("\n") == 1 + 2 and "reset" in table
    assert set(summary(rows)["by_task"]) == {"niah_single_1", "vt"}
    assert plot_heatmap(rows, tmp_path / "r.png") and (tmp_path / "r.png").stat().st_size > 0
    assert instance_seed(0, "vt", 800, 0) != instance_seed(0, "vt", 1200, 0)


def test_cli_writes_the_report_and_refuses_to_overwrite(tmp_path, capsys):
    torch.manual_seed(0)
    folder = tmp_path / "model"
    save_model(InfiniTransformer(ModelConfig.from_name("tiny", segment_len=64)), folder)
    out = tmp_path / "res" / "ruler"
    argv = [
        "eval",
        "ruler",
        "--model",
        str(folder),
        "--tasks",
        "niah_single_1",
        "--lengths",
        "700",
        "--samples",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert len(data["rows"]) == 2 and "RULER" in out.with_suffix(".md").read_text()
    assert main(argv) == 2 and "overwrite" in capsys.readouterr().err
    assert main(["eval", "ruler", "--model", str(folder), "--tasks", "nope"]) == 2


@pytest.mark.parametrize("bad", [["--samples", "0"], ["--lengths", "abc"]])
def test_cli_bad_input(tmp_path, bad, capsys):
    assert main(["eval", "ruler", "--model", str(tmp_path), *bad]) == 2

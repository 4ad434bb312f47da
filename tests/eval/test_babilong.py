"""BABILong evaluation: prompts, BABILong's scoring rule, the runner with its memory ablation, the CLI."""

import json
from types import SimpleNamespace

import pytest
import torch

from infini_attention import InfiniTransformer, ModelConfig
from infini_attention.cli.main import main
from infini_attention.data import babi
from infini_attention.data.babi import Record
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.eval import babilong
from infini_attention.eval.babilong import TASK_LABELS, compare_answers, evaluate_babilong, format_prompt, score
from infini_attention.eval.models import EvalModel
from infini_attention.models.io import save_model

TOK = ByteTokenizer()
PLACES = TASK_LABELS["qa1"]


def tiny_model(**kw):
    torch.manual_seed(0)
    return InfiniTransformer(ModelConfig.from_name("tiny", segment_len=64, **kw)).eval()


# ---------------------------------------------------------------------------------------------
# scoring: BABILong's compare_answers


@pytest.mark.parametrize(
    "target, output, question, right",
    [
        ("bathroom", "The most recent location of Mary is bathroom.", "Where is Mary?", True),
        ("bathroom", "BATHROOM", "Where is Mary?", True),  # lower-cased
        ("bathroom", " bathroom\nQuestion: Where is John? kitchen", "Where is Mary?", False),  # two labels
        ("bathroom", "bathroom. Before that she was in the kitchen.", "Where is Mary?", True),  # first sentence
        ("bathroom", "kitchen. bathroom.", "Where is Mary?", False),
        ("bathroom", "the bathroom or the kitchen", "Where is Mary?", False),  # hedging is wrong
        ("bathroom", "I do not know", "Where is Mary?", False),
        ("bathroom", "<example> bathroom", "Where is Mary?", False),  # cut before an example it writes
        # the place named in the question is never the answer, so naming it again costs nothing
        (
            "garden",
            "Before the kitchen the football was in the garden.",
            "Where was the football before the kitchen?",
            True,
        ),
        ("garden", "The kitchen", "Where was the football before the kitchen?", False),
        ("bathroom", "bathrooms", "Where is Mary?", True),  # labels are found as substrings, as in BABILong
    ],
)
def test_compare_answers_follows_babilong(target, output, question, right):
    assert compare_answers(target, output, question, PLACES) is right


def test_tasks_without_labels_need_the_target_in_the_first_sentence():
    record = Record("", "What is Sandra carrying?", "milk", task="qa8")
    assert score(record, "milk,apple") and not score(record, "nothing. milk")
    assert score(Record("", "Is Mary in the office?", "no", task="qa6"), "no")
    assert not score(Record("", "Is Mary in the office?", "no", task="qa6"), "yes or no")


# ---------------------------------------------------------------------------------------------
# prompts


def test_prompts_follow_babilongs_template():
    r = Record("Mary moved to the bathroom. The sky is blue. ", "Where is Mary?", "bathroom", task="qa1")
    text = format_prompt(r)
    instruction, post = babilong.PROMPTS["qa1"]["instruction"], babilong.PROMPTS["qa1"]["post_prompt"]
    tail = "<context>\nMary moved to the bathroom. The sky is blue.\n</context>\n\nQuestion: Where is Mary?"
    assert text == f"{instruction}\n\n\n\n{post}\n\n{tail}"  # the examples' place left empty, as BABILong does
    with_examples = format_prompt(r, examples=True)
    assert with_examples == f"{instruction}\n\n{babilong.PROMPTS['qa1']['examples']}\n\n{post}\n\n{tail}"
    assert format_prompt(r, bare=True) == tail
    with pytest.raises(ValueError, match="no BABILong prompt for qa7"):
        format_prompt(Record("x", "How many objects is Mary carrying?", "one", task="qa7"))
    assert format_prompt(Record("x", "q?", "one", task="qa7"), bare=True).endswith("Question: q?")


# ---------------------------------------------------------------------------------------------
# the runner


class Oracle(torch.nn.Module):
    """A stand-in model that reads its whole prompt and spells out an answer to it after "Answer:".

    answers: a function of the record whose context and question end the prompt."""

    def __init__(self, records, answer):
        super().__init__()
        self.config = SimpleNamespace(segment_len=64, vocab_size=256)
        self.weight = torch.nn.Parameter(torch.zeros(1))  # the runner asks the parameters for the device
        self.records, self.answer = records, answer

    def forward(self, ids, state=None, logits_to_keep=0):
        seen = (state or []) + ids[0].tolist()
        logits = torch.zeros(1, 1, 256)
        text = bytes(seen).decode("utf-8", errors="replace")
        if babilong.ANSWER_PREFIX in text:
            prompt, _, written = text.rpartition(babilong.ANSWER_PREFIX)
            (record,) = [
                r
                for r in self.records
                if prompt.endswith(f"<context>\n{r.input.strip()}\n</context>\n\nQuestion: {r.question}")
            ]
            full = f" {self.answer(record)}.\n"
            logits[0, 0, ord(full[len(written)]) if len(written) < len(full) else ord("\n")] = 1.0
        return logits, seen

    def reset_memory(self, state):
        return state


def records_of_every_kind():
    return [
        r
        for task in ("qa1", "qa2", "qa3")
        for length in (0, 300)
        for r in babi.generate_cell(task, TOK, length, 2, seed=7)
    ]


def wrong(record):
    """A place that is neither the target nor named in the question."""
    return sorted(p for p in PLACES if p != record.target and p not in record.question)[0]


def test_a_model_that_answers_right_scores_one_and_one_that_answers_wrong_scores_zero():
    records = records_of_every_kind()
    right = evaluate_babilong(EvalModel(Oracle(records, lambda r: r.target), TOK, "oracle"), records, ablation=False)
    assert len(right) == len(records) and all(a.correct for a in right)
    assert [a.output for a in right] == [f"{r.target}." for r in records]  # stripped of the newlines after it
    assert babilong.summary(right) == {"accuracy": 1.0}
    liar = evaluate_babilong(EvalModel(Oracle(records, wrong), TOK, "liar"), records, ablation=False, progress=False)
    assert not any(a.correct for a in liar) and babilong.summary(liar) == {"accuracy": 0.0}
    # the full answer format of BABILong's post-prompt scores too
    records = records[:2]
    full = EvalModel(
        Oracle(records, lambda r: f"The most recent location of {r.question[9:-1]} is {r.target}"), TOK, ""
    )
    answers = evaluate_babilong(full, records, ablation=False, max_new_tokens=80)
    assert all(a.correct for a in answers), [a.output for a in answers]


def test_published_records_go_through_the_same_path(tmp_path):
    (tmp_path / "0k").mkdir()
    rows = [{"input": "Sandra went to the office.", "question": "Where is Sandra?", "target": "office"}]
    (tmp_path / "0k" / "qa1.jsonl").write_text(json.dumps(rows[0]) + "\n")
    records = babi.read_babilong(tmp_path)
    answers = evaluate_babilong(EvalModel(Oracle(records, lambda r: r.target), TOK, "o"), records, ablation=False)
    assert [(a.task, a.length, a.correct, a.seed) for a in answers] == [("qa1", "0k", True, None)]


def test_the_runner_on_a_tiny_model_gives_every_cell_and_the_ablation(tmp_path):
    records = records_of_every_kind()
    em = EvalModel(tiny_model(), TOK, "tiny")
    answers = evaluate_babilong(em, records, max_new_tokens=6, progress=False)
    assert len(answers) == 2 * len(records) and sum(a.reset_memory for a in answers) == len(records)
    for a, r in zip(answers, records + records):
        assert (a.task, a.length, a.target, a.question, a.seed) == (r.task, r.length, r.target, r.question, r.seed)
        assert a.prompt_tokens == len(babilong.prompt_ids(em, r)) and len(a.output) <= 6
    assert [a.index for a in answers[:4]] == [0, 1, 0, 1]
    cells = babilong.cells(answers)
    assert len(cells) == 3 * 2 * 2 and all(c["n"] == 2 and 0.0 <= c["accuracy"] <= 1.0 for c in cells)
    table = babilong.format_table(answers)
    assert table.splitlines()[0] == "| task | 0k | 300 |" and len(table.splitlines()) == 2 + 3
    assert "reset" in table
    babilong.save_json(answers, tmp_path / "r.json", extra={"model": "tiny"})
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["answers"]) == len(answers) and len(data["cells"]) == 12 and data["model"] == "tiny"
    pytest.importorskip("matplotlib")
    babilong.plot_heatmap(answers, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_the_memory_reset_changes_nothing_for_a_local_model():
    records = babi.generate_cell("qa1", TOK, 400, 2, seed=1)
    answers = evaluate_babilong(EvalModel(tiny_model(attention="local"), TOK, "local"), records, max_new_tokens=8)
    real, reset = answers[:2], answers[2:]
    assert [a.output for a in real] == [a.output for a in reset] and all(a.reset_memory for a in reset)


def test_the_cli_writes_its_files_and_refuses_to_overwrite_them(tmp_path, capsys):
    save_model(tiny_model(), tmp_path / "model")
    out = tmp_path / "results" / "babilong"
    argv = ["eval", "babilong", "--model", str(tmp_path / "model"), "--generate", "--tasks", "qa1", "qa3"]
    argv += ["--lengths", "0", "200", "--samples", "2", "--max-new-tokens", "3", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    for suffix in (".json", ".md", ".png"):
        assert out.with_name("babilong" + suffix).exists(), suffix
    data = json.loads(out.with_name("babilong.json").read_text())
    assert len(data["answers"]) == 2 * 2 * 2 * 2 and {a["task"] for a in data["answers"]} == {"qa1", "qa3"}
    report = out.with_name("babilong.md").read_text()
    assert "| task | 0k | 200 |" in report and "babilong.png" in report and "look back" not in report
    looked = out.with_name("looked")
    assert main([*argv[:-1], str(looked), "--look-back", "16/2"]) == 0
    assert "local look back: tail 16, sink 2" in looked.with_suffix(".md").read_text()
    assert main(argv) == 2
    assert "already exist" in capsys.readouterr().err
    assert main(argv[:-2] + ["--tasks", "qa7"]) == 2
    assert "--generate makes qa1, qa2, qa3" in capsys.readouterr().err

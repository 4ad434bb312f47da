"""BABILong data: the qa1-qa3 generator (answers, facts in order, lengths) and the reader of published sets."""

import json
import random
import re
import sys
import types

import pytest

from conftest import DATA
from infini_attention.data import babi
from infini_attention.data.haystack import TextHaystack
from infini_attention.data.tokenizers import ByteTokenizer

TOK = ByteTokenizer()
CORPUS = str(DATA / "tiny_corpus.txt")

# An independent reading of the generated facts: the world re-simulated from the text alone.
NAME = r"(Mary|John|Daniel|Sandra)"
MOVE = re.compile(NAME + r" (?:moved|went|journeyed|travelled|went back) to the (\w+)\.")
GET = re.compile(NAME + r" (?:picked up|got|grabbed|took) the (\w+) there\.")
DROP = re.compile(NAME + r" (?:dropped|discarded|put down|left) the (\w+) there\.")
FACT = re.compile("|".join(f"(?:{p.pattern})" for p in (MOVE, GET, DROP)))


def solve(facts: list[str], question: str) -> str:
    """The answer to a qa1/qa2/qa3 question, from the facts read as text."""
    person_at, holder, trail = {}, {}, {}

    def put(obj, place):
        if not trail.get(obj) or trail[obj][-1] != place:
            trail.setdefault(obj, []).append(place)

    for fact in facts:
        if m := MOVE.fullmatch(fact):
            person_at[m[1]] = m[2]
            for obj, who in holder.items():
                if who == m[1]:
                    put(obj, m[2])
        elif m := GET.fullmatch(fact):
            holder[m[2]] = m[1]
            put(m[2], person_at[m[1]])  # a person is somewhere known before picking anything up
        elif m := DROP.fullmatch(fact):
            assert holder.pop(m[2]) == m[1], f"{fact}: {m[1]} did not hold the {m[2]}"
        else:
            raise AssertionError(f"not a fact: {fact!r}")
    if m := re.fullmatch(r"Where is (\w+)\?", question):
        return person_at[m[1]]
    if m := re.fullmatch(r"Where is the (\w+)\?", question):
        return trail[m[1]][-1]
    m = re.fullmatch(r"Where was the (\w+) before the (\w+)\?", question)
    places = trail[m[1]]
    assert places.count(m[2]) == 1, f"{question} is ambiguous: {places}"
    return places[places.index(m[2]) - 1]


QUESTIONS = {"qa1": r"Where is \w+\?", "qa2": r"Where is the \w+\?", "qa3": r"Where was the \w+ before the \w+\?"}


@pytest.mark.parametrize("task", ["qa1", "qa2", "qa3"])
def test_the_target_follows_from_the_facts(task):
    lo, hi = babi.FACTS[task]
    targets = set()
    for seed in range(200):
        story = babi.make_story(task, random.Random(seed))
        assert re.fullmatch(QUESTIONS[task], story.question), story.question
        assert solve(story.facts, story.question) == story.target, (seed, story)
        assert lo <= len(story.facts) <= hi + 20
        targets.add(story.target)
    assert targets == set(babi.PLACES), "every place is an answer sometimes"


@pytest.mark.parametrize("haystack", [None, CORPUS])
@pytest.mark.parametrize("task", ["qa1", "qa2", "qa3"])
def test_facts_stay_in_order_in_the_background_and_the_length_is_reached(task, haystack):
    longest = max(len(TOK.encode(" " + s)) for s in TextHaystack.from_files([CORPUS]).sentences)
    for length in (1, 300, 1000, 2047):
        for i in range(3):
            r = babi.generate(task, TOK, length, seed=babi.instance_seed(0, task, length, i), haystack=haystack)
            found = [m[0] for m in FACT.finditer(r.input)]
            assert found == r.facts, "the facts, and only they, appear in the input, in their order"
            assert solve(found, r.question) == r.target
            n = len(TOK.encode(r.input))
            facts_only = len(TOK.encode(" ".join(r.facts)))
            if facts_only >= length:
                assert r.input == " ".join(r.facts)
            else:
                assert n <= length and length - n < longest, (n, length)
            assert (r.task, r.length) == (task, babi.length_label(length))


def test_length_zero_is_the_facts_alone():
    r = babi.generate("qa1", TOK, 0, seed=1)
    assert r.input == " ".join(r.facts) and r.length == "0k"


def test_generation_is_deterministic_and_every_instance_fresh():
    a = babi.generate_cell("qa2", TOK, 600, 4, seed=3, haystack=CORPUS)
    b = babi.generate_cell("qa2", TOK, 600, 4, seed=3, haystack=CORPUS)
    assert a == b
    assert len({r.input for r in a}) == 4
    c = babi.generate_cell("qa2", TOK, 600, 4, seed=4, haystack=CORPUS)
    assert all(x.input != y.input for x, y in zip(a, c))
    # another length draws other stories, not the same ones cut differently
    d = babi.generate_cell("qa2", TOK, 700, 4, seed=3, haystack=CORPUS)
    assert [r.facts for r in a] != [r.facts for r in d]


def test_the_generator_refuses_other_tasks():
    with pytest.raises(ValueError, match="qa1, qa2, qa3"):
        babi.generate("qa4", TOK, 100, seed=0)
    with pytest.raises(ValueError, match="unknown task"):
        babi.generate("qa21", TOK, 100, seed=0)


def test_lengths_parse_and_sort():
    assert babi.parse_length("0k") == 0 and babi.parse_length("4K") == 4096 and babi.parse_length("1000") == 1000
    assert sorted(["128k", "0k", "4k", "1k"], key=babi.length_value) == ["0k", "1k", "4k", "128k"]


# ---------------------------------------------------------------------------------------------
# the reader

ROWS = [
    {"input": "Mary moved to the bathroom. The grass is green.", "question": "Where is Mary?", "target": "bathroom"},
    {"input": "John went to the garden.", "question": "Where is John?", "target": "garden"},
]


def write_set(root):
    (root / "0k").mkdir(parents=True)
    (root / "1k").mkdir()
    (root / "0k" / "qa1.json").write_text(json.dumps(ROWS))
    (root / "0k" / "qa2.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    columns = {k: [r[k] for r in ROWS] for k in ("input", "question", "target")}
    (root / "1k" / "qa1.json").write_text(json.dumps(columns))
    (root / "1k" / "qa2.jsonl").write_text(json.dumps(ROWS[1]) + "\n")


def test_the_reader_reads_a_folder_by_length_and_task(tmp_path):
    write_set(tmp_path)
    records = babi.read_babilong(tmp_path)
    assert [(r.length, r.task) for r in records] == [("0k", "qa1")] * 2 + [("0k", "qa2")] * 2 + [("1k", "qa1")] * 2 + [
        ("1k", "qa2")
    ]
    assert [r.target for r in records[:2]] == ["bathroom", "garden"]
    assert records[4].input == ROWS[0]["input"] and records[4].question == "Where is Mary?"
    only = babi.read_babilong(tmp_path, tasks=["qa2"], lengths=["1k"])
    assert len(only) == 1 and only[0].target == "garden" and (only[0].task, only[0].length) == ("qa2", "1k")
    single = babi.read_babilong(tmp_path / "0k" / "qa2.jsonl")
    assert [(r.task, r.length) for r in single] == [("qa2", "0k")] * 2
    one_length = babi.read_babilong(tmp_path / "1k")
    assert {r.length for r in one_length} == {"1k"} and len(one_length) == 3


def test_the_reader_reads_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    (tmp_path / "2k").mkdir()
    pd.DataFrame(ROWS).to_parquet(tmp_path / "2k" / "qa3.parquet")
    records = babi.read_babilong(tmp_path)
    assert [(r.task, r.length, r.target) for r in records] == [("qa3", "2k", "bathroom"), ("qa3", "2k", "garden")]


def test_the_reader_says_what_is_wrong(tmp_path):
    write_set(tmp_path)
    with pytest.raises(ValueError, match="unknown task"):
        babi.read_babilong(tmp_path, tasks=["qa99"])
    with pytest.raises(ValueError, match="no length '4k'; it has 0k, 1k"):
        babi.read_babilong(tmp_path, lengths=["4k"])
    with pytest.raises(ValueError, match="has no file for qa3"):
        babi.read_babilong(tmp_path, tasks=["qa3"])
    with pytest.raises(ValueError, match="does not exist"):
        babi.read_babilong(tmp_path / "nothing")
    bad = tmp_path / "bad" / "8k"
    bad.mkdir(parents=True)
    (bad / "qa1.jsonl").write_text(json.dumps({"input": "x", "question": "Where is Mary?"}) + "\n")
    with pytest.raises(ValueError, match="lacks the field.*target"):
        babi.read_babilong(bad / "qa1.jsonl")
    (bad / "qa1.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        babi.read_babilong(bad / "qa1.jsonl")
    (bad / "qa1.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        babi.read_babilong(bad / "qa1.jsonl")
    (bad / "qa1.jsonl").write_text("[]")
    with pytest.raises(ValueError, match="not an object|holds no records|not valid JSON"):
        babi.read_babilong(bad / "qa1.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no BABILong files"):
        babi.read_babilong(tmp_path / "empty")
    (tmp_path / "notes.json").write_text(json.dumps(ROWS))
    with pytest.raises(ValueError, match="not named after a task"):
        babi.read_babilong(tmp_path / "notes.json")
    assert len(babi.read_babilong(tmp_path / "notes.json", tasks=["qa1"])) == 2


def test_a_hub_name_fails_offline_with_a_way_out(monkeypatch):
    def load_dataset(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'RMT-team/babilong' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(ValueError, match="give the lengths"):
        babi.read_babilong("hf:RMT-team/babilong")
    with pytest.raises(ValueError, match="Nothing can be downloaded.*--data FOLDER"):
        babi.read_babilong("hf:RMT-team/babilong", tasks=["qa1"], lengths=["0k"])

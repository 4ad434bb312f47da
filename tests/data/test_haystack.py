"""Prose haystacks, needle formats and the evaluation's per-cell instances."""

import random

import pytest
import torch

from infini_attention import InfiniTransformer, ModelConfig
from infini_attention.data import passkey
from infini_attention.data.formats import FORMATS, RulerNeedle, get_format
from infini_attention.data.haystack import TextHaystack, get_haystack, word_list
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.eval.passkey import cell_instances, evaluate_length, format_table, found_via

TOK = ByteTokenizer()
PROSE = [
    "The river ran past the old mill. Nobody had worked there for years! Was it haunted? Children said so.",
    "In winter the ice grew thick and the wheel stood still. Only the crows came then.",
    "A merchant bought the mill in spring; he painted its doors green. It turned again by summer.",
]


@pytest.fixture(scope="module")
def prose_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hay") / "prose.txt"
    path.write_text("\n".join(PROSE) + "\n")
    return path


def test_text_haystack_has_the_exact_length_and_needles_between_sentences(prose_file):
    sentences = set(TextHaystack(PROSE).sentences)
    for seed in range(20):
        length = 700 + 37 * seed
        depth = random.Random(seed).random()
        inst = passkey.make_instance(TOK, length, depth, seed=seed, haystack=str(prose_file))
        ids = inst.prompt_ids()
        assert len(ids) == inst.length == length
        start, end = inst.needle_spans[0]
        assert TOK.decode(ids[start:end].tolist()) == passkey.NEEDLE.format(key=inst.key)
        before = TOK.decode(ids[inst.prefix_len : start].tolist())
        # the text before the needle ends with a whole sentence, the text after starts one
        assert before == "" or any(before.endswith(s) for s in sentences), before[-60:]
        after = TOK.decode(ids[end : end + 20].tolist()).lstrip()
        assert any(s.startswith(after[:15]) for s in sentences) or end == length - inst.question_len


def test_text_haystack_start_follows_the_seed(prose_file):
    a, b = (passkey.make_instance(TOK, 900, 0.5, seed=4, haystack=str(prose_file)) for _ in range(2))
    assert torch.equal(a.prompt_ids(), b.prompt_ids())
    starts = {
        TOK.decode(
            passkey.make_instance(TOK, 900, 0.5, seed=s, haystack=str(prose_file)).prompt_ids()[150:170].tolist()
        )
        for s in range(12)
    }
    assert len(starts) > 3, "different seeds start the haystack at different sentences"


def test_a_million_token_paper_haystack_stays_lazy_and_text_haystack_errors_are_clear(tmp_path):
    big = passkey.make_instance(TOK, 1 << 20, 0.3, seed=0, fmt="ruler")
    assert sum(len(s.unit) for s in big.spans) < 2000
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="no sentences"):
        get_haystack(str(empty))
    with pytest.raises(ValueError, match="does not exist"):
        get_haystack(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="unknown prompt format"):
        get_format("nope")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_asks_for_one_of_its_needles(fmt, prose_file):
    form = get_format(fmt)
    needles = form.default_needles
    depths = 0.4 if needles == 1 else [0.2, 0.4, 0.6, 0.8]
    for seed in range(5):
        inst = passkey.make_instance(TOK, 1500, depths, seed=seed, fmt=fmt, haystack=str(prose_file))
        text = TOK.decode(inst.prompt_ids().tolist())
        assert len(inst.keys) == needles and len(set(inst.keys)) == needles
        kind = getattr(form, "kind", "numbers")
        if kind == "numbers":
            assert all(k.isdigit() and len(k) == form.default_digits for k in inst.keys)
        elif kind == "uuids":
            assert all(len(k) == 36 and k.count("-") == 4 for k in inst.keys)
        else:
            assert all(k.count("-") == 1 and k.replace("-", "").isalpha() for k in inst.keys)
        assert TOK.decode(inst.answer_ids) == " " + inst.key
        for start, end in inst.needle_spans:
            assert TOK.decode(inst.prompt_ids()[start:end].tolist()).strip()[0].isupper()
        if fmt.startswith("ruler"):
            name = text.rsplit(f"special magic {kind} for ", 1)[1].split(" ")[0]
            asked = TOK.decode(inst.prompt_ids()[slice(*inst.needle_spans[inst.ask])].tolist())
            assert asked == RulerNeedle.NEEDLE.format(kind=kind, key=name, value=inst.key)


def test_ruler_keys_come_from_the_haystack_words(prose_file):
    words = set(get_haystack(str(prose_file)).words)
    assert {"river", "mill", "winter"} <= words
    inst = passkey.make_instance(TOK, 1200, 0.5, seed=1, fmt="ruler", haystack=str(prose_file))
    key = TOK.decode(inst.prompt_ids().tolist()).rsplit("numbers for ", 1)[1].split(" ")[0]
    assert set(key.split("-")) <= words
    assert word_list("alpha beta beta gamma gamma gamma", size=2) == ["beta", "gamma"]


def test_every_cell_draws_fresh_keys():
    keys = {}
    for length in (1000, 1500):
        for depth in (0.0, 0.5):
            keys[length, depth] = [i.key for i in cell_instances(TOK, length, depth, 4)]
    flat = [k for cell in keys.values() for k in cell]
    assert len(set(flat)) == len(flat), "no key repeats across cells"
    again = [i.key for i in cell_instances(TOK, 1000, 0.0, 4)]
    assert again == keys[1000, 0.0], "and the same cell gives the same keys"


def test_rows_are_split_by_where_the_needle_sits(prose_file):
    torch.manual_seed(0)
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=64)).eval()
    # depth 1: the needle ends right before the question, so it sits in the local window or straddles the boundary
    rows = evaluate_length(model, TOK, 1000, [0.0, 1.0], 6, haystack=str(prose_file))
    assert sum(r.keys for r in rows) == 12
    for r in rows:
        assert r.found_via in ("memory", "straddling", "local window")
        assert (r.memory_share is not None) == (r.found_via == "memory"), (
            "the key share only where the needle is in memory"
        )
    insts = cell_instances(TOK, 1000, 1.0, 6, haystack=str(prose_file))
    vias = {found_via(i, 64) for i in insts}
    assert {r.found_via for r in rows if r.depth == 1.0} == vias
    assert "straddling" in format_table(rows) or "local window" in format_table(rows)


def test_multikey_training_batches_pad_mixed_answers(prose_file):
    rng = random.Random(0)
    insts = passkey.training_instances(
        TOK, 6, 1200, rng, digits=None, segment_len=128, needles=4, fmt="ruler-multikey", haystack=str(prose_file)
    )
    assert all(len(i.keys) == 4 for i in insts)
    ids, labels = passkey.batch_tensors(insts)
    assert ids.shape[0] == 6 and (labels != -100).sum() == 6 * 8  # " " + 7 digits each


def test_unseen_format_shares_no_phrasing_with_training_and_the_trainer_refuses_it():
    from infini_attention.data.formats import Paraphrase, Unseen
    from infini_attention.train.config import TrainConfig

    for part in ("NAMES", "NEEDLES", "QUESTIONS"):
        assert not set(getattr(Unseen, part)) & set(getattr(Paraphrase, part)), part
    assert not set(Unseen.NAMES) & {"pass key", "special magic number"}
    with pytest.raises(ValueError, match="for evaluation only"):
        TrainConfig(task="passkey", formats=["passkey", "unseen"]).validate()
    TrainConfig(task="passkey", formats=["passkey", "paraphrase"]).validate()


def test_varied_format_shares_no_phrasing_or_answer_lead_with_unseen_and_states_what_it_asks():
    import random

    from infini_attention.data.formats import Unseen, Varied
    from infini_attention.train.config import TrainConfig

    for part in ("NAMES", "NEEDLES", "QUESTIONS", "PREFIXES"):
        shared = set(getattr(Unseen, part)) & set(getattr(Varied, part))
        assert shared <= {""}, (part, shared)  # only "no instruction" is common
    unseen_words = {w for n in Unseen.NAMES for w in n.split()} - {"number", "code"}
    assert not {w for n in Varied.NAMES for w in n.split()} & unseen_words  # no "ticket", "vault", "room", ...
    for question in Varied.QUESTIONS:  # unseen's answer leads stay unseen
        assert not question.endswith(("It was", "given in the document above is")), question
    rng = random.Random(0)
    for needles in (1, 3):
        for _ in range(50):
            p = Varied().draw(rng, needles, 5)
            asked = Varied.NAMES[[n in p.question for n in Varied.NAMES].index(True)]
            stated = [t for t in p.needles if asked in t or asked.capitalize() in t]
            assert len(stated) == 1 and p.answer.strip() in stated[0], (p.needles, p.question)
    with pytest.raises(ValueError, match="at most 16 needles"):
        Varied().draw(rng, 17, 5)
    TrainConfig(task="passkey", formats=["passkey", "varied"]).validate()

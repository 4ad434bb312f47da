"""RULER's synthetic tasks: every instance holds its answer, fits its length and follows RULER's rules."""

import re
from collections import Counter

import pytest

from infini_attention.data.haystack import TextHaystack
from infini_attention.data.ruler import (
    NEEDLE,
    TASKS,
    Wrapper,
    make_instance,
    string_match_all,
    string_match_part,
)
from infini_attention.data.tokenizers import ByteTokenizer

TOK = ByteTokenizer()
PLACES = "river orchard market chapel bridge garden meadow forest tower castle harbor mill quarry cellar attic".split()
PROSE = TextHaystack(  # 60 paragraphs of plain sentences: enough distinct words for RULER's word keys
    [
        f"Paragraph {p} starts here. The {PLACES[p % 15]} of the valley was quiet that year. Nobody spoke of the "
        f"harvest in {p + 1800}. Rain came late, and the {PLACES[(p * 7) % 15]} stayed dry until autumn."
        for p in range(60)
    ]
    + ["Alpha beta gamma delta epsilon zeta theta iota kappa lambda sigma omega north south east west."]
)


def text(inst):
    return TOK.decode(inst.prompt_ids)


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("length", [1500, 4000])
def test_every_task_holds_its_answer_and_fits_its_length(task, length):
    inst = make_instance(task, TOK, length, seed=3, haystack=PROSE)
    assert inst.task == task
    assert 0.75 * length < inst.length <= length - inst.tokens_to_generate
    prompt = text(inst)
    assert inst.outputs and all(o in prompt for o in inst.outputs)
    assert inst.prompt_ids == make_instance(task, TOK, length, seed=3, haystack=PROSE).prompt_ids  # seeded
    assert inst.prompt_ids != make_instance(task, TOK, length, seed=4, haystack=PROSE).prompt_ids


def needles(prompt):
    return re.findall(r"One of the special magic (\w+) for (\S+) is: (\S+)\.", prompt)


def test_niah_needles_keys_and_questions():
    single = needles(text(make_instance("niah_single_2", TOK, 4000, 1, haystack=PROSE)))
    assert len(single) == 1 and single[0][0] == "numbers" and re.fullmatch(r"[1-9]\d{6}", single[0][2])
    uuid = needles(text(make_instance("niah_single_3", TOK, 4000, 1, haystack=PROSE)))
    assert len(uuid) == 1 and re.fullmatch(r"[0-9a-f-]{36}", uuid[0][2])

    multikey = make_instance("niah_multikey_1", TOK, 4000, 1, haystack=PROSE)
    found = needles(text(multikey))
    assert len(found) == 4 and len({k for _, k, _ in found}) == 4
    asked = multikey.meta["keys"][0]
    assert [v for _, k, v in found if k == asked] == multikey.outputs
    assert text(multikey).endswith(f"The special magic numbers for {asked} mentioned in the provided text are")

    multivalue = make_instance("niah_multivalue", TOK, 4000, 1, haystack=PROSE)
    found = needles(text(multivalue))
    assert (
        len(found) == 4
        and len({k for _, k, _ in found}) == 1
        and sorted(v for *_, v in found) == sorted(multivalue.outputs)
    )
    multiquery = make_instance("niah_multiquery", TOK, 4000, 1, haystack=PROSE)
    assert len(multiquery.outputs) == 4 and ", and " in text(multiquery).splitlines()[-1]


def test_the_needle_haystack_is_made_of_needles_and_the_asked_key_is_unique():
    inst = make_instance("niah_multikey_2", TOK, 4000, 2)
    found = needles(text(inst))
    assert len(found) > 20
    asked = inst.meta["keys"][0]
    assert [v for _, k, v in found if k == asked] == inst.outputs
    context = text(inst).split("\n")[1]
    assert context.replace(" ", "") == "".join(NEEDLE.format(kind=t, key=k, value=v) for t, k, v in found).replace(
        " ", ""
    )
    keys3 = needles(text(make_instance("niah_multikey_3", TOK, 4000, 2)))
    assert all(re.fullmatch(r"[0-9a-f-]{36}", k) for _, k, _ in keys3)


def test_variable_tracking_chain_in_order():
    inst = make_instance("vt", TOK, 3000, 5)
    prompt = text(inst)
    names = inst.outputs
    assert len(names) == 5 and len(set(names)) == 5
    value = re.search(rf"VAR {names[0]} = (\d{{5}})", prompt).group(1)
    positions = [prompt.index(f"VAR {names[0]} = {value}")]
    for a, b in zip(names, names[1:]):
        positions.append(prompt.index(f"VAR {b} = VAR {a} "))
    assert positions == sorted(positions)
    assert f"the value {value} in the text above" in prompt and "5 variables are assgined" in prompt


def test_common_words_counts():
    inst = make_instance("cwe", TOK, 6000, 1, haystack=PROSE)
    listing = text(inst).split("\n")[1]
    items = re.findall(r"(\d+)\. (\S+)", listing)
    assert [int(i) for i, _ in items] == list(range(1, len(items) + 1))
    counts = Counter(w for _, w in items)
    assert all(counts[w] == 30 for w in inst.outputs) and len(inst.outputs) == 10
    assert {c for w, c in counts.items() if w not in inst.outputs} == {3}


def test_frequent_words_answer_is_the_top_three():
    inst = make_instance("fwe", TOK, 5000, 1)
    coded = text(inst).split("coded words. ")[1].split("\nQuestion")[0].split()
    top = [w for w, _ in Counter(coded).most_common(4)]
    assert top[0] == "...." and top[1:] == inst.outputs


def test_scores_are_rulers():
    assert string_match_all("The numbers are 1234567 and 7654321.", ["1234567", "7654321"]) == 1.0
    assert string_match_all("only 1234567", ["1234567", "7654321"]) == 0.5
    assert string_match_all("nothing", ["1234567"]) == 0.0
    assert string_match_all("APPLE-river", ["apple-RIVER"]) == 1.0
    assert string_match_part("only 1234567", ["1234567", "7654321"]) == 1.0
    assert string_match_part("none", ["1234567", "7654321"]) == 0.0


class FakeChat:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return f"<user>{messages[0]['content']}</user><assistant>"


def test_a_chat_template_wraps_the_question_and_the_answer_prefix_follows_it():
    inst = make_instance("niah_single_1", TOK, 2000, 1, wrapper=Wrapper.chat(FakeChat(), TOK))
    prompt = text(inst)
    assert prompt.startswith("<user>Some special magic numbers")
    assert "provided text?</user><assistant> The special magic numbers for" in prompt
    assert inst.length <= 2000 - inst.tokens_to_generate


def test_errors():
    with pytest.raises(ValueError, match="unknown RULER task"):
        make_instance("niah_single_9", TOK, 4000, 0)
    with pytest.raises(ValueError, match="leaves"):
        make_instance("niah_single_1", TOK, 300, 0)

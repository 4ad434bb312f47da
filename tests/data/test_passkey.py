"""Needle prompts: exact lengths, depths, keys, seeds, training batches."""

import random

import pytest
import torch

from infini_attention.data import passkey
from infini_attention.data.tokenizers import ByteTokenizer

TOK = ByteTokenizer()


@pytest.mark.parametrize("length", [300, 1000, 4099])
@pytest.mark.parametrize("depth", [0.0, 0.37, 1.0])
def test_instance_has_the_exact_length_and_the_key_at_its_depth(length, depth):
    inst = passkey.make_instance(TOK, length, depth, seed=7)
    ids = inst.prompt_ids()
    assert len(ids) == inst.length == length
    text = TOK.decode(ids.tolist())
    assert text.startswith(passkey.PREFIX) and text.endswith(passkey.QUESTION)
    start, end = inst.needle_spans[0]
    assert TOK.decode(ids[start:end].tolist()) == passkey.NEEDLE.format(key=inst.key)
    haystack = length - len(passkey.PREFIX) - len(passkey.QUESTION) - (end - start)
    filler_before = start - len(passkey.PREFIX)
    unit = len(passkey.FILLER)
    assert abs(filler_before - depth * haystack) <= unit, "the needle sits at its depth, to one filler sentence"
    assert TOK.decode(inst.answer_ids) == " " + inst.key and len(inst.key) == 5


def test_chunks_equal_the_whole_prompt_and_are_lazy():
    inst = passkey.make_instance(TOK, 5000, 0.5, seed=1)
    chunks = list(inst.chunks(128))
    assert all(len(c) == 128 for c in chunks[:-1]) and sum(len(c) for c in chunks) == 5000
    assert torch.equal(torch.tensor([t for c in chunks for t in c]), inst.prompt_ids())
    big = passkey.make_instance(TOK, 1 << 20, 0.5, seed=1)
    assert sum(s.length for s in big.spans) == 1 << 20
    assert sum(len(s.unit) for s in big.spans) < 1000, "a 1M-token haystack is stored as a few repeated units"
    first = next(big.chunks(2048))
    assert len(first) == 2048


def test_same_seed_same_instance_other_seed_other_key():
    a, b = (passkey.make_instance(TOK, 800, 0.5, seed=3) for _ in range(2))
    assert a.key == b.key and torch.equal(a.prompt_ids(), b.prompt_ids())
    keys = {passkey.make_instance(TOK, 800, 0.5, seed=s).key for s in range(20)}
    assert len(keys) == 20


@pytest.mark.parametrize("digits", [1, 7, 10])
def test_key_lengths(digits):
    assert len(passkey.make_instance(TOK, 600, 0.5, seed=2, digits=digits).key) == digits
    with pytest.raises(ValueError, match="1 to 10 digits"):
        passkey.make_instance(TOK, 600, 0.5, digits=11)


def test_several_needles_and_other_filler(tmp_path):
    filler = tmp_path / "book.txt"
    filler.write_text("In the beginning was the word.\n\nAnd the word was long.")
    inst = passkey.make_instance(TOK, 3000, [0.1, 0.5, 0.9], seed=5, filler=filler, ask=1)
    text = TOK.decode(inst.prompt_ids().tolist())
    assert len(set(inst.keys)) == 3
    for i, key in enumerate(inst.keys):
        assert passkey.NUMBERED_NEEDLE.format(i=i + 1, key=key) in text
    assert text.endswith(passkey.NUMBERED_QUESTION.format(i=2)) and inst.key == inst.keys[1]
    assert "In the beginning was the word. And the word was long." in text
    assert inst.needle_spans[0][0] < inst.needle_spans[1][0] < inst.needle_spans[2][0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="too short"):
        passkey.make_instance(TOK, 100, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        passkey.make_instance(TOK, 1000, 1.5)


def test_in_memory_only_follows_the_segments():
    n = 128
    start_inst = passkey.make_instance(TOK, 2000, 0.0, seed=0)
    end_inst = passkey.make_instance(TOK, 2000, 1.0, seed=0)
    assert start_inst.in_memory_only(n)
    # at depth 1 the needle ends right before the question: in the question's segment for a long segment
    assert not end_inst.in_memory_only(4096)


def test_training_batch_labels_only_the_answer_and_respects_the_curriculum():
    rng = random.Random(0)
    ids, labels = passkey.training_batch(TOK, 16, 1000, rng, local_fraction=1.0, segment_len=256)
    assert ids.shape == (16, 1006) and labels.shape == ids.shape
    for row_ids, row_labels in zip(ids, labels):
        answer = row_labels[row_labels != -100]
        assert len(answer) == 6 and torch.equal(answer, row_ids[-6:])
        text = TOK.decode(row_ids.tolist())
        assert text[-len(" 12345") :].strip().isdigit()
    _, labels_memory = passkey.training_batch(TOK, 4, 1000, rng, local_fraction=0.0, segment_len=256)
    assert (labels_memory != -100).sum() == 4 * 6


def test_doubled_keys_hold_a_digit_twice_in_a_row_and_leave_the_default_alone():
    rng = random.Random(0)
    keys = [passkey.random_key(rng, 5, doubled=True) for _ in range(200)]
    assert all(len(k) == 5 and k[0] != "0" and any(a == b for a, b in zip(k, k[1:])) for k in keys)
    plain = [passkey.random_key(random.Random(s), 5) for s in range(200)]
    assert sum(any(a == b for a, b in zip(k, k[1:])) for k in plain) < 100  # ~34% by chance
    off = passkey.training_instances(TOK, 8, 1000, random.Random(3), segment_len=256)
    same = passkey.training_instances(TOK, 8, 1000, random.Random(3), segment_len=256, doubled_fraction=0.0)
    assert [i.key for i in off] == [i.key for i in same], "the option draws nothing when off"
    hard = passkey.training_instances(TOK, 64, 1000, random.Random(3), segment_len=256, doubled_fraction=0.5)
    doubled = sum(any(a == b for a, b in zip(i.key, i.key[1:])) for i in hard)
    assert 25 <= doubled <= 55

"""Stretched memory writes (stretch.py): weight w == the segment read w times, and the passkey weights."""

import random

import pytest
import torch
from test_train import TINY

from conftest import assert_close
from infini_attention import InfiniTransformer, ModelConfig
from infini_attention.data import passkey
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.stretch import forward_with_write_weights
from infini_attention.tasks import PasskeyTask
from infini_attention.train import TrainConfig, train

SEG = 16


def model(**kw):
    torch.manual_seed(0)
    return InfiniTransformer(ModelConfig.from_name("tiny", segment_len=SEG, **kw))


@pytest.mark.parametrize("rule", ["linear", "delta"])
def test_weights_of_one_are_the_ordinary_forward(rule):
    m = model(num_layers=2, key_shift=True, rule=rule)
    ids = torch.randint(0, 256, (2, 5 * SEG + 3))
    expected, state = m(ids)
    got, got_state = forward_with_write_weights(m, ids, torch.ones(2, 6))
    assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(got_state.layers, state.layers):
        assert_close(a.M, b.M, atol=1e-5, rtol=1e-5)
        assert_close(a.z, b.z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sharpness", [False, True])
def test_a_weight_of_three_is_the_segment_read_three_times(sharpness):
    """One layer: a segment's write depends on its tokens only, so weight 3 == three copies (outputs, gradients)."""
    torch.manual_seed(1)
    a, b, c = (torch.randint(0, 256, (2, SEG)) for _ in range(3))
    weights = torch.tensor([[1.0, 3.0, 1.0], [1.0, 3.0, 1.0]])

    stretched = model(num_layers=1, sharpness=sharpness)
    if sharpness:
        with torch.no_grad():
            stretched.layers[0].self_attn.log_sharpness.fill_(0.3)
    repeated = model(num_layers=1, sharpness=sharpness)
    repeated.load_state_dict(stretched.state_dict())

    got, got_state = forward_with_write_weights(stretched, torch.cat([a, b, c], 1), weights)
    expected, state = repeated(torch.cat([a, b, b, b, c], 1))
    assert_close(got[:, -SEG:], expected[:, -SEG:], atol=1e-5, rtol=1e-5)  # what segment c reads
    assert_close(got_state.layers[0].M, state.layers[0].M, atol=1e-4, rtol=1e-5)
    assert_close(got_state.layers[0].z, state.layers[0].z, atol=1e-4, rtol=1e-5)

    got[:, -SEG:].square().sum().backward()
    expected[:, -SEG:].square().sum().backward()
    for (name, p), q in zip(stretched.named_parameters(), repeated.parameters()):
        assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4), name


def test_delta_rule_weight_is_copies_to_first_order():
    """Under eq 9 a weight-4 write misses four copies of the segment by a share of the increment that falls as the
    memory fills (the read each copy moves is divided by a growing z): ~1/(segments written)."""
    m = model(num_layers=1, rule="delta")
    torch.manual_seed(1)
    errors = {}
    for n in (4, 16, 64):
        prefix, b, c = (
            torch.randint(0, 256, (2, n * SEG)),
            torch.randint(0, 256, (2, SEG)),
            torch.randint(0, 256, (2, SEG)),
        )
        _, stretched = forward_with_write_weights(
            m, torch.cat([prefix, b, c], 1), torch.tensor([[1.0] * n + [4.0, 1.0]] * 2)
        )
        _, copies = m(torch.cat([prefix, b, b, b, b, c], 1))
        _, before = m(prefix)
        increment = copies.layers[0].M - before.layers[0].M
        errors[n] = ((stretched.layers[0].M - copies.layers[0].M).norm() / increment.norm()).item()
        assert_close(stretched.layers[0].z, copies.layers[0].z, atol=1e-3, rtol=1e-5)  # z's writes are additive
    assert errors[64] < 0.05, errors
    assert errors[4] > 2 * errors[16] > 4 * errors[64], errors  # the gap shrinks as the memory fills


def test_bad_arguments_are_clear_errors():
    ids = torch.randint(0, 256, (2, 3 * SEG))
    with pytest.raises(ValueError, match="linear or delta memory rule"):
        forward_with_write_weights(model(rule="deltanet"), ids, torch.ones(2, 3))
    with pytest.raises(ValueError, match="shape"):
        forward_with_write_weights(model(), ids, torch.ones(2, 4))
    with pytest.raises(ValueError, match=">= 1"):
        forward_with_write_weights(model(), ids, torch.full((2, 3), 0.5))


def test_filler_segments_hold_filler_only():
    tok = ByteTokenizer()
    filler = set(tok.encode(passkey.FILLER))
    for seed in range(20):
        inst = passkey.make_instance(tok, 1500, random.Random(seed).random(), seed=seed)
        ids = torch.cat([inst.prompt_ids(), torch.tensor(inst.answer_ids)])
        flags = passkey.filler_segments(inst, 64)
        assert len(flags) == -(-len(ids) // 64) and sum(flags) >= 10
        needle = inst.needle_spans[0]
        for i, flag in enumerate(flags):
            lo, hi = i * 64, (i + 1) * 64
            special = hi > len(ids) or lo < len(inst.spans[0].unit) or hi > inst.length - len(inst.spans[-1].unit)
            special = special or (lo < needle[1] and hi > needle[0])
            assert flag == (not special), (seed, i)
            if flag:
                assert set(ids[lo:hi].tolist()) <= filler


def test_passkey_write_weights_follow_the_batch_and_the_curriculum():
    cfg = TrainConfig(
        task="passkey", seq_len=1200, min_len=1000, batch_size=4, stretch_max=100.0, stretch_curriculum_steps=10
    )
    task = PasskeyTask(cfg, 64)
    ids, _ = task.batch(10)
    weights = task.write_weights(10)
    assert weights.shape == (4, -(-ids.shape[1] // 64))
    assert torch.equal(weights, task.write_weights(10))  # a function of the step
    assert (weights >= 1).all() and (weights <= 100).all() and (weights > 1).any()
    for row in weights:  # one weight per sequence, on its filler segments
        assert len(set(row[row > 1].tolist())) == 1 and row[0] == 1 and row[-1] == 1
    assert task.stretch_limit(0) == 1.0 and task.stretch_limit(5) == pytest.approx(10.0)
    assert (task.write_weights(0) == 1).all()
    assert PasskeyTask(TrainConfig(task="passkey"), 64).write_weights(0) is None


def test_training_with_stretched_writes_runs_and_resumes(tmp_path):
    base = {**TINY, "stretch_max": 50.0, "save_every": 2}
    whole = train(TrainConfig(**base, steps=4, out=str(tmp_path / "whole")), progress=False)
    train(TrainConfig(**base, steps=2, out=str(tmp_path / "part")), progress=False)
    resumed = train(TrainConfig(**base, steps=4, out=str(tmp_path / "part")), resume=True, progress=False)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    with pytest.raises(ValueError, match="passkey"):
        train(TrainConfig(**{**base, "task": "copy"}, steps=1, out=str(tmp_path / "copy")), progress=False)


def test_aligned_lengths_put_the_answer_at_a_segment_start():
    base = dict(task="passkey", seq_len=1500, min_len=300, batch_size=2)
    plain = PasskeyTask(TrainConfig(**base), 64)
    aligned = PasskeyTask(TrainConfig(**base, aligned_lengths=1.0), 64)
    prompt_lengths = []
    for step in range(20):
        ids, labels = aligned.batch(step)
        prompt = int((labels[0] != -100).nonzero()[0]) + 1  # the first answer token is predicted at prompt - 1
        prompt_lengths.append(prompt)
    assert all(n % 64 == 0 for n in prompt_lengths)
    plain_lengths = [int((plain.batch(s)[1][0] != -100).nonzero()[0]) + 1 for s in range(20)]
    assert sum(n % 64 == 0 for n in plain_lengths) < 5
    assert torch.equal(PasskeyTask(TrainConfig(**base, aligned_lengths=0.0), 64).batch(3)[0], plain.batch(3)[0])


def test_key_digits_mix_the_key_lengths_of_every_numeric_format():
    """--key-digits 4 6 9: each batch's keys have one of those lengths, RULER's values too (7 digits by default);
    unset, the formats keep theirs (5 and 7)."""
    base = dict(task="passkey", seq_len=1500, min_len=600, batch_size=2, formats=["passkey", "ruler"])
    mixed = PasskeyTask(TrainConfig(**base, key_digits=[4, 6, 9]), 64)
    lengths = {(fmt, len(inst.key)) for step in range(30) for fmt, inst in _formats_and_instances(mixed, step)}
    assert {n for _, n in lengths} == {4, 6, 9} and {f for f, _ in lengths} == {"passkey", "ruler"}
    plain = PasskeyTask(TrainConfig(**base), 64)
    assert {(f, len(i.key)) for s in range(30) for f, i in _formats_and_instances(plain, s)} == {
        ("passkey", 5),
        ("ruler", 7),
    }
    with pytest.raises(ValueError, match="key-digits"):
        TrainConfig(**base, key_digits=[0, 5]).validate()


def _formats_and_instances(task, step):
    """(format, instance) of a step's batch: RULER's instruction names its "special magic numbers"."""
    for inst in task._instances(step, 0, 0):
        text = task.tokenizer.decode([t for span in inst.spans[:2] for t in span.tokens(0, span.length)])
        yield ("ruler" if "special magic" in text else "passkey"), inst

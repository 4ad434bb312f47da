"""The passkey task and its evaluation."""

import random

import pytest
import torch

from conftest import shift_term
from infini_attention import InfiniTransformer, ModelConfig
from infini_attention.data import passkey
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.eval.passkey import (
    evaluate_cell,
    evaluate_passkey,
    format_table,
    instance_seed,
    plot_heatmap,
    summary,
)

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


def tiny_model(**kw):
    torch.manual_seed(0)
    return InfiniTransformer(ModelConfig.from_name("tiny", segment_len=64, **kw)).eval()


def test_evaluation_rows_and_the_memory_ablation():
    model = tiny_model()
    rows = evaluate_passkey(model, TOK, [600, 1024], [0.0, 1.0], keys=2, progress=False)
    assert len(rows) == 8 and sum(r.reset_memory for r in rows) == 4
    for r in rows:
        assert 0.0 <= r.accuracy <= r.digit_accuracy <= 1.0 or r.accuracy == 0.0
        assert r.question_segment == (r.length - 1) // 64 and r.needle_segment <= r.question_segment
        assert r.peak_rss > 0 and r.tokens_per_s > 0
        assert len(r.answers) == 2
    real = [r for r in rows if not r.reset_memory]
    assert all(0.0 < r.memory_share < 1.0 for r in real if r.in_memory)
    table = format_table(rows)
    assert table.count("\n") == 2 + 3 and "memory" in table
    assert set(summary(rows)) <= {"memory_accuracy", "memory_reset_accuracy", "local_accuracy"}


def test_memory_reset_is_the_identity_for_a_local_model():
    model = tiny_model(attention="local")
    real = evaluate_cell(model, TOK, 700, 0.0, 3, reset_memory=False)
    reset = evaluate_cell(model, TOK, 700, 0.0, 3, reset_memory=True)
    assert real.answers == reset.answers and real.digit_accuracy == reset.digit_accuracy


def test_memory_reset_removes_what_the_memory_reads():
    """Streaming with the memory emptied at every segment equals segment-local attention with the gate's
    memory share given to the local branch, i.e. the same weights run as the `local` kind."""
    model = tiny_model()
    local = tiny_model(attention="local")
    local.load_state_dict({k: v for k, v in model.state_dict().items() if not k.endswith("beta")})
    ids = passkey.make_instance(TOK, 700, 0.0, seed=0).prompt_ids()[None]
    with torch.no_grad():
        state, outs = None, []
        for start in range(0, 700, 64):
            logits, state = model(ids[:, start : start + 64], state)
            state = model.reset_memory(state)
            outs.append(logits)
        reset_logits = torch.cat(outs, dim=1)
        local_logits, _ = local(ids)
        real_logits, _ = model(ids)
    assert torch.allclose(reset_logits, local_logits, atol=1e-5)
    assert not torch.allclose(real_logits[:, 64:], local_logits[:, 64:], atol=1e-3)


@pytest.mark.parametrize("variant", ["paper", "sharpness", "shift"])
def test_memory_share_matches_a_brute_force_computation(variant):
    """Share of sigma(q) z on the needle, recomputed from captured projections: the max over layers and heads."""
    shift = variant == "shift"
    model = tiny_model(sharpness=variant == "sharpness", key_shift=2 if shift else False, query_shift=int(shift))
    scales = [torch.ones(2), torch.ones(2)]
    with torch.no_grad():
        if variant == "sharpness":  # the memory sees sigma(c_j x): the probe must too
            for layer, a in zip(model.layers, ([0.7, -0.4], [-0.2, 0.5])):
                layer.self_attn.log_sharpness.copy_(torch.tensor(a))
            scales = [layer.self_attn.log_sharpness.detach().exp() for layer in model.layers]
        if shift:  # the memory sees k_t + W_1 x_{t-1} + W_2 x_{t-2} and q_t + W_1' x_{t-1}
            for layer in model.layers:
                layer.self_attn.shift_proj.weight.normal_(0.0, 0.1)
                layer.self_attn.query_shift_proj.weight.normal_(0.0, 0.1)
    inst = passkey.make_instance(TOK, 640, 0.0, seed=instance_seed(0, 640, 0.0, 0))  # the evaluation's instance
    row = evaluate_cell(model, TOK, 640, 0.0, 1)
    ids = inst.prompt_ids()[None]
    captured = [{}, {}]
    for layer, store in zip(model.layers, captured):
        layer.self_attn.k_proj.register_forward_hook(lambda m, i, o, c=store: c.setdefault("k", []).append((i[0], o)))
        layer.self_attn.q_proj.register_forward_hook(lambda m, i, o, c=store: c.setdefault("q", []).append(o))
    with torch.no_grad():
        model(ids)
    sig = lambda x: torch.nn.functional.elu(x) + 1

    written = (640 // 64) * 64  # tokens folded into the memory before the answer
    start, end = inst.needle_spans[0]
    shares = []
    for store, scale, layer in zip(captured, scales, model.layers):
        x = torch.cat([inputs for inputs, _ in store["k"]], dim=1)[0].detach()
        k = torch.cat([out for _, out in store["k"]], dim=1)[0].detach()
        q = store["q"][-1][0, -1].detach()
        if shift:
            k = torch.stack([k[t] + shift_term(layer.self_attn.shift_proj, x, 2, t) for t in range(640)])
            q = q + shift_term(layer.self_attn.query_shift_proj, x, 1, 639)
        k, q = k.view(640, 2, 16), q.view(4, 16)
        for h in range(4):
            j = h // 2
            num = sig(scale[j] * q[h]) @ sig(scale[j] * k[start:end, j]).sum(0)
            den = sig(scale[j] * q[h]) @ sig(scale[j] * k[:written, j]).sum(0)
            shares.append((num / den).item())
    assert row.memory_share == pytest.approx(max(shares), rel=1e-4)


def test_heatmap_is_written(tmp_path):
    model = tiny_model()
    rows = evaluate_passkey(model, TOK, [600], [0.0, 0.5], keys=1, progress=False)
    plot_heatmap(rows, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 2000


def test_deltanet_model_evaluates_without_a_key_share():
    """The deltanet rule has no normaliser z: the share column is left empty, not filled with a number."""
    model = tiny_model(rule="deltanet", key_shift=True)
    row = evaluate_cell(model, TOK, 700, 0.0, 2, reset_memory=False)
    assert row.in_memory and row.memory_share is None
    assert "| - |" in format_table([row])


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

"""Attention transfer (hf/transfer.py) on a tiny random Llama: what collect() captures, that a few
layer-local steps reduce the error to the teacher, that the saved artifact rebuilds the model, and the
needle contexts: their marked question + answer span and the weighted loss."""

import pytest
import torch

pytest.importorskip("transformers")


from conftest import assert_close  # noqa: E402
from hf_tiny import TINY_LLAMA, tiny_llama  # noqa: E402
from infini_attention.data.formats import PaperPasskey  # noqa: E402
from infini_attention.data.haystack import TextHaystack  # noqa: E402
from infini_attention.data.tokenizers import ByteTokenizer  # noqa: E402
from infini_attention.hf import force_local_gate  # noqa: E402
from infini_attention.hf.transfer import (  # noqa: E402
    Teacher,
    collect,
    convert_for_transfer,
    evaluate_layer,
    infini_layers,
    load_transfer,
    needle_context,
    save_transfer,
    select_parameters,
    student_inputs,
    train_layer,
    trained_names,
    transfer_errors,
)

N = 16  # segment length
TINY = TINY_LLAMA
original = tiny_llama


def ids(contexts=2, length=5 * N + 3, seed=1):
    return torch.randint(0, TINY["vocab_size"], (contexts, length), generator=torch.Generator().manual_seed(seed))


def test_collect_shapes_and_equality_with_the_layers_attention(tmp_path):
    model, x = original(), ids()
    teacher = collect(model, x, dtype=torch.float32)
    assert teacher.layers == [0, 1] and teacher.contexts == 2
    assert teacher.positions.shape == x.shape and torch.equal(teacher.positions[1], torch.arange(x.shape[1]))
    assert torch.equal(teacher.ids, x) and teacher.marked is None and teacher.weights(0, 50.0) is None
    for t in teacher.inputs + teacher.outputs:
        assert t.shape == (2, x.shape[1], TINY["hidden_size"]) and t.dtype == torch.float32
    with torch.no_grad():
        layer0 = model.model.layers[0]
        assert_close(teacher.inputs[0], layer0.input_layernorm(model.model.embed_tokens(x)), what="layer 0 input")
    assert collect(model, x, layers=[1]).inputs[0].dtype == torch.bfloat16  # bf16 by default
    teacher.save(tmp_path / "t.safetensors")
    again = Teacher.load(tmp_path / "t.safetensors")
    assert again.layers == [0, 1] and torch.equal(again.outputs[1], teacher.outputs[1])
    assert torch.equal(again.ids, x) and again.marked is None

    # the converted layer, fed the captured input, reproduces the captured output wherever it computes
    # the same attention: the first segment (gate as initialised), and with the gate shut up to N tokens
    converted = convert_for_transfer(model, segment_len=N, rule="delta")
    for i, attn in enumerate(infini_layers(converted)):
        with torch.no_grad():
            out = attn(teacher.inputs[i])[0]
            assert_close(out[:, :N], teacher.outputs[i][:, :N], atol=1e-5, what=f"layer {i} first segment")
            assert (out[:, N:] - teacher.outputs[i][:, N:]).abs().max() > 1e-3  # the memory path differs after
            with force_local_gate(converted):
                assert_close(attn(teacher.inputs[i][:, :N])[0], teacher.outputs[i][:, :N], atol=1e-5)
    with pytest.raises(ValueError, match="original"):
        collect(converted, x)


def test_student_inputs_are_the_converted_models_own_with_the_memory_off():
    model, x = original(), ids(contexts=1)
    teacher = collect(model, x, dtype=torch.float32)
    converted = convert_for_transfer(model, segment_len=N)
    mixed = student_inputs(converted, x, teacher)
    assert mixed.outputs is teacher.outputs and converted.model.layers[1].self_attn.beta.eq(0).all()
    assert torch.equal(mixed.ids, x)
    with pytest.raises(ValueError, match="token ids"):
        student_inputs(converted, ids(contexts=1, seed=2), teacher)
    assert_close(mixed.inputs[0], teacher.inputs[0], what="layer 0 input: the embeddings either way")
    assert_close(mixed.inputs[1][:, :N], teacher.inputs[1][:, :N], atol=1e-5, what="first segment")
    seen = []
    hook = converted.model.layers[1].self_attn.register_forward_pre_hook(
        lambda m, a, k: seen.append(k["hidden_states"]), with_kwargs=True
    )
    with torch.no_grad(), force_local_gate(converted):
        converted(x)  # streamed segment by segment, as at inference
    hook.remove()
    assert_close(mixed.inputs[1], torch.cat(seen, dim=1), atol=1e-5, what="the converted model's own layer-1 input")
    assert (mixed.inputs[1][:, N:] - teacher.inputs[1][:, N:]).abs().max() > 1e-3


@pytest.mark.parametrize("feature_map, key_shift", [("elu1", 0), ("hedgehog", 1)])
def test_a_few_steps_reduce_the_error_past_the_first_segment(feature_map, key_shift):
    model = original()
    teacher = collect(model, ids())
    converted = convert_for_transfer(model, segment_len=N, feature_map=feature_map, key_shift=key_shift)
    attn = infini_layers(converted)[1]
    batches = [teacher.layer(1, c) for c in range(teacher.contexts)]
    before = evaluate_layer(attn, batches)
    params = select_parameters(attn)
    assert set(params) == ({"gate"} if feature_map == "elu1" else {"gate", "feature", "shift"})
    q_before = attn.q_proj.weight.clone()
    history = train_layer(attn, batches, params, steps=25, lr=1e-2, gate_lr=0.1)
    after = evaluate_layer(attn, batches)
    assert after["later"] < 0.7 * before["later"], (before, after, history["losses"][::5])
    assert after["rel_later"] < before["rel_later"]
    assert torch.equal(attn.q_proj.weight, q_before)  # projections frozen by default
    assert not any(p.requires_grad for p in attn.parameters())
    other = infini_layers(converted)[0]
    assert torch.equal(other.beta, torch.zeros_like(other.beta))  # layer-local: nothing else moved


def test_the_artifact_reloads_into_a_fresh_converted_model(tmp_path):
    settings = dict(segment_len=N, rule="delta", key_shift=1)
    trained = convert_for_transfer(original(), feature_map="hedgehog", **settings)
    teacher = collect(original(), ids(contexts=1))
    for i, attn in enumerate(infini_layers(trained)):
        train_layer(attn, [teacher.layer(i, 0)], select_parameters(attn), steps=3, lr=1e-2)
    names = trained_names(trained)
    assert len(names) == 2 * 3 and all("proj" not in n or "shift_proj" in n for n in names)
    save_transfer(trained, tmp_path, names, {"run": {"note": "test"}})
    assert (tmp_path / "transfer.safetensors").stat().st_size < 50_000  # only the trained parameters

    fresh = convert_for_transfer(original(), feature_map="elu1", **settings)
    manifest = load_transfer(fresh, tmp_path)
    assert manifest["settings"]["feature_map"] == "hedgehog" and manifest["run"] == {"note": "test"}
    x = ids(contexts=1, length=4 * N + 5, seed=3)
    with torch.no_grad():
        expected, got = trained(x).logits, fresh(x).logits
    assert_close(got, expected, atol=1e-5, what="logits of the reloaded model")
    with pytest.raises(ValueError, match="segment_len"):
        load_transfer(convert_for_transfer(original(), segment_len=2 * N, key_shift=1), tmp_path)


# ---------------------------------------------------------------------------------------------------
# Needle contexts and the weighted loss

PROSE = TextHaystack(
    [
        "In a quiet valley the river ran past the mill. The miller rose early and watched the water.",
        "Children played by the bank while their parents worked the fields. Evening came slowly.",
        "Travellers stopped at the inn on the hill. They told stories of distant towns and long roads.",
    ]
)


@pytest.mark.parametrize("fmt", ["passkey", "ruler", "paraphrase"])
@pytest.mark.parametrize("length, segment_len", [(640, 128), (641, 100)])
def test_a_needle_context_marks_exactly_its_question_and_answer(fmt, length, segment_len):
    tokenizer = ByteTokenizer()
    for seed in range(4):
        ids_, marked, about = needle_context(tokenizer, length, segment_len, seed, fmt, PROSE)
        assert ids_.shape == marked.shape == (length,) and marked.dtype == torch.bool
        start, end = about["question"]
        assert end == length and torch.equal(marked, torch.arange(length) >= start)
        text = tokenizer.decode(ids_[marked])
        assert text.endswith(" " + about["key"]) and about["key"] in tokenizer.decode(ids_[slice(*about["needle"])])
        if fmt == "passkey":
            assert text == PaperPasskey.QUESTION + " " + about["key"]
        # the needle ends before the segment of the question's first token: only the memory reaches it
        assert about["needle"][1] <= start // segment_len * segment_len
    again = needle_context(tokenizer, length, segment_len, 3, fmt, PROSE)
    assert torch.equal(again[0], ids_) and again[2] == about  # the seed decides everything


def test_the_weights_are_w_on_the_marked_span_and_1_elsewhere(tmp_path):
    x = ids(contexts=2, length=5 * N)
    marked = torch.zeros_like(x, dtype=torch.bool)
    marked[1, 4 * N + 3 :] = True
    positions = torch.arange(5 * N).expand(2, -1).contiguous()
    teacher = Teacher([x[..., None].float()], [x[..., None].float()], positions, [0], x, marked)
    assert teacher.weights(0, 50.0) is None  # a plain context: the plain loss
    expected = torch.ones(1, 5 * N)
    expected[0, 4 * N + 3 :] = 50.0
    assert torch.equal(teacher.weights(1, 50.0), expected)
    teacher.save(tmp_path / "t.safetensors")
    again = Teacher.load(tmp_path / "t.safetensors")
    assert torch.equal(again.marked, marked) and torch.equal(again.ids, x)


def test_the_weighted_loss_is_a_hand_computed_weighted_mse():
    g = torch.Generator().manual_seed(0)
    y, t = torch.randn(1, 6, 3, generator=g), torch.randn(1, 6, 3, generator=g)
    w = torch.tensor([[1.0, 7.0, 1.0, 5.0, 1.0, 5.0]])
    errors = transfer_errors(y, t, segment_len=2, weight=w)
    sq = [[(y[0, i, h].item() - t[0, i, h].item()) ** 2 for h in range(3)] for i in range(6)]
    later = sum(w[0, i].item() * sum(sq[i]) for i in range(2, 6)) / (3 * sum(w[0, i].item() for i in range(2, 6)))
    whole = sum(w[0, i].item() * sum(sq[i]) for i in range(6)) / (3 * w.sum().item())
    marked = (sum(sq[3]) + sum(sq[5])) / 6  # positions past the first segment whose weight is not 1
    rel = (sum(sq[3]) + sum(sq[5])) / sum(t[0, i, h].item() ** 2 for i in (3, 5) for h in range(3))
    for name, value in [("later_weighted", later), ("all_weighted", whole), ("marked", marked), ("rel_marked", rel)]:
        assert errors[name].item() == pytest.approx(value, rel=1e-6), name
    plain = transfer_errors(y, t, segment_len=2)
    assert set(plain) == {"all", "later", "first", "rel_later"}  # no weight: the errors as before
    assert all(torch.equal(plain[k], errors[k]) for k in plain)
    ones = transfer_errors(y, t, 2, torch.ones(1, 6))
    assert ones["later_weighted"].item() == pytest.approx(plain["later"].item(), rel=1e-6) and "marked" not in ones
    with pytest.raises(ValueError, match="weight"):
        transfer_errors(y, t, 2, torch.ones(1, 5))


def test_training_with_weights_of_one_is_training_without_weights():
    model = original()
    teacher = collect(model, ids())
    batches = [teacher.layer(1, c) for c in range(teacher.contexts)]
    histories = []
    for weights in (None, [None, None], [torch.ones(1, batches[0][0].shape[1]), None]):
        attn = infini_layers(convert_for_transfer(original(), segment_len=N, feature_map="hedgehog"))[1]
        histories.append(train_layer(attn, batches, select_parameters(attn), steps=6, weights=weights)["losses"])
    assert histories[1] == histories[0]  # None per context: exactly the unweighted path
    assert histories[2] == pytest.approx(histories[0], rel=1e-5)  # the weighted mean of equal weights
    with pytest.raises(ValueError, match="weights"):
        train_layer(attn, batches, select_parameters(attn), steps=1, weights=[None])


def test_the_weighted_loss_lowers_the_error_where_it_weighs():
    model = original()
    x = ids(contexts=1, length=5 * N + 3)
    teacher = collect(model, x)
    batches = [teacher.layer(1, 0)]
    weight = torch.ones(1, x.shape[1])
    weight[0, 4 * N :] = 50.0  # the last segment and the three tokens past it
    marked = {}
    for w in (None, 50.0):
        attn = infini_layers(convert_for_transfer(original(), segment_len=N, feature_map="hedgehog"))[1]
        train_layer(attn, batches, select_parameters(attn), steps=25, weights=None if w is None else [weight])
        marked[w] = evaluate_layer(attn, batches, weights=[weight])
    assert marked[50.0]["marked"] < marked[None]["marked"], marked
    assert set(marked[None]) == {
        "all",
        "later",
        "first",
        "rel_later",
        "all_weighted",
        "later_weighted",
        "marked",
        "rel_marked",
    }

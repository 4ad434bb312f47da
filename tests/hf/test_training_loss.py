"""The chunked loss on a converted Hugging Face model (--loss-chunk): the same loss and gradients as the
full logits, in the adapter and through the trainer."""

import json

import pytest
import torch

pytest.importorskip("transformers")

from test_hf_train import RUN, N, save_plain  # noqa: E402

from conftest import assert_close  # noqa: E402
from infini_attention.hf.training import HFTrainingModel  # noqa: E402
from infini_attention.train import TrainConfig, train  # noqa: E402
from infini_attention.train.loss import chunked_cross_entropy, cross_entropy  # noqa: E402


@pytest.fixture
def plain(tmp_path):
    return save_plain(tmp_path / "plain")


@pytest.mark.parametrize("checkpointing", [False, True])
def test_hidden_states_and_chunked_loss_equal_the_full_logits(plain, checkpointing):
    model = HFTrainingModel.load(str(plain), segment_len=N)
    assert model.output_head.weight is model.hf.model.embed_tokens.weight  # tied: both uses get the gradient
    ids = torch.randint(0, 256, (2, 3 * N + 5))
    labels = torch.randint(0, 256, ids.shape)
    labels[0, :40] = -100

    def run(hidden: bool):
        model.zero_grad()
        out, state = model(ids, gradient_checkpointing=checkpointing, output_hidden=hidden)
        if hidden:
            loss, count = chunked_cross_entropy(out, model.output_head.weight, labels, 17)
        else:
            loss, count = cross_entropy(out, labels)
        (loss / count).backward()
        return loss.detach(), state, {n: p.grad.clone() for n, p in model.named_parameters()}

    (full, full_state, full_grads), (chunked, chunked_state, chunked_grads) = run(False), run(True)
    assert_close(chunked, full, atol=1e-4, rtol=1e-6, what="loss")
    assert_close(chunked_state.layers[0].M, full_state.layers[0].M, atol=0, rtol=0, what="M")
    for name, g in full_grads.items():
        assert_close(chunked_grads[name], g, atol=1e-6, rtol=1e-4, what=name)
    kept, _ = model(ids, logits_to_keep=0, output_hidden=True)
    assert kept.shape == (2, 0, model.config.hidden_size)


def test_trainer_with_and_without_the_chunked_loss(plain, tmp_path):
    """The same run with --loss-chunk 0 (full logits) and --loss-chunk 7: the same losses to float rounding."""
    results = {}
    for chunk in (0, 7):
        out = tmp_path / f"chunk{chunk}"
        train(TrainConfig(**RUN, from_hf=str(plain), steps=3, loss_chunk=chunk, out=str(out)), progress=False)
        results[chunk] = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert_close(torch.tensor(results[7]), torch.tensor(results[0]), atol=1e-4, rtol=1e-5, what="losses")


def test_layer_checkpointing_gives_the_same_loss_state_and_gradients(plain):
    """gradient_checkpointing="layer" recomputes each decoder layer with the memory state it first read."""
    model = HFTrainingModel.load(str(plain), segment_len=N)
    ids = torch.randint(0, 256, (2, 3 * N + 5))

    def run(mode):
        model.zero_grad()
        logits, state = model(ids, gradient_checkpointing=mode)
        logits.float().square().mean().backward()
        return logits.detach(), state, {n: p.grad.clone() for n, p in model.named_parameters()}

    plain_logits, plain_state, plain_grads = run(False)
    logits, state, grads = run("layer")
    assert_close(logits, plain_logits, atol=0, rtol=0, what="logits")
    assert_close(state.layers[1].M, plain_state.layers[1].M, atol=0, rtol=0, what="M")
    for name, g in plain_grads.items():
        assert_close(grads[name], g, atol=1e-6, what=name)
    assert "forward" not in vars(model.layers[0])  # the wrapper is gone after the call
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        model(ids, gradient_checkpointing="block")

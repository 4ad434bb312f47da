"""The chunked cross-entropy (train/loss.py) against the full-logits reference: loss and gradients."""

import pytest
import torch

from conftest import assert_close
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.train.loss import chunked_cross_entropy, cross_entropy, first_value_weights

VOCAB, HIDDEN = 97, 16


def _inputs(batch, length, ignored=0.0, dtype=torch.float32):
    hidden = torch.randn(batch, length, HIDDEN, dtype=dtype, requires_grad=True)
    weight = (torch.randn(VOCAB, HIDDEN, dtype=dtype) * 0.5).requires_grad_()
    labels = torch.randint(0, VOCAB, (batch, length))
    labels[torch.rand(batch, length) < ignored] = -100
    return hidden, weight, labels


def _loss_and_grads(fn, hidden, weight):
    loss, count = fn()
    (loss * 0.7).backward()  # a scale other than 1 reaches both gradients
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad, weight.grad = None, None
    return loss.detach(), count, grads


@pytest.mark.parametrize("length", [1, 63, 64, 65, 200])
@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
@pytest.mark.parametrize("ignored", [0.0, 0.5])
def test_chunked_equals_the_full_logits_in_float32(length, chunk, ignored):
    hidden, weight, labels = _inputs(2, length, ignored)
    expected = _loss_and_grads(lambda: cross_entropy(hidden @ weight.T, labels), hidden, weight)
    actual = _loss_and_grads(lambda: chunked_cross_entropy(hidden, weight, labels, chunk), hidden, weight)
    assert actual[1] == expected[1]
    assert_close(actual[0], expected[0], atol=1e-4, rtol=1e-5, what="loss")
    assert_close(actual[2][0], expected[2][0], atol=1e-5, rtol=1e-5, what="grad hidden")
    assert_close(actual[2][1], expected[2][1], atol=1e-5, rtol=1e-5, what="grad weight")


def test_chunked_under_bf16_autocast_is_as_close_to_float32_as_the_reference_under_autocast():
    hidden, weight, labels = _inputs(1, 300, 0.2)
    linear = torch.nn.functional.linear
    exact = _loss_and_grads(lambda: cross_entropy(hidden @ weight.T, labels), hidden, weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = _loss_and_grads(lambda: cross_entropy(linear(hidden, weight), labels), hidden, weight)
        actual = _loss_and_grads(lambda: chunked_cross_entropy(hidden, weight, labels, 64), hidden, weight)
    assert actual[0].dtype == torch.float32 and actual[2][1].dtype == torch.float32
    assert_close(actual[0], expected[0], atol=1e-3, rtol=1e-5, what="loss")  # the same bf16 logits
    for i, what in enumerate(("grad hidden", "grad weight")):
        ours = (actual[2][i] - exact[2][i]).abs().max().item()
        reference = (expected[2][i] - exact[2][i]).abs().max().item()
        assert ours <= 1.5 * reference + 1e-6, f"{what}: max abs err vs float32 {ours:.3e}, reference's {reference:.3e}"


def test_no_labelled_token_gives_zero_loss_and_zero_gradients():
    hidden, weight, labels = _inputs(1, 10)
    labels[:] = -100
    loss, count = chunked_cross_entropy(hidden, weight, labels, 4)
    loss.backward()
    assert count == 0 and loss.item() == 0.0
    assert not hidden.grad.any() and not weight.grad.any()


def test_frozen_weight_gets_no_gradient():
    hidden, weight, labels = _inputs(1, 10)
    weight.requires_grad_(False)
    loss, _ = chunked_cross_entropy(hidden, weight, labels, 3)
    loss.backward()
    assert weight.grad is None and hidden.grad is not None


def test_chunk_must_be_positive():
    hidden, weight, labels = _inputs(1, 4)
    with pytest.raises(ValueError, match="chunk"):
        chunked_cross_entropy(hidden, weight, labels, 0)


def test_first_value_weights_mark_each_rows_first_label_with_more_than_white_space():
    tok = ByteTokenizer()
    rows = [" is 30999", "  \n7", ""]  # the last row has no answer: all ones
    labels = torch.full((3, 12), -100)
    for r, text in enumerate(rows):
        ids = tok.encode(text)
        labels[r, 2 : 2 + len(ids)] = torch.tensor(ids)
    assert first_value_weights(labels, tok, 1.0) is None
    weights = first_value_weights(labels, tok, 4.0)
    expected = torch.ones(3, 12)
    expected[0, 3] = 4.0  # " is 30999": the "i"
    expected[1, 5] = 4.0  # "  \n7": the "7" after three blanks
    assert torch.equal(weights, expected)

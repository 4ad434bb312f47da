"""Decoding: token-by-token with teacher forcing reproduces the full forward; generate and sampling."""

import pytest
import torch
from test_model import randomize_key_shift

from conftest import assert_close
from infini_attention import InfiniTransformer, ModelConfig, decode_one_token, generate, prefill, sample

N = 16


@pytest.mark.parametrize(
    "kind",
    [
        dict(attention="infini", rule="linear"),
        dict(attention="infini", rule="delta"),
        dict(attention="infini", rule="linear", key_shift=True),
        dict(attention="infini", rule="deltanet", key_shift=True),
        dict(attention="infini", rule="delta", sharpness=True),
        dict(attention="infini", rule="linear", key_shift=3, query_shift=2),
        dict(attention="infini", rule="linear-causal", key_shift=1),
        dict(attention="infini", rule="linear", key_shift=1, sparse_cache=16),
        dict(attention="infini", rule="delta", local_tail=5, local_sink=2),
        dict(attention="local"),
        dict(attention="full"),
        dict(attention="xl"),
        dict(attention="memorizing", knn_top_k=4, knn_max_memories=3 * N + 5),  # decoding crosses the cap
    ],
    ids=lambda k: "-".join(map(str, k.values())),
)
@pytest.mark.parametrize("prompt_len", [1, N - 1, N + 3])
def test_teacher_forced_decoding_reproduces_the_forward(kind, prompt_len):
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=N, **kind))
    randomize_key_shift(model)
    ids = torch.randint(0, 256, (2, 4 * N + 2))  # decoding crosses several segment boundaries
    full_logits, _ = model(ids)
    logits, state = prefill(model, ids[:, :prompt_len])
    assert_close(logits, full_logits[:, prompt_len - 1], what="prefill logits")
    for t in range(prompt_len, ids.shape[1]):
        logits, state = decode_one_token(model, ids[:, t], state)
        assert_close(logits, full_logits[:, t], what=f"decoded logits at {t}")
        if kind["attention"] != "full":
            for s in state.layers:
                assert s.k.shape[2] == (t + 1) % N, "the KV window holds the unfinished segment only"


def test_generate_greedy_equals_argmax_of_the_forward():
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=N))
    prompt = torch.randint(0, 256, (1, 2 * N + 5))
    new, state = generate(model, prompt, max_new_tokens=2 * N, temperature=0.0)
    assert new.shape == (1, 2 * N)
    assert state.position == prompt.shape[1] + 2 * N - 1
    logits, _ = model(torch.cat([prompt, new], dim=1))
    expected = logits[:, prompt.shape[1] - 1 : -1].argmax(-1)
    assert torch.equal(new, expected)


def test_generate_continues_from_a_state():
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=N))
    ids = torch.randint(0, 256, (1, 3 * N))
    whole, _ = generate(model, ids, 5, temperature=0.0)
    _, state = prefill(model, ids[:, :-1])
    continued, _ = generate(model, ids[:, -1:], 5, state=state, temperature=0.0)
    assert torch.equal(whole, continued)


def test_sampling():
    logits = torch.tensor([[0.0, 10.0, 9.0, -5.0]])
    g = torch.Generator().manual_seed(0)
    assert sample(logits, temperature=0.0).item() == 1
    draws = {sample(logits, 1.0, top_p=0.5, generator=g).item() for _ in range(50)}
    assert draws == {1}, "top_p keeps only the smallest set reaching the mass"
    draws = {sample(logits, 1.0, top_p=0.99, generator=g).item() for _ in range(200)}
    assert draws == {1, 2}
    with pytest.raises(ValueError, match="top_p"):
        sample(logits, 1.0, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample(logits, -1.0)


def test_eos_stops_generation():
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=N))
    prompt = torch.randint(0, 256, (1, 5))
    first, _ = generate(model, prompt, 1, temperature=0.0)
    new, _ = generate(model, prompt, 10, temperature=0.0, eos_token_id=int(first[0, 0]))
    assert new.shape == (1, 1)

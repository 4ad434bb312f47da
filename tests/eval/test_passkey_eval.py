"""The passkey evaluation: rows, the memory-reset ablation, the key share, the heatmap."""

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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluation_on_cuda_matches_the_cpu():
    """The prompts are made on the CPU: the evaluation moves them, and the key-share probe keeps its sums, on
    the model's device (both failed on an H200 in session 8)."""
    model = tiny_model()
    on_cpu = evaluate_passkey(model, TOK, [600], [0.0, 1.0], keys=2, progress=False)
    on_gpu = evaluate_passkey(model.cuda(), TOK, [600], [0.0, 1.0], keys=2, progress=False)
    for a, b in zip(on_cpu, on_gpu):
        assert a.answers == b.answers and a.accuracy == b.accuracy
        if a.memory_share is not None:
            assert abs(a.memory_share - b.memory_share) < 1e-4


def test_set_look_back_switches_a_trained_native_model_as_if_built_with_it():
    """eval/models.py:set_look_back on a model trained without the look back computes what the same weights
    compute in a model built with local_tail / local_sink; (0, 0) gives the paper's window back."""
    from infini_attention.eval.models import set_look_back

    model, built = tiny_model(), tiny_model(local_tail=16, local_sink=2)
    built.load_state_dict(model.state_dict())
    ids = torch.randint(0, 256, (1, 200), generator=torch.Generator().manual_seed(1))
    paper = model(ids)[0]
    assert set_look_back(model, 16, 2) is model and model.config.local_tail == 16 and model.config.local_sink == 2
    looked = model(ids)[0]
    assert torch.equal(looked, built(ids)[0])
    assert (looked[:, 64:] - paper[:, 64:]).abs().max() > 1e-4  # later segments see more
    assert torch.equal(looked[:, :64], paper[:, :64])  # the first segment has nothing before it
    assert torch.equal(set_look_back(model, 0, 0)(ids)[0], paper)


@pytest.mark.parametrize(
    "text, pair", [("128/4", (128, 4)), ("32", (32, 0)), ("off", (0, 0)), ("0/0", (0, 0)), (" OFF ", (0, 0))]
)
def test_parse_look_back(text, pair):
    from infini_attention.eval.models import parse_look_back

    assert parse_look_back(text) == pair


@pytest.mark.parametrize("text", ["a/b", "16/-1", "", "16/2/1"])
def test_parse_look_back_refuses_what_is_not_two_token_counts(text):
    from infini_attention.eval.models import parse_look_back

    with pytest.raises(ValueError, match="--look-back"):
        parse_look_back(text)


def test_set_look_back_refuses_a_model_without_infini_layers_or_a_window_longer_than_a_segment():
    from infini_attention.eval.models import set_look_back

    with pytest.raises(ValueError, match="window, not of 'local' attention"):
        set_look_back(tiny_model(attention="local"), 16, 2)
    with pytest.raises(ValueError, match="less than segment_len"):
        set_look_back(tiny_model(), 60, 4)


def test_cli_look_back_is_applied_and_said_in_the_report(tmp_path, capsys):
    from infini_attention.cli.main import main
    from infini_attention.models.io import save_model

    save_model(tiny_model(), tmp_path / "model")
    args = ["eval", "passkey", "--checkpoint", str(tmp_path / "model"), "--lengths", "300", "--depths", "0"]
    args += ["--keys", "1", "--no-ablation"]
    assert main([*args, "--look-back", "16/2", "--out", str(tmp_path / "on")]) == 0
    assert "variants: local_tail=16, local_sink=2" in (tmp_path / "on.md").read_text()
    assert main([*args, "--out", str(tmp_path / "off")]) == 0
    assert "local_tail" not in (tmp_path / "off.md").read_text()
    capsys.readouterr()
    assert main([*args, "--look-back", "16/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--look-back takes TAIL/SINK" in err and len(err.splitlines()) == 1

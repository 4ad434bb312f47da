"""The trainer: exact resume, parameter groups, schedule, data-parallel == accumulation, CLI."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import infini_attention.train.loop as train_module
from conftest import assert_close
from infini_attention.checkpoint import load_model
from infini_attention.cli.main import main as cli
from infini_attention.models import InfiniTransformer
from infini_attention.train import TrainConfig, build_model, lr_factor, parameter_groups, train

TINY = dict(
    preset="tiny",
    model={"segment_len": 32},
    task="passkey",
    seq_len=320,
    min_len=280,
    batch_size=2,
    eval_every=0,
    warmup_steps=2,
    lr=3e-3,
    full_loss=True,
)


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resumed_run_equals_the_uninterrupted_one_step_for_step(tmp_path):
    whole = TrainConfig(**TINY, steps=6, save_every=3, out=str(tmp_path / "whole"))
    train(whole, progress=False)
    part = TrainConfig(**TINY, steps=6, save_every=3, out=str(tmp_path / "part"))
    interrupted = TrainConfig(**{**part.__dict__, "steps": 3})
    train(interrupted, progress=False)
    train(part, resume=True, progress=False)
    assert len(losses(tmp_path / "part")) == 6
    assert losses(tmp_path / "part") == losses(tmp_path / "whole")
    a = load_file(str(tmp_path / "whole" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_a_crash_between_checkpoints_logs_each_step_once(tmp_path, monkeypatch):
    """A run that dies in step 6 with its last checkpoint at step 3 resumes from 3: steps 4-5 are run
    again and logged once, with the values of an uninterrupted run."""
    whole = TrainConfig(**TINY, steps=6, save_every=3, out=str(tmp_path / "whole"))
    train(whole, progress=False)
    crashed = TrainConfig(**TINY, steps=6, save_every=3, out=str(tmp_path / "crashed"))
    real_build_task = train_module.build_task

    def crashing_task(cfg, segment_len):
        task = real_build_task(cfg, segment_len)
        real_batch = task.batch

        def batch(step, *args):
            if step == 5:
                raise RuntimeError("simulated crash")
            return real_batch(step, *args)

        task.batch = batch
        return task

    monkeypatch.setattr(train_module, "build_task", crashing_task)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(crashed, progress=False)
    assert len(losses(tmp_path / "crashed")) == 5
    monkeypatch.setattr(train_module, "build_task", real_build_task)
    train(crashed, resume=True, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert losses(tmp_path / "crashed") == losses(tmp_path / "whole")


def test_tensorboard_logs_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    train(TrainConfig(**TINY, steps=2, out=str(tmp_path / "run")), progress=False)
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_loss_falls_and_checkpoint_loads(tmp_path):
    cfg = TrainConfig(**TINY, steps=30, save_every=30, out=str(tmp_path / "run"))
    train(cfg, progress=False)
    curve = losses(tmp_path / "run")
    assert sum(curve[-5:]) / 5 < 0.8 * sum(curve[:5]) / 5, curve
    model = load_model(tmp_path / "run" / "checkpoint")
    assert model.config.segment_len == 32
    assert (tmp_path / "run" / "train_config.json").exists()


def test_gate_has_its_own_group_without_weight_decay():
    cfg = TrainConfig(lr=1e-3, gate_lr=5e-2, weight_decay=0.1)
    model = InfiniTransformer(cfg.model_config())
    groups = {g["name"]: g for g in parameter_groups(model, cfg)}
    assert {id(p) for p in groups["gate"]["params"]} == {id(p) for p in model.gate_parameters()}
    assert groups["gate"]["lr"] == 5e-2 and groups["gate"]["weight_decay"] == 0.0
    assert groups["no_decay"]["weight_decay"] == 0.0 and all(p.dim() == 1 for p in groups["no_decay"]["params"])
    n_params = sum(len(g["params"]) for g in groups.values())
    assert n_params == len(list(model.parameters()))


def test_sharpness_scales_get_their_own_group_only_when_asked():
    for sharpness_lr, expected in [(None, None), (2e-2, 2e-2)]:
        cfg = TrainConfig(lr=1e-3, sharpness_lr=sharpness_lr, model={"sharpness": True})
        model = InfiniTransformer(cfg.model_config())
        groups = {g["name"]: g for g in parameter_groups(model, cfg)}
        scales = {id(layer.self_attn.log_sharpness) for layer in model.layers}
        if expected is None:
            assert "sharpness" not in groups and scales <= {id(p) for p in groups["no_decay"]["params"]}
        else:
            assert {id(p) for p in groups["sharpness"]["params"]} == scales
            assert groups["sharpness"]["lr"] == expected and groups["sharpness"]["weight_decay"] == 0.0
        assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, cfg) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[100] == pytest.approx(0.1)


def test_gradient_checkpointing_and_accumulation_run(tmp_path):
    cfg = TrainConfig(
        **TINY, steps=2, grad_accum=2, gradient_checkpointing=True, detach_every=2, out=str(tmp_path / "run")
    )
    last = train(cfg, progress=False)
    assert last["step"] == 2 and last["loss"] > 0


@pytest.mark.skipif(sys.platform != "linux", reason="gloo on Linux")
def test_two_process_data_parallel_equals_one_process_with_accumulation(tmp_path):
    """torchrun with 2 processes x 1 micro-batch gives the weights of 1 process x 2 micro-batches."""
    common = [
        "--task",
        "passkey",
        "--preset",
        "tiny",
        "--model",
        "segment_len=32",
        "--seq-len",
        "300",
        "--min-len",
        "300",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--eval-every",
        "0",
        "--save-every",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(3):  # the free port can be taken by another process before torchrun binds it
        ddp_cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        ddp_cmd += ["--master_port", str(_free_port()), "-m", "infini_attention.cli.main", "train", *common]
        done = subprocess.run(
            [*ddp_cmd, "--out", str(tmp_path / f"ddp{attempt}")], env=env, capture_output=True, text=True, timeout=300
        )
        if done.returncode == 0 or "address already in use" not in done.stderr.lower():
            break
    assert done.returncode == 0, f"torchrun failed:\n{done.stderr[-3000:]}"
    (tmp_path / f"ddp{attempt}").rename(tmp_path / "ddp")
    single_cmd = [sys.executable, "-m", "infini_attention.cli.main", "train", *common, "--grad-accum", "2"]
    done = subprocess.run(
        [*single_cmd, "--out", str(tmp_path / "single")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"single-process run failed:\n{done.stderr[-3000:]}"
    ddp = load_file(str(tmp_path / "ddp" / "checkpoint" / "model.safetensors"))
    single = load_file(str(tmp_path / "single" / "checkpoint" / "model.safetensors"))
    for name in single:
        assert_close(ddp[name], single[name], atol=1e-5, what=name)
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "single"), rel=1e-5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_train_then_eval_passkey(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli(
            [
                "train",
                "--task",
                "copy",
                "--preset",
                "tiny",
                "--model",
                "segment_len=32",
                "--model",
                "rule=delta",
                "--seq-len",
                "160",
                "--min-len",
                "160",
                "--copy-len",
                "8",
                "--batch-size",
                "2",
                "--steps",
                "2",
                "--eval-every",
                "0",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((out / "train_config.json").read_text())["model"] == {"segment_len": 32, "rule": "delta"}
    assert load_model(out / "checkpoint").config.rule == "delta"
    assert (
        cli(
            [
                "eval",
                "passkey",
                "--checkpoint",
                str(out / "checkpoint"),
                "--lengths",
                "300",
                "--depths",
                "0",
                "1",
                "--keys",
                "2",
                "--out",
                str(tmp_path / "pk"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "pk.json").read_text())
    assert len(data["rows"]) == 4 and (tmp_path / "pk.png").stat().st_size > 1000
    assert "memory reset" in (tmp_path / "pk.md").read_text()
    # bad model field: a clear error, exit code 2
    assert cli(["train", "--model", "segment_len=0", "--out", str(tmp_path / "bad")]) == 2
    assert "segment_len must be >= 1" in capsys.readouterr().err


def test_a_fresh_run_does_not_overwrite_a_checkpoint(tmp_path):
    cfg = TrainConfig(**TINY, steps=1, out=str(tmp_path / "run"))
    train(cfg, progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, progress=False)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert cli(["train", "--out", str(tmp_path / "none"), "--resume", "--steps", "1"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_init_from_with_a_rule_that_adds_parameters(tmp_path, capsys):
    """--init-from a linear-rule model with --model rule=deltanet: every shared weight is copied, the
    write strengths start at their initial values and are named; a weight the model lacks is an error."""
    train(TrainConfig(**TINY, steps=1, out=str(tmp_path / "linear")), progress=False)
    init = str(tmp_path / "linear" / "checkpoint")
    cfg = TrainConfig(**{**TINY, "model": {"rule": "deltanet"}}, steps=1, init_from=init)
    cfg.out = str(tmp_path / "deltanet")
    after = build_model(cfg)  # the model a run starts from
    assert "write_weight" in capsys.readouterr().out
    before = load_model(tmp_path / "linear" / "checkpoint").state_dict()
    assert after.config.rule == "deltanet"
    for name, value in after.state_dict().items():
        if "write_" in name:
            assert not value.any(), f"{name} should start at zero"
        else:
            assert torch.equal(value, before[name]), f"{name} is not the checkpoint's"
    train(cfg, progress=False)
    back = TrainConfig(**{**TINY, "model": {"rule": "linear"}}, steps=1, init_from=str(tmp_path / "deltanet"))
    back.init_from += "/checkpoint"
    back.out = str(tmp_path / "back")
    with pytest.raises(ValueError, match="write_weight"):
        train(back, progress=False)


@pytest.mark.parametrize("start", [1, 2])
def test_init_from_with_more_shift_taps_starts_as_the_checkpoint(tmp_path, capsys, start):
    """--model key_shift=3 query_shift=1 from a key_shift=1 (or 2: rows not a multiple) model: the old taps
    are kept, new taps start at zero, so the model computes what the checkpoint computes."""
    model = {"segment_len": 32, "key_shift": start}
    train(TrainConfig(**{**TINY, "model": model}, steps=2, out=str(tmp_path / "one")), progress=False)
    init = str(tmp_path / "one" / "checkpoint")
    grown = {"key_shift": 3, "query_shift": 1}
    cfg = TrainConfig(**{**TINY, "model": grown}, steps=1, init_from=init)
    cfg.out = str(tmp_path / "three")
    after = build_model(cfg)  # the model a run starts from
    assert f"grows from {32 * start} to 96 rows" in capsys.readouterr().out
    before = load_model(init)
    assert after.config.key_shift == 3 and after.config.query_shift == 1
    for layer_before, layer_after in zip(before.layers, after.layers):
        w = layer_after.self_attn.shift_proj.weight
        assert torch.equal(w[: 32 * start], layer_before.self_attn.shift_proj.weight) and not w[32 * start :].any()
        assert not layer_after.self_attn.query_shift_proj.weight.any()
    ids = torch.randint(0, 256, (2, 100))
    assert torch.equal(before(ids)[0], after(ids)[0])

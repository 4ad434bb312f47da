"""Nothing lost, nothing silent: crashes at each step of a save, two writers, Ctrl-C, non-finite values."""

import dataclasses

import pytest
import torch

import infini_attention.train.checkpointing as checkpointing
import infini_attention.train.loop as loop
from infini_attention.models.io import load_model
from infini_attention.train import TrainConfig, train
from infini_attention.train.checkpointing import SAVE_POINTS, RunLock, recover_checkpoint
from infini_attention.train.loop import TrainingInterrupted

TINY = dict(task="copy", preset="tiny", seq_len=48, min_len=40, copy_len=6, batch_size=2, warmup_steps=1)
TINY["model"] = {"segment_len": 16}


class Killed(BaseException):
    """Stands for kill -9: nothing in train() catches it."""


def weights(folder):
    return load_model(folder / "checkpoint").state_dict()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    train(TrainConfig(**TINY, steps=6, save_every=2, out=str(out)), progress=False)
    return weights(out)


@pytest.mark.parametrize("point", SAVE_POINTS)
def test_a_kill_at_each_step_of_a_save_resumes_exactly(point, tmp_path, monkeypatch, uninterrupted):
    seen = []

    def crash(name):
        seen.append(name)
        if name == point and seen.count(point) == 2:  # during the second save (step 4): an old one exists
            raise Killed

    monkeypatch.setattr(checkpointing, "_crash_point", crash)
    cfg = TrainConfig(**TINY, steps=6, save_every=2, out=str(tmp_path))
    with pytest.raises(Killed):
        train(cfg, progress=False)
    monkeypatch.setattr(checkpointing, "_crash_point", lambda name: None)
    assert recover_checkpoint(tmp_path / "checkpoint"), f"no checkpoint survived a kill at {point}"
    assert not (tmp_path / "checkpoint.tmp").exists() and not (tmp_path / "checkpoint.old").exists()
    train(cfg, resume=True, progress=False)
    for name, value in weights(tmp_path).items():
        assert torch.equal(value, uninterrupted[name]), f"kill at {point}: {name} differs after resume"
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4, 5, 6], "every step logged once"


def test_a_fresh_run_never_deletes_a_recoverable_checkpoint(tmp_path):
    cfg = TrainConfig(**TINY, steps=2, save_every=2, out=str(tmp_path))
    train(cfg, progress=False)
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")  # as a crash between the two renames leaves it
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(dataclasses.replace(cfg, steps=3), progress=False)
    assert (tmp_path / "checkpoint" / "train_state.json").exists()


def test_a_second_run_on_the_same_folder_fails_at_once(tmp_path):
    lock = RunLock(tmp_path)
    try:
        with pytest.raises(ValueError, match="in use by another infini train"):
            train(TrainConfig(**TINY, steps=1, out=str(tmp_path)), progress=False)
    finally:
        lock.release()
    train(TrainConfig(**TINY, steps=1, out=str(tmp_path)), progress=False)  # free again


def test_ctrl_c_saves_the_steps_done_and_resume_continues(tmp_path, monkeypatch, uninterrupted):
    real = loop.build_task

    def interrupting(cfg, segment_len):
        task = real(cfg, segment_len)
        batch = task.batch

        def maybe_interrupt(step, rank=0, micro=0):
            if step == 3:
                raise KeyboardInterrupt
            return batch(step, rank, micro)

        task.batch = maybe_interrupt
        return task

    monkeypatch.setattr(loop, "build_task", interrupting)
    cfg = TrainConfig(**TINY, steps=6, save_every=2, out=str(tmp_path))
    with pytest.raises(TrainingInterrupted, match="interrupted at step 3; saved. Resume with"):
        train(cfg, progress=False)
    monkeypatch.setattr(loop, "build_task", real)
    train(cfg, resume=True, progress=False)
    for name, value in weights(tmp_path).items():
        assert torch.equal(value, uninterrupted[name]), f"{name} differs after Ctrl-C and resume"


def test_a_non_finite_loss_stops_without_saving_it(tmp_path, monkeypatch):
    cfg = TrainConfig(**TINY, steps=4, save_every=2, out=str(tmp_path))
    real, calls = loop.loss_fn, []

    def poisoned(logits, labels):
        loss, count = real(logits, labels)
        calls.append(1)
        return (loss * float("nan"), count) if len(calls) == 3 else (loss, count)

    monkeypatch.setattr(loop, "loss_fn", poisoned)
    with pytest.raises(FloatingPointError, match="not finite at step 3: stopped without saving"):
        train(cfg, progress=False)
    good = weights(tmp_path)
    assert all(torch.isfinite(v).all() for v in good.values())
    assert '"step": 2' in (tmp_path / "checkpoint" / "train_state.json").read_text()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(lr=float("nan")), "--lr must be a finite number > 0"),
        (dict(lr=-1.0), "--lr must be a finite number > 0"),
        (dict(batch_size=0), "--batch-size must be a finite number >= 1"),
        (dict(save_every=0), "--save-every"),
        (dict(steps=-5), "--steps"),
        (dict(min_len=100, seq_len=50), "--min-len 100 is longer than --seq-len 50"),  # TINY's task is copy
        (dict(eval_lengths=["2K"]), "--eval-lengths takes token counts"),
        (dict(local_start=1.5), "--local-start is a share"),
    ],
)
def test_values_that_cannot_train_are_refused_before_any_work(change, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train(TrainConfig(**{**TINY, **change}, out=str(tmp_path)), progress=False)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_earlier_metrics_are_kept_unless_overwrite_and_a_finished_run_says_so(tmp_path, capsys):
    cfg = TrainConfig(**TINY, steps=2, save_every=2, out=str(tmp_path))
    train(cfg, progress=False)
    train(cfg, resume=True, progress=False)
    assert "already at step 2 of 2" in capsys.readouterr().out
    import shutil

    shutil.rmtree(tmp_path / "checkpoint")
    with pytest.raises(ValueError, match="--overwrite"):
        train(cfg, progress=False)
    last = train(cfg, progress=False, overwrite=True)
    assert last["step"] == 2
    steps = [line for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if line]
    assert len(steps) == 2, "the overwritten run's metrics replace the earlier ones"


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_to_a_background_run_saves_and_exits_130(tmp_path, sig):
    """`kill` (SIGTERM) or `kill -INT` of `infini train` started in the background, where a shell leaves SIGINT
    ignored: the run saves the steps done, says how to resume, and exits 130."""
    import json
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "infini_attention.cli.main",
        "train",
        "--task",
        "copy",
        "--preset",
        "tiny",
        "--model",
        "segment_len=16",
        "--seq-len",
        "48",
        "--min-len",
        "40",
        "--copy-len",
        "6",
        "--batch-size",
        "2",
        "--steps",
        "100000",
        "--save-every",
        "100000",
        "--eval-every",
        "0",
        "--no-progress",
        "--out",
        str(out),
    ]
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731  (as `cmd &` in a script)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=ignore_sigint)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output.decode()[-2000:]
    saved = json.loads((out / "checkpoint" / "train_state.json").read_text())["step"]
    assert saved >= 3 and b"Resume with" in output

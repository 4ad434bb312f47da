"""Training checkpoints: the model's folder (its `save_weights`) + train_state.{safetensors,json}
(optimizer, scheduler, RNG, step, config), swapped in atomically."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from infini_attention.train.config import TrainConfig

# The steps of a save. Tests stop the process at each of them (`_crash_point` is where), to check that
# every crash leaves a checkpoint that `recover_checkpoint` finds and that --resume continues exactly;
# INFINI_CRASH_AT=<point> kills the process there (as kill -9 would) for a test from the outside.
SAVE_POINTS = ("written", "old_moved", "new_moved", "done")


def _crash_point(name: str) -> None:
    if os.environ.get("INFINI_CRASH_AT") == name:
        os._exit(77)


def fsync_tree(folder: Path) -> None:
    """Flush every file of `folder` and the folder itself to disk."""
    for path in [*folder.iterdir(), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: Path, text: str) -> None:
    """`path` holds either its old text or all of `text`, whenever the process dies."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _complete(folder: Path) -> bool:
    """A checkpoint folder whose last file (train_state.json) was written whole."""
    try:
        json.loads((folder / "train_state.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def recover_checkpoint(folder: Path) -> bool:
    """Make `folder` the newest complete checkpoint after a crash during a save; True if there is one.

    A save writes `<folder>.tmp`, renames `<folder>` to `<folder>.old`, renames the new one in and
    then deletes the old one: whatever step a crash interrupts, a complete copy survives under one
    of the three names, and this puts the newest one back as `<folder>`.
    """
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    if not _complete(folder):
        if folder.exists():
            shutil.rmtree(folder)  # never a half-written checkpoint: saves write .tmp first
        for candidate in (tmp, old):  # the new one if it was written whole, else the previous one
            if _complete(candidate):
                os.replace(candidate, folder)
                break
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    return _complete(folder)


def save_checkpoint(folder: Path, model, optimizer, scheduler, step: int, cfg: TrainConfig) -> None:
    """Write everything needed to resume into `folder`, crash-safely (see `recover_checkpoint`)."""
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_weights(tmp)  # a model folder (InfiniTransformer) or a transformers folder (hf/training.py)
    tensors, opt_state = {}, optimizer.state_dict()
    for idx, pstate in opt_state["state"].items():
        for name, value in pstate.items():
            tensors[f"optimizer.{idx}.{name}"] = value.detach().contiguous().cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, tmp / "train_state.safetensors")
    meta = {
        "step": step,
        "param_groups": opt_state["param_groups"],
        "scheduler": scheduler.state_dict(),
        "rng.python": random.getstate(),
        "train_config": dataclasses.asdict(cfg),
    }
    (tmp / "train_state.json").write_text(json.dumps(meta, indent=1))  # last: it marks the folder complete
    fsync_tree(tmp)
    _crash_point("written")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    _crash_point("old_moved")
    os.replace(tmp, folder)
    fsync_tree(folder.parent)
    _crash_point("new_moved")
    shutil.rmtree(old, ignore_errors=True)
    _crash_point("done")


class RunLock:
    """An exclusive lock on a run folder (OUT/.lock), held while a run writes to it."""

    def __init__(self, out: Path):
        import fcntl

        out.mkdir(parents=True, exist_ok=True)
        self.path = out / ".lock"
        self.file = open(self.path, "a+")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise ValueError(
                f"{out} is in use by another infini train ({holder}): wait for it, or choose another --out"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()}")
        self.file.flush()

    def release(self) -> None:
        self.file.close()  # closing drops the lock


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> int:
    """Restore model, optimizer, scheduler and RNG from `folder`; returns the step to continue from."""
    model.load_weights(folder)
    tensors = load_file(str(folder / "train_state.safetensors"))
    meta = json.loads((folder / "train_state.json").read_text())
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    version, internal, gauss = meta["rng.python"]
    random.setstate((version, tuple(internal), gauss))
    return meta["step"]


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metrics of steps <= `step` (those the checkpoint being resumed has seen), atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if line and json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError):  # a line cut short by a crash
            continue
    write_atomically(path, "".join(line + "\n" for line in kept))

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


def save_checkpoint(folder: Path, model, optimizer, scheduler, step: int, cfg: TrainConfig) -> None:
    """Write everything needed to resume into `folder`, atomically (a crash leaves the old one intact)."""
    tmp = folder.with_name(folder.name + ".tmp")
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
    (tmp / "train_state.json").write_text(json.dumps(meta, indent=1))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


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
    """Keep the metrics of steps <= `step` (those the checkpoint being resumed has seen)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))

"""Save and load a model as a folder: `model.safetensors` (weights) + `config.json` (ModelConfig)."""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path

import torch

from infini_attention.models.config import ModelConfig
from infini_attention.models.transformer import InfiniTransformer
from infini_attention.safe_files import load_checked, save_checked


def save_model(model: InfiniTransformer, folder: str | os.PathLike, extra: dict | None = None) -> None:
    """Write weights and config atomically (temporary files, then rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # tied weights are stored once; load_model ties them again from the config
    tensors = {
        k: v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if not (model.config.tie_embeddings and k == "lm_head.weight")
    }
    save_checked(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json.tmp").write_text(json.dumps({**model.config.to_dict(), **(extra or {})}, indent=2) + "\n")
    os.replace(folder / "config.json.tmp", folder / "config.json")


NOTES = {"about"}  # config.json keys that describe a model and configure nothing


def model_folder(folder: str | os.PathLike) -> Path:
    """`folder`, or its `checkpoint/` when `folder` is a training run's folder (--out of infini train)."""
    folder = Path(folder)
    if not (folder / "config.json").exists() and (folder / "checkpoint" / "config.json").exists():
        return folder / "checkpoint"
    return folder


def load_config(folder: str | os.PathLike) -> ModelConfig:
    path = model_folder(folder) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a model folder holds config.json and model.safetensors")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of ModelConfig fields")
    fields = set(ModelConfig.__dataclass_fields__)
    unknown = sorted(set(data) - fields - NOTES)
    if unknown:
        hints = [
            f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, fields, 1)) else k for k in unknown
        ]
        print(f"{path}: ignoring unknown keys {', '.join(hints)}", file=sys.stderr)
    try:
        return ModelConfig.from_dict({k: v for k, v in data.items() if k in fields})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> InfiniTransformer:
    """A model folder written by save_model (or by `infini train`), in eval mode."""
    folder = model_folder(folder)
    model = InfiniTransformer(load_config(folder))
    load_weights_into(model, folder, device=str(device))
    return model.to(device).eval()


def load_weights_into(model: InfiniTransformer, folder: str | os.PathLike, device: str = "cpu") -> None:
    """Read FOLDER/model.safetensors (verified: load_checked) into `model`; a mismatch is one clear line."""
    path = Path(folder) / "model.safetensors"
    weights, _ = load_checked(path, device=device)
    if model.config.tie_embeddings and "embed_tokens.weight" in weights:
        weights["lm_head.weight"] = weights["embed_tokens.weight"]
    where = f"{path} does not fit {Path(folder) / 'config.json'}"
    try:  # through load_state_dict, so that layers can rename keys of older checkpoints (load hooks)
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # shape mismatches: keep the first one, in one line
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e).splitlines()[0])
        raise ValueError(f"{where}: {detail}") from None
    if missing or unexpected:
        parts = [
            f"missing {sorted(missing)[:3]}" * bool(missing),
            f"unexpected {sorted(unexpected)[:3]}" * bool(unexpected),
        ]
        raise ValueError(f"{where}: {'; '.join(p for p in parts if p)}")

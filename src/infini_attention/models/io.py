"""Save and load a model as a folder: `model.safetensors` (weights) + `config.json` (ModelConfig)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from infini_attention.models.config import ModelConfig
from infini_attention.models.transformer import InfiniTransformer


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
    save_file(tensors, folder / "model.safetensors.tmp", metadata={"format": "pt"})
    (folder / "config.json.tmp").write_text(json.dumps({**model.config.to_dict(), **(extra or {})}, indent=2) + "\n")
    os.replace(folder / "model.safetensors.tmp", folder / "model.safetensors")
    os.replace(folder / "config.json.tmp", folder / "config.json")


def load_config(folder: str | os.PathLike) -> ModelConfig:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a model folder holds config.json and model.safetensors")
    data = json.loads(path.read_text())
    fields = set(ModelConfig.__dataclass_fields__)
    return ModelConfig.from_dict({k: v for k, v in data.items() if k in fields})


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> InfiniTransformer:
    """A model folder written by save_model (or by `infini train`), in eval mode."""
    model = InfiniTransformer(load_config(folder))
    weights = load_file(str(Path(folder) / "model.safetensors"), device=str(device))
    if model.config.tie_embeddings:
        weights["lm_head.weight"] = weights["embed_tokens.weight"]
    model.load_state_dict(weights)
    return model.to(device).eval()

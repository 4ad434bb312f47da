"""safetensors files that prove they are whole: a checksum of every tensor in the metadata, verified on
load together with finiteness, and one clear line naming the file when something is wrong."""

from __future__ import annotations

import hashlib
import os

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

CHECKSUM_KEY = "sha256"  # metadata entry: sha256 over the tensors' names, dtypes, shapes and bytes


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checked(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    """save_file with the checksum in the metadata, written to PATH.tmp and renamed (atomically)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {**(metadata or {}), CHECKSUM_KEY: tensors_digest(tensors)}
    tmp = f"{os.fspath(path)}.tmp"
    save_file(tensors, tmp, metadata=metadata)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checked(path: str | os.PathLike, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a safetensors file, verified: readable, checksum (when the file has one,
    as every file this library writes does), and every floating-point value finite."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(path, device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupted?): {e}") from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and tensors_digest(tensors) != expected:
        raise ValueError(f"{path} is corrupted: its tensors do not match the checksum written with them")
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path} holds non-finite values in {name}: a corrupted file or a diverged run")
    return tensors, metadata

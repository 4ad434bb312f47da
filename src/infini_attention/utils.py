"""Small helpers shared by the command line, evaluation and benchmarks, and the names of shipped model files."""

from __future__ import annotations

import os
import resource
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "assets"  # assets/smollm2-transfer, assets/smollm2-memory
ARTIFACT = "transfer.safetensors"  # a transfer artifact's tensors (hf/transfer.py) ...
MANIFEST = "manifest.json"  # ... and its settings
ADAPTER_META = "adapter.json"  # a memory adapter's settings (hf/lora.py:META_FILE)


def memory_model_folder(spec: str) -> Path | None:
    """The folder of `spec` when it is a transfer artifact (manifest.json + transfer.safetensors) or a memory
    adapter (adapter.json, hf/lora.py); the shipped ones by name ("smollm2-transfer", "smollm2-memory"); else None."""
    folder = Path(spec).expanduser()
    if not folder.exists() and "/" not in spec:
        folder = SHIPPED / spec
    if (folder / ARTIFACT).is_file() and (folder / MANIFEST).is_file():
        return folder
    if (folder / ADAPTER_META).is_file():
        return folder
    return None


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc), or the peak so far where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def parse_count(text: str) -> int:
    """'4K' -> 4096, '1M' -> 1048576, '1500' -> 1500 (powers of two, as token counts usually are)."""
    text = str(text).strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"not a token count: {text!r} (examples: 4096, 32K, 1M)") from None
    if value < 1 or value != int(value):
        raise ValueError(f"a token count must be a positive integer, got {text!r}")
    return int(value)


def format_count(n: int) -> str:
    """1048576 -> '1M', 32768 -> '32K', 1500 -> '1500', 128000 -> '128000' (only a power of two times
    K or M is abbreviated: 128000 = 125K would read as if it were 128K)."""
    for unit, size in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= size and n % size == 0 and (n // size) & (n // size - 1) == 0:
            return f"{n // size}{unit}"
    return str(n)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def lazy_attribute(package: str, where: dict[str, str], name: str):
    """`package.name` imported from `package.<where[name]>` on first use (a package's PEP 562 __getattr__)."""
    import importlib
    import sys

    if name not in where:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
    vars(sys.modules[package])[name] = value  # once imported, a plain attribute
    return value

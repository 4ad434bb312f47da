"""Shared helpers for the benchmark scripts: thread settings, interleaved timing, tables, fresh-process RSS.

The machine these run on is shared, so a single timing means little. Every script times the things
it compares in the same run, interleaved (A B, B A, A B, ...), and reports the ratio of medians;
absolute times are printed for orientation only.
"""

from __future__ import annotations

import os

# Before torch is imported: one thread by default, and idle OpenMP workers sleep instead of spinning
# (spinning workers steal the CPU from the other jobs on a shared machine and make timings noisy).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def setup(threads: int | None = None) -> None:
    torch.set_num_threads(threads or int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)


def machine() -> str:
    """`lscpu` model name, logical CPUs, torch threads, torch version: printed above every table."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Fastest seconds of each callable, run in turn (order reversed every other round) `reps` times.

    The minimum, not the median: on a shared machine other jobs only ever add time, so the fastest
    of several interleaved runs is the least disturbed estimate of each.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub-markdown table (so it can be pasted into docs/performance.md as printed)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def run_worker(script: str, args: list[str]) -> dict:
    """Run `python script --worker ARGS` in a fresh process and return the JSON it prints last.

    Peak RSS (`ru_maxrss`) only ever grows inside a process, so each measured length gets its own.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, script, "--worker", *args], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {script} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so a worker would report its
    parent's size whenever the parent was bigger.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

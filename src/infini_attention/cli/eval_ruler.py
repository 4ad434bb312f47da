"""RULER's synthetic tasks, generated offline: `infini eval ruler`.

    infini eval ruler --model src/infini_attention/assets/passkey --tasks niah_single_1 niah_single_2 \
        --haystack book.txt --lengths 4000 32000 --samples 8 --out docs/results/ruler

--model takes a native checkpoint folder, gguf:default (SmolLM2, converted on load) or a converted
Hugging Face folder; HF models get their own tokenizer and chat template.
"""

from __future__ import annotations

import sys
from pathlib import Path

from infini_attention.cli.common import add_look_back_argument, check_writable, refuse_overwrite
from infini_attention.eval.models import load_eval_model, look_back_text, parse_look_back, set_look_back
from infini_attention.utils import parse_count

HELP = "RULER's synthetic tasks (niah, vt, cwe, fwe) by task x length"
TASK_NAMES = [  # data/ruler.py TASKS (a literal here: --help stays fast)
    "niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
    "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe",
]  # fmt: skip


def add_arguments(p):
    p.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        required=True,
        help="native checkpoint folder, gguf:default, gguf:<file>, a converted HF folder, or smollm2-memory "
        "(the shipped SmolLM2 with its memory adapter; also any transfer artifact or memory adapter folder)",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["niah_single_1", "niah_single_2", "niah_multikey_1"],
        help=f"tasks, or 'all' ({', '.join(TASK_NAMES)})",
    )
    p.add_argument(
        "--lengths",
        nargs="+",
        default=["4000", "32000"],
        help="lengths in tokens, prompt plus answer budget as RULER counts them (K/M suffixes)",
    )
    p.add_argument("--samples", type=int, default=8, help="fresh instances per (task, length) cell")
    p.add_argument(
        "--haystack",
        default=None,
        help="text file(s), comma-separated, for the essay haystacks (default: RULER's noise filler)",
    )
    p.add_argument("--tokenizer", default=None, help="tokenizer name (default: the model's)")
    p.add_argument("--segment-len", type=int, default=None, help="segment length of an HF model converted on load")
    p.add_argument(
        "--no-chat-template",
        action="store_true",
        help="plain prompts even when the model's tokenizer has a chat template (default: wrapped in it)",
    )
    p.add_argument("--no-ablation", action="store_true", help="skip the memory-reset ablation")
    p.add_argument("--ablation-up-to", default=None, help="run the memory-reset ablation only up to this length")
    add_look_back_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="path prefix for OUT.json, OUT.png and OUT.md")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.json, OUT.png and OUT.md if they exist")


def run(args) -> int:
    tasks = TASK_NAMES if args.tasks == ["all"] else args.tasks
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown:
        raise ValueError(f"unknown RULER task(s) {', '.join(unknown)}: choose from {', '.join(TASK_NAMES)} or all")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    lengths = [parse_count(n) for n in args.lengths]
    look_back = parse_look_back(args.look_back) if args.look_back else None
    if args.out:  # before any work: an evaluation can take an hour
        out = Path(args.out)
        check_writable(out.parent)
        refuse_overwrite([out.with_suffix(s) for s in (".json", ".png", ".md")], args.overwrite)

    from infini_attention.data.haystack import get_haystack
    from infini_attention.eval import ruler

    haystack = get_haystack(args.haystack) if args.haystack else None
    overrides = {"segment_len": args.segment_len} if args.segment_len else {}
    em = load_eval_model(args.model, args.tokenizer, **overrides)
    if look_back is not None:
        set_look_back(em.model, *look_back)
    if args.no_chat_template:
        em.chat_template = False
    ablation = False if args.no_ablation else (parse_count(args.ablation_up_to) if args.ablation_up_to else True)
    done = []

    def keep(row):  # every finished cell is on disk at once: a crash or Ctrl-C loses only the cell under way
        done.append(row)
        if args.out:
            ruler.save_json(done, Path(args.out).with_suffix(".json"), extra={"model": args.model, "partial": True})

    rows = ruler.evaluate_ruler(
        em, tasks, lengths, args.samples, ablation=ablation, seed=args.seed, haystack=haystack, on_row=keep
    )
    print(ruler.format_table(rows))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        command = "infini eval ruler " + " ".join(sys.argv[3:] if sys.argv[1:3] == ["eval", "ruler"] else [])
        setting = (
            f"model `{args.model}` (tokenizer {em.tokenizer.name}{', chat template' if em.chat_template else ''}"
            f"{look_back_text(em.model)}), "
            f"haystack `{args.haystack or 'the noise filler'}`, {args.samples} fresh instances per cell, "
            f"seed {args.seed}"
        )
        ruler.save_json(
            rows, out.with_suffix(".json"), extra={"model": args.model, "haystack": args.haystack, "setting": setting}
        )
        drawn = ruler.plot_heatmap(rows, out.with_suffix(".png"), title=f"RULER, {Path(args.model).name}")
        image = out.with_suffix(".png").name if drawn else None
        out.with_suffix(".md").write_text(ruler.format_report(rows, command, setting, image))
        print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}" + (f", {image}" if drawn else ""))
    return 0

"""BABILong: questions about facts hidden in long background text, by task x length, with the memory ablation.

    infini eval babilong --model src/infini_attention/assets/passkey --generate --tasks qa1 qa2 \
        --lengths 0 1K 4K --samples 5 --out docs/results/babilong

Reads BABILong's published data (--data FOLDER laid out as FOLDER/<length>/<task>.jsonl, .json
or .parquet, one such file, or hf:RMT-team/babilong-1k-samples, which needs a network) or
generates qa1-qa3 offline (--generate: bAbI stories hidden in --haystack text, the paper's filler
by default, up to each length in tokens). Every prompt is BABILong's (instruction and post-prompt;
--examples adds its few-shot examples, --bare drops all three), streamed through the model with its
state carried; the greedy answer is scored as BABILong does. With --out PREFIX it writes PREFIX.json
(every answer), PREFIX.md (the table) and PREFIX.png (the heatmap).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from infini_attention.cli.common import add_look_back_argument, check_writable, refuse_overwrite
from infini_attention.eval.models import look_back_text, parse_look_back, set_look_back  # plain Python

HELP = "BABILong: qa tasks on facts hidden in long text (published data or generated qa1-qa3)"


def add_arguments(p):
    p.add_argument(
        "--model", required=True, help="native model folder, gguf:default, a converted HF folder or smollm2-memory"
    )
    p.add_argument("--tokenizer", default=None, help="tokenizer name (default: the model's, else byte)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="FOLDER/<length>/<task>.jsonl (.json, .parquet), one such file, or hf:<name>")
    source.add_argument("--generate", action="store_true", help="generate qa1-qa3 offline (no data needed)")
    p.add_argument("--haystack", default=None, help="background text file(s) for --generate (default: paper filler)")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks, e.g. qa1 qa2 qa3 (default: qa1-qa3, or all found)")
    p.add_argument(
        "--lengths",
        nargs="+",
        default=None,
        help="--data: configs (0k 1k 4k ..., default all found); --generate: tokens (0 1K 4K, default 0 1K 4K)",
    )
    p.add_argument("--samples", type=int, default=10, help="instances per (task, length) cell")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated instances")
    add_look_back_argument(p)
    p.add_argument("--examples", action="store_true", help="add BABILong's few-shot examples to each prompt")
    p.add_argument("--bare", action="store_true", help="no instruction, examples or post-prompt: context + question")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length (default 20, 64 for bytes)")
    p.add_argument("--no-ablation", action="store_true", help="skip the memory-reset ablation")
    p.add_argument("--segment-len", type=int, default=None, help="segment length of an HF model converted on load")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", help="path prefix for OUT.json, OUT.md and OUT.png")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.json, OUT.md and OUT.png if they exist")


def outputs(prefix: str) -> list[Path]:
    out = Path(prefix)
    return [out.with_name(out.name + suffix) for suffix in (".json", ".md", ".png")]


def run(args) -> int:
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if args.examples and args.bare:
        raise ValueError("give --examples or --bare, not both")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.haystack and not args.generate:
        raise ValueError("--haystack is the background of --generate; published data brings its own")
    look_back = parse_look_back(args.look_back) if args.look_back else None
    if args.out:  # before any work: an evaluation can take an hour
        check_writable(Path(args.out).parent)
        refuse_overwrite(outputs(args.out), args.overwrite)

    import torch

    from infini_attention.data import babi
    from infini_attention.eval import babilong
    from infini_attention.eval.models import load_eval_model

    for task in args.tasks or ():
        babi.check_task(task)
    if args.generate:
        tasks = args.tasks or list(babi.GENERATED_TASKS)
        for task in tasks:
            if task not in babi.GENERATED_TASKS:
                raise ValueError(f"--generate makes {', '.join(babi.GENERATED_TASKS)}, not {task}: read it with --data")
        lengths = [babi.parse_length(n) for n in (args.lengths or ["0", "1K", "4K"])]
        haystack = babi.get_haystack(args.haystack) if args.haystack else None
    else:
        records = babi.read_babilong(args.data, args.tasks, args.lengths)
        cells = {}
        for r in records:
            cells.setdefault((r.task, r.length), []).append(r)
        records = [r for group in cells.values() for r in group[: args.samples]]

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    overrides = {"segment_len": args.segment_len} if args.segment_len else {}
    em = load_eval_model(args.model, args.tokenizer, device=device, **overrides)
    if look_back is not None:
        set_look_back(em.model, *look_back)
    if args.generate:
        records = [
            r
            for task in tasks
            for n in lengths
            for r in babi.generate_cell(task, em.tokenizer, n, args.samples, seed=args.seed, haystack=haystack)
        ]
    answers = babilong.evaluate_babilong(
        em,
        records,
        ablation=not args.no_ablation,
        examples=args.examples,
        bare=args.bare,
        max_new_tokens=args.max_new_tokens,
        progress=not args.no_progress,
    )
    print(babilong.format_table(answers))
    print(json.dumps(babilong.summary(answers)))
    if args.out:
        json_path, md_path, png_path = outputs(args.out)
        command = "infini eval babilong " + " ".join(sys.argv[3:] if sys.argv[1:3] == ["eval", "babilong"] else [])
        source = f"generated ({args.haystack or 'the paper filler'} as background)" if args.generate else args.data
        prompt = "bare" if args.bare else "instruction, examples, post-prompt" if args.examples else "no examples"
        extra = {"model": args.model, "tokenizer": em.tokenizer.name, "data": source, "prompt": prompt}
        extra.update(seed=args.seed if args.generate else None, samples=args.samples)
        babilong.save_json(answers, json_path, extra=extra)
        written = [json_path]
        try:
            babilong.plot_heatmap(answers, png_path, title=f"BABILong, {Path(args.model).name}")
            written.append(png_path)
        except ImportError:
            print("no heatmap: pip install matplotlib", file=sys.stderr)
        setting = f"{source}, prompt: {prompt}, {args.samples} instances per (task, length) cell"
        setting += look_back_text(em.model)
        if args.generate:
            setting += f", seed {args.seed}"
        image = png_path.name if png_path in written else None
        md_path.write_text(babilong.format_report(answers, command, em, image, setting=setting))
        written.append(md_path)
        print(f"wrote {', '.join(map(str, written))}")
    return 0

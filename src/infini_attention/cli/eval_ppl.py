"""Long-document perplexity by position, with the memory-reset ablation beside it, and the gates (Figure 3).

    infini eval ppl --checkpoint runs/out/lm/checkpoint --data /work/shared/corpora/kjv.txt \
        --max-docs 4 --max-tokens 32K --out docs/results/ppl-kjv

Reads the validation documents of --data (the same split as training: the split rule, validation
share and tokenizer default to those in the run's train_config.json), streams each through the
model a few segments at a time with the state carried, and prints perplexity by position bucket
(0-2K, 2K-8K, 8K-32K, ...), then the gate values sigmoid(beta) per layer and head. With --out
PREFIX it writes PREFIX.json (everything) and PREFIX.png (the gate heatmap).

--model takes whatever the other evaluations take (eval/models.py:load_eval_model): a native checkpoint
folder, gguf:default, a converted Hugging Face folder, a memory adapter or a shipped one by name; a model
without a training run beside it reads every document of --data (--docs all) with its own tokenizer:

    infini eval ppl --model smollm2-memory --data book.txt --max-tokens 32K --look-back off
"""

from __future__ import annotations

import json
from pathlib import Path

from infini_attention.cli.common import add_look_back_argument
from infini_attention.eval.models import training_config  # plain Python: --help stays fast
from infini_attention.utils import parse_count

HELP = "long-document perplexity by position bucket, memory-reset ablation, gate values"


def add_arguments(p):
    p.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        required=True,
        help="a native model folder (model.safetensors + config.json), gguf:default, a converted HF folder, a memory "
        "adapter folder or smollm2-memory (--checkpoint: the same)",
    )
    p.add_argument("--data", required=True, help="text file, folder, .jsonl file or hf:<dataset>")
    p.add_argument("--tokenizer", default=None, help="tokenizer name (default: the training run's, else byte)")
    p.add_argument(
        "--data-split",
        default=None,
        help="split rule: auto, file, blank, verse, regex:<pattern> (default: the training run's, else auto)",
    )
    p.add_argument(
        "--val-docs",
        type=float,
        default=None,
        help="validation share or count, as in training (default: the training run's, else 0.05)",
    )
    p.add_argument(
        "--docs",
        choices=("val", "train", "all"),
        default=None,
        help="which documents to read (default: val for a model trained by `infini train`, else all)",
    )
    p.add_argument("--max-docs", type=int, default=None, help="read at most this many documents")
    p.add_argument("--max-tokens", default=None, help="read at most this many tokens of each document, e.g. 32K")
    p.add_argument("--chunk-segments", type=int, default=4, help="segments per forward call (bounds memory)")
    p.add_argument("--first-bucket", default="2K", help="end of the first position bucket (then x4 each)")
    p.add_argument("--no-ablation", action="store_true", help="skip the memory-reset ablation")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", help="path prefix for OUT.json (results) and OUT.png (gate heatmap)")
    add_look_back_argument(p)


def _run_name(folder: str) -> str:
    path = Path(folder).resolve()
    return path.parent.name if path.name == "checkpoint" else path.name  # `infini train` writes OUT/checkpoint


def run(args) -> int:
    import torch

    from infini_attention.data.documents import load_corpus
    from infini_attention.eval.models import load_eval_model, look_back_text, parse_look_back, set_look_back
    from infini_attention.eval.perplexity import evaluate_perplexity, format_report, gate_table, plot_gates

    look_back = parse_look_back(args.look_back) if args.look_back else None
    trained = training_config(args.model) if Path(args.model).is_dir() else {}
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    em = load_eval_model(args.model, args.tokenizer, device=device)
    model, tokenizer = em.model, em.tokenizer
    if look_back is not None:
        set_look_back(model, *look_back)
    split = args.data_split or trained.get("data_split", "auto")
    corpus = load_corpus(args.data, tokenizer, split, progress=not args.no_progress)
    docs = args.docs or ("val" if trained else "all")  # a model from elsewhere has no validation split of --data
    if docs == "all":
        chosen = list(range(len(corpus)))
    else:
        share = args.val_docs if args.val_docs is not None else trained.get("val_docs", 0.05)
        chosen = dict(zip(("train", "val"), corpus.split(share)))[docs]
    if not chosen:
        raise ValueError(f"no {docs} documents in {args.data} (set --val-docs, or --docs all)")
    chosen = chosen[: args.max_docs] if args.max_docs else chosen
    result = evaluate_perplexity(
        model,
        [(corpus.names[d], corpus.doc(d)) for d in chosen],
        chunk_segments=args.chunk_segments,
        ablation=not args.no_ablation,
        max_tokens=parse_count(args.max_tokens) if args.max_tokens else None,
        first_bucket=parse_count(args.first_bucket),
        device=device,
        bf16=args.bf16,
        progress=not args.no_progress,
    )
    result.update(checkpoint=str(args.model), data=args.data, tokenizer=tokenizer.name, split=split, docs=docs)
    look = look_back_text(model)
    result["model"]["name"], result["model"]["look_back"] = str(args.model), look.lstrip(", ")
    print(f"{args.model}{look}")
    print(format_report(result))
    print("\ngates sigmoid(beta), layer x head:")
    print(gate_table(result["gates"]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(out.name + ".json").write_text(json.dumps(result, indent=1) + "\n")
        written = [out.name + ".json"]
        if plot_gates(
            result["gates"],
            out.with_name(out.name + ".png"),
            title=f"gates sigmoid(beta): {_run_name(args.model)}",
        ):
            written.append(out.name + ".png")
        print(f"\nwrote {', '.join(str(out.parent / w) for w in written)}")
    return 0

"""Train a model: every field of TrainConfig is a flag; --config reads them from a JSON file first.

    infini train --task passkey --preset tiny --steps 200 --out runs/out/passkey-tiny
    infini train --config OUT/train_config.json --steps 2000          # a run's saved config; flags override it
    infini train --out runs/out/passkey-tiny --resume                  # continue exactly
    infini train --task lm --data book.txt --model attention=xl --model segment_len=256

Under torchrun (`torchrun --nproc_per_node 2 -m infini_attention.cli.main train ...`) it trains
data-parallel (gloo on CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from infini_attention.data.formats import EVALUATION_ONLY, FORMATS
from infini_attention.train.config import TrainConfig

HELP = "train or resume a model (passkey, copy or long-document LM)"


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


GROUPS = {  # help sections, in order; a field not listed goes to "run"
    "model": ("preset", "model", "init_from", "from_hf", "train_only"),
    "data and task": (
        "task",
        "data",
        "data_split",
        "val_docs",
        "tokenizer",
        "seq_len",
        "min_len",
        "length_curriculum_steps",
    ),
    "optimisation": (
        "batch_size",
        "grad_accum",
        "steps",
        "lr",
        "gate_lr",
        "sharpness_lr",
        "weight_decay",
        "warmup_steps",
        "min_lr_ratio",
        "clip",
        "gradient_checkpointing",
        "detach_every",
        "bf16",
    ),
    "passkey task": (
        "digits",
        "key_digits",
        "doubled_keys",
        "aligned_lengths",
        "full_loss",
        "answer_end",
        "formats",
        "haystacks",
        "templates",
        "eval_haystack",
        "local_start",
        "local_end",
        "curriculum_steps",
        "eval_lengths",
        "eval_keys",
        "stretch_max",
        "stretch_curriculum_steps",
    ),
    "copy task": ("copy_len",),
}
CHOICES = {
    "task": ("lm", "passkey", "copy"),
    "train_only": ("all", "attention", "gates"),
    "device": ("auto", "cpu", "cuda"),
    "formats": tuple(name for name in FORMATS if name not in EVALUATION_ONLY),
}


def field_help() -> dict[str, str]:
    """Each TrainConfig field's description: the comment on its line, or the comment lines just above it."""
    import inspect
    import re

    helps, pending = {}, []
    for line in inspect.getsource(TrainConfig).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\w+): [^=]+=.*?(?:#\s*(.*))?$", stripped)
        if match:
            helps[match.group(1)] = " ".join([*pending, match.group(2) or ""]).strip()
        pending = [] if stripped else pending
    return helps


def add_arguments(p):
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # the examples in the docstring stay as written
    p.add_argument(
        "--config", help="JSON file of TrainConfig fields, e.g. a run's train_config.json (flags override it)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint exactly")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    p.add_argument(
        "--overwrite", action="store_true", help="a fresh run may replace the metrics of an earlier one in --out"
    )
    helps = field_help()
    sections = {name: p.add_argument_group(name) for name in [*GROUPS, "run"]}
    group_of = {f: g for g, names in GROUPS.items() for f in names}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = helps.get(f.name) or f.name.replace("_", " ")
        group = sections[group_of.get(f.name, "run")]
        if f.name == "model":
            group.add_argument(
                flag,
                action="append",
                metavar="FIELD=VALUE",
                default=None,
                help="override a ModelConfig field, e.g. --model rule=delta (repeatable)",
            )
        elif isinstance(default, bool):
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=f"{text} (default {default})"
            )
        elif isinstance(default, list):
            group.add_argument(flag, nargs="+", type=_parse_value, default=None, help=f"{text} (default {default})")
        else:
            kind = type(default) if default is not None else _parse_value
            group.add_argument(
                flag, type=kind, default=None, choices=CHOICES.get(f.name), help=f"{text} (default {default})"
            )


def config_from_args(args) -> TrainConfig:
    values: dict = {}
    if args.config:
        values.update(json.loads(Path(args.config).read_text()))
    if args.resume and not args.config:
        saved = Path(args.out or TrainConfig.out) / "train_config.json"
        if saved.exists():
            values.update(json.loads(saved.read_text()))
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name)
        if value is None:
            continue
        if f.name == "model":
            overrides = dict(values.get("model", {}))
            for item in value:
                if "=" not in item:
                    raise ValueError(f"--model expects FIELD=VALUE, got {item!r}")
                key, text = item.split("=", 1)
                overrides[key] = _parse_value(text)
            value = overrides
        values[f.name] = value
    return TrainConfig.from_dict(values)


def run(args) -> int:
    cfg = config_from_args(args)
    if cfg.from_hf:
        import infini_attention.hf.training  # noqa: F401  (registers the "hf" model source)

    cfg.validate()  # fail now, with a clear message, on a value that cannot train
    cfg.model_config()
    from infini_attention.train.loop import TrainingInterrupted, train

    try:
        last = train(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for all
        print(json.dumps(last))
        print(f"checkpoint: {Path(cfg.out) / 'checkpoint'}; metrics: {Path(cfg.out) / 'metrics.jsonl'}")
    return 0

"""Train a model: every field of TrainConfig is a flag; --config reads them from a JSON file first.

    infini train --task passkey --preset tiny --steps 200 --out runs/out/passkey-tiny
    infini train --config runs/configs/passkey.json --steps 2000     # flags override the file
    infini train --out runs/out/passkey-tiny --resume                  # continue exactly
    infini train --task lm --data book.txt --model attention=xl --model segment_len=256

Under torchrun (`torchrun --nproc_per_node 2 -m infini_attention.cli.main train ...`) it trains
data-parallel (gloo on CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from infini_attention.train import TrainConfig, train

HELP = "train or resume a model (passkey, copy or long-document LM)"


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def add_arguments(p):
    p.add_argument("--config", help="JSON file of TrainConfig fields (flags given here override it)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint exactly")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    p.add_argument(
        "--overwrite", action="store_true", help="a fresh run may replace the metrics of an earlier one in --out"
    )
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.name == "model":
            p.add_argument(
                flag,
                action="append",
                metavar="FIELD=VALUE",
                default=None,
                help="override a ModelConfig field, e.g. --model rule=delta (repeatable)",
            )
        elif isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {default})")
        elif isinstance(default, list):
            p.add_argument(flag, nargs="+", type=_parse_value, default=None, help=f"(default {default})")
        else:
            kind = type(default) if default is not None else _parse_value
            p.add_argument(flag, type=kind, default=None, help=f"(default {default})")


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

    cfg.model_config()  # fail now, with a clear message, on a bad model field
    from infini_attention.train.loop import TrainingInterrupted

    try:
        last = train(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        return 130
    print(json.dumps(last))
    print(f"checkpoint: {Path(cfg.out) / 'checkpoint'}; metrics: {Path(cfg.out) / 'metrics.jsonl'}")
    return 0

"""The `infini` command: one sub-command per module under cli/, each adding its own arguments."""

from __future__ import annotations

import argparse
import sys

from infini_attention.cli import convert, demo, eval, stream, train

COMMANDS = {"convert": convert, "demo": demo, "eval": eval, "stream": stream, "train": train}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infini", description="Infini-attention: bounded-memory long-context Transformers"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.__doc__))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args) or 0
    except (ValueError, FileNotFoundError) as e:
        print(f"infini {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `infini` command: one sub-command per module under cli/, each adding its own arguments."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from infini_attention.cli import convert, demo, eval, stream, train
from infini_attention.cli.common import configure_threads, fail, missing_package_message

COMMANDS = {"convert": convert, "demo": demo, "eval": eval, "stream": stream, "train": train}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infini", description="Infini-attention: bounded-memory long-context Transformers"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        parser_of = sub.add_parser(
            name, help=module.HELP, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(parser_of)  # the description keeps its line breaks: its examples stay one per line
    return parser


USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError, NotImplementedError)


def main(argv: list[str] | None = None) -> int:
    """Every mistake ends in one line on stderr and exit code 2 (set INFINI_DEBUG=1 for the traceback)."""
    args = build_parser().parse_args(argv)
    configure_threads()  # before torch is imported: OpenMP threads sleep instead of spinning (docs/performance.md)
    stop_on_signals()
    try:
        return COMMANDS[args.command].run(args) or 0
    except ImportError as e:
        if os.environ.get("INFINI_DEBUG"):
            raise
        return fail(args.command, missing_package_message(e))
    except USER_ERRORS as e:
        if os.environ.get("INFINI_DEBUG"):
            raise
        return fail(args.command, str(e).splitlines()[0] if str(e) else type(e).__name__)
    except KeyboardInterrupt:
        print(f"infini {args.command}: interrupted", file=sys.stderr)
        return 130


def stop_on_signals() -> None:
    """SIGTERM (kill, a job scheduler) and SIGINT stop a command as Ctrl-C does: the trainer saves its checkpoint.

    A process started in the background by a non-interactive shell inherits SIGINT as ignored, and
    Python then never raises KeyboardInterrupt: the default handler is put back for both signals."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. main() called from a worker thread): leave them
        pass


if __name__ == "__main__":
    sys.exit(main())

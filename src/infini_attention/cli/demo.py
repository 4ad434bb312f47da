"""The demo: stream a long input through a small Infini-Transformer and show that memory stays flat.

    infini demo                 # 1M tokens
    infini demo --tokens 128K   # shorter
"""

from infini_attention.cli import stream

HELP = "the README's demo: bounded-memory streaming of a long input"


def add_arguments(p):
    stream.add_arguments(p)


def run(args) -> int:
    return stream.run(args)

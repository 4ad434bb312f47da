"""Passkey exact match by kind of key: keys with a digit written twice in a row ("44167") vs the rest.

    python runs/tools/key_kinds.py CHECKPOINT [--length 1024] [--seeds 60] [--depth 0.0]

Seeds 0..N-1 give the keys (the same as `infini eval passkey`'s instances with those seeds);
greedy answers, one prompt at a time. Prints the count right per kind and the failures.
"""

import argparse

import torch

from infini_attention.checkpoint import load_model
from infini_attention.data import passkey
from infini_attention.data.tokenizers import ByteTokenizer
from infini_attention.generate import generate


def doubled(key: str) -> bool:
    return any(a == b for a, b in zip(key, key[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--seeds", type=int, default=60)
    p.add_argument("--depth", type=float, default=0.0)
    args = p.parse_args()
    tok = ByteTokenizer()
    model = load_model(args.checkpoint).eval()
    results = {True: [], False: []}
    for seed in range(args.seeds):
        inst = passkey.make_instance(tok, args.length, args.depth, seed=seed)
        with torch.no_grad():
            out, _ = generate(model, inst.prompt_ids()[None], len(inst.answer_ids), temperature=0)
        answer = tok.decode(out[0].tolist()).strip()
        results[doubled(inst.key)].append((inst.key, answer))
    for kind, rows in results.items():
        right = sum(key == answer for key, answer in rows)
        failures = [f"{key} -> {answer!r}" for key, answer in rows if key != answer]
        name = "doubled digit" if kind else "other keys"
        print(f"{name}: {right} / {len(rows)} right" + (f"; failures: {', '.join(failures)}" if failures else ""))


if __name__ == "__main__":
    main()

"""How the needle's share of the memory read fades with length, from passkey evaluations' eval.json files.

    python runs/tools/read_share.py runs/out/e35-replay runs/out/e35-long runs/out/eval-e37-chat-32000 ...

Every row of `runs/smollm2_finetune.py`'s eval.json (and of `infini eval passkey --json`) carries
`memory_share`: at the question's last token, the share of the read's normaliser σ(q)·z (eq 7) that
comes from the needle's keys, the largest over layers and heads, the mean over the cell's keys. If
every other token adds about the same mass c to z as the needle's tokens add m in total,
share = m / (m + c·L), so (1/share - 1) / L stays constant while the share itself falls as 1/L: the
needle's part of the read is diluted by everything written after (and before) it. The last column
prints that ratio (x 1000) so a constant is easy to see.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(folder: Path):
    data = json.loads((folder / "eval.json").read_text())
    formats = data.get("formats", data)
    for fmt, result in formats.items():
        for row in result.get("rows", []):
            if row.get("memory_share") is not None and not row.get("reset_memory") and row.get("in_memory"):
                yield fmt, row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders holding an eval.json")
    p.add_argument("--format", default="passkey", help="which format's rows (default passkey)")
    args = p.parse_args(argv)
    print("| run | length | depth | keys | exact | needle share | (1/share - 1) / length x 1000 |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, args.folders):
        if not (folder / "eval.json").exists():
            raise SystemExit(f"{folder}: no eval.json")
        for fmt, row in sorted(rows(folder), key=lambda r: (r[1]["length"], r[1]["depth"])):
            if fmt != args.format:
                continue
            share = row["memory_share"]
            fade = (1 / share - 1) / row["length"] * 1000
            exact = round(row["accuracy"] * row["keys"])
            print(
                f"| {folder.name} | {row['length']} | {row['depth']} | {row['keys']} | {exact}/{row['keys']} "
                f"| {share:.3f} | {fade:.3f} |"
            )


if __name__ == "__main__":
    main()

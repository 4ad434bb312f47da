"""Where the memory's wrong answers go wrong: the first wrong digit of every miss, by what came before it.

    python runs/tools/miss_kinds.py docs/results/passkey-prose-*.json runs/logs/session12/*_16k.log

Reads the (expected, answered) pairs that `infini eval passkey` writes in its json (`rows[].answers`, only rows whose
needle is in memory and whose memory is not reset) and that runs/smollm2_finetune.py prints in its logs
("passkey 16000 depth 0.0 memory reset=False: 0.75 [('88593', '88593'), ...]"). A memory that stores the value as
"after digit d comes digit e" associations cannot tell two successors of the same digit apart: in 8920999 the digit 9
is followed by 2, by 9 and by 9. For each position of each expected value this counts whether its predecessor digit
is followed by a different digit elsewhere in the value (an ambiguous successor) and whether the answer's first wrong
digit is there, so the error rate at ambiguous and unambiguous positions can be compared. Prints one table (markdown).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections import Counter
from pathlib import Path

LOG_LINE = re.compile(r"^(\w+) (\d+) depth [\d.]+ memory reset=False: [\d.]+ (\[.*\])\s*$")


def pairs_of(path: Path) -> list[tuple[str, str]]:
    """(expected, answered) for every instance with the needle in memory and the memory kept."""
    if path.suffix == ".json":
        rows = json.loads(path.read_text()).get("rows", [])
        return [
            (str(e), str(a))
            for row in rows
            if row.get("in_memory") and not row.get("reset_memory")
            for e, a in row.get("answers", [])
        ]
    found = []
    for line in path.read_text().splitlines():
        match = LOG_LINE.match(line.strip())
        if match:
            found += [(str(e), str(a)) for e, a in ast.literal_eval(match.group(3))]
    return found


def ambiguous(value: str, i: int) -> bool:
    """Position i's predecessor digit is followed by another digit elsewhere in the value: "what follows it" has two
    answers (in 8920999, position 2's predecessor 9 is also followed by 9)."""
    return i > 0 and any(
        value[j] == value[i - 1] and value[j + 1] != value[i] for j in range(len(value) - 1) if j != i - 1
    )


def first_wrong(expected: str, answered: str) -> int:
    for i, digit in enumerate(expected):
        if i >= len(answered) or answered[i] != digit:
            return i
    return len(expected)  # right digits, then more of them


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    print(
        "| file | in memory | exact | misses | first wrong at an ambiguous position | ambiguous positions overall "
        "| error rate: ambiguous / other positions | wrong digit taken from the value |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.files:
        pairs = pairs_of(Path(name))
        if not pairs:
            continue
        misses = [(e, a) for e, a in pairs if a != e]
        count = Counter()
        for expected, answered in pairs:
            wrong = first_wrong(expected, answered) if answered != expected else None
            for i in range(len(expected)):  # positions reached (up to the first wrong one), by kind
                if wrong is not None and i > wrong:
                    break
                kind = "ambiguous" if ambiguous(expected, i) else "other"
                count[kind, "reached"] += 1
                count[kind, "wrong"] += i == wrong
            if wrong is not None and wrong < len(expected) and wrong < len(answered):
                count["borrowed"] += answered[wrong] in expected
        at_ambiguous = count["ambiguous", "wrong"]
        positions = sum(len(e) for e, _ in pairs)
        share = sum(ambiguous(e, i) for e, _ in pairs for i in range(len(e))) / positions

        rate = {kind: f"{count[kind, 'wrong'] / max(1, count[kind, 'reached']):.1%}" for kind in ("ambiguous", "other")}

        print(
            f"| {name} | {len(pairs)} | {len(pairs) - len(misses)} | {len(misses)} | {at_ambiguous} of {len(misses)} "
            f"| {share:.0%} | {rate['ambiguous']} / {rate['other']} | {count['borrowed']} of {len(misses)} |"
        )


if __name__ == "__main__":
    main()

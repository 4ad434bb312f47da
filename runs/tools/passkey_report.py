"""Re-render the markdown page and heatmap of `infini eval passkey` results from their JSON (no model run).

    python runs/tools/passkey_report.py docs/results/passkey.json [more.json ...]

For a change of presentation only (table layout, length labels): the rows, the command line and the
date of the evaluation are kept as the JSON and the page recorded them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from infini_attention.eval.passkey import PasskeyRow
from infini_attention.eval.passkey_report import format_report, plot_heatmap
from infini_attention.models.io import load_model


def main(paths: list[str]) -> None:
    for name in paths:
        path = Path(name)
        data = json.loads(path.read_text())
        rows = [PasskeyRow(**row) for row in data["rows"]]
        page = path.with_suffix(".md")
        old = page.read_text()
        command = re.search(r"Made by `(.*?)` on (\d{4}-\d{2}-\d{2})", old)
        setting = re.search(r"^Prompts: (.*)\.$", old, flags=re.M)
        model = load_model(data["checkpoint"])
        text = format_report(rows, command.group(1), model, path.with_suffix(".png").name, setting and setting.group(1))
        text = re.sub(r"on \d{4}-\d{2}-\d{2}\.", f"on {command.group(2)}.", text, count=1)  # the evaluation's date
        page.write_text(text)
        plot_heatmap(rows, path.with_suffix(".png"), title=f"Passkey retrieval, {Path(data['checkpoint']).name}")
        print(f"re-rendered {page} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main(sys.argv[1:])

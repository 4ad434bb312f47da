"""Regenerate docs/reliability.md: every bad input and crash case, what `infini` prints and its exit code.

    python runs/tools/reliability.py            # ~1-2 minutes on a CPU; writes docs/reliability.md

Each case runs the real command line in a fresh temporary folder. The kill-at-each-step-of-a-save and
Ctrl-C cases are tests (tests/train/test_reliability.py), listed at the end with their test names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAIN = "infini train --task copy --seq-len 48 --min-len 40 --copy-len 6 --batch-size 2 --steps 2 --no-progress"


def setup(tmp: Path) -> None:
    """A small trained model, a state file and some damaged copies to point the cases at."""
    run(f"{TRAIN} --out {tmp}/run", tmp)
    good = tmp / "run" / "checkpoint"
    for name in ("flipped", "truncated", "empty", "wide", "badjson", "unknownkey"):
        d = tmp / name
        d.mkdir()
        (d / "config.json").write_text((good / "config.json").read_text())
        (d / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    data = bytearray((tmp / "flipped" / "model.safetensors").read_bytes())
    data[-50] ^= 1
    (tmp / "flipped" / "model.safetensors").write_bytes(bytes(data))
    (tmp / "truncated" / "model.safetensors").write_bytes(bytes(data[: len(data) // 2]))
    (tmp / "empty" / "model.safetensors").write_bytes(b"")
    config = json.loads((good / "config.json").read_text())
    (tmp / "wide" / "config.json").write_text(json.dumps({**config, "hidden_size": 96}))
    (tmp / "badjson" / "config.json").write_text("{oops")
    (tmp / "unknownkey" / "config.json").write_text(json.dumps({**config, "segment_lenght": 8}))
    (tmp / "results.json").write_text("{}")
    (tmp / "notafolder").write_text("")


CASES = [  # (what, command); {tmp} is the case's folder
    ("data files", "infini train --task lm --data {tmp}/missing.txt --steps 1 --out {tmp}/o"),
    ("data files", "infini eval passkey --checkpoint {tmp}/run/checkpoint --haystack {tmp}/missing.txt --lengths 2000"),
    ("model files", "infini eval passkey --checkpoint {tmp}/nowhere"),
    ("model files", "infini eval passkey --checkpoint {tmp}/flipped --lengths 2000"),
    ("model files", "infini eval passkey --checkpoint {tmp}/truncated --lengths 2000"),
    ("model files", "infini eval passkey --checkpoint {tmp}/empty --lengths 2000"),
    ("model files", "infini eval passkey --checkpoint {tmp}/wide --lengths 2000"),
    ("model files", "infini eval passkey --checkpoint {tmp}/badjson --lengths 2000"),
    (
        "model files",
        "infini eval passkey --checkpoint {tmp}/unknownkey --lengths 1000 --depths 0 --keys 1 --no-ablation",
    ),
    ("flags", TRAIN + " --model foo=1 --out {tmp}/o"),
    ("flags", TRAIN + " --model segmnt_len=8 --out {tmp}/o"),
    ("flags", TRAIN + " --model segment_len=abc --out {tmp}/o"),
    ("flags", TRAIN + " --batch-size 0 --out {tmp}/o"),
    ("flags", TRAIN + " --save-every 0 --out {tmp}/o"),
    ("flags", TRAIN + " --lr nan --out {tmp}/o"),
    ("flags", TRAIN + " --lr -1 --out {tmp}/o"),
    ("flags", TRAIN + " --steps -5 --out {tmp}/o"),
    ("flags", TRAIN + " --min-len 100 --out {tmp}/o"),
    ("flags", TRAIN + " --eval-lengths 2K --out {tmp}/o"),
    ("flags", TRAIN + " --device cuda --out {tmp}/o"),
    ("flags", "infini eval passkey --checkpoint {tmp}/run/checkpoint --keys 0"),
    ("flags", "infini eval passkey --checkpoint {tmp}/run/checkpoint --depths 1.5"),
    ("outputs", "infini eval passkey --checkpoint {tmp}/run/checkpoint --out {tmp}/results"),
    ("outputs", "infini eval passkey --checkpoint {tmp}/run/checkpoint --out {tmp}/notafolder/res"),
    ("runs", TRAIN + " --out {tmp}/run"),
    ("runs", TRAIN + " --out {tmp}/run --resume"),
    ("runs", TRAIN + " --out {tmp}/nothing --resume"),
]


def run(command: str, tmp: Path) -> tuple[int, str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command.format(tmp=tmp), shell=True, capture_output=True, text=True, env=env, cwd=tmp)
    text = done.stderr.strip() if done.returncode else (done.stderr.strip() + "\n" + done.stdout.strip()).strip()
    return done.returncode, text, time.perf_counter() - start


def main() -> None:
    lines = [
        "# Reliability: what every mistake prints",
        "",
        f"Made by `python runs/tools/reliability.py` on {time.strftime('%Y-%m-%d')}. Each command ran in a fresh "
        "temporary folder (`TMP`) beside a 2-step model trained there, damaged copies of it and an existing results "
        "file. Exit code 2 = a user error reported in one line (shown); 0 = worked (its first line of output shown).",
        "",
        "| kind | command | exit | prints |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        setup(tmp)
        for kind, command in CASES:
            code, text, seconds = run(command, tmp)
            shown_lines = [ln for ln in text.splitlines() if "%|" not in ln] or [""]  # no progress bars
            line = shown_lines[-1] if code else shown_lines[0]  # an error's last line, a success's first
            last = line.replace(str(tmp), "TMP").replace("|", "\\|")
            shown = command.replace("{tmp}", "TMP").replace(TRAIN, "TRAIN")
            lines.append(f"| {kind} | `{shown}` | {code} | {last[:220]} |")
            print(f"{code} {seconds:5.1f}s {shown}\n   {last[:150]}")
    lines += [
        "",
        f"`TRAIN` = `{TRAIN}`.",
        "",
        "Tested rather than run here (tests/train/test_reliability.py, tests/models/test_io.py):",
        "",
        "- a kill at each step of a checkpoint save (`written`, `old_moved`, `new_moved`, `done`), then `--resume`: "
        "bitwise the weights of an uninterrupted run, every step logged once "
        "(`test_a_kill_at_each_step_of_a_save_resumes_exactly`);",
        "- a fresh run never deletes a recoverable checkpoint "
        "(`test_a_fresh_run_never_deletes_a_recoverable_checkpoint`);",
        "- two runs on one folder: the second fails at once (`test_a_second_run_on_the_same_folder_fails_at_once`);",
        "- Ctrl-C: the steps done are saved, `interrupted at step N; saved. Resume with: infini train --out OUT "
        "--resume`, exit 130 (`test_ctrl_c_saves_the_steps_done_and_resume_continues`);",
        "- a non-finite loss: stopped without saving, the last good checkpoint kept "
        "(`test_a_non_finite_loss_stops_without_saving_it`);",
        "- state files: checksum, finiteness, the model that made them, position vs pending tokens "
        "(`test_state_files_carry_a_checksum_and_their_model`, tests/models/test_model.py "
        "`test_bad_input_gets_a_clear_error`).",
        "",
    ]
    out = ROOT / "docs" / "reliability.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())

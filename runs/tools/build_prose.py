"""Build the prose haystack corpora of runs/haystack.sh from text on this machine (no downloads).

    python runs/tools/build_prose.py --out runs/out/prose

Writes OUT/train.txt and OUT/heldout.txt: paragraphs of ordinary English prose, one per line,
split by document so that no held-out document is in training.
  train: the World English Bible (../shared/corpora/web.txt), the Python documentation's prose
         except its HOWTOs (Debian python3.11-doc), fortunes (Debian fortunes), man pages
         (Debian manpages, rendered with `man`)
  held out: the Python HOWTOs, the Debian FAQ (Debian doc-debian), the King James Bible
Needs: apt-get install python3.11-doc fortunes doc-debian manpages man-db
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
from pathlib import Path

PY_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
FORTUNES = Path("/usr/share/games/fortunes")
FAQ = Path("/usr/share/doc/debian/FAQ")
MAN = Path("/usr/share/man/man1")
CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"

WORDS = re.compile(r"[A-Za-z]+")


def prose_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs that read as sentences: mostly words, ending in punctuation."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not lines or any(ln.startswith(("    ", "\t", "..", ">>>", "$", "#", "|", "+", "=")) for ln in lines):
            continue
        para = " ".join(" ".join(lines).split())
        para = re.sub(r":[a-z:]+:`~?([^`<]*?)(?: <[^>]*>)?`", r"\1", para)  # rst roles -> their text
        para = para.replace("``", "").replace("**", "").replace("`", "")
        words = WORDS.findall(para)
        if len(words) < 12 or len(" ".join(words)) < 0.75 * len(para) or para[-1] not in ".!?\"'":
            continue
        out.append(para)
    return out


def python_docs(heldout: bool) -> list[str]:
    paras = []
    for path in sorted(PY_DOCS.rglob("*.txt")):
        if (path.relative_to(PY_DOCS).parts[0] == "howto") == heldout:
            paras += prose_paragraphs(path.read_text(errors="ignore"))
    return paras


def fortunes() -> list[str]:
    paras = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or path.is_dir() or path.name.startswith("off"):
            continue
        for item in path.read_text(errors="ignore").split("\n%\n"):
            item = " ".join(item.split())
            if len(WORDS.findall(item)) >= 12 and item[-1:] in ".!?\"'":
                paras.append(item)
    return paras


def debian_faq() -> list[str]:
    paras = []
    for path in sorted(FAQ.glob("*.en.html")):
        text = re.sub(r"<(script|style).*?</\1>", " ", path.read_text(errors="ignore"), flags=re.S)
        text = re.sub(r"</?(p|div|h\d|li|pre|dt|dd|table|tr)[^>]*>", "\n\n", text)
        paras += prose_paragraphs(html.unescape(re.sub(r"<[^>]+>", " ", text)))
    return paras


def man_pages(limit: int) -> list[str]:
    paras = []
    for path in sorted(MAN.glob("*.gz"))[:limit]:
        try:
            out = subprocess.run(
                ["man", "-l", str(path)],
                capture_output=True,
                text=True,
                timeout=10,
                env={"MANWIDTH": "2000", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            ).stdout
        except subprocess.TimeoutExpired:
            continue
        text = re.sub(r".\x08", "", out)
        paras += prose_paragraphs("\n".join(ln.strip() for ln in text.splitlines()))
    return paras


def bible(name: str) -> list[str]:
    text = (CORPORA / name).read_text(errors="ignore")
    verses = [" ".join(v.split()) for v in re.split(r"\n\s*\n|\n(?=\S)", text) if len(v.split()) > 3]
    # verses grouped in fives, the verse numbers removed: paragraphs of running text
    verses = [re.sub(r"^\s*(\d?\s?[A-Za-z]+\s?)?\d+:\d+:?\s*", "", v) for v in verses]
    return [" ".join(verses[i : i + 5]) for i in range(0, len(verses), 5)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/out/prose")
    p.add_argument("--man-pages", type=int, default=3000, help="man pages rendered (of ~18K)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = {
        "train": [
            ("web bible", bible("web.txt")),
            ("python docs", python_docs(False)),
            ("fortunes", fortunes()),
            ("man pages", man_pages(args.man_pages)),
        ],
        "heldout": [
            ("python howtos", python_docs(True)),
            ("debian faq", debian_faq()),
            ("kjv bible", bible("kjv.txt")),
        ],
    }
    for split, sources in parts.items():
        with open(out / f"{split}.txt", "w") as f:
            for name, paras in sources:
                f.write("\n".join(paras) + "\n")
                print(f"{split}: {name}: {len(paras)} paragraphs, {sum(map(len, paras)) / 1e6:.1f}M characters")


if __name__ == "__main__":
    main()

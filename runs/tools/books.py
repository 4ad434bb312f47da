"""Long held-out books for the perplexity-by-position evaluation (runs/smollm2_ppl.py), from text on this machine.

    apt-get install debian-handbook debian-reference-en     # not in any training corpus of this repo
    python runs/tools/books.py --out runs/out/books

Writes OUT/<name>.txt, one book per file, paragraphs in reading order:
  genesis-kjv        Genesis, King James (the package's assets/texts; training saw the World English Bible's)
  debian-handbook    The Debian Administrator's Handbook (HTML, pages in its table of contents' order, paragraph text)
  debian-reference   The Debian Reference (its own plain-text rendering, from chapter 1)
None of them is in runs/out/prose/train.txt (runs/tools/build_prose.py).
"""

from __future__ import annotations

import argparse
import gzip
import html
import re
from html.parser import HTMLParser
from pathlib import Path

HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
REFERENCE = Path("/usr/share/debian-reference/debian-reference.en.txt.gz")
GENESIS = Path(__file__).resolve().parents[2] / "src/infini_attention/assets/texts/genesis-kjv.txt"


class Paragraphs(HTMLParser):
    """The text of every <div class="para"> (the handbook's paragraphs) and the page's links, in document order."""

    def __init__(self):
        super().__init__()
        self.paragraphs, self.links, self._p, self._depth = [], [], None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"].split("#")[0])
        if tag != "div":
            return
        if self._p is not None:
            self._depth += 1
        elif "para" in (attrs.get("class") or "").split():
            self._p, self._depth = [], 0

    def handle_endtag(self, tag):
        if tag != "div" or self._p is None:
            return
        if self._depth:
            self._depth -= 1
            return
        text = " ".join("".join(self._p).split())
        if text:
            self.paragraphs.append(text)
        self._p = None

    def handle_data(self, data):
        if self._p is not None:
            self._p.append(data)


def parse(path: Path) -> Paragraphs:
    parser = Paragraphs()
    parser.feed(path.read_text(errors="ignore"))
    return parser


def handbook() -> str:
    """Every page linked from the table of contents (index.html), in its order, once."""
    order = []
    for link in parse(HANDBOOK / "index.html").links:
        if link.endswith(".html") and "/" not in link and link not in order and (HANDBOOK / link).exists():
            order.append(link)
    if not order:
        raise FileNotFoundError(f"no pages linked from {HANDBOOK / 'index.html'}: apt-get install debian-handbook")
    return "\n\n".join(p for page in order for p in parse(HANDBOOK / page).paragraphs)


def reference() -> str:
    text = gzip.decompress(REFERENCE.read_bytes()).decode("utf-8", errors="ignore")
    text = text[re.search(r"Chapter\s1\.\s", text).start() :]  # after the table of contents
    return html.unescape(re.sub(r"\n{3,}", "\n\n", text))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/out/books")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    books = {"genesis-kjv": GENESIS.read_text(), "debian-handbook": handbook(), "debian-reference": reference()}
    for name, text in books.items():
        (out / f"{name}.txt").write_text(text)
        print(f"{name}: {len(text):,} characters -> {out / name}.txt")


if __name__ == "__main__":
    main()

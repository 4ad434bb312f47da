"""Chat questions over passages longer than one segment: do the memory adapters answer in words, or recall numbers?

    python runs/tools/long_chat.py --adapters none src/infini_attention/assets/smollm2-memory \
        runs/out/e44-memory-shift > runs/logs/session13/long_chat.md

E42 answered runs/smollm2_short.py's Genesis 37:1-11 question "... Jacob's son-17781111...": the passage carries
verse numbers (Ge37:1 ...), and an adapter trained only on questions whose answer is a number from the memory may
recall one after any question. This asks word questions (the right answer has no digits) over passages of held-out
text, each passage twice: as it is, and with every digit removed. For each model (the original with full
attention; the converted one with the shipped artifact alone, `none`; the artifact + each adapter) it prints the
answers and counts those that hold a run of 3 or more digits: the original answers none of these with digits.

Passages: Genesis (assets/texts, verse numbers in the text), the held-out Python HOWTOs (runs/out/prose/heldout.txt)
and the Debian handbook (runs/out/books/debian-handbook.txt) where those are there; greedy, 40 new tokens.
"""

from __future__ import annotations

import argparse
import copy
import re
import time
from pathlib import Path

import torch

from infini_attention.cli.demo_smollm2 import DEFAULT_ARTIFACT, TEXT

DIGITS = re.compile(r"\d{3,}")
QUESTIONS = [
    "What is this passage about? Answer in one sentence.",
    "Who or what is the passage mainly about? Answer in a few words.",
]
ASKED_OF = {"Genesis 37": ["Which son did Israel love most, and what did he make for him? Answer in one sentence."]}


def passages(tokens_each: int, tokenizer) -> list[tuple[str, str]]:
    """(name, passage) of about `tokens_each` tokens from each held-out text that is on this machine."""
    texts = [("Genesis 37", TEXT.read_text(), "Ge37:1 ")]
    for name, path, anchor in (
        ("Python HOWTOs", Path("runs/out/prose/heldout.txt"), None),
        ("Debian handbook", Path("runs/out/books/debian-handbook.txt"), None),
    ):
        if path.is_file():
            texts.append((name, path.read_text()[:400_000], anchor))
    out = []
    for name, text, anchor in texts:
        start = text.index(anchor) if anchor else len(text) // 3
        start = text.rfind("\n", 0, start) + 1
        ids = tokenizer.encode(text[start : start + 12 * tokens_each], add_special_tokens=False)[:tokens_each]
        passage = tokenizer.decode(ids)
        passage = passage[: passage.rfind("\n")] if "\n" in passage else passage
        out.append((name, passage))
    return out


@torch.no_grad()
def answer(model, hf_tokenizer, prompt: str, new_tokens: int) -> str:
    text = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = torch.tensor([hf_tokenizer.encode(text, add_special_tokens=False)])
    generated = model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
    return hf_tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True).strip()


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", default=["none"], help="adapter folders, or none (artifact alone)")
    parser.add_argument("--tokens", type=int, default=700, help="tokens per passage (a segment is 256)")
    parser.add_argument("--new-tokens", type=int, default=40)
    args = parser.parse_args()

    from infini_attention.hf.lora import load_adapter
    from infini_attention.hf.transfer import apply_transfer, load_original

    started = time.perf_counter()
    original, tokenizer = load_original("gguf:default")
    hf_tokenizer = tokenizer.tokenizer  # transformers' own: the chat template
    prompts = []
    for name, passage in passages(args.tokens, hf_tokenizer):
        for stripped in (False, True):
            text = re.sub(r"\d", "", passage) if stripped else passage
            for question in QUESTIONS + ASKED_OF.get(name, []):
                shown = f"{name}{', digits removed' if stripped else ''}: {question}"
                prompts.append((shown, f"{text}\n{question}", stripped))
    models = [("original (full attention)", original)]
    for adapter in args.adapters:
        converted = apply_transfer(copy.deepcopy(original), str(DEFAULT_ARTIFACT)).eval()
        if adapter != "none":
            load_adapter(converted, adapter)
        models.append((f"artifact + {adapter}" if adapter != "none" else "artifact alone", converted))
    rows = {name: [answer(model, hf_tokenizer, p, args.new_tokens) for _, p, _ in prompts] for name, model in models}
    lengths = [len(hf_tokenizer.encode(p)) for _, p, _ in prompts]

    print(
        f"Chat questions over passages of ~{args.tokens} tokens (greedy, {args.new_tokens} new tokens; "
        f"{len(prompts)} prompts, {lengths[0]}-{max(lengths)} prompt tokens; {time.perf_counter() - started:.0f} s). "
        "`digits`: answers holding a run of 3 or more digits.\n"
    )
    print("| model | answers with digits | of them, passage with digits / digits removed |")
    print("|---|---|---|")
    for name, answers in rows.items():
        hits = [bool(DIGITS.search(a)) for a in answers]
        with_digits = sum(h for (_, _, stripped), h in zip(prompts, hits) if not stripped)
        print(f"| {name} | {sum(hits)} of {len(hits)} | {with_digits} / {sum(hits) - with_digits} |")
    print("\n| prompt | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for i, (shown, _, _) in enumerate(prompts):
        print(f"| {cell(shown)} | " + " | ".join(cell(answers[i]) for answers in rows.values()) + " |")


if __name__ == "__main__":
    main()

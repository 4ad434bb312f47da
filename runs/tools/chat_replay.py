"""The original SmolLM2's own answers to chat prompts over long passages: replay data that keeps a memory fine-tune
speaking (issue 14, E35).

    python runs/tools/chat_replay.py --text runs/out/prose/train.txt --count 160 --out runs/out/replay/chat.jsonl

A memory fine-tune whose every multi-segment prompt ends in a question about a number learns that a long prompt
asks for digits: E33's adapter answers a 500-token question about Genesis with "-17731678-...". This tool writes
the counter-examples: a passage of 150-900 tokens cut at sentence boundaries from the training prose, with one of
several instructions (before or after it) in the chat template, answered greedily by the original model with full
attention (transformers' `generate`; the GGUF de-quantized to float32). `runs/smollm2_finetune.py --replay FILE`
mixes them in: loss on the original's answer tokens, and the LM loss on the passage. One line per example:
{"prompt_ids": [...], "answer_ids": [...], "instruction": ..., "answer": ...}. Lines already in OUT are kept and
counted (the tool continues a stopped run).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

INSTRUCTIONS = [
    "Summarize the text above in one sentence.",
    "What is the main topic of this passage?",
    "List three key points from the text.",
    "Explain the passage above to a beginner in two sentences.",
    "Give this text a short title.",
    "What question does this text answer?",
    "Which names or terms in this text matter most, and why?",
    "Is this text instructions, a story, a reference or an argument? Say why.",
]
BEFORE = [  # the instruction first, then the passage
    "Read the following text, then answer: {instruction}\n\n{passage}",
    "{instruction}\n\nText:\n{passage}",
]
AFTER = ["{passage}\n\n{instruction}", "Text:\n{passage}\n\nQuestion: {instruction}"]


def passage(rng: random.Random, text: str, tokenizer, tokens: int) -> str:
    """About `tokens` tokens of `text` from a random sentence start, ending at a sentence end."""
    start = rng.randrange(0, len(text) - 8 * tokens)
    start = text.find(". ", start) + 2
    piece = text[start : start + 6 * tokens]
    ids = tokenizer.encode(piece)[:tokens]
    cut = tokenizer.decode(ids)
    end = cut.rfind(". ")
    return (cut[: end + 1] if end > len(cut) // 2 else cut).strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="gguf:default")
    p.add_argument("--text", required=True, help="training prose (never the held-out text)")
    p.add_argument("--count", type=int, default=160)
    p.add_argument("--min-tokens", type=int, default=150)
    p.add_argument("--max-tokens", type=int, default=900)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.min_tokens < 16 or args.max_tokens < args.min_tokens:
        raise SystemExit(f"need 16 <= --min-tokens <= --max-tokens, got {args.min_tokens}, {args.max_tokens}")

    from tqdm import tqdm

    from infini_attention.hf.transfer import load_original

    model, tokenizer = load_original(args.source)
    model.eval()
    hf = tokenizer.tokenizer
    text = Path(args.text).read_text()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = sum(1 for _ in out.open()) if out.is_file() else 0
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with out.open("a") as f, torch.no_grad():
        for i in tqdm(range(args.count), desc="original's answers", initial=done, total=args.count):
            # every example's draws come from the same stream, so a continued run writes what one run would have
            tokens = int(args.min_tokens * (args.max_tokens / args.min_tokens) ** rng.random())
            body = passage(rng, text, tokenizer, tokens)
            instruction = rng.choice(INSTRUCTIONS)
            template = rng.choice(BEFORE + AFTER)
            if i < done:
                continue
            content = template.format(instruction=instruction, passage=body)
            chat = hf.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
            ids = torch.tensor([hf.encode(chat, add_special_tokens=False)])
            generated = model.generate(ids, max_new_tokens=args.new_tokens, do_sample=False)[0, ids.shape[1] :]
            record = {
                "prompt_ids": ids[0].tolist(),
                "answer_ids": generated.tolist(),
                "instruction": instruction,
                "answer": hf.decode(generated, skip_special_tokens=True),
            }
            f.write(json.dumps(record) + "\n")
            f.flush()
    print(f"{args.count - done} answers in {time.perf_counter() - started:.0f} s -> {out}")


if __name__ == "__main__":
    main()

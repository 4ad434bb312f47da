"""Short inputs through SmolLM2-135M-Instruct with the shipped attention-transfer artifact, against the
original model (issue #14: "short inputs keep the original's quality").

    OMP_NUM_THREADS=1 python runs/smollm2_short.py > runs/logs/smollm2-short.md   # ~6 min on one CPU thread

One load of gguf:default: the original model (full attention, transformers' own forward and `generate`)
and a copy converted with the artifact (hf/transfer.py:apply_transfer, what `infini demo --model smollm2`
loads) read the same inputs:

1. perplexity of N-token pieces cut evenly from held-out texts, each piece read alone from its first
   token. The first text is Genesis (KJV), shipped in assets/texts and held out of the transfer. The
   second is runs/out/prose/heldout.txt (Python documentation, runs/tools/build_prose.py), when it is
   there. A 200-token piece fits in one 256-token segment. The 1,024-token pieces (4 segments) show
   where the two models part;
2. the max abs logit difference between the two models over the same pieces;
3. instruction prompts through the model's chat template, greedy, 40 new tokens, side by side. The last
   prompt is longer than one segment.

It prints markdown (docs/results/smollm2-transfer.md, "Short inputs").
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from infini_attention.cli.demo_smollm2 import DEFAULT_ARTIFACT, TEXT

PROSE = Path("runs/out/prose/heldout.txt")
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Give me three tips for staying focused while studying.",
    "Translate 'Good morning, how are you?' into Spanish.",
    "Explain in one sentence what a neural network is.",
]


def long_prompt(text: str) -> str:
    """A question on a passage of ~400 tokens (Genesis 37:1-11): the prompt no longer fits in one segment."""
    passage = text[text.index("Ge37:1 ") : text.index("Ge37:12 ")]
    return f"{passage}\nWhich son did Israel love most, and what did he make for him? Answer in one sentence."


def pieces(ids: list[int], length: int, count: int) -> list[torch.Tensor]:
    """`count` pieces of `length` tokens, evenly spread over the text."""
    if len(ids) < length * count:
        raise ValueError(f"{len(ids)} tokens, fewer than {count} x {length}")
    step = (len(ids) - length) // max(count - 1, 1)
    return [torch.tensor(ids[i * step : i * step + length]) for i in range(count)]


@torch.no_grad()
def compare(original, converted, batch: list[torch.Tensor]) -> dict:
    """Perplexity over the pieces (each read alone, from its first token) of the original, the converted
    model and, for pieces longer than a segment, the converted model with its memory reset before every
    segment (local attention only); and the largest logit difference between the first two."""
    from infini_attention.eval.perplexity import document_nll

    n = converted.config.segment_len
    nll, diff, count = [0.0, 0.0, 0.0], 0.0, 0
    for ids in batch:
        a, b = original(ids[None]).logits[0].float(), converted(ids[None])[0][0].float()
        for k, logits in enumerate((a, b)):
            nll[k] += F.cross_entropy(logits[:-1], ids[1:], reduction="sum").item()
        if ids.numel() > n:
            nll[2] += sum(v.sum().item() for _, v in document_nll(converted, ids.numpy(), n, reset_memory=True))
        diff = max(diff, (a - b).abs().max().item())
        count += ids.numel() - 1
    reset = math.exp(nll[2] / count) if batch[0].numel() > n else None
    return {"ppl": [math.exp(v / count) for v in nll[:2]], "ppl_reset": reset, "diff": diff}


@torch.no_grad()
def answers(model, tokenizer, prompts: list[str], new_tokens: int) -> list[tuple[int, str]]:
    """(prompt tokens, greedy answer) per prompt, through the chat template and transformers' generate."""
    out = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
        generated = model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
        out.append((ids.shape[1], tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True).strip()))
    return out


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", default=str(DEFAULT_ARTIFACT))
    parser.add_argument("--adapter", default=None, help="a fine-tuned memory adapter on top of it (hf/lora.py)")
    parser.add_argument("--short", type=int, default=200, help="tokens per one-segment piece")
    parser.add_argument("--pieces", type=int, default=20, help="one-segment pieces per text")
    parser.add_argument("--long", type=int, default=1024, help="tokens per multi-segment piece (0: none)")
    parser.add_argument("--long-pieces", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=40)
    args = parser.parse_args()

    from infini_attention.hf.training import HFTrainingModel
    from infini_attention.hf.transfer import apply_transfer, load_original

    started = time.perf_counter()
    original, tokenizer = load_original("gguf:default")
    hf_tokenizer = tokenizer.tokenizer
    load_s = time.perf_counter() - started
    genesis = TEXT.read_text()
    texts = [("Genesis (KJV), assets/texts", genesis)]
    if PROSE.is_file():
        texts.append(("Python docs, runs/out/prose/heldout.txt", PROSE.read_text()[:2_000_000]))
    sets = []  # (text name, piece length, pieces)
    for name, text in texts:
        ids = tokenizer.encode(text)
        sets.append((name, args.short, pieces(ids, args.short, args.pieces)))
        if args.long:
            sets.append((name, args.long, pieces(ids, args.long, args.long_pieces)))
    prompts = PROMPTS + [long_prompt(genesis)]

    converted = apply_transfer(copy.deepcopy(original), args.artifact).eval()
    if args.adapter:
        from infini_attention.hf.lora import load_adapter

        load_adapter(converted, args.adapter)
    wrapped = HFTrainingModel(converted, tokenizer, source="gguf:default").eval()
    segment_len = wrapped.config.segment_len
    t = time.perf_counter()
    results = [compare(original, wrapped, batch) for _, _, batch in sets]
    before_answers = answers(original, hf_tokenizer, prompts, args.new_tokens)
    after_answers = answers(converted, hf_tokenizer, prompts, args.new_tokens)
    run_s = time.perf_counter() - t

    print(
        f"Model: gguf:default (SmolLM2-135M-Instruct, float32), artifact `{args.artifact}` "
        f"{f'+ adapter `{args.adapter}` ' if args.adapter else ''}"
        f"(segment {segment_len}, {converted.infini_settings.feature_map} feature map). "
        f"Load {load_s:.0f} s, both models {run_s:.0f} s, one CPU thread.\n"
    )
    print(
        "| text | tokens per piece | segments | pieces | ppl, original | ppl, converted + artifact | ratio "
        "| max abs logit diff | converted, memory reset |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, length, batch), r in zip(sets, results):
        (ppl0, ppl1), segments = r["ppl"], math.ceil(length / segment_len)
        reset = "-" if r["ppl_reset"] is None else f"{r['ppl_reset']:.4f}"
        print(
            f"| {name} | {length} | {segments} | {len(batch)} | {ppl0:.4f} | {ppl1:.4f} | {ppl1 / ppl0:.6f} "
            f"| {r['diff']:.2e} | {reset} |"
        )
    print(
        f"\nInstruction prompts (chat template, greedy, {args.new_tokens} new tokens; transformers' `generate` "
        "for both models, with the converted model's Infini cache):\n"
    )
    print("| prompt | prompt tokens | original | converted + artifact | same |")
    print("|---|---|---|---|---|")
    for prompt, (n, a), (_, b) in zip(prompts, before_answers, after_answers):
        shown = (
            prompt if len(prompt) < 80 else f"Genesis 37:1-11 ({len(prompt)} characters) + '{prompt.splitlines()[-1]}'"
        )
        print(f"| {cell(shown)} | {n} | {cell(a)} | {cell(b)} | {'yes' if a == b else 'no'} |")


if __name__ == "__main__":
    main()

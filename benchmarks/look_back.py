"""What the local look back costs (`local_tail`, `local_sink`; ops/infini/README.md): a converted model of
SmolLM2-135M's shape with the look back off, and on at the shipped adapter's setting, timed interleaved.

The look back adds S + T keys (the stream's first S tokens and the previous segment's last T) before every
segment's own keys in its local attention, and carries them in the state. Three things are timed, each with
every setting in turn (the fastest of the interleaved repetitions kept), and printed as ratios to "off":

- read: one forward pass over a prompt of --tokens tokens, no gradients (prefill; bf16 autocast);
- train: forward + backward over --train-tokens tokens (bf16 autocast), every parameter trained;
- decode: greedy tokens/s, one token per call through the InfiniCache, from the state after a --decode-prompt-token
  prompt (read once per setting, copied for every repetition).

    python benchmarks/look_back.py                       # 30 random layers of SmolLM2's shape, segment 256
    python benchmarks/look_back.py --layers 4 --reps 2   # faster, the same per-layer ratios
    python benchmarks/look_back.py --quick               # smoke run: 2 small layers, segment 64

The weights are random (the time does not depend on them): no GGUF is needed. The state's size is printed too
(float32 memory + the look back's keys and values, after the prompt).
"""

from __future__ import annotations

import argparse
import copy
import sys

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch

SHAPE = dict(  # SmolLM2-135M's
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
)
QUICK = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)


def build(layers: int, segment_len: int, quick: bool):
    """A random Llama of SmolLM2's shape (or a tiny one), converted: the delta rule, as the shipped adapter."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from infini_attention.hf import convert

    torch.manual_seed(0)
    config = LlamaConfig(**(QUICK if quick else SHAPE), num_hidden_layers=layers, tie_word_embeddings=True)
    return convert(LlamaForCausalLM(config), segment_len=segment_len, rule="delta").eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=30, help="SmolLM2-135M has 30")
    p.add_argument("--segment-len", type=int, default=256, help="the shipped adapter's")
    p.add_argument("--settings", default="0/0,32/4,128/4", help="tail/sink pairs; the first is the baseline")
    p.add_argument("--tokens", type=int, default=4096, help="read: the prompt's length")
    p.add_argument("--train-tokens", type=int, default=2048, help="train: the sequence's length")
    p.add_argument("--decode-prompt", type=int, default=1024)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="2 tiny layers, segment 64, short inputs: a smoke run")
    args = p.parse_args()
    if args.quick:
        args.layers, args.segment_len, args.settings = 2, 64, "0/0,16/2"
        args.tokens, args.train_tokens, args.decode_prompt, args.new_tokens, args.reps = 512, 256, 128, 8, 1
    bc.setup()
    from infini_attention.eval.models import parse_look_back
    from infini_attention.hf import set_local_tail
    from infini_attention.ops.infini.fast import check_look_back
    from infini_attention.utils import format_bytes

    try:  # "0/0,128/4" -> [(0, 0), (128, 4)]: the evaluations' --look-back values, checked as the layer checks them
        pairs = [parse_look_back(part) for part in args.settings.split(",")]
        for tail, sink in pairs:
            check_look_back(sink, tail, args.segment_len)
    except ValueError as e:
        sys.exit(f"--settings: {e}")
    model = build(args.layers, args.segment_len, args.quick)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, vocab, (1, args.tokens), generator=gen)
    train_ids = torch.randint(0, vocab, (1, args.train_tokens), generator=gen)
    decode_ids = torch.randint(0, vocab, (1, args.decode_prompt), generator=gen)
    print(f"machine: {bc.machine()}")
    shape = "tiny (quick)" if args.quick else "SmolLM2-135M's shape"
    print(
        f"model: random, {shape}, {args.layers} layers, "
        f"segment {args.segment_len}, delta rule; read {args.tokens:,} tokens, train {args.train_tokens:,}, decode "
        f"{args.new_tokens} after {args.decode_prompt:,}; reps {args.reps}",
        flush=True,
    )

    def switched(tail: int, sink: int, fn):
        def run():
            set_local_tail(model, tail, sink=sink)
            return fn()

        return run

    def read():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(prompt, use_cache=True)

    def train():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(train_ids, labels=train_ids).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    prefilled = {}
    for tail, sink in pairs:  # decoding starts from the same prompt's state, read once per setting
        set_local_tail(model, tail, sink=sink)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            prefilled[tail, sink] = model(decode_ids, use_cache=True).cache

    def decoder(pair):
        def run():
            set_local_tail(model, *pair)
            cache, token = copy.deepcopy(prefilled[pair]), decode_ids[:, -1:]
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                for _ in range(args.new_tokens):  # greedy, one token at a time through the cache
                    token = model(token, cache=cache, use_cache=True).logits[:, -1:].argmax(-1)

        return run

    names = {pair: f"{pair[0]}/{pair[1]}" for pair in pairs}
    times = {}
    for what, fn in (("read", read), ("train", train)):
        print(f"timing {what} ...", flush=True)
        times[what] = bc.interleaved({names[pair]: switched(*pair, fn) for pair in pairs}, reps=args.reps)
    print("timing decode ...", flush=True)
    times["decode"] = bc.interleaved({names[pair]: decoder(pair) for pair in pairs}, reps=args.reps)
    sizes = {}
    for pair in pairs:
        set_local_tail(model, pair[0], sink=pair[1])
        sizes[names[pair]] = read().cache.nbytes()
    base = names[pairs[0]]
    rows = []
    for pair in pairs:
        name = names[pair]
        read_s, train_s, decode_s = (times[w][name] for w in ("read", "train", "decode"))
        rows.append(
            [
                name,
                f"{read_s * 1e3:,.0f}",
                f"{read_s / times['read'][base]:.3f}",
                f"{train_s * 1e3:,.0f}",
                f"{train_s / times['train'][base]:.3f}",
                f"{args.new_tokens / decode_s:.1f}",
                f"{times['decode'][base] / decode_s:.3f}",
                format_bytes(sizes[name]),
            ]
        )
    headers = ["tail/sink", "read ms", "read / off", "train ms", "train / off", "decode tok/s", "speed / off"]
    print(bc.table([*headers, "state after the prompt"], rows))


if __name__ == "__main__":
    main()

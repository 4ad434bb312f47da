"""Stream a long input through a model with bounded memory; print time per token and peak memory.

Example (a random `tiny` model over 1M tokens, ~1 minute on 2 CPU cores):
    infini stream --preset tiny --tokens 1M
"""

from __future__ import annotations

import time

from infini_attention.utils import format_bytes, format_count, parse_count, rss_bytes

HELP = "stream a long input through a model: time per token and peak memory at growing lengths"


def add_arguments(p):
    p.add_argument("--preset", default="tiny", help="model preset (ignored with --checkpoint)")
    p.add_argument(
        "--checkpoint",
        "--model",
        dest="checkpoint",
        help="a trained model folder (model.safetensors + config.json), gguf:default, a converted HF folder, "
        "or smollm2-memory (the shipped SmolLM2 with its memory adapter)",
    )
    p.add_argument("--tokens", default="1M", help="total tokens to stream, e.g. 64K or 1M")
    p.add_argument("--block", default="64K", help="tokens handed to the model per call")
    p.add_argument("--bf16", action="store_true", help="run under bfloat16 autocast")
    p.add_argument("--seed", type=int, default=0)


def stream_report(model, total: int, block: int, bf16: bool = False, seed: int = 0):
    """Stream `total` pseudo-random tokens; yield (tokens so far, seconds so far, peak RSS so far, state bytes)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state, done, start, peak = None, 0, time.perf_counter(), rss_bytes()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        while done < total:
            n = min(block, total - done)
            ids = torch.randint(0, model.config.vocab_size, (1, n), generator=generator)
            _, state = model(ids, state, logits_to_keep=1)
            done += n
            peak = max(peak, rss_bytes())
            yield done, time.perf_counter() - start, peak, state.nbytes()


def run(args) -> int:
    from tqdm.auto import tqdm

    from infini_attention.eval.models import is_hf_spec, is_memory_spec

    if args.checkpoint and (is_hf_spec(args.checkpoint) or is_memory_spec(args.checkpoint)):
        from infini_attention.eval.models import load_eval_model

        model = load_eval_model(args.checkpoint).model
    elif args.checkpoint:
        from infini_attention.models.io import load_model

        model = load_model(args.checkpoint)
    else:
        from infini_attention.models import InfiniTransformer, ModelConfig

        model = InfiniTransformer(ModelConfig.from_name(args.preset))
    model.eval()
    total, block = parse_count(args.tokens), parse_count(args.block)
    cfg = model.config
    print(
        f"model: {cfg.attention} ({cfg.rule}), {cfg.num_layers} layers, segment {cfg.segment_len}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"
    )
    print(f"{'tokens':>8} {'us/token':>9} {'tokens/s':>9} {'peak RSS':>10} {'state':>10}")
    checkpoints = {min(total, 1 << k) for k in range(12, 31)} | {total}
    bar = tqdm(total=total, unit="tok", unit_scale=True, leave=False)
    last = 0
    for done, seconds, peak, state_bytes in stream_report(model, total, block, args.bf16, args.seed):
        bar.update(done - last)
        last = done
        if any(last - min(block, done) < c <= done for c in checkpoints):
            tqdm.write(
                f"{format_count(done):>8} {1e6 * seconds / done:>9.1f} {done / seconds:>9.0f} "
                f"{format_bytes(peak):>10} {format_bytes(state_bytes):>10}"
            )
    bar.close()
    return 0

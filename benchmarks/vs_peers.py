"""Our model vs `infini-transformer-pytorch==0.2.1` (PyPI, lucidrains) in the same configuration.

Configuration: vocabulary 256, dim 256, depth 2, 4 heads of 64, segment 512, FFN inner width 682
(theirs: ff_mult=4 gives int(4 * 256 * 2/3) = 682 for a gated GELU; ours: SwiGLU of 682), linear
memory rule, fp32, one thread. Their model takes one segment per call and hands back the memories;
their `InfiniTransformerWrapper` runs a training sequence segment by segment, and we set its
`detach_mems_every_num_segments` to the number of segments so that both back-propagate through all
of them (its default, 2, cuts the gradient every two segments).
- training step: forward + backward of a batch of 2 x 2048 tokens (4 segments), next-token loss;
- streaming: 64K tokens under torch.no_grad(). Theirs has no streaming entry point; driving the
  model one segment at a time with the returned memories is bounded (the memories replace each
  other), so that is what is measured. It needs inputs in whole segments.
Times are interleaved in one process; peak RSS comes from a fresh process per (model, task).
Also checks that in ours the last segment's loss reaches the first segment's embeddings.
Target: ours >= 2x faster, with less peak memory.

    pip install --no-deps infini-transformer-pytorch==0.2.1 einops==0.8.2 rotary-embedding-torch==0.9.1
    python benchmarks/vs_peers.py            # ~3 minutes on 2 CPU cores
    python benchmarks/vs_peers.py --quick    # smoke run: small inputs, no RSS processes
"""

from __future__ import annotations

import argparse
import json

import bench_common as bc  # first: it sets the OpenMP environment before torch loads
import torch
import torch.nn.functional as F

from infini_attention.models import InfiniTransformer, ModelConfig

VOCAB, DIM, DEPTH, HEADS, HEAD_DIM, SEGMENT, FFN = 256, 256, 2, 4, 64, 512, 682


def ours():
    config = ModelConfig(
        vocab_size=VOCAB,
        hidden_size=DIM,
        num_layers=DEPTH,
        num_heads=HEADS,
        num_key_value_heads=HEADS,
        head_dim=HEAD_DIM,
        ffn_size=FFN,
        segment_len=SEGMENT,
    )
    return InfiniTransformer(config)


def theirs(segments: int):
    from infini_transformer_pytorch import InfiniTransformer as Theirs
    from infini_transformer_pytorch import InfiniTransformerWrapper

    model = Theirs(num_tokens=VOCAB, dim=DIM, depth=DEPTH, dim_head=HEAD_DIM, heads=HEADS, ff_mult=4)
    return InfiniTransformerWrapper(model, segment_length=SEGMENT, detach_mems_every_num_segments=segments)


def tasks(batch: int, train_len: int, stream_len: int):
    """name -> (impl -> zero-argument callable)."""
    gen = torch.Generator().manual_seed(0)
    seq = torch.randint(0, VOCAB, (batch, train_len + 1), generator=gen)
    stream = torch.randint(0, VOCAB, (1, stream_len), generator=gen)
    ours_model, wrapper = ours(), theirs(train_len // SEGMENT)

    def ours_train():
        logits, _ = ours_model(seq[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten()).backward()
        ours_model.zero_grad(set_to_none=True)

    def theirs_train():
        wrapper(seq, backward=True)
        wrapper.zero_grad(set_to_none=True)

    @torch.no_grad()
    def ours_stream():
        ours_model(stream, logits_to_keep=1)

    @torch.no_grad()
    def theirs_stream():
        memories = None
        for segment in stream.split(SEGMENT, dim=1):
            _, _, memories = wrapper.model(segment, past_memories=memories, return_new_memories=True)

    return {
        "training step": {"ours": ours_train, "theirs": theirs_train},
        "streaming": {"ours": ours_stream, "theirs": theirs_stream},
    }


def gradient_reaches_first_segment(segments: int = 4) -> float:
    """|grad| of the first segment's embedding rows from the last segment's loss alone (ours).

    The first segment uses token ids 0-127 and the others 128-255, so the rows of ids 0-127 get a
    gradient only through the memory (the local attention never crosses a segment boundary).
    """
    model = ours()
    gen = torch.Generator().manual_seed(1)
    first = torch.randint(0, 128, (1, SEGMENT), generator=gen)
    rest = torch.randint(128, VOCAB, (1, (segments - 1) * SEGMENT + 1), generator=gen)
    ids = torch.cat([first, rest], dim=1)
    logits, _ = model(ids[:, :-1])
    last = slice((segments - 1) * SEGMENT, segments * SEGMENT)
    F.cross_entropy(logits[0, last], ids[0, 1:][last]).backward()
    return model.embed_tokens.weight.grad[:128].abs().sum().item()


def worker(task: str, impl: str, batch: int, train_len: int, stream_len: int) -> None:
    bc.setup()
    fn = tasks(batch, train_len, stream_len)[task][impl]
    fn()
    print(json.dumps({"peak_rss": bc.peak_rss()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 segments, 4K-token stream, no RSS: a smoke run")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        task, impl, *sizes = args.worker
        worker(task.replace("_", " "), impl, *map(int, sizes))
        return
    bc.setup()
    batch, train_len, stream_len = (1, 2 * SEGMENT, 8 * SEGMENT) if args.quick else (2, 4 * SEGMENT, 1 << 16)
    reps = 1 if args.quick else args.reps
    print(f"machine: {bc.machine()}")
    print(
        f"dim {DIM}, depth {DEPTH}, {HEADS} heads of {HEAD_DIM}, segment {SEGMENT}, fp32; "
        f"training step: {batch} x {train_len} tokens; streaming: {stream_len} tokens"
    )
    rows = []
    for task, fns in tasks(batch, train_len, stream_len).items():
        t = bc.interleaved(fns, reps=reps)
        if args.quick:
            rss = {impl: float("nan") for impl in fns}
        else:
            sizes = [str(batch), str(train_len), str(stream_len)]
            rss = {impl: bc.run_worker(__file__, [task.replace(" ", "_"), impl, *sizes])["peak_rss"] for impl in fns}
        rows.append(
            [
                task,
                f"{t['ours'] * 1e3:.0f}",
                f"{t['theirs'] * 1e3:.0f}",
                f"**{t['theirs'] / t['ours']:.2f}x**",
                "-" if args.quick else bc.mib(rss["ours"]),
                "-" if args.quick else bc.mib(rss["theirs"]),
                "-" if args.quick else f"**{rss['theirs'] / rss['ours']:.2f}**",
            ]
        )
        print(f"  {task}: done", flush=True)
    print()
    print(
        bc.table(
            ["task", "ours ms", "theirs ms", "theirs / ours time", "ours RSS", "theirs RSS", "theirs / ours RSS"],
            rows,
        )
    )
    grad = gradient_reaches_first_segment()
    print()
    print(f"ours: |grad| of the 1st segment's embeddings from the 4th segment's loss = {grad:.3e} (nonzero: BPTT)")


if __name__ == "__main__":
    main()

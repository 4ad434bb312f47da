"""Why a `deltanet` passkey model fails beyond its training length: write strengths, key overlap, growth of M.

    python runs/tools/deltanet_diagnostics.py runs/out/e6-passkey-deltanet/checkpoint            # all three
    python runs/tools/deltanet_diagnostics.py CKPT --growth-up-to 1M --exactness-segments 64

1. strengths: on one 4K passkey prompt (depth 0.5), per layer and key/value head, the mean write
   strength s_t on the needle's digits and on the filler, and the mean squared cosine between the
   digits' unit keys and the filler's (how much each filler write erodes the needle).
2. growth: the largest spectral norm of M per layer while one passkey prompt streams, every 128K.
3. exactness: the fast op's chunked write against a float64 token-by-token loop on the first layer's
   real keys and values (rules out round-off as the cause of the growth).
Used for E8 in runs/EXPERIMENTS.md.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from infini_attention.checkpoint import load_model
from infini_attention.data import passkey
from infini_attention.data.tokenizers import get_tokenizer
from infini_attention.layers.attention import InfiniAttention
from infini_attention.ops.infini.deltanet import DeltaNet
from infini_attention.utils import parse_count


def memory_keys(model, ids):
    """Per Infini layer: the keys the memory sees (key shift included), (tokens, kv_heads, d)."""
    layers = [m for m in model.modules() if isinstance(m, InfiniAttention)]
    seen = {i: [] for i in range(len(layers))}
    hooks = [  # the layer's own `project`: keys as the op receives them, (B, Hkv, L, d)
        layer.register_forward_pre_hook(lambda mod, args, i=i: seen[i].append(mod.project(*args)[1]))
        for i, layer in enumerate(layers)
    ]
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    keys = [torch.cat(seen[i], dim=2)[0].transpose(0, 1).detach() for i in range(len(layers))]
    return layers, keys


def strengths(model, tokenizer):
    inst = passkey.make_instance(tokenizer, 4096, 0.5, seed=3)
    ids = inst.prompt_ids()[None]
    start, end = inst.needle_spans[inst.ask]
    digit = torch.tensor([chr(t).isdigit() if t < 128 else False for t in ids[0].tolist()])
    needle = torch.zeros(ids.shape[1], dtype=torch.bool)
    needle[start:end] = True
    layers, keys = memory_keys(model, ids)
    print("1. write strength and needle/filler key overlap (4K prompt, depth 0.5)")
    for i, (layer, k) in enumerate(zip(layers, keys)):
        s = torch.sigmoid((k * layer.write_weight[None]).sum(-1) + layer.write_bias[None])
        u = F.normalize(k, dim=-1)
        for h in range(k.shape[1]):
            overlap = (u[needle & digit, h] @ u[~needle, h].T).pow(2).mean()
            print(
                f"  layer {i} head {h}: strength on needle digits {s[needle & digit, h].mean():.3f}, "
                f"on filler {s[~needle, h].mean():.4f}; mean squared cosine digits/filler {overlap:.3f}"
            )


def growth(model, tokenizer, up_to: int):
    inst = passkey.make_instance(tokenizer, up_to, 0.5, seed=3)
    print(f"2. largest spectral norm of M per layer while streaming {up_to:,} tokens")
    state, seen, every = None, 0, 1 << 17
    with torch.no_grad():
        for chunk in inst.chunks(1 << 14):
            _, state = model(torch.tensor([chunk]), state, logits_to_keep=1)
            seen += len(chunk)
            if seen % every == 0 or seen == up_to:
                norms = [f"{torch.linalg.matrix_norm(s.M, ord=2).max():.1f}" for s in state.layers]
                print(f"  {seen:>9,} tokens: {' / '.join(norms)}", flush=True)


def exactness(model, tokenizer, segments: int):
    layer = next(m for m in model.modules() if isinstance(m, InfiniAttention))
    n = model.config.segment_len
    inst = passkey.make_instance(tokenizer, segments * n, 0.5, seed=3)
    writes = []
    original = DeltaNet.write
    DeltaNet.write = lambda self, M, z, k, v: writes.append((k.clone(), v.clone())) or original(self, M, z, k, v)
    try:
        with torch.no_grad():
            model(inst.prompt_ids()[None], logits_to_keep=1)
    finally:
        DeltaNet.write = original
    first_layer = writes[:: model.config.num_layers]  # writes alternate between layers, segment by segment
    w, b = layer.write_weight.detach().double(), layer.write_bias.detach().double()
    M32 = torch.zeros(1, layer.num_key_value_heads, layer.head_dim, layer.head_dim)
    M64 = torch.zeros(layer.num_key_value_heads, layer.head_dim, layer.head_dim, dtype=torch.float64)
    with torch.no_grad():
        for k, v in first_layer:
            M32 = original(M32, k, v, (layer.write_weight, layer.write_bias))
            for h in range(k.shape[1]):
                for t in range(k.shape[2]):
                    key = k[0, h, t].double()
                    unit = key / key.norm()
                    s = torch.sigmoid(key @ w[h] + b[h])
                    M64[h] += s * torch.outer(unit, v[0, h, t].double() - unit @ M64[h])
    print(
        f"3. after {len(first_layer)} real segments of layer 0: fast op (float32) vs token-by-token float64 loop, "
        f"max |difference| {(M32[0].double() - M64).abs().max():.2e} (largest |M| {M64.abs().max():.2f})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--growth-up-to", default="1M", help="stream length for the growth of M")
    p.add_argument("--exactness-segments", type=int, default=64)
    args = p.parse_args()
    model = load_model(args.checkpoint).eval()
    if model.config.rule != "deltanet":
        raise SystemExit(f"{args.checkpoint} uses the {model.config.rule} rule, not deltanet")
    tokenizer = get_tokenizer("byte")
    strengths(model, tokenizer)
    growth(model, tokenizer, parse_count(args.growth_up_to))
    exactness(model, tokenizer, args.exactness_segments)


if __name__ == "__main__":
    main()

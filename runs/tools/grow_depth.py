"""Grow a trained InfiniTransformer deeper: new decoder layers inserted where asked that start as the identity
(their attention output projection and MLP down projection zero, as in block expansion, LLaMA Pro, arXiv
2401.02415), so the grown model computes exactly what the original computes until training moves them.

    python runs/tools/grow_depth.py --from src/infini_attention/assets/passkey --insert-after 0 1 \
        --out runs/out/grown-4l

--insert-after 0 1 puts one new layer after old layer 0 and one after old layer 1 (2 -> 4 layers). The new
layers' other weights are a fresh initialisation (--seed); the result is a model folder that `infini train
--init-from` reads. It checks that the grown model's logits equal the original's on a random input.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from infini_attention import InfiniTransformer
from infini_attention.models.io import load_model, save_model


def grow(model: InfiniTransformer, insert_after: list[int], seed: int = 0) -> InfiniTransformer:
    old = model.config
    if any(i < 0 or i >= old.num_layers for i in insert_after):
        raise SystemExit(f"--insert-after: layer indices must be in 0..{old.num_layers - 1}, got {insert_after}")
    cfg = dataclasses.replace(old, num_layers=old.num_layers + len(insert_after))
    torch.manual_seed(seed)
    grown = InfiniTransformer(cfg)
    order = []  # for each new layer index: the old layer it copies, or None (a new identity layer)
    for i in range(old.num_layers):
        order.append(i)
        order.extend([None] * insert_after.count(i))
    weights = grown.state_dict()
    for name, tensor in model.state_dict().items():
        if not name.startswith("layers."):
            weights[name] = tensor
    for new_index, old_index in enumerate(order):
        prefix = f"layers.{new_index}."
        if old_index is None:
            for name in weights:
                if name.startswith(prefix) and name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
                    weights[name] = torch.zeros_like(weights[name])
            continue
        for name, tensor in model.state_dict().items():
            if name.startswith(f"layers.{old_index}."):
                weights[prefix + name[len(f"layers.{old_index}.") :]] = tensor
    grown.load_state_dict(weights)
    return grown.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", required=True, help="a model folder")
    p.add_argument("--insert-after", type=int, nargs="+", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    model = load_model(args.source).eval()
    grown = grow(model, args.insert_after, args.seed)
    ids = torch.randint(0, model.config.vocab_size, (2, 3 * model.config.segment_len + 17))
    with torch.no_grad():
        a, _ = model(ids)
        b, _ = grown(ids)
    err = (a - b).abs().max().item()
    print(f"{model.config.num_layers} -> {grown.config.num_layers} layers; max |logit difference| {err:.2e}")
    if err > 1e-4:
        raise SystemExit("the grown model does not compute what the original computes")
    about = f"{args.source} grown by runs/tools/grow_depth.py: identity layers after layers {args.insert_after}"
    save_model(grown, args.out, extra={"about": about})
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

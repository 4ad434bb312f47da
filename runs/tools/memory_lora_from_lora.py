"""Move an adapter's LoRA on q/k/v to the memory path only (memory LoRA), dropping its o_proj LoRA.

    python runs/tools/memory_lora_from_lora.py --from runs/out/e35-replay --to runs/out/e35-memory-only

A LoRA adapter of runs/smollm2_finetune.py changes q/k/v/o for the local attention and the memory alike.
The same q/k/v deltas as a memory LoRA (modules/memory_lora.py: A_q, A_k, A_v stacked, B_q, B_k, B_v) change
only what the memory reads and writes; the local attention is the original's again, and so is every
one-segment input. o_proj's delta acts on the mix of both paths and has no memory-only counterpart here:
it is dropped. Gates and feature maps are kept as they are. The result is an adapter folder that
`--adapter`, `infini eval ... --model` and `runs/smollm2_short.py --adapter` load.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

LORA = re.compile(r"^(?:hf\.)?(.*\.self_attn)\.([qkvo])_proj\.lora_([AB])\.weight$")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", required=True, help="an adapter folder with LoRA on q/k/v(/o)")
    p.add_argument("--to", required=True)
    args = p.parse_args()
    source, target = Path(args.source), Path(args.to)
    meta = json.loads((source / "adapter.json").read_text())
    lora = meta.get("lora")
    if not lora or not {"q_proj", "k_proj", "v_proj"} <= set(lora["targets"]):
        raise SystemExit(f"{source}: adapter.json has no LoRA on q_proj, k_proj and v_proj")
    tensors, parts, dropped = {}, {}, 0
    for name, t in load_file(str(source / "adapter.safetensors")).items():
        m = LORA.match(name)
        if m is None:
            tensors[name.removeprefix("hf.")] = t  # gates, feature maps
            continue
        attn, proj, ab = m.groups()
        if proj == "o":
            dropped += 1
            continue
        parts.setdefault(attn, {})[proj + ab] = t
    for attn, w in sorted(parts.items()):
        tensors[f"{attn}.memory_lora.lora_A.weight"] = torch.cat([w["qA"], w["kA"], w["vA"]]).contiguous()
        for proj in "qkv":
            tensors[f"{attn}.memory_lora.lora_B_{proj}.weight"] = w[proj + "B"].contiguous()
    target.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target / "adapter.safetensors"), metadata={"format": "pt"})
    meta = {
        **meta,
        "lora": None,
        "memory_lora": {"rank": lora["rank"], "alpha": lora["alpha"]},
        "parameters": sum(t.numel() for t in tensors.values()),
        "memory_lora_from": str(source),
    }
    (target / "adapter.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(parts)} layers moved to memory LoRA, {dropped} o_proj tensors dropped -> {target}")


if __name__ == "__main__":
    main()

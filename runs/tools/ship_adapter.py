"""Copy a memory adapter (runs/smollm2_finetune.py's OUT) into the package, its tensors stored in bfloat16.

    python runs/tools/ship_adapter.py --from runs/out/smollm2-memory-transfer/medium \
        --to src/infini_attention/assets/smollm2-memory

Tensor names lose HFTrainingModel's `hf.` prefix (hf/lora.py reads both); adapter.json keeps the run's
record and gains `stored_dtype`. bfloat16 halves the file (LoRA of rank 32 on 30 layers: 7.7 MB); the
loader casts back to the model's float32, so what is shipped is what its results pages measure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", required=True)
    p.add_argument("--to", required=True)
    args = p.parse_args()
    source, target = Path(args.source), Path(args.to)
    meta = json.loads((source / "adapter.json").read_text())
    if "lora" not in meta:
        raise SystemExit(f"{source}/adapter.json has no lora settings (an adapter of hf/lora.py is expected)")
    tensors = {
        k.removeprefix("hf."): v.to(torch.bfloat16).contiguous()
        for k, v in load_file(str(source / "adapter.safetensors")).items()
    }
    target.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target / "adapter.safetensors"), metadata={"format": "pt"})
    meta = {**meta, "artifact": "assets/smollm2-transfer", "stored_dtype": "bfloat16", "shipped_from": str(source)}
    (target / "adapter.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = (target / "adapter.safetensors").stat().st_size
    print(f"{len(tensors)} tensors, {size:,} bytes -> {target}")


if __name__ == "__main__":
    main()

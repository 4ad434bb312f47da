"""LoRA on a converted model's attention projections, and the adapter files that carry what a fine-tune changed.

    add_lora(model, rank=32, alpha=32)       # q/k/v/o of every converted layer: base(x) + (alpha / rank) B(A(x))
    add_memory_lora(model, rank=32)          # or: deltas on the memory path's q/k/v only (modules/memory_lora.py)
    save_adapter(model, folder, meta)        # the trainable tensors only (LoRA, gates, feature maps) + adapter.json
    load_adapter(model, folder)              # adds LoRA as adapter.json says, then loads the tensors

A LoRA update starts at zero (B = 0), so a model with fresh LoRA computes what it computed before. Tensor
names are the transformers model's own (`model.layers.0.self_attn.q_proj.lora_A.weight`: PEFT's names without
its `base_model.model.` prefix; a leading `hf.`, HFTrainingModel's, is accepted on loading).
`merged_weight` is the slow, obvious reference: W + (alpha / rank) B A.
runs/smollm2_finetune.py trains such an adapter (issue 14).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from infini_attention.modules.token_shift import grow_taps
from infini_attention.utils import ADAPTER_META

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
TAP_WEIGHTS = ("shift_B_q.weight", "shift_B_k.weight")  # a memory LoRA's tap projections (modules/memory_lora.py)
ADAPTER_FILE, META_FILE = "adapter.safetensors", ADAPTER_META


class LoRALinear(nn.Module):
    """base(x) + scale * B(A(x)), scale = alpha / rank: a frozen projection plus a rank-r update (B starts at 0)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, device=device, dtype=dtype)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, device=device, dtype=dtype)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:  # code that reads a projection's weight sees the frozen one
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


def merged_weight(layer: LoRALinear) -> torch.Tensor:
    """The reference: the one matrix the layer applies, W + scale * B A (float32)."""
    return layer.base.weight.float() + layer.scale * layer.lora_B.weight.float() @ layer.lora_A.weight.float()


def attention_modules(model) -> list[nn.Module]:
    """The converted attention modules (`self_attn`) of a converted transformers model or an HFTrainingModel."""
    from infini_attention.hf.attention import InfiniHFAttention

    hf = getattr(model, "hf", model)
    return [m for m in hf.modules() if isinstance(m, InfiniHFAttention)]


def add_lora(model, rank: int, alpha: float, targets: tuple[str, ...] = PROJECTIONS):
    """Wrap `targets` of every converted layer in LoRALinear (in place; returns the model)."""
    modules = attention_modules(model)
    if not modules:
        raise TypeError("add_lora: no converted Infini-attention layer in this model (convert it first)")
    for attn in modules:
        for name in targets:
            current = getattr(attn, name)
            if isinstance(current, LoRALinear):
                raise ValueError(f"add_lora: {name} already has LoRA")
            setattr(attn, name, LoRALinear(current, rank, alpha))
    return model


def add_memory_lora(model, rank: int, alpha: float | None = None, shift: int = 0):
    """Give every converted layer's memory path its own LoRA on q/k/v (InfiniAttention.add_memory_lora), with
    `shift` low-rank taps on the tokens before its queries and keys (0: none): the local attention keeps the
    original projections, so one-segment inputs stay the original model's (in place)."""
    modules = attention_modules(model)
    if not modules:
        raise TypeError("add_memory_lora: no converted Infini-attention layer in this model (convert it first)")
    for attn in modules:
        attn.add_memory_lora(rank, alpha, shift)
    return model


def memory_lora_settings(model) -> dict | None:
    """{"rank", "alpha"} of the model's memory LoRA (and "shift", its taps, when it has any), or None when it has
    none."""
    for attn in attention_modules(model):
        lora = attn.memory_lora
        if lora is not None:
            return {"rank": lora.rank, "alpha": lora.alpha, **({"shift": lora.shift} if lora.shift else {})}
    return None


def lora_settings(model) -> dict | None:
    """{"rank", "alpha", "targets"} of the model's LoRA, or None when it has none."""
    for attn in attention_modules(model):
        targets = [name for name in PROJECTIONS if isinstance(getattr(attn, name), LoRALinear)]
        if targets:
            first = getattr(attn, targets[0])
            return {"rank": first.rank, "alpha": first.alpha, "targets": targets}
    return None


def save_adapter(model, folder: str | Path, meta: dict | None = None, parameters=None) -> None:
    """The adapter's parameters (float32) in `folder/adapter.safetensors`, and adapter.json with the LoRA
    settings and `meta` (atomically: temporary files, then rename).

    parameters: the ones to save (an iterable of the model's parameters), e.g. a trainer's groups with a frozen
    one among them; default: those that require grad."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf = getattr(model, "hf", model)  # names are the transformers model's own, with or without HFTrainingModel
    chosen = None if parameters is None else {id(p) for p in parameters}
    tensors = {
        n: p.detach().float().cpu().contiguous()
        for n, p in hf.named_parameters()
        if (p.requires_grad if chosen is None else id(p) in chosen)
    }
    if not tensors:
        raise ValueError(
            "save_adapter: nothing to save (no parameter requires grad, or none of `parameters` is the model's)"
        )
    save_file(tensors, str(folder / f"{ADAPTER_FILE}.tmp"))
    (folder / f"{ADAPTER_FILE}.tmp").replace(folder / ADAPTER_FILE)
    info = {**(meta or {}), "lora": lora_settings(model), "parameters": sum(t.numel() for t in tensors.values())}
    memory_lora = memory_lora_settings(model)
    if memory_lora is not None:  # (older adapters have no such key)
        info["memory_lora"] = memory_lora
    (folder / f"{META_FILE}.tmp").write_text(json.dumps(info, indent=1) + "\n")
    (folder / f"{META_FILE}.tmp").replace(folder / META_FILE)


def read_adapter_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: an adapter folder holds {META_FILE} and {ADAPTER_FILE}")
    return json.loads(path.read_text())


@torch.no_grad()
def load_adapter(model, folder: str | Path):
    """Add LoRA and memory LoRA as `folder/adapter.json` says (unless the model has them) and load every tensor of
    `folder/adapter.safetensors` into the model; a tensor the model lacks, or of another shape, is an error.
    An adapter.json that records `local_tail` / `local_sink` (variants without parameters that the adapter runs
    with: ops/infini/fast.py) switches them on (hf/modeling.py:set_local_tail).

    A model whose memory LoRA was given more shift taps than the adapter's (add_memory_lora(..., shift=3) before
    loading a shift-1 adapter) gets the adapter's taps and new ones at zero: it starts as the adapter."""
    folder = Path(folder)
    meta = read_adapter_meta(folder)
    lora = meta.get("lora")
    if lora and lora_settings(model) is None:
        add_lora(model, lora["rank"], lora["alpha"], tuple(lora["targets"]))
    memory_lora = meta.get("memory_lora")
    if memory_lora and memory_lora_settings(model) is None:
        add_memory_lora(model, memory_lora["rank"], memory_lora["alpha"], memory_lora.get("shift", 0))
    saved_taps = (memory_lora or {}).get("shift", 0)
    own_taps = (memory_lora_settings(model) or {}).get("shift", 0)
    weights = load_file(str(folder / ADAPTER_FILE))
    params = dict(getattr(model, "hf", model).named_parameters())
    for name, tensor in weights.items():
        target = params.get(name.removeprefix("hf."))  # HFTrainingModel's names start with its .hf
        if target is None:
            raise ValueError(f"{folder}: {name} is not a parameter of this model")
        if name.endswith(TAP_WEIGHTS) and 0 < saved_taps < own_taps and target.shape[1:] == tensor.shape[1:]:
            # a model given more memory LoRA shift taps than the adapter's: the new taps start at zero
            tensor = grow_taps(tensor, target.shape[0])
        if target.shape != tensor.shape:
            raise ValueError(f"{folder}: {name} has shape {tuple(tensor.shape)}, the model's {tuple(target.shape)}")
        target.copy_(tensor.to(target.dtype))
    if meta.get("local_tail") or meta.get("local_sink"):
        from infini_attention.hf.modeling import set_local_tail

        set_local_tail(model, meta.get("local_tail", 0), meta.get("local_sink", 0))
    return model


__all__ = [
    "PROJECTIONS",
    "LoRALinear",
    "add_lora",
    "add_memory_lora",
    "attention_modules",
    "load_adapter",
    "lora_settings",
    "memory_lora_settings",
    "merged_weight",
    "read_adapter_meta",
    "save_adapter",
]

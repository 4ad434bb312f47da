"""Attention transfer (LoLCATs, arXiv 2410.10254): teach each converted layer to reproduce the original
model's own full attention, layer by layer, without back-propagating through the network.

    original, tokenizer = load_gguf("default")                     # the unconverted model, full attention
    teacher = collect(original, ids)                               # every layer's attention input and output
    model = convert_for_transfer(original, segment_len=256, feature_map="hedgehog")   # in place
    attn = model.model.layers[i].self_attn
    params = select_parameters(attn, ("gate", "feature", "shift"))
    metrics = train_layer(attn, [teacher.layer(i, c) for c in range(teacher.contexts)], params, steps=50)
    save_transfer(model, "out", manifest={...});  load_transfer(fresh_converted_model, "out")
    model.save_pretrained("converted")   # an ordinary converted folder: its config records the feature map,
                                         # load_converted / HFTrainingModel.load / load_eval_model read it
    wrapped = load_transferred("out")    # the manifest's source (gguf:default) + the artifact, as the trainer's
                                         # and evaluations' HFTrainingModel (`infini demo --model smollm2`)

What is matched: the attention module's output AFTER o_proj, i.e. exactly what the decoder layer adds
to its residual stream. The converted layer keeps the original o_proj, so matching there lets o_proj
stay frozen while still weighting each head's error by how much it reaches the residual stream
(matching before o_proj would treat every head and channel alike, whatever o_proj makes of them).

The student is run as at inference: the whole context through the layer in one call, which the op
cuts into segments, carrying the memory (and any token shift terms) from one segment to the next;
the memory is not detached, so the loss back-propagates through every write of the context. Within
the first segment the memory is empty and the converted layer computes the original's attention
exactly (the gate's share goes to the local attention), so the loss that can teach anything is the
one on positions past the first segment (`later`); `all` is reported beside it.

Layers are independent: layer i is trained from a fixed input to layer i, either the original model's own
(teacher forcing, `collect`) or the converted model's with its memory off (`student_inputs`, which made E19
work), never from inputs that the other layers' training changes, so they can run in any order or in parallel.

Needle contexts (`needle_context`): ordinary text teaches the memory the average far context, never one
exact key (runs/EXPERIMENTS.md E21). A context that is a needle prompt followed by its answer, the needle
in an earlier segment than the question, makes the teacher's output at the question and answer tokens
depend on the needle, which only the memory can bring back. `Teacher.marked` records those positions;
`Teacher.weights(c, w)` turns them into per-token loss weights (w there, 1 elsewhere), and `train_layer`
minimises the weighted mean of the squared error (`transfer_errors`: `later_weighted`), so that a few
tokens of every context are not drowned by the two thousand others.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from infini_attention.hf.attention import InfiniHFAttention
from infini_attention.hf.modeling import convert, set_sparse_cache
from infini_attention.hf.settings import CONFIG_KEY
from infini_attention.modules import feature_map_module
from infini_attention.utils import ARTIFACT, MANIFEST, SHIPPED, memory_model_folder  # names: plain Python

# what select_parameters can unfreeze: gate logits (eq 10), the feature map's parameters, the token
# shift taps, and optionally the pretrained projections themselves (which also change the local attention)
PARTS = ("gate", "feature", "shift", "q", "k", "v", "o")
DEFAULT_PARTS = ("gate", "feature", "shift")


@dataclass
class Teacher:
    """What `collect` captured, per layer: inputs[i], outputs[i] of shape (contexts, length, hidden).

    inputs: the hidden states the layer's self-attention received (after input_layernorm);
    outputs: what it returned (after o_proj); positions: (contexts, length) position ids it was given;
    ids: (contexts, length) the token ids (None in files written before they were stored);
    marked: (contexts, length) bool, the positions whose error the loss weights up (`weights`): the
    question and answer tokens of needle contexts (`needle_context`); None: no position is marked.
    """

    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]
    positions: torch.Tensor
    layers: list[int]
    ids: torch.Tensor | None = None
    marked: torch.Tensor | None = None

    @property
    def contexts(self) -> int:
        return self.positions.shape[0]

    def layer(self, i: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input (1, L, hidden), target (1, L, hidden)) of layer i for one context."""
        k = self.layers.index(i)
        return self.inputs[k][context : context + 1], self.outputs[k][context : context + 1]

    def weights(self, context: int, weight: float) -> torch.Tensor | None:
        """(1, L) per-token loss weights of one context: `weight` at its marked positions, 1 elsewhere;
        None when the context has no marked position (the plain, unweighted loss)."""
        if self.marked is None or not self.marked[context].any():
            return None
        mark = self.marked[context : context + 1].float()
        return 1.0 + (weight - 1.0) * mark

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"positions": self.positions}
        for name in ("ids", "marked"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for k, i in enumerate(self.layers):
            out[f"input.{i}"], out[f"output.{i}"] = self.inputs[k], self.outputs[k]
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Teacher:
        layers = sorted(int(name.split(".")[1]) for name in tensors if name.startswith("input."))
        return cls(
            [tensors[f"input.{i}"] for i in layers],
            [tensors[f"output.{i}"] for i in layers],
            tensors["positions"],
            layers,
            tensors.get("ids"),
            tensors.get("marked"),
        )

    def save(self, path: str | Path) -> None:
        save_file({k: v.contiguous() for k, v in self.tensors().items()}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> Teacher:
        return cls.from_tensors(load_file(str(path)))


def _decoder_layers(model) -> nn.ModuleList:
    return model.model.layers


@torch.no_grad()
def collect(
    original_model,
    ids: torch.Tensor,
    layers: Iterable[int] | None = None,
    dtype: torch.dtype = torch.bfloat16,
    converted: bool = False,
) -> Teacher:
    """Run the ORIGINAL (unconverted, full-attention) model once over ids (contexts, length), one context
    at a time, and capture every chosen layer's self-attention input and output (see `Teacher`), stored in
    `dtype` (bf16 by default: a 2K-token context of SmolLM2-135M is 141 MB over its 30 layers).

    converted=True accepts a converted model instead (its own hidden states: `student_inputs`)."""
    if type(original_model).__name__.startswith("Infini") and not converted:
        raise ValueError("collect needs the original model (full attention), not a converted one")
    if ids.dim() != 2:
        raise ValueError(f"ids must be (contexts, length), got shape {tuple(ids.shape)}")
    all_layers = _decoder_layers(original_model)
    layers = list(range(len(all_layers))) if layers is None else sorted(set(layers))
    captured: dict[int, dict[str, list[torch.Tensor]]] = {i: {"input": [], "output": []} for i in layers}
    positions: list[torch.Tensor] = []

    def pre_hook(i):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            captured[i]["input"].append(x.detach().to("cpu", dtype))
            if i == layers[0]:
                pos = kwargs.get("position_ids")
                positions.append(torch.arange(x.shape[1])[None] if pos is None else pos.detach().cpu())

        return hook

    def post_hook(i):
        def hook(module, args, kwargs, output):
            y = output[0] if isinstance(output, tuple) else output
            captured[i]["output"].append(y.detach().to("cpu", dtype))

        return hook

    handles = []
    for i in layers:
        attn = all_layers[i].self_attn
        handles.append(attn.register_forward_pre_hook(pre_hook(i), with_kwargs=True))
        handles.append(attn.register_forward_hook(post_hook(i), with_kwargs=True))
    was_training = original_model.training
    original_model.eval()
    device = next(original_model.parameters()).device
    try:
        for row in ids:
            original_model.model(input_ids=row[None].to(device), use_cache=False)  # the decoder alone: no logits
    finally:
        for h in handles:
            h.remove()
        original_model.train(was_training)
    return Teacher(
        [torch.cat(captured[i]["input"]) for i in layers],
        [torch.cat(captured[i]["output"]) for i in layers],
        torch.cat(positions).expand(ids.shape[0], -1).contiguous(),
        layers,
        ids.detach().cpu().clone(),
    )


def student_inputs(converted_model, ids: torch.Tensor, teacher: Teacher) -> Teacher:
    """The teacher's outputs paired with the CONVERTED model's own attention inputs, memory off (every
    gate shut: local attention only, the paper's model with its memory reset).

    Why: the original model makes its first token an attention sink (hidden-state norm ~23,000 against
    ~150 elsewhere in SmolLM2's middle layers); the converted model, whose local attention restarts at
    every segment, makes the first token of EVERY segment such a sink. Teacher-forced inputs have no
    sink at a segment start, inputs at inference do. Training on these inputs instead trains each
    layer on what it will see (up to what the memory of the layers below changes).
    """
    from infini_attention.hf.modeling import force_local_gate

    with force_local_gate(converted_model):
        own = collect(converted_model, ids, teacher.layers, dtype=teacher.inputs[0].dtype, converted=True)
    if teacher.ids is not None and not torch.equal(teacher.ids, own.ids):
        raise ValueError("student_inputs: ids are not the token ids the teacher was collected from")
    return dataclasses.replace(teacher, inputs=own.inputs, ids=own.ids)


def needle_context(
    tokenizer, length: int, segment_len: int, seed: int, fmt: str = "passkey", haystack=None, tries: int = 50
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One transfer context that holds a needle: a needle prompt (data/passkey.py:make_instance, format
    `fmt`, over `haystack`) followed by its answer's tokens, `length` tokens in all, with the needle at a
    random depth in an earlier segment than the question's first token, so that at every question and
    answer token only the memory can bring the needle back.

    Returns (ids (length,), marked (length,) bool: True on the question and answer tokens, where the
    teacher's attention reaches back to the needle, and a description: format, key, depth, spans)."""
    from infini_attention.data.passkey import make_instance

    if length <= segment_len:
        raise ValueError(f"a needle context needs more than one segment: length {length}, segment {segment_len}")
    rng = random.Random(f"needle-{seed}")
    answer_len = len(make_instance(tokenizer, length, seed=seed, fmt=fmt, haystack=haystack).answer_ids)
    prompt_len = length - answer_len
    for attempt in range(tries + 1):
        depth = rng.random() if attempt < tries else 0.0  # the random depths missed: the haystack's start
        inst = make_instance(tokenizer, prompt_len, depth, seed=seed, fmt=fmt, haystack=haystack)
        question = inst.length - inst.question_len
        needle = inst.needle_spans[inst.ask]
        if needle[1] <= question // segment_len * segment_len:
            break
    else:
        raise ValueError(f"no needle depth puts the needle before the question's segment (length {length})")
    ids = torch.cat([inst.prompt_ids(), torch.tensor(inst.answer_ids, dtype=torch.long)])
    if len(ids) != length:
        raise ValueError(f"the needle context has {len(ids)} tokens, not {length}: the answer's length changed")
    marked = torch.zeros(length, dtype=torch.bool)
    marked[question:] = True
    about = {"format": fmt, "key": inst.key, "depth": depth, "needle": list(needle), "question": [question, length]}
    return ids, marked, about


# ---------------------------------------------------------------------------------------------------
# The converted layers and what is trained


def infini_layers(model) -> list[InfiniHFAttention]:
    layers = [layer.self_attn for layer in _decoder_layers(model)]
    if not all(isinstance(a, InfiniHFAttention) for a in layers):
        raise TypeError("expected a converted model (every self_attn an InfiniHFAttention)")
    return layers


def install_feature_map(model, name: str) -> None:
    """Give every converted layer a fresh feature-map module `name` (modules/feature_maps.py), in place,
    and record it in the model's conversion settings (config `infini_attention`), so that
    `save_pretrained` writes a folder that loads back with the same map. Layers that have it keep theirs."""
    settings = dataclasses.replace(model.infini_settings, feature_map=name, sharpness=False)  # validates name
    for attn in infini_layers(model):
        if attn.feature_map.name != settings.feature_map:
            device = attn.q_proj.weight.device
            attn.feature_map = feature_map_module(
                settings.feature_map, attn.num_key_value_heads, attn.head_dim, device=device
            )
            attn.sharpness = settings.sharpness
    setattr(model.config, CONFIG_KEY, settings.to_dict())


def convert_for_transfer(
    original_model,
    segment_len: int,
    rule: str = "delta",
    beta_init: float = 0.0,
    feature_map: str = "elu1",
    key_shift: int = 0,
    query_shift: int = 0,
):
    """convert(...) in place with these settings (shifts of 0 left out); returns the converted model."""
    variants = {name: v for name, v in (("key_shift", key_shift), ("query_shift", query_shift)) if v}
    return convert(
        original_model, segment_len=segment_len, rule=rule, beta_init=beta_init, feature_map=feature_map, **variants
    )


def select_parameters(attn: InfiniHFAttention, parts: Sequence[str] = DEFAULT_PARTS) -> dict[str, list[nn.Parameter]]:
    """The layer's parameters of the chosen parts (PARTS), by part; only those get requires_grad=True,
    every other parameter of the layer is frozen. Parts the layer does not have are left out."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}: expected some of {', '.join(PARTS)}")
    found = {
        "gate": [attn.beta],
        "feature": list(attn.feature_map.parameters()),
        "shift": [m.weight for m in (getattr(attn, "shift_proj", None), getattr(attn, "query_shift_proj", None)) if m],
        "q": list(attn.q_proj.parameters()),
        "k": list(attn.k_proj.parameters()),
        "v": list(attn.v_proj.parameters()),
        "o": list(attn.o_proj.parameters()),
    }
    for p in attn.parameters():
        p.requires_grad_(False)
    chosen = {part: found[part] for part in parts if found[part]}
    for ps in chosen.values():
        for p in ps:
            p.requires_grad_(True)
    return chosen


# ---------------------------------------------------------------------------------------------------
# The layer-local loss and training


def student_output(attn: InfiniHFAttention, x: torch.Tensor) -> torch.Tensor:
    """The converted layer's output over a whole context x (B, L, hidden), segment by segment with the
    memory carried (the op cuts x into segments: one call is the same computation as streaming it)."""
    out, _ = attn(x)
    return out


def transfer_errors(
    y: torch.Tensor, target: torch.Tensor, segment_len: int, weight: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """MSE over all positions and over positions past the first segment (where the memory is read), and
    the relative error ||y - t||² / ||t||² past the first segment; y, target: (B, L, hidden).

    weight (B, L): per-token weights; adds the weighted means `all_weighted` and `later_weighted`
    (sum of w_t |y_t - t_t|² over sum of w_t, per hidden unit: the loss keeps the scale of a plain MSE)
    and, past the first segment, the MSE and relative error at the positions whose weight is not 1
    (`marked`, `rel_marked`; needle contexts: the question and answer)."""
    err = (y.float() - target.float()).pow(2)
    out = {"all": err.mean()}
    later_err, later_t = err[:, segment_len:], target.float()[:, segment_len:]
    if later_err.numel():
        out["later"] = later_err.mean()
        out["first"] = err[:, :segment_len].mean()
        out["rel_later"] = later_err.sum() / later_t.pow(2).sum().clamp_min(1e-30)
    if weight is None:
        return out
    if weight.shape != err.shape[:2]:
        raise ValueError(f"weight must be (batch, length) = {tuple(err.shape[:2])}, got {tuple(weight.shape)}")
    w = weight.to(err.device, torch.float32)[..., None]  # (B, L, 1)
    out["all_weighted"] = (w * err).sum() / (w.sum() * err.shape[-1])
    if later_err.numel():
        later_w = w[:, segment_len:]
        out["later_weighted"] = (later_w * later_err).sum() / (later_w.sum() * err.shape[-1])
        marked = later_w[..., 0] != 1
        if marked.any():
            out["marked"] = later_err[marked].mean()
            out["rel_marked"] = later_err[marked].sum() / later_t[marked].pow(2).sum().clamp_min(1e-30)
    return out


@torch.no_grad()
def evaluate_layer(attn: InfiniHFAttention, batches, local_only: bool = False, weights=None) -> dict[str, float]:
    """Mean transfer errors of the layer over (x, target) pairs; local_only: with the gate forced shut
    (the memory-reset reference: what local attention alone achieves). weights: per-token weights of
    each pair ((1, L) or None, as for train_layer); an error only some pairs have (the weighted ones)
    is averaged over those."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    weights = [None] * len(batches) if weights is None else weights
    device = attn.q_proj.weight.device
    saved = attn.beta.detach().clone()
    try:
        if local_only:
            attn.beta.fill_(float("-inf"))
        for (x, target), weight in zip(batches, weights, strict=True):
            x, target = x.to(device, torch.float32), target.to(device)
            for name, value in transfer_errors(student_output(attn, x), target, attn.segment_len, weight).items():
                sums[name] = sums.get(name, 0.0) + value.item()
                counts[name] = counts.get(name, 0) + 1
    finally:
        attn.beta.copy_(saved)
    return {name: value / counts[name] for name, value in sums.items()}


def train_layer(
    attn: InfiniHFAttention,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    params: dict[str, list[nn.Parameter]],
    steps: int,
    lr: float = 1e-2,
    gate_lr: float = 0.1,
    loss_on: str = "later",
    progress=None,
    weights: Sequence[torch.Tensor | None] | None = None,
) -> dict:
    """Adam steps on the MSE between the layer's output and the teacher's, one (x, target) context per
    step in turn; gradients reach only `params` (select_parameters). Returns the loss history and time.

    loss_on: "later" (positions past the first segment, default: the first segment is exact already)
    or "all". Gates get their own learning rate (PAPER.md: a gate needs a larger one); no weight decay.
    weights: one entry per context, aligned with `batches`: None (the plain MSE) or (1, L) per-token
    weights (`Teacher.weights`), for which the loss is the weighted mean (`transfer_errors`).
    """
    if loss_on not in ("later", "all"):
        raise ValueError(f"loss_on must be 'later' or 'all', got {loss_on!r}")
    if weights is not None and len(weights) != len(batches):
        raise ValueError(f"{len(weights)} weights for {len(batches)} contexts")
    groups = [{"params": ps, "lr": gate_lr if part == "gate" else lr} for part, ps in params.items()]
    if not groups:
        raise ValueError("nothing to train: no parameters selected")
    optimizer = torch.optim.Adam(groups)
    device = attn.q_proj.weight.device
    losses, started = [], time.perf_counter()
    for step in range(steps):
        x, target = batches[step % len(batches)]
        weight = None if weights is None else weights[step % len(batches)]
        x, target = x.to(device, torch.float32), target.to(device)
        errors = transfer_errors(student_output(attn, x), target, attn.segment_len, weight)
        region = loss_on if loss_on in errors else "all"
        loss = errors[region] if weight is None else errors[f"{region}_weighted"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"layer {attn.layer_idx}: loss {losses[-1]} at step {step}")
        if progress is not None:
            progress(step, losses[-1])
    for ps in params.values():
        for p in ps:
            p.requires_grad_(False)
    return {"losses": losses, "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------------
# The artifact: only the trained parameters, safetensors + a manifest


def trained_names(model, parts: Sequence[str] = DEFAULT_PARTS, layers: Iterable[int] | None = None) -> list[str]:
    """Parameter names (of `model`) of the chosen parts in the chosen layers."""
    all_layers = infini_layers(model)
    layers = range(len(all_layers)) if layers is None else layers
    ids = set()
    for i in layers:
        attn = all_layers[i]
        flags = [p.requires_grad for p in attn.parameters()]
        ids |= {id(p) for ps in select_parameters(attn, parts).values() for p in ps}
        for p, flag in zip(attn.parameters(), flags):
            p.requires_grad_(flag)
    return [name for name, p in model.named_parameters() if id(p) in ids]


def save_transfer(model, folder: str | Path, names: Sequence[str], manifest: dict) -> None:
    """Write `names` (parameter names of the converted model) to folder/transfer.safetensors and the
    manifest (settings to rebuild the model + anything the caller records) to folder/manifest.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params = dict(model.named_parameters())
    tensors = {name: params[name].detach().cpu().contiguous() for name in names}
    tmp = folder / (ARTIFACT + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / ARTIFACT)
    settings = {**_layer_settings(model), **manifest.get("settings", {})}
    data = {**manifest, "settings": settings, "parameters": list(names)}
    (folder / (MANIFEST + ".tmp")).write_text(json.dumps(data, indent=1) + "\n")
    (folder / (MANIFEST + ".tmp")).replace(folder / MANIFEST)


def _layer_settings(model) -> dict:
    attn = infini_layers(model)[0]
    return {
        "segment_len": attn.segment_len,
        "rule": attn.rule,
        "feature_map": attn.feature_map.name,
        "key_shift": attn.key_shift,
        "query_shift": attn.query_shift,
    }


def read_manifest(folder: str | Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


@torch.no_grad()
def load_transfer(model, folder: str | Path, layers: Iterable[int] | None = None) -> dict:
    """Load a transfer artifact into a converted model made with the same settings (segment_len, rule,
    key/query shift), installing the manifest's feature map first; every saved tensor must find a
    parameter of the same shape. layers: load only these layers' tensors (a resumed run reloads the
    layers its manifest lists as done). Returns the manifest."""
    manifest = read_manifest(folder)
    settings = manifest["settings"]
    have = _layer_settings(model)
    for key in ("segment_len", "rule", "key_shift", "query_shift"):
        if have[key] != settings[key]:
            raise ValueError(f"{folder}: saved with {key}={settings[key]!r}, this model has {have[key]!r}")
    install_feature_map(model, settings["feature_map"])
    params = dict(model.named_parameters())
    tensors = load_file(str(Path(folder) / ARTIFACT))
    if layers is not None:
        prefixes = tuple(f"model.layers.{i}." for i in layers)
        tensors = {name: value for name, value in tensors.items() if name.startswith(prefixes)}
    for name, value in tensors.items():
        if name not in params:
            raise ValueError(f"{folder}: {name} is not a parameter of this model")
        if params[name].shape != value.shape:
            raise ValueError(
                f"{folder}: {name} has shape {tuple(value.shape)}, the model's {tuple(params[name].shape)}"
            )
        params[name].copy_(value)
    return manifest


def apply_transfer(original_model, folder: str | Path, sparse_cache: int = 0):
    """Convert `original_model` in place with the settings of the artifact in `folder` (its manifest) and
    load the artifact's parameters: the transferred model, as `runs/smollm2_transfer.py export` writes it.
    sparse_cache > 0 switches on the sparse-cache variant (hf/modeling.py:set_sparse_cache), which has no
    parameters; 0 keeps the paper's memory alone."""
    manifest = read_manifest(folder)
    settings = {key: manifest["settings"][key] for key in ("segment_len", "rule", "key_shift", "query_shift")}
    beta_init = manifest.get("run", {}).get("beta_init", 0.0)  # only for gates the artifact lacks
    model = convert_for_transfer(original_model, beta_init=beta_init, **settings)
    load_transfer(model, folder)  # installs the manifest's feature map, then copies every saved tensor
    return set_sparse_cache(model, sparse_cache) if sparse_cache else model


def load_original(source: str):
    """(original float32 model in eval mode, data/tokenizers.py tokenizer or None) for gguf:default,
    gguf:<file.gguf> or a transformers folder of an unconverted model (the tokenizer when it ships one)."""
    from infini_attention.hf.training import load_unconverted

    model, tokenizer = load_unconverted(source)
    return model.eval(), tokenizer


def load_transferred(
    folder: str | Path, source: str | None = None, sparse_cache: int = 0, adapter: str | Path | None = None
):
    """The original model of `source` (default: the manifest's, e.g. gguf:default) with the transfer artifact
    of `folder` applied (and the sparse cache of `sparse_cache` tokens per key/value head if > 0; and the
    fine-tuned memory adapter of `adapter`, hf/lora.py, if given), behind the trainer's and evaluations'
    interface (hf/training.py:HFTrainingModel)."""
    from infini_attention.hf.training import HFTrainingModel

    source = source or read_manifest(folder)["run"]["source"]
    original, tokenizer = load_original(source)
    model = apply_transfer(original, folder, sparse_cache=sparse_cache)
    if adapter is not None:
        from infini_attention.hf.lora import load_adapter

        load_adapter(model, adapter)
    return HFTrainingModel(model, tokenizer, source=source).eval()


def _artifact_of(adapter_meta: dict, folder: Path) -> Path:
    """The transfer artifact an adapter was trained on: as recorded, else the shipped one of the same name
    (a path recorded on another machine, or relative to the package: "assets/smollm2-transfer")."""
    recorded = adapter_meta.get("artifact") or ""
    for candidate in (Path(recorded), folder / recorded, SHIPPED.parent / recorded, SHIPPED / Path(recorded).name):
        if recorded and (candidate / ARTIFACT).is_file():
            return candidate
    raise FileNotFoundError(f"{folder}/adapter.json: its transfer artifact {recorded!r} is not on this machine")


def load_memory_model(spec: str):
    """The HFTrainingModel of a transfer artifact or a memory adapter folder (see memory_model_folder):
    `infini eval ruler --model smollm2-memory` reads the shipped SmolLM2 with its fine-tuned memory."""
    folder = memory_model_folder(spec)
    if folder is None:
        raise FileNotFoundError(f"{spec}: not a transfer artifact or a memory adapter folder")
    if (folder / ARTIFACT).is_file():
        return load_transferred(folder)
    from infini_attention.hf.lora import load_adapter, read_adapter_meta

    meta = read_adapter_meta(folder)
    if meta.get("base", "transfer") == "transfer":
        return load_transferred(_artifact_of(meta, folder), source=meta.get("source"), adapter=folder)
    from infini_attention.hf.training import HFTrainingModel  # --base paper: the paper's layer + the adapter

    model = HFTrainingModel.load(meta["source"], segment_len=meta["segment_len"], rule=meta["rule"])
    return load_adapter(model, folder).eval()


__all__ = [
    "Teacher",
    "apply_transfer",
    "collect",
    "convert_for_transfer",
    "evaluate_layer",
    "infini_layers",
    "install_feature_map",
    "load_memory_model",
    "load_original",
    "load_transfer",
    "load_transferred",
    "memory_model_folder",
    "needle_context",
    "save_transfer",
    "select_parameters",
    "student_inputs",
    "student_output",
    "train_layer",
    "trained_names",
    "transfer_errors",
]

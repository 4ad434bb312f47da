"""Training: one loop for every task and attention kind, with exact resume.

    infini train --task passkey --preset tiny --steps 200 --out runs/out/demo

Each step processes sequences of several segments with full back-propagation through the memory
(optional per-segment gradient checkpointing, optional truncation every k segments), AdamW with the
gates in their own group (own learning rate, no weight decay), linear warm-up then cosine decay,
gradient clipping and accumulation, optional bf16 autocast. Checkpoints hold the model, optimizer,
scheduler, RNG and step, written atomically; batches are a pure function of the step (tasks/),
so `--resume` continues exactly where an interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

import torch

from infini_attention.models import InfiniTransformer
from infini_attention.models.protocol import model_source
from infini_attention.modules import parameter_tags
from infini_attention.modules.token_shift import grow_taps
from infini_attention.train.checkpointing import (
    RunLock,
    load_checkpoint,
    recover_checkpoint,
    save_checkpoint,
    truncate_metrics,
    write_atomically,
)
from infini_attention.train.config import TrainConfig
from infini_attention.train.distributed import Distributed
from infini_attention.train.loss import chunked_cross_entropy, cross_entropy
from infini_attention.train.stretch import forward_with_write_weights
from infini_attention.train.tasks import build_task

TRAIN_ONLY = ("all", "attention", "gates")


def build_model(cfg: TrainConfig, resume: bool = False) -> torch.nn.Module:
    """InfiniTransformer (preset, --init-from) or a converted HF model (--from-hf), frozen per --train-only."""
    if cfg.from_hf:
        if cfg.init_from:
            raise ValueError("give --from-hf or --init-from, not both")
        model = model_source("hf").load(cfg.from_hf, **cfg.model)
    else:
        model = InfiniTransformer(cfg.model_config())
        if cfg.init_from and not resume:
            from infini_attention.models.io import load_model

            weights = _grow_shift_taps(load_model(cfg.init_from).state_dict(), model.state_dict(), cfg.init_from)
            missing, unexpected = model.load_state_dict(weights, strict=False)
            if unexpected:
                raise ValueError(f"--init-from {cfg.init_from} has weights this model lacks: {unexpected}")
            if missing:  # parameters that a --model override adds (e.g. rule=deltanet's write strength)
                print(f"--init-from: not in {cfg.init_from}, left at their initial values: {', '.join(missing)}")
    if cfg.train_only not in TRAIN_ONLY:
        raise ValueError(f"unknown --train-only {cfg.train_only!r}: choose one of {', '.join(TRAIN_ONLY)}")
    if cfg.train_only != "all":
        gates = {id(p) for p in model.gate_parameters()}
        for name, p in model.named_parameters():
            p.requires_grad_(id(p) in gates or (cfg.train_only == "attention" and ".self_attn." in name))
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(f"--train-only {cfg.train_only}: this model has no such parameters to train")
    return model


def _grow_shift_taps(weights: dict, own: dict, source: str) -> dict:
    """Checkpoint weights with each key/query shift projection padded by zero rows when this model has
    more shift taps (e.g. --model key_shift=3 from a key_shift=1 model): the old taps are kept, the new
    ones start at zero, so the model starts as the checkpoint's."""
    weights = dict(weights)
    for name, w in weights.items():
        target = own.get(name)
        if not name.endswith("shift_proj.weight") or target is None or target.shape == w.shape:
            continue
        if target.shape[1:] != w.shape[1:] or target.shape[0] < w.shape[0]:
            continue  # not a growth in taps: load_state_dict reports the mismatch
        # rows are [W_1; ...; W_S], one block of heads x head_dim rows per tap: more rows = more taps (3 -> 4 too)
        weights[name] = grow_taps(w, target.shape[0])
        print(f"--init-from: {name} grows from {w.shape[0]} to {target.shape[0]} rows ({source}); new taps start at 0")
    return weights


def parameter_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: matrices and embeddings (decayed), norms and biases (not), gates (own lr, not decayed),
    and with --sharpness-lr the sharpness variant's log-scales (own lr, not decayed)."""
    gates = {id(p) for p in model.gate_parameters()}
    decay, no_decay, gate, sharpness = [], [], [], []
    tags = parameter_tags(model)
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in gates:
            gate.append(p)
        elif cfg.sharpness_lr is not None and tags.get(id(p), {}).get("lr") == "sharpness":
            sharpness.append(p)
        elif p.dim() >= 2 and tags.get(id(p), {}).get("decay", True):
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0, "lr": cfg.lr},
        {"name": "gate", "params": gate, "weight_decay": 0.0, "lr": cfg.gate_lr},
        {"name": "sharpness", "params": sharpness, "weight_decay": 0.0, "lr": cfg.sharpness_lr},
    ]
    return [g for g in groups if g["params"]]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over labelled positions (labels != -100) and their count."""
    return cross_entropy(logits, labels)


def output_head(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Linear | None:
    """The model's output projection when the loss is chunked (--loss-chunk > 0 and the model returns its
    hidden states, `output_head` without bias); None: the loss is taken from the full logits."""
    head = getattr(model, "output_head", None) if cfg.loss_chunk else None
    return head if isinstance(head, torch.nn.Linear) and head.bias is None else None


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the run was saved at `step` in `out` and resumes with --resume."""

    def __init__(self, step: int, out: Path):
        super().__init__(f"interrupted at step {step}; saved. Resume with: infini train --out {out} --resume")
        self.step, self.out = step, out


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume) a training run; returns the last logged metrics.

    The run folder is locked while it runs (a second run on it fails at once). Ctrl-C saves the
    steps done and raises TrainingInterrupted; a non-finite loss or gradient stops the run without
    saving it, so the last checkpoint stays the last good one. A fresh run refuses a folder that
    holds a checkpoint, and one that holds metrics unless `overwrite`.
    """
    cfg.validate()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this machine has no CUDA device (use --device cpu or auto)")
    dist = Distributed.setup()
    out = Path(cfg.out)
    lock = RunLock(out) if dist.is_main else None
    try:
        return _train(cfg, resume, progress, overwrite, dist)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: TrainConfig, resume: bool, progress: bool, overwrite: bool, dist: Distributed) -> dict:
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(cfg, resume).to(device)
    # fused: one kernel over all parameters, without foreach's full-size temporaries (docs/performance.md, table 7)
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg), betas=(0.9, 0.95), eps=1e-8, fused=fused)
    tags = parameter_tags(model)
    sharpness_scales = [p for p in model.parameters() if tags.get(id(p), {}).get("lr") == "sharpness"]
    gate_params = model.gate_parameters()  # found once, read every step
    head = output_head(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    step = 0
    if dist.is_main:  # after a crash during a save: the newest complete copy, under its own name
        recover_checkpoint(out / "checkpoint")
    dist.barrier()
    has_checkpoint = (out / "checkpoint" / "train_state.json").exists()  # recovered: complete or absent
    if not resume and has_checkpoint:
        raise ValueError(f"{out} already holds a checkpoint: pass --resume to continue it, or choose another --out")
    if not resume and not overwrite and (out / "metrics.jsonl").exists():
        raise ValueError(f"{out} holds the metrics of an earlier run: choose another --out, or pass --overwrite")
    if resume:
        if not has_checkpoint:
            raise FileNotFoundError(f"--resume: no checkpoint in {out / 'checkpoint'}")
        step = load_checkpoint(out / "checkpoint", model, optimizer, scheduler)
        if step >= cfg.steps:
            print(f"{out}: already at step {step} of {cfg.steps}; give more --steps to train on")
            return {"step": step}
        # the schedule follows this run's config: a resumed run may have been given more steps
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lr_factor(step, cfg)
    wrapped = dist.wrap(model)
    task_cfg = cfg
    if cfg.from_hf and cfg.tokenizer == TrainConfig.tokenizer:  # the default: read the text with the model's tokenizer
        if model.tokenizer is None:
            raise ValueError(f"--from-hf {cfg.from_hf} has no tokenizer files: name one with --tokenizer hf:<folder>")
        task_cfg = dataclasses.replace(cfg, tokenizer=model.tokenizer)
    task = build_task(task_cfg, model.config.segment_len)
    if cfg.stretch_max > 1:
        if not hasattr(task, "write_weights"):
            raise ValueError(f"--stretch-max is for the passkey task, not {cfg.task!r}")
        if dist.enabled:
            raise ValueError("--stretch-max runs one segment per model call: single-process training only")
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_atomically(out / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    metrics_file, tensorboard = None, None
    if dist.is_main:
        # steps logged after the checkpoint was written are run again (a fresh run: all of them)
        truncate_metrics(out / "metrics.jsonl", step)
        metrics_file = open(out / "metrics.jsonl", "a")  # noqa: SIM115
        tensorboard = _tensorboard_writer(out / "tensorboard")

    if dist.is_main and cfg.warmup_steps > cfg.steps:
        print(
            f"warning: --warmup-steps {cfg.warmup_steps} is longer than the run (--steps {cfg.steps}): "
            "the learning rate never peaks"
        )
    bar = None
    if progress and dist.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", desc="train", dynamic_ncols=True)
    last: dict = {}
    started, tokens_done = time.perf_counter(), 0
    model.train()
    saved = step  # the step of the checkpoint on disk
    try:
        while step < cfg.steps:
            # rank r's micro-batch m is the task's micro-batch r * grad_accum + m: two ranks with one
            # micro-batch each read exactly what one process with two micro-batches reads
            micro_indices = [dist.rank * cfg.grad_accum + m for m in range(cfg.grad_accum)]
            batches = [task.batch(step, 0, index) for index in micro_indices]
            # normalise by the labelled tokens of the whole step, summed over ranks and micro-batches
            step_count = dist.all_reduce_sum(float(sum(int((b.labels != -100).sum()) for b in batches)))
            loss_sum, tokens = 0.0, 0
            for micro, batch in enumerate(batches):
                ids, labels = batch.ids.to(device), batch.labels.to(device)
                last_micro = micro == cfg.grad_accum - 1
                with (
                    dist.no_sync_unless(wrapped, last_micro),
                    torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16),
                ):
                    checkpointing = "layer" if cfg.layer_checkpointing else cfg.gradient_checkpointing
                    options = {"gradient_checkpointing": checkpointing, "detach_every": cfg.detach_every}
                    if head is not None:
                        options["output_hidden"] = True  # the model's last hidden states, not its logits
                    weights = batches[micro].write_weights
                    if weights is None:
                        output, _ = wrapped(ids, **options)
                    else:
                        output, _ = forward_with_write_weights(model, ids, weights, **options)
                    if head is None:
                        loss, _ = loss_fn(output, labels)
                    else:
                        loss, _ = chunked_cross_entropy(output, head.weight, labels, cfg.loss_chunk)
                    (loss * dist.world_size / max(step_count, 1.0)).backward()  # DDP averages over ranks
                loss_sum, tokens = loss_sum + loss.item(), tokens + ids.numel()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip if cfg.clip > 0 else float("inf"))
            if not (math.isfinite(loss_sum) and math.isfinite(float(grad_norm))):
                what = "loss" if not math.isfinite(loss_sum) else "gradient norm"
                raise FloatingPointError(
                    f"the {what} is not finite at step {step + 1}: stopped without saving; {out / 'checkpoint'} "
                    f"holds the last good state (step {saved}). Try a lower --lr or --clip, or --bf16 off"
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_done += tokens * dist.world_size
            elapsed = time.perf_counter() - started
            gates = torch.cat([g.detach().float() for g in gate_params]) if gate_params else None
            last = {
                "step": step,
                "loss": dist.all_reduce_sum(loss_sum) / max(step_count, 1.0),
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "tokens_per_s": tokens_done / elapsed,
                "elapsed_s": elapsed,
            }
            if gates is not None:
                last["gate_mean"] = torch.sigmoid(gates).mean().item()
            scales = [p.detach().exp() for p in sharpness_scales]
            if scales:  # the sharpness variant's scales inside sigma
                last["sharpness_max"] = torch.cat(scales).max().item()
            if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps) and hasattr(task, "evaluate"):
                model.eval()
                results = task.evaluate(model, device, cfg)
                last.update(results)
                model.train()
                if dist.is_main and results:  # as they come, not only in metrics.jsonl
                    shown = ", ".join(f"{k} {v:.3g}" for k, v in results.items() if "acc" in k or "val_" in k)
                    (bar.write if bar is not None else print)(f"step {step}: {shown}")
            if dist.is_main:
                metrics_file.write(json.dumps(last) + "\n")
                metrics_file.flush()
                if tensorboard is not None:
                    for name, value in last.items():
                        if name != "step":
                            tensorboard.add_scalar(name, value, step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{last['loss']:.4f}", tok_s=f"{last['tokens_per_s']:.0f}")
                if step % cfg.save_every == 0 or step == cfg.steps:
                    save_checkpoint(out / "checkpoint", model, optimizer, scheduler, step, cfg)
                    saved = step
    except KeyboardInterrupt:
        if dist.is_main and step > saved:  # a half-done step is dropped: the optimizer is at `step`
            optimizer.zero_grad(set_to_none=True)
            save_checkpoint(out / "checkpoint", model, optimizer, scheduler, step, cfg)
        raise TrainingInterrupted(step, out) from None
    finally:
        if bar is not None:
            bar.close()
        if metrics_file:
            metrics_file.close()
        if tensorboard is not None:
            tensorboard.close()
    dist.teardown()
    return last


def _tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter when the tensorboard package is installed, else None (JSONL only)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))

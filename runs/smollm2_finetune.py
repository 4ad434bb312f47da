"""SmolLM2's memory path fine-tuned end to end on needle tasks over prose (issue 14; route 4 of its recipe).

LoRA on every layer's q/k/v/o (or, with --memory-rank, on the memory path's q/k/v only), the gates and (base
"transfer") the transfer artifact's feature maps are trained; everything else stays the GGUF's. The batches are
`infini train --task passkey`'s
(train/tasks/passkey.py: the formats and haystacks given, loss on the answer only), back-propagated
through every segment, so the only way to the answer is to write the needle into the memory and read it
back at the question. The run is time-boxed, as a GPU lease is: the learning rate follows a cosine over
`--minutes` of training (not over a number of steps), the adapter is saved every `--save-every` steps and
at the end, and then the passkey evaluation (eval/passkey.py) runs on a held-out haystack, the needle only
in memory (depths < 1) and in the question's segment (depth 1), with the memory-reset ablation.

    python runs/smollm2_finetune.py --base transfer --device cuda --minutes 5 --batch-size 16 \
        --haystacks runs/out/prose/train.txt --eval-haystack runs/out/prose/heldout.txt --out OUT
    python runs/smollm2_finetune.py --base paper ...             # the paper's layer (ELU+1), same recipe
    python runs/smollm2_finetune.py --eval-only --adapter OUT ...   # evaluate a saved adapter
    python runs/smollm2_finetune.py --adapter OUT --rank 0 --lr 0 --memory-rank 32 ...   # OUT's LoRA kept as it
        # is, a memory LoRA trained on top: any one-segment input stays OUT's model exactly
    python runs/smollm2_finetune.py --adapter OUT --rank 0 --lr 0 --memory-rank 32 --memory-shift 1 ...
        # OUT's memory LoRA (same rank) continued, with taps on the token before each memory query and key
    python runs/smollm2_finetune.py ... --stretch-max 8   # filler segments written up to 8x: 4K prompts that
        # the memory sees as up to 32K (train/stretch.py; the delta rule to first order)
    python runs/smollm2_finetune.py ... --answer-end   # answers end as their template does ("." / end of turn)
    python runs/smollm2_finetune.py ... --first-answer-weight 4   # the key's first token weighs 4x in the answer
        # loss (train/loss.py first_value_weights)

--base transfer: the shipped SmolLM2 transfer artifact (gates + Hedgehog feature maps, rule delta, segment
256); --base paper: the GGUF converted with the paper's layer (sigma = ELU+1, the same rule and segment),
gates at their initial value. Writes OUT/adapter.safetensors (the trained tensors only, named as in the
model's state dict; LoRA as `<module>.lora_A.weight` / `.lora_B.weight`: PEFT's names without its
`base_model.model.` prefix), OUT/adapter.json (what rebuilds it), OUT/train.jsonl (one line per step),
OUT/eval.json. A later stage starts from an earlier one's adapter (--adapter; a fresh optimizer).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from infini_attention.hf.lora import PROJECTIONS, add_lora, add_memory_lora, load_adapter, save_adapter
from infini_attention.train.loss import first_value_weights


def load_base(args, device: torch.device):
    """HFTrainingModel of --base on --source."""
    if args.base == "transfer":
        from infini_attention.hf.transfer import load_transferred

        return load_transferred(args.artifact, source=args.source).to(device)
    from infini_attention.hf.training import HFTrainingModel

    return HFTrainingModel.load(args.source, segment_len=args.segment_len, rule=args.rule).to(device)


def apply_local_tail(model, args) -> None:
    """--local-tail and --local-sink where given, else what load_adapter switched on from the loaded adapter's
    adapter.json (0 without one), on every converted layer; args keeps what applies (save() records it)."""
    from infini_attention.hf.modeling import set_local_tail

    if args.local_tail is None:
        args.local_tail = model.config.local_tail
    if args.local_sink is None:
        args.local_sink = model.config.local_sink
    set_local_tail(model, args.local_tail, args.local_sink)
    if args.local_tail or args.local_sink:
        print(
            f"local look back: the stream's first {args.local_sink} and the previous segment's last "
            f"{args.local_tail} tokens",
            flush=True,
        )


def select_trainable(model) -> dict[str, list[nn.Parameter]]:
    """Freeze all but LoRA (and memory LoRA), the gates and the memory path's own parameters (feature maps):
    {group: params}."""
    gate_ids = {id(p) for p in model.gate_parameters()}
    groups = {"lora": [], "memory_lora": [], "gate": [], "feature": []}
    for name, p in model.named_parameters():
        if ".memory_lora." in name:
            groups["memory_lora"].append(p)
        elif ".lora_" in name:
            groups["lora"].append(p)
        elif id(p) in gate_ids:
            groups["gate"].append(p)
        elif ".self_attn." in name and not any(f".{proj}." in name for proj in PROJECTIONS):
            groups["feature"].append(p)
        else:
            p.requires_grad_(False)
            continue
        p.requires_grad_(True)
    return groups


def memory_weight(gates: list[nn.Parameter]) -> float:
    """The mean memory weight sigmoid(beta) over every head (eq 10's gate)."""
    return torch.cat([b.detach().flatten() for b in gates]).sigmoid().mean().item()


def save(model, args, out: Path, step: int, seconds: float, done: bool = False, parameters=None) -> None:
    meta = {
        "base": args.base,
        "source": args.source,
        "artifact": args.artifact if args.base == "transfer" else None,
        "segment_len": model.config.segment_len,
        "rule": args.rule,
        "local_tail": args.local_tail,  # (apply_local_tail has resolved them)
        "local_sink": args.local_sink,
        "step": step,
        "seconds": round(seconds, 1),  # training time so far (what --resume subtracts from --minutes)
        "done": done,  # the run ended (--resume then only evaluates)
    }
    save_adapter(model, out, meta, parameters)


def task_for(model, args):
    from infini_attention.train.config import TrainConfig
    from infini_attention.train.tasks.passkey import PasskeyTask

    cfg = TrainConfig(
        task="passkey",
        tokenizer=model.tokenizer,
        seq_len=args.seq_len,
        min_len=args.min_len,
        batch_size=args.batch_size,
        formats=args.formats,
        haystacks=args.haystacks,
        templates=args.templates,
        local_start=args.local_start,
        local_end=args.local_end,
        curriculum_steps=args.curriculum_steps,
        doubled_keys=args.doubled_keys,
        key_digits=args.key_digits,
        answer_end=args.answer_end,
        aligned_lengths=args.aligned_lengths,
        stretch_max=args.stretch_max,
        stretch_curriculum_steps=args.stretch_curriculum_steps,
        seed=args.seed,
    )
    return PasskeyTask(cfg, model.config.segment_len)


def loss_of(
    model, ids, labels, checkpointing, bf16: bool, device, lm_weight: float = 0.0, write_weights=None, weights=None
):
    """(loss, share of the answer tokens predicted exactly, the prompt's LM loss or None): the mean
    cross-entropy over the answer tokens, plus lm_weight x the mean next-token cross-entropy over the prompt
    (the haystack's prose), which keeps the model a language model while its memory learns to retrieve.
    write_weights (batch, segments): stretched memory writes (train/stretch.py), or None. weights (batch,
    length): each answer token's weight in that mean (first_value_weights), or None for a plain mean."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if write_weights is None:
            hidden, _ = model(ids, output_hidden=True, gradient_checkpointing=checkpointing)
        else:
            from infini_attention.train.stretch import forward_with_write_weights

            hidden, _ = forward_with_write_weights(
                model, ids, write_weights.to(device), output_hidden=True, gradient_checkpointing=checkpointing
            )
    mask = labels != -100
    logits = model.output_head(hidden[mask].float()).float()
    target = labels[mask]
    if weights is None:
        loss = F.cross_entropy(logits, target)
    else:
        weight = weights.to(device)[mask]
        loss = (F.cross_entropy(logits, target, reduction="none") * weight).sum() / weight.sum()
    lm = None
    if lm_weight > 0:
        from infini_attention.train.loss import chunked_cross_entropy

        prompt = torch.full_like(ids, -100)
        prompt[:, :-1] = ids[:, 1:].where(~mask[:, :-1] & ~mask[:, 1:], -100)  # next tokens, the answer's left out
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            total, count = chunked_cross_entropy(hidden, model.output_head.weight, prompt)
        lm = total / max(count, 1)
        loss = loss + lm_weight * lm
    return loss, (logits.argmax(-1) == target).float().mean().item(), lm


def read_replay(path: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ids (1, L), labels (1, L): the answer's tokens, -100 elsewhere) per line of a chat_replay.py file."""
    examples = []
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        prompt, answer = record["prompt_ids"], record["answer_ids"]
        if not answer:
            continue
        ids = torch.tensor([prompt + answer])
        labels = torch.full_like(ids, -100)
        labels[0, len(prompt) - 1 : -1] = ids[0, len(prompt) :]  # position t predicts token t + 1
        examples.append((ids, labels))
    if not examples:
        raise ValueError(f"{path}: no example with an answer")
    return examples


def replay_step(model, replay, step: int, args, checkpointing, device):
    """Back-propagate the mean loss of --replay-batch replay examples, one at a time (their lengths differ):
    the original's answer tokens, plus --lm-weight x the LM loss on the prompt. (loss, answer acc, lm, tokens read)."""
    rng = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    picks = torch.randint(len(replay), (args.replay_batch,), generator=rng).tolist()
    total, accs, lms, tokens = 0.0, [], [], 0
    for k in picks:
        ids, labels = replay[k][0].to(device), replay[k][1].to(device)
        loss, acc, lm = loss_of(model, ids, labels, checkpointing, args.bf16, device, args.lm_weight)
        (loss / len(picks)).backward()
        total, accs, tokens = total + loss.item() / len(picks), accs + [acc], tokens + ids.numel()
        if lm is not None:
            lms.append(lm.item())
    lm = torch.tensor(sum(lms) / len(lms)) if lms else None
    return torch.tensor(total), sum(accs) / len(accs), lm, tokens


def train(model, args, device, out: Path, step: int = 0, spent: float = 0.0) -> None:
    """Train until --minutes (less `spent` seconds, from a resumed run) or --max-steps; `step`: the first step."""
    groups = select_trainable(model)
    counts = {k: sum(p.numel() for p in v) for k, v in groups.items()}
    print(f"trainable: {counts}", flush=True)
    memory_lr = args.lr if args.memory_lr is None else args.memory_lr
    lrs = {"lora": args.lr, "memory_lora": memory_lr, "gate": args.gate_lr, "feature": args.feature_lr}
    adapter = [p for v in groups.values() for p in v]  # what is saved, the frozen groups' as they are included
    for k, v in groups.items():
        if lrs[k] == 0:  # kept as loaded: frozen, so that no weight gradient of it is computed
            for p in v:
                p.requires_grad_(False)
    optimizer = torch.optim.AdamW(
        [{"params": v, "lr": lrs[k], "weight_decay": 0.0, "name": k} for k, v in groups.items() if v and lrs[k]],
        betas=(0.9, 0.99),
    )
    task = task_for(model, args)
    replay = read_replay(args.replay) if args.replay else None
    budget = args.minutes * 60 - spent
    checkpointing = args.checkpointing or False
    started, first = time.perf_counter(), step
    log = (out / "train.jsonl").open("a")
    tokens = 0
    model.train()
    while step < args.max_steps:
        elapsed = time.perf_counter() - started
        if elapsed > budget:
            break
        progress = (spent + elapsed) / (args.minutes * 60)
        warm = min(1.0, (step + 1 - first) / args.warmup_steps)  # a resumed run warms up its fresh optimizer
        factor = warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in optimizer.param_groups:
            g["lr"] = lrs[g["name"]] * factor
        replaying = replay is not None and step % args.replay_every == args.replay_every - 1
        stretch = None  # the largest write weight of a stretched batch
        try:
            if replaying:
                loss, acc, lm, read = replay_step(model, replay, step, args, checkpointing, device)
            else:
                batch = task.batch(step)
                ids, labels = batch.ids.to(device), batch.labels.to(device)
                weights = first_value_weights(batch.labels, model.tokenizer, args.first_answer_weight)
                loss, acc, lm = loss_of(
                    model,
                    ids,
                    labels,
                    checkpointing,
                    args.bf16,
                    device,
                    args.lm_weight,
                    batch.write_weights,
                    weights,
                )
                loss.backward()
                read = ids.numel()
                stretch = None if batch.write_weights is None else round(batch.write_weights.max().item(), 2)
        except torch.OutOfMemoryError:
            if checkpointing == "layer":
                raise
            optimizer.zero_grad(set_to_none=True)
            checkpointing = "segment" if not checkpointing else "layer"
            print(f"out of memory at step {step}: gradient checkpointing {checkpointing!r} from now on", flush=True)
            torch.cuda.empty_cache()
            continue
        norm = torch.nn.utils.clip_grad_norm_([p for p in adapter if p.requires_grad], 1.0).item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens += read
        record = {
            "step": step,
            "replay": replaying,
            "seconds": round(spent + time.perf_counter() - started, 2),
            "tokens": read,
            "loss": round(loss.item(), 4),
            "answer_token_acc": round(acc, 3),
            "prompt_lm_loss": None if lm is None else round(lm.item(), 4),
            "answer_loss": round(loss.item() - (0.0 if lm is None else args.lm_weight * lm.item()), 4),
            "grad_norm": round(norm, 3),
            "lr_factor": round(factor, 4),
            "checkpointing": checkpointing,
            "memory_weight": round(memory_weight(groups["gate"]), 4),
        }
        if stretch is not None:
            record["write_weight_max"] = stretch
        if device.type == "cuda":
            record["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if step % args.print_every == 0 or step == 1:
            print(json.dumps(record), flush=True)
        if step % args.save_every == 0:
            save(model, args, out, step, spent + time.perf_counter() - started, parameters=adapter)
    save(model, args, out, step, spent + time.perf_counter() - started, done=True, parameters=adapter)
    print(f"trained {step} steps in {time.perf_counter() - started:.0f} s ({tokens} tokens)", flush=True)
    model.eval()


@torch.no_grad()
def evaluate(model, args, out: Path) -> None:
    from infini_attention.data.haystack import get_haystack
    from infini_attention.eval import passkey

    results = {"args": {k: v for k, v in vars(args).items()}, "formats": {}}
    started = time.perf_counter()
    for fmt in args.eval_formats:
        rows = passkey.evaluate_passkey(
            model,
            model.tokenizer,
            args.eval_lengths,
            args.eval_depths,
            args.eval_keys,
            ablation=args.ablation,
            progress=False,
            haystack=get_haystack(args.eval_haystack),
            fmt=fmt,
            seed=args.eval_seed,
            template=args.eval_template,
            digits=args.eval_digits,
        )
        for r in rows:
            print(f"{fmt} {r.length} depth {r.depth} {r.found_via} reset={r.reset_memory}: {r.accuracy:.2f}", r.answers)
        results["formats"][fmt] = {"summary": passkey.summary(rows), "rows": [asdict(r) for r in rows]}
        results["seconds"] = round(time.perf_counter() - started, 1)
        (out / "eval.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"evaluated in {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    from infini_attention.cli.demo_smollm2 import DEFAULT_ARTIFACT

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", choices=("transfer", "paper"), default="transfer")
    p.add_argument("--source", default="gguf:default", help="gguf:default, gguf:<file> or a transformers folder")
    p.add_argument("--artifact", default=str(DEFAULT_ARTIFACT), help="--base transfer: the transfer artifact")
    p.add_argument("--segment-len", type=int, default=256, help="--base paper (transfer: the artifact's)")
    p.add_argument("--rule", default="delta", help="--base paper (transfer: the artifact's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument(
        "--memory-rank",
        type=int,
        default=0,
        help="LoRA of this rank on the memory path's q/k/v only (modules/memory_lora.py; alpha = --alpha); "
        "the local attention stays the original's. Use with --rank 0",
    )
    p.add_argument(
        "--memory-shift",
        type=int,
        default=0,
        help="with --memory-rank: low-rank taps on the S tokens before the memory's queries and keys "
        "(modules/memory_lora.py); they start at zero, so a loaded adapter without them starts as it was",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=5e-4,
        help="LoRA; 0 keeps a loaded adapter's LoRA as it is (it is still saved with the adapter)",
    )
    p.add_argument("--memory-lr", type=float, default=None, help="memory LoRA (default: --lr)")
    p.add_argument("--gate-lr", type=float, default=0.05)
    p.add_argument("--feature-lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--lm-weight", type=float, default=0.0, help="weight of the prompt's LM loss (0: answer only)")
    p.add_argument("--replay", default=None, help="chat_replay.py jsonl: the original's chat answers")
    p.add_argument("--replay-every", type=int, default=3, help="every N-th step is a replay step (with --replay)")
    p.add_argument("--replay-batch", type=int, default=4, help="replay examples per replay step (one at a time)")
    p.add_argument("--minutes", type=float, default=5.0, help="training time (the cosine runs over it)")
    p.add_argument("--max-steps", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=8192)
    p.add_argument("--min-len", type=int, default=1024)
    p.add_argument("--formats", nargs="+", default=["passkey", "ruler", "paraphrase"])
    p.add_argument("--haystacks", nargs="+", default=[])
    p.add_argument("--templates", nargs="+", default=["plain"], help="plain / chat (data/templates.py), one per batch")
    p.add_argument("--local-start", type=float, default=0.3)
    p.add_argument("--local-end", type=float, default=0.15)
    p.add_argument("--curriculum-steps", type=int, default=100)
    p.add_argument("--doubled-keys", type=float, default=0.3)
    p.add_argument(
        "--key-digits",
        type=int,
        nargs="+",
        default=[],
        help="key lengths drawn per batch for every numeric format, RULER's too (default: 5, RULER 7)",
    )
    p.add_argument("--aligned-lengths", type=float, default=0.2)
    p.add_argument(
        "--stretch-max",
        type=float,
        default=1.0,
        help="stretched memory writes (train/stretch.py): each needle prompt's filler-only segments are written "
        "with one weight drawn log-uniformly from [1, this], as if its haystack were that many times longer; 1 = off",
    )
    p.add_argument(
        "--stretch-curriculum-steps", type=int, default=0, help="grow --stretch-max's limit from 1 over k steps"
    )
    p.add_argument(
        "--answer-end",
        action="store_true",
        help="needle answers end as their template does ('.', the chat turn's end), labelled: the model learns to stop",
    )
    p.add_argument(
        "--first-answer-weight",
        type=float,
        default=1.0,
        help="needle batches: the key's first token weighs this much in the answer loss (the others 1)",
    )
    p.add_argument(
        "--local-tail",
        type=int,
        default=None,
        help="the local-tail variant (ops/infini/fast.py): every segment's local attention also sees the previous "
        "segment's last T tokens; no parameters (default: what --adapter / --resume's adapter.json records, else 0)",
    )
    p.add_argument(
        "--local-sink",
        type=int,
        default=None,
        help="with --local-tail: the stream's first S tokens too, the attention sink (default: what --adapter / "
        "--resume's adapter.json records, else 0)",
    )
    p.add_argument("--checkpointing", choices=("segment", "layer"), default=None, help="default: none (until OOM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=20)
    p.add_argument("--print-every", type=int, default=5)
    p.add_argument("--eval-only", action="store_true", help="evaluate --adapter (or the base when not given)")
    p.add_argument("--resume", action="store_true", help="continue OUT's own adapter (a fresh optimizer)")
    p.add_argument("--adapter", default=None, help="a folder with adapter.safetensors to start from / evaluate")
    p.add_argument("--eval-haystack", default=None, help="a text file (default: the paper's filler)")
    p.add_argument("--eval-formats", nargs="+", default=["passkey", "ruler"])
    p.add_argument("--eval-template", default="plain", help="plain or chat (data/templates.py)")
    p.add_argument("--eval-lengths", type=int, nargs="+", default=[4000, 16000, 32000])
    p.add_argument("--eval-depths", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--eval-keys", type=int, default=4)
    p.add_argument("--eval-seed", type=int, default=1234)
    p.add_argument("--eval-digits", type=int, default=None, help="key length (default: the format's, 5 or RULER's 7)")
    p.add_argument(
        "--ablation", action=argparse.BooleanOptionalAction, default=True, help="the memory-reset run beside"
    )
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model = load_base(args, device)
    if args.rank > 0 and not args.eval_only:
        add_lora(model, args.rank, args.alpha)
    if args.memory_rank > 0 and not args.eval_only:
        add_memory_lora(model, args.memory_rank, args.alpha, args.memory_shift)
    step, spent, done = 0, 0.0, False
    if args.resume and (out / "adapter.json").is_file():  # this run's own adapter: weights, step and time so far
        meta = json.loads((out / "adapter.json").read_text())
        step, spent, done = meta["step"], meta.get("seconds", 0.0), meta.get("done", False)
        load_adapter(model, out)
        print(f"resumed {out} at step {step}, {spent:.0f} s trained{' (done)' if done else ''}", flush=True)
    elif args.adapter:
        load_adapter(model, Path(args.adapter))
    apply_local_tail(model, args)
    print(f"loaded {args.base} on {device} in {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.eval_only and not done:
        train(model, args, device, out, step, spent)
    model.eval()
    if args.eval_lengths:
        evaluate(model, args, out)


if __name__ == "__main__":
    main()

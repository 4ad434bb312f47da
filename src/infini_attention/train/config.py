"""The training configuration: every field is a flag of `infini train` (cli/train.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    preset: str = "tiny"  # model preset (see ModelConfig.from_name)
    model: dict = field(default_factory=dict)  # ModelConfig fields that override the preset
    init_from: str | None = None  # a model folder to start from (weights and config)
    # a Hugging Face model to continue pre-training (hf/training.py): a folder from `infini convert`, a plain
    # Llama/Qwen2/Mistral folder or gguf:default, converted with --model segment_len=N rule=... beta_init=...;
    # its own tokenizer reads the task's text unless --tokenizer names another than the default
    from_hf: str | None = None
    train_only: str = "all"  # parameters trained: "all", "attention" (q/k/v/o and gates) or "gates"; rest frozen
    task: str = "lm"  # "lm", "passkey" or "copy" (tasks.py)
    data: str | None = None  # lm: text file, folder, .jsonl, or hf:<dataset name>
    # lm: how a text file splits into documents: "auto", "file", "blank", "verse", "regex:<pattern>"
    data_split: str = "auto"  # (data/documents.py; "auto" splits the Bible corpora into books)
    val_docs: float = 0.05  # lm: documents held out for validation, a fraction (< 1) or a count (>= 1)
    tokenizer: str = "byte"  # tokenizer name (data/tokenizers.py)
    seq_len: int = 1024  # tokens per training sequence (max length for passkey/copy)
    min_len: int = 1024  # passkey/copy: shortest sequence (lengths drawn log-uniformly)
    length_curriculum_steps: int = 0  # passkey/copy: grow the longest length from min_len to seq_len over k steps
    batch_size: int = 8  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    steps: int = 1000  # optimizer steps
    lr: float = 1e-3  # peak learning rate
    gate_lr: float = 1e-2  # learning rate of the gate logits beta (no weight decay)
    sharpness_lr: float | None = None  # own learning rate of the sharpness variant's log-scales (None: lr)
    weight_decay: float = 0.1  # AdamW weight decay on matrices and embeddings
    warmup_steps: int = 100  # linear warm-up steps
    min_lr_ratio: float = 0.1  # cosine decay floor, as a fraction of lr
    clip: float = 1.0  # gradient-norm clipping (0 = off)
    gradient_checkpointing: bool = False  # recompute each segment in the backward pass
    # --from-hf models: recompute each decoder layer in the backward pass instead (one layer's activations at a
    # time: the least memory, for about one more forward pass); overrides --gradient-checkpointing
    layer_checkpointing: bool = False
    detach_every: int | None = None  # truncate BPTT every k segments (None = through all segments)
    bf16: bool = False  # bfloat16 autocast (the memory stays float32)
    # the loss over the vocabulary this many labelled tokens at a time, from the final hidden states, without the
    # whole (tokens x vocab) float32 logits (train/loss.py; models with an `output_head`); 0 = from the full logits
    loss_chunk: int = 512
    eval_every: int = 100  # steps between evaluations (0 = never)
    save_every: int = 100  # steps between checkpoints
    out: str = "runs/out/run"  # output folder: checkpoint/, metrics.jsonl, train_config.json
    seed: int = 0
    device: str = "auto"  # "auto", "cpu" or "cuda"
    digits: int = 5  # passkey: key length
    # passkey: key lengths to draw from, one per batch, for every format whose needle is a number (RULER's 7-digit
    # values too); empty: `digits` for the 5-digit formats and RULER's own 7. Mixed lengths leave the model no
    # length to count on: it has to read the whole value from memory in order.
    key_digits: list = field(default_factory=list)
    doubled_keys: float = 0.0  # passkey: share of training keys with a digit written twice in a row (the hard ones)
    # passkey: share of batches whose length is a multiple of the segment length, so that the answer starts a new
    # segment (every power-of-two evaluation length does; a random length does 1 time in segment_len)
    aligned_lengths: float = 0.0
    full_loss: bool = False  # passkey: language-model loss on the prompt too, not only on the answer
    # passkey: the answer is followed by its template's end ("." in plain text, the end of the turn in chat), which
    # is labelled too: the model learns to stop once the key is given
    answer_end: bool = False
    # passkey: prompt formats (data/formats.py: passkey, ruler, ruler-multikey, paraphrase, ...), one drawn per batch
    formats: list = field(default_factory=lambda: ["passkey"])
    # passkey: haystacks, one drawn per batch: "paper" (the paper's filler) or text files (data/haystack.py);
    # empty = the paper's filler
    haystacks: list = field(default_factory=list)
    # passkey: prompt templates (data/templates.py: plain, chat = one user turn of the tokenizer's chat template),
    # one drawn per batch; repeat a name to weight it (plain plain chat: a third of the batches in chat)
    templates: list = field(default_factory=lambda: ["plain"])
    eval_haystack: str | None = None  # passkey: the haystack of the training-time evaluation (None: the paper's)
    local_start: float = 0.5  # passkey: share of needles in the question's segment at step 0
    local_end: float = 0.1  # passkey: ... at the end of the curriculum
    curriculum_steps: int = 1000  # passkey: steps over which that share falls
    copy_len: int = 24  # copy: characters in the string to recall
    eval_lengths: list = field(default_factory=lambda: [1024])  # passkey: lengths evaluated during training
    eval_keys: int = 20  # passkey: instances per evaluated length
    # passkey, linear rule: write each filler-only segment with a weight drawn log-uniformly per sequence from
    # [1, stretch_max], as if the haystack were that many times longer (stretch.py); 1 = off
    stretch_max: float = 1.0
    stretch_curriculum_steps: int = 0  # grow that limit from 1 to stretch_max over k steps (log-linearly)

    def model_config(self):
        """The ModelConfig this run builds (or, for --from-hf, a view of the HF model's config)."""
        from infini_attention.models import ModelConfig
        from infini_attention.models.io import load_config
        from infini_attention.models.protocol import model_source

        if self.from_hf:  # a view of the HF model's config with ModelConfig's field names (no weights loaded)
            return model_source("hf").config(self.from_hf, self.model)
        if self.init_from:
            return load_config(self.init_from).replace(**self.model)
        return ModelConfig.from_name(self.preset, **self.model)

    def validate(self) -> None:
        """One clear line for a value that cannot train (raised before any work is done)."""
        import math

        def number(name, low=None, *, above=False, integer=False):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (integer and not isinstance(value, int))
            ):
                raise ValueError(
                    f"--{name.replace('_', '-')} must be {'an integer' if integer else 'a number'}, got {value!r}"
                )
            if not math.isfinite(value) or (low is not None and (value <= low if above else value < low)):
                bound = f"> {low}" if above else f">= {low}"
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number {bound}, got {value!r}")

        number("lr", 0, above=True)
        number("gate_lr", 0, above=True)
        if self.sharpness_lr is not None:
            number("sharpness_lr", 0, above=True)
        number("weight_decay", 0)
        number("clip", 0)
        number("min_lr_ratio", 0)
        number("stretch_max", 1)
        for name in ("batch_size", "grad_accum", "save_every", "seq_len", "min_len"):
            number(name, 1, integer=True)
        for name in ("steps", "warmup_steps", "eval_every", "eval_keys", "length_curriculum_steps", "loss_chunk"):
            number(name, 0, integer=True)
        if self.task in ("passkey", "copy") and self.min_len > self.seq_len:
            raise ValueError(f"--min-len {self.min_len} is longer than --seq-len {self.seq_len}")
        for name in ("local_start", "local_end", "doubled_keys", "aligned_lengths"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} is a share in [0, 1], got {value!r}")
        if any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10 for n in self.key_digits):
            raise ValueError(f"--key-digits takes key lengths of 1 to 10 digits, got {self.key_digits}")
        bad = [n for n in self.eval_lengths if isinstance(n, bool) or not isinstance(n, int) or n < 1]
        if bad:
            raise ValueError(f"--eval-lengths takes token counts such as 4096 (no K/M suffix here), got {bad}")
        if not self.from_hf:  # (an HF model's --model fields are checked by its source)
            import difflib

            from infini_attention.models import ModelConfig

            known = set(ModelConfig.__dataclass_fields__)
            for key in set(self.model) - known:
                close = difflib.get_close_matches(key, known, 1)
                raise ValueError(
                    f"--model {key}: no such model field" + (f" (did you mean {close[0]}?)" if close else "")
                )
        if self.layer_checkpointing and not self.from_hf:
            raise ValueError(
                "--layer-checkpointing is for --from-hf models; use --gradient-checkpointing (per segment)"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        from infini_attention.data.formats import EVALUATION_ONLY
        from infini_attention.data.templates import TEMPLATES

        unknown = sorted(set(self.templates) - set(TEMPLATES))
        if unknown:
            raise ValueError(f"--templates {' '.join(unknown)}: unknown; choose from {', '.join(TEMPLATES)}")

        if self.task == "passkey" and EVALUATION_ONLY & set(self.formats):
            raise ValueError(
                f"--formats {' '.join(sorted(EVALUATION_ONLY & set(self.formats)))}: for evaluation only "
                "(phrasings kept out of training, data/formats.py)"
            )

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise ValueError(f"unknown training fields: {sorted(set(d) - known)}")
        return cls(**d)

"""The model an evaluation runs, whichever kind it is: `load_eval_model(spec)`.

- a native checkpoint folder (model.safetensors + config.json, as `infini train` writes), with the
  tokenizer it was trained with (train_config.json beside it, else bytes);
- `gguf:default`, `gguf:<file.gguf>` or a converted Hugging Face folder (`infini convert`), loaded
  through the "hf" model source (needs the hf extra), with its own tokenizer and chat template;
- a transfer artifact or a memory adapter folder (hf/transfer.py:load_memory_model), among them the
  shipped SmolLM2 ones by name: `smollm2-memory` (the artifact + the fine-tuned memory adapter, what
  `infini demo --model smollm2` runs) and `smollm2-transfer` (the artifact alone).

Both kinds are StreamingLMs (models/protocol.py): `model(ids, state, logits_to_keep=1)` carries the
bounded state from call to call, so an evaluation streams any length segment by segment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from infini_attention.data.tokenizers import Tokenizer, get_tokenizer  # plain Python: the CLI imports this module
from infini_attention.utils import memory_model_folder

HF_PREFIXES = ("gguf:",)


@dataclass
class EvalModel:
    model: object  # a StreamingLM (torch.nn.Module)
    tokenizer: Tokenizer
    name: str
    chat_template: bool = False  # the tokenizer has a chat template (instruction-tuned HF models)
    stop_ids: tuple = ()  # token ids that end an answer (the HF tokenizer's end of sequence)

    def prompt_ids(self, text: str, *, chat: bool | None = None) -> list[int]:
        """`text` as token ids; wrapped as one user turn of the chat template when `chat` (default: when
        the model has one). The answer prefix is appended by the caller after the template's
        assistant header, so that the model continues it."""
        chat = self.chat_template if chat is None else chat
        if not chat:
            return self.tokenizer.encode(text)
        hf = self.tokenizer.tokenizer
        ids = hf.apply_chat_template([{"role": "user", "content": text}], tokenize=True, add_generation_prompt=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def training_config(folder: str | Path) -> dict:
    """The TrainConfig fields of the run that wrote a model folder ({} for a folder from elsewhere)."""
    folder = Path(folder)
    for candidate in (folder / "train_config.json", folder.parent / "train_config.json"):
        if candidate.exists():
            return json.loads(candidate.read_text())
    if (folder / "train_state.json").exists():
        return json.loads((folder / "train_state.json").read_text()).get("train_config", {})
    return {}


def checkpoint_tokenizer(folder: str | Path) -> str:
    """The tokenizer a model folder was trained with (its training_config), else 'byte'."""
    return training_config(folder).get("tokenizer") or "byte"


def is_memory_spec(spec: str) -> bool:
    """A transfer artifact or memory adapter folder, or a shipped one's name (hf/transfer.py:load_memory_model)."""
    return memory_model_folder(spec) is not None


def is_hf_spec(spec: str) -> bool:
    """gguf:... or a folder whose config.json is a transformers config (converted or not)."""
    if spec.startswith(HF_PREFIXES):
        return True
    config = Path(spec).expanduser() / "config.json"
    if not config.is_file():
        return False
    data = json.loads(config.read_text())
    return "architectures" in data or "model_type" in data


def load_eval_model(spec: str, tokenizer: str | None = None, device: str = "cpu", **overrides) -> EvalModel:
    """A native checkpoint folder, or gguf:default / gguf:<file> / a converted HF folder (see the module doc).

    overrides: `--model` settings for an HF source (e.g. segment_len=1024)."""
    if is_memory_spec(spec):
        if overrides:
            raise ValueError(f"{spec} is a trained memory model: its settings ({sorted(overrides)}) are fixed")
        try:
            from infini_attention.hf.transfer import load_memory_model
        except ImportError as e:
            raise ValueError(f"{spec} is a Hugging Face model: pip install -e '.[hf]' ({e})") from None

        model = load_memory_model(spec).eval().to(device)
        return _hf_eval_model(model, model.tokenizer, spec)
    if is_hf_spec(spec):
        try:
            import infini_attention.hf  # noqa: F401  (registers the "hf" model source)
        except ImportError as e:
            raise ValueError(f"{spec} is a Hugging Face model: pip install -e '.[hf]' ({e})") from None
        from infini_attention.models.protocol import model_source

        model = model_source("hf").load(spec, **overrides).eval().to(device)
        tok = get_tokenizer(tokenizer) if tokenizer else model.tokenizer
        if tok is None:
            raise ValueError(f"{spec} ships no tokenizer: give --tokenizer hf:<tokenizer folder>")
        return _hf_eval_model(model, tok, spec)
    if overrides:
        raise ValueError(f"model settings {sorted(overrides)} apply to Hugging Face sources only")
    from infini_attention.models.io import load_model

    model = load_model(spec, device=device).eval()
    tok = get_tokenizer(tokenizer or checkpoint_tokenizer(spec))
    if tok.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"tokenizer {tok.name} has {tok.vocab_size} ids, the model only {model.config.vocab_size}: "
            "is --tokenizer the one the model was trained with?"
        )
    return EvalModel(model, tok, spec)


def parse_look_back(text: str) -> tuple[int, int]:
    """`--look-back`'s value -> (tail, sink): "T/S", "T" (no sink) or "off" (0, 0: the paper's window)."""
    if text.strip().lower() == "off":
        return 0, 0
    tail, _, sink = text.partition("/")
    try:
        pair = int(tail), int(sink or 0)
    except ValueError:
        raise ValueError(f"--look-back takes TAIL/SINK in tokens (e.g. 128/4), TAIL, or off; got {text!r}") from None
    if min(pair) < 0:
        raise ValueError(f"--look-back's tail and sink are numbers of tokens >= 0, got {text!r}")
    return pair


def set_look_back(model, tail: int, sink: int = 0):
    """Switch the local look back (ops/infini/README.md; not the paper's) on every Infini layer of an evaluation's
    model: each segment's local attention also sees the previous segment's last `tail` tokens and the stream's
    first `sink` tokens; (0, 0) is the paper's window. It has no parameters, so any trained model can be read with
    or without it. `model`: a native InfiniTransformer, or an HF model (HFTrainingModel, e.g. smollm2-memory, whose
    adapter.json may switch it on when it loads). Returns the model."""
    if hasattr(model, "hf"):  # hf/training.py's HFTrainingModel
        from infini_attention.hf.modeling import set_local_tail

        return set_local_tail(model, tail, sink=sink)
    import dataclasses

    from infini_attention.layers.attention import InfiniAttention

    layers = [m for m in model.modules() if isinstance(m, InfiniAttention)]
    if not layers:
        kind = getattr(getattr(model, "config", None), "attention", type(model).__name__)
        raise ValueError(f"the local look back is a variant of Infini-attention's window, not of {kind!r} attention")
    model.config = dataclasses.replace(model.config, local_tail=tail, local_sink=sink)  # validates them
    for layer in layers:
        layer.local_tail, layer.local_sink = tail, sink
    return model


def look_back_text(model) -> str:
    """ ", local look back: tail T, sink S (a variant)" when it is on, else "" (a report's model line)."""
    cfg = getattr(model, "config", None)
    tail, sink = int(getattr(cfg, "local_tail", 0) or 0), int(getattr(cfg, "local_sink", 0) or 0)
    return f", local look back: tail {tail}, sink {sink} (a variant)" if tail or sink else ""


def _hf_eval_model(model, tok: Tokenizer, spec: str) -> EvalModel:
    hf = getattr(tok, "tokenizer", None)
    chat = bool(getattr(hf, "chat_template", None))
    eos = getattr(hf, "eos_token_id", None)
    return EvalModel(model, tok, spec, chat_template=chat, stop_ids=(eos,) if eos is not None else ())


def greedy_continue(
    model, last_logits, state, max_new_tokens: int, stop_ids=(), *, reset_memory: bool = False
) -> list[list[int]]:
    """Greedy tokens after a prompt read by `generate.prefill`, per batch row, each cut at its first stop id
    (not included); reset_memory continues prefill's ablation."""
    from infini_attention.generate import decode_one_token, sample

    rows = [[] for _ in range(last_logits.shape[0])]
    done = [False] * len(rows)
    logits = last_logits
    for step in range(max_new_tokens):
        token = sample(logits, temperature=0.0)
        for b, t in enumerate(token.tolist()):
            if not done[b]:
                if t in stop_ids:
                    done[b] = True
                else:
                    rows[b].append(t)
        if all(done) or step + 1 == max_new_tokens:
            break
        logits, state = decode_one_token(model, token, state, reset_memory=reset_memory)
    return rows

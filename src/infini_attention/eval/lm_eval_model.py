"""An lm-evaluation-harness model, "infini": any benchmark of the harness on a native checkpoint or a converted
Hugging Face model, each input streamed segment by segment with the bounded state carried (needs
`pip install -e '.[lm-eval]'`).

The harness's command line imports only its own models and (lm-eval 0.4.13) loads no plugins: no entry
points, and `--include_path` adds tasks, not models. So run it through this module, which registers "infini"
and then hands the arguments to the harness's own command line (`lm_eval.__main__.cli_evaluate`):

    python -m infini_attention.eval.lm_eval_model --model infini \\
        --model_args pretrained=src/infini_attention/assets/passkey --tasks lambada_openai --limit 20
    python -m infini_attention.eval.lm_eval_model --model infini \\
        --model_args pretrained=gguf:default,segment_len=1024,bf16=true --tasks hellaswag --batch_size 4

From Python, importing this module is the registration:

    import lm_eval
    import infini_attention.eval.lm_eval_model  # noqa: F401  (registers "infini")
    lm_eval.simple_evaluate(model="infini", model_args="pretrained=PATH", tasks=["lambada_openai"])

model_args:
    pretrained      a native checkpoint folder, gguf:default / gguf:<file.gguf>, or a converted HF folder
    tokenizer       a tokenizer name (byte, gpt2, hf:<folder>) instead of the model's own
    segment_len     the segment length of an HF source (native checkpoints keep theirs)
    batch_size      how many continuations of one context are scored in one call (the harness's --batch_size)
    max_gen_toks    generate_until's default token budget (a task's gen_kwargs may set its own)
    device          cpu, cuda, cuda:1, ... (default, and in place of cuda when there is none: cuda if any, else cpu)
    bf16            run under bfloat16 autocast (the memory stays float32)
    chunk_segments  segments read per call when a context is streamed (logits of the last position only)

Nothing is truncated and no sliding windows are used: a context of any length is read a few segments per
call, its state (compressive memory + the unfinished segment) carried, and only the tokens that are scored
get logits, at most one segment's worth per call. Requests that share a context read it once.
"""

from __future__ import annotations

import sys
import warnings
from collections import defaultdict

import lm_eval.models  # noqa: F401  (fills the registry with lm-eval's own names: see below)
import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from infini_attention.eval.models import load_eval_model
from infini_attention.generate import decode_one_token, prefill

# Why `import lm_eval.models`: lm-eval 0.4.13 adds its own models' (lazy) names to the registry only when it is
# still empty at the first look-up, so registering "infini" first would hide "hf", "vllm", ...

# gen_kwargs keys that do not change greedy decoding (they only matter when sampling)
SAMPLING_ONLY = {"top_p", "top_k", "min_p", "typical_p"}


def repeat_state(state, batch: int):
    """The state of a one-row stream repeated `batch` times along the batch dimension (a copy)."""
    if state is None or batch == 1:
        return state
    layers = []
    for layer in state.layers:
        tensors = {name: t.repeat(batch, *[1] * (t.dim() - 1)) for name, t in vars(layer).items() if t is not None}
        layers.append(type(layer)(**tensors))
    return type(state)(layers, state.position, state.model)


def prefix_token(tokenizer) -> int | None:
    """The token a text is conditioned on when there is nothing before it: BOS, else EOS; None for bytes."""
    hf = getattr(tokenizer, "tokenizer", None)  # HFTokenizer wraps a transformers tokenizer
    for name in ("bos_token_id", "eos_token_id"):
        token = getattr(hf, name, None)
        if token is not None:
            return int(token)
    return getattr(tokenizer, "eos_id", None)  # gpt2


def end_token(tokenizer) -> int | None:
    hf = getattr(tokenizer, "tokenizer", None)
    token = getattr(hf, "eos_token_id", None)
    return int(token) if token is not None else getattr(tokenizer, "eos_id", None)


@register_model("infini")
class InfiniLM(LM):
    """A StreamingLM behind lm-eval's LM interface; see the module docstring for the model_args."""

    def __init__(
        self,
        pretrained: str,
        tokenizer: str | None = None,
        segment_len: int | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,  # passed by the harness; "auto" batch sizes are not supported
        max_gen_toks: int = 256,
        device: str | None = None,
        bf16: bool = False,
        chunk_segments: int = 16,
    ):
        super().__init__()
        if isinstance(batch_size, str) and not batch_size.isdigit():
            raise ValueError(f"batch_size must be a whole number (no 'auto'), got {batch_size!r}")
        self.batch_size = int(batch_size)
        if self.batch_size < 1 or int(max_gen_toks) < 1 or int(chunk_segments) < 1:
            raise ValueError("batch_size, max_gen_toks and chunk_segments must be >= 1")
        if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
            if device is not None:  # the harness's command line asks for cuda:0 unless told otherwise
                warnings.warn(f"device {device!r} is not available: running on the CPU", stacklevel=2)
            device = "cuda" if torch.cuda.is_available() else "cpu"
        overrides = {} if segment_len is None else {"segment_len": int(segment_len)}
        em = load_eval_model(str(pretrained), tokenizer, device=device, **overrides)
        self.model, self.tokenizer, self.name = em.model, em.tokenizer, em.name
        self._device = torch.device(device)
        self.bf16 = bool(bf16)
        self.max_gen_toks = int(max_gen_toks)
        self.segment_len = self.model.config.segment_len
        self.prefill_len = self.segment_len * int(chunk_segments)
        self.prefix = prefix_token(self.tokenizer)
        self.eot = end_token(self.tokenizer)

    # ---- the pieces

    def tok_encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def tok_decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    def _autocast(self):
        return torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _prefill(self, ids: list[int]):
        """The state after reading `ids` (None when empty): a few segments per call, logits of one position."""
        if not ids:
            return None
        with torch.no_grad(), self._autocast():
            _, state = prefill(self.model, torch.tensor([ids], device=self._device), block_len=self.prefill_len)
        return state

    def _score(self, rows: list[list[int]], state=None) -> tuple[list[float], list[bool]]:
        """For each row, the summed log-probability of row[1:] given the state and the tokens before, and
        whether every one of those tokens is the greedy choice. Rows are padded on the right (a causal model
        never reads a token to the right), read one segment per call with the state carried."""
        lengths = torch.tensor([len(r) - 1 for r in rows], device=self._device)
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], device=self._device)  # (B, width)
        state = repeat_state(state, len(rows))
        total = torch.zeros(len(rows), dtype=torch.float64, device=self._device)
        greedy = torch.ones(len(rows), dtype=torch.bool, device=self._device)
        with torch.no_grad(), self._autocast():
            for start in range(0, width - 1, self.segment_len):
                end = min(start + self.segment_len, width - 1)  # positions start..end-1 predict ids[:, start+1..end]
                logits, state = self.model(ids[:, start:end], state)  # (B, end - start, vocab)
                logprobs = F.log_softmax(logits.float(), dim=-1)
                target = ids[:, start + 1 : end + 1]  # (B, end - start)
                scored = torch.arange(start, end, device=self._device)[None] < lengths[:, None]  # (B, end - start)
                picked = logprobs.gather(-1, target[..., None])[..., 0]
                total += torch.where(scored, picked, 0.0).sum(dim=1).double()
                greedy &= ((logprobs.argmax(dim=-1) == target) | ~scored).all(dim=1)
        return total.tolist(), greedy.tolist()

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's convention: the context's trailing whitespace goes to the continuation, and the
        continuation's tokens are those of context + continuation after the context's."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if context == "":
            cont = self.tok_encode(continuation)
            if self.prefix is not None:
                return [self.prefix], cont
            return cont[:1], cont[1:]  # no BOS (bytes): the first token is context, not scored
        whole = self.tok_encode(context + continuation)
        ctx = self.tok_encode(context)
        return ctx, whole[len(ctx) :]

    # ---- the three request types

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log P(continuation | context), whether greedy decoding gives the continuation) per request.

        The context but its last token is streamed once per distinct context (logits of one position
        only); its last token and each continuation are then scored, `batch_size` continuations per call."""
        pairs = [self._encode_pair(*req.args) for req in requests]
        groups = defaultdict(list)
        for i, (ctx, _) in enumerate(pairs):
            groups[tuple(ctx[:-1])].append(i)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="infini loglikelihood", disable=disable_tqdm)
        for prefix, members in groups.items():
            state = self._prefill(list(prefix))
            for b in range(0, len(members), self.batch_size):
                batch = members[b : b + self.batch_size]
                rows = [pairs[i][0][-1:] + pairs[i][1] for i in batch]
                if not any(len(r) > 1 for r in rows):  # only empty continuations: log 1
                    sums, greedy = [0.0] * len(rows), [True] * len(rows)
                else:
                    sums, greedy = self._score(rows, state)
                for i, s, g in zip(batch, sums, greedy):
                    results[i] = (s, bool(g))
                    self.cache_hook.add_partial("loglikelihood", requests[i].args, results[i])
                bar.update(len(batch))
        bar.close()
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """log P(text) per request, the whole text in one stream (the memory is the long context: no windows).

        The first token is conditioned on the tokenizer's BOS (else EOS) token. A byte tokenizer has
        neither: then tokens 2..n are scored given the first, and the first token is not counted."""
        results = []
        for req in tqdm(requests, desc="infini loglikelihood_rolling", disable=disable_tqdm):
            (text,) = req.args
            ids = self.tok_encode(text)
            if self.prefix is not None:
                ids = [self.prefix] + ids
            value = self._score([ids])[0][0] if len(ids) > 1 else 0.0
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, value)
            results.append(value)
        return results

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy continuations, cut before the first `until` string (gen_kwargs: until, max_gen_toks;
        do_sample=False / temperature=0 only)."""
        results = []
        for req in tqdm(requests, desc="infini generate_until", disable=disable_tqdm):
            context, gen_kwargs = req.args
            until, budget = self._generation_settings(gen_kwargs)
            ids = self.tok_encode(context)
            if not ids:
                if self.prefix is None:
                    raise ValueError("generate_until with an empty context needs a tokenizer with a BOS/EOS token")
                ids = [self.prefix]
            text = self._greedy(ids, until, budget)
            self.cache_hook.add_partial("generate_until", req.args, text)
            results.append(text)
        return results

    def _generation_settings(self, gen_kwargs: dict) -> tuple[list[str], int]:
        kwargs = dict(gen_kwargs or {})
        until = kwargs.pop("until", None)
        until = [u for u in ([until] if isinstance(until, str) else until or []) if u]
        if not until and self.eot is not None:
            until = [self.tok_decode([self.eot])]
        budget = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
        temperature = float(kwargs.pop("temperature", 0.0) or 0.0)
        do_sample = kwargs.pop("do_sample", temperature > 0)
        beams = int(kwargs.pop("num_beams", 1))
        if do_sample or beams != 1:
            raise ValueError(
                f"the infini model decodes greedily only: got do_sample={do_sample}, temperature={temperature}, "
                f"num_beams={beams}; set do_sample=False or temperature=0 (e.g. --gen_kwargs temperature=0)"
            )
        unknown = set(kwargs) - SAMPLING_ONLY
        if unknown:
            raise ValueError(
                f"unsupported gen_kwargs {sorted(unknown)}: the infini model takes until, max_gen_toks, "
                "do_sample=False and temperature=0"
            )
        return until, budget

    def _greedy(self, ids: list[int], until: list[str], budget: int) -> str:
        """Stream the context, then decode greedily one token per call until a stop string, EOS or the budget."""
        out: list[int] = []
        if budget < 1:
            return ""
        with torch.no_grad(), self._autocast():
            logits, state = prefill(self.model, torch.tensor([ids], device=self._device), block_len=self.prefill_len)
            while True:
                token = logits.argmax(dim=-1)  # (1,)
                if token.item() == self.eot:
                    break
                out.append(token.item())
                if len(out) == budget or any(u in self.tok_decode(out) for u in until):
                    break
                logits, state = decode_one_token(self.model, token, state)
        text = self.tok_decode(out)
        for u in until:  # cut before the earliest stop string
            text = text.split(u)[0]
        return text

    # ---- what the harness asks of a model with a chat template

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name.replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        hf = getattr(self.tokenizer, "tokenizer", None)
        if not getattr(hf, "chat_template", None):
            raise ValueError(f"{self.name}: its tokenizer has no chat template (drop --apply_chat_template)")
        return hf.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        hf = getattr(self.tokenizer, "tokenizer", None)
        return getattr(hf, "chat_template", None) if chat_template else None


def main(argv: list[str] | None = None) -> None:
    """lm-eval's own command line, with "infini" registered (this module's import did that)."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:  # lm-eval's parser reads sys.argv
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()

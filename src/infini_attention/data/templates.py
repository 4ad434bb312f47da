"""Prompt templates, registered by name: how a needle prompt (data/formats.py) is presented to the model.

- "plain": the prompt as the format writes it (the instruction, the haystack, the question and the start of
  the answer, one running text).
- "chat": one user turn of the tokenizer's own chat template (an instruction-tuned model's, e.g. SmolLM2's
  ChatML): the user's message holds the instruction, the haystack and the question up to its last sentence
  end ("?", "." or "!"); the assistant's turn starts with the rest of the question ("The pass key is"),
  which the answer continues.
  Users of an instruct model wrap their prompts this way; a memory trained on plain prompts only need not
  retrieve through it.

Each template also says how an answer ends (`end(tokenizer)`): "." in plain text, the end of the assistant's
turn in chat (SmolLM2's "<|im_end|>"). Training with that end after the key (TrainConfig.answer_end) teaches
the model to stop once the key is given, instead of running on with more digits.

A template is one class with `wrap(prompt, tokenizer) -> Prompt` and `end(tokenizer) -> str` added to TEMPLATES.
"""

from __future__ import annotations

from dataclasses import replace

from infini_attention.data.formats import Prompt


class Plain:
    def wrap(self, prompt: Prompt, tokenizer) -> Prompt:
        return prompt

    def end(self, tokenizer) -> str:
        return "."


def chat_turn(hf_tokenizer) -> tuple[str, str]:
    """(text before, text after) a user message in a transformers tokenizer's chat template, the assistant's
    header included after it (rendered once around a marker)."""
    marker = "\x00USER\x00"
    text = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    before, after = text.split(marker)
    return before, after


def end_of_turn(hf_tokenizer) -> str:
    """The text a transformers tokenizer's chat template puts right after an assistant's message (its
    trailing white space left out): SmolLM2's "<|im_end|>"."""
    marker = "\x00ANSWER\x00"
    text = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": "?"}, {"role": "assistant", "content": marker}], tokenize=False
    )
    return text.split(marker)[1].rstrip()


def chat_tokenizer(tokenizer):
    """The transformers tokenizer inside ours, when it has a chat template."""
    hf = getattr(tokenizer, "tokenizer", None)
    if not getattr(hf, "chat_template", None):
        name = getattr(tokenizer, "name", type(tokenizer).__name__)
        raise ValueError(f"template 'chat': tokenizer {name} has no chat template (use 'plain')")
    return hf


class Chat:
    def wrap(self, prompt: Prompt, tokenizer) -> Prompt:
        before, after = chat_turn(chat_tokenizer(tokenizer))
        question = prompt.question
        cut = max(question.rfind(end) for end in "?.!") + 1  # 0 without one: the whole question opens the answer
        asked, lead = question[:cut], question[cut:].strip()
        return replace(prompt, prefix=before + prompt.prefix.lstrip(), question=asked + after + lead)

    def end(self, tokenizer) -> str:
        return end_of_turn(chat_tokenizer(tokenizer))


TEMPLATES = {"plain": Plain, "chat": Chat}


def get_template(name: str):
    if name not in TEMPLATES:
        raise ValueError(f"unknown prompt template {name!r}: choose one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]()

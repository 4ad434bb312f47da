"""Prompt templates, registered by name: how a needle prompt (data/formats.py) is presented to the model.

- "plain": the prompt as the format writes it (the instruction, the haystack, the question and the start of
  the answer, one running text).
- "chat": one user turn of the tokenizer's own chat template (an instruction-tuned model's, e.g. SmolLM2's
  ChatML): the user's message holds the instruction, the haystack and the question up to its last sentence
  end ("?", "." or "!"); the assistant's turn starts with the rest of the question ("The pass key is"),
  which the answer continues.
  Users of an instruct model wrap their prompts this way; a memory trained on plain prompts only need not
  retrieve through it.

A template is one class with `wrap(prompt, tokenizer) -> Prompt` added to TEMPLATES.
"""

from __future__ import annotations

from dataclasses import replace

from infini_attention.data.formats import Prompt


class Plain:
    def wrap(self, prompt: Prompt, tokenizer) -> Prompt:
        return prompt


def chat_turn(hf_tokenizer) -> tuple[str, str]:
    """(text before, text after) a user message in a transformers tokenizer's chat template, the assistant's
    header included after it (rendered once around a marker)."""
    marker = "\x00USER\x00"
    text = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    before, after = text.split(marker)
    return before, after


class Chat:
    def wrap(self, prompt: Prompt, tokenizer) -> Prompt:
        hf = getattr(tokenizer, "tokenizer", None)
        if not getattr(hf, "chat_template", None):
            name = getattr(tokenizer, "name", type(tokenizer).__name__)
            raise ValueError(f"template 'chat': tokenizer {name} has no chat template (use 'plain')")
        before, after = chat_turn(hf)
        question = prompt.question
        cut = max(question.rfind(end) for end in "?.!") + 1  # 0 without one: the whole question opens the answer
        asked, lead = question[:cut], question[cut:].strip()
        return replace(prompt, prefix=before + prompt.prefix.lstrip(), question=asked + after + lead)


TEMPLATES = {"plain": Plain, "chat": Chat}


def get_template(name: str):
    if name not in TEMPLATES:
        raise ValueError(f"unknown prompt template {name!r}: choose one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]()

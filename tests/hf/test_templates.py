"""Prompt templates (data/templates.py): the chat template wraps a needle prompt as one user turn, the answer in
the assistant's turn, for evaluation (`infini eval passkey --template chat`) and training (`--templates`)."""

import pytest

pytest.importorskip("transformers")

from hf_tiny import byte_bpe  # noqa: E402
from infini_attention.data.formats import Prompt  # noqa: E402
from infini_attention.data.passkey import make_instance  # noqa: E402
from infini_attention.data.templates import Chat, get_template  # noqa: E402
from infini_attention.data.tokenizers import ByteTokenizer, HFTokenizer  # noqa: E402

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def chat_tokenizer():
    hf = byte_bpe()
    hf.chat_template = CHATML
    return HFTokenizer(hf, name="byte-bpe-chat")


def test_the_chat_template_puts_the_question_in_the_user_turn_and_its_lead_in_the_assistants(chat_tokenizer):
    prompt = Prompt("Find the key.", [" The key is 42."], " What is the key? The key is", ["42"], 0)
    wrapped = Chat().wrap(prompt, chat_tokenizer)
    assert wrapped.prefix == "<|im_start|>user\nFind the key."
    assert wrapped.question == " What is the key?<|im_end|>\n<|im_start|>assistant\nThe key is"
    assert wrapped.needles == prompt.needles and wrapped.answer == " 42"
    # a question without a sentence end opens the assistant's turn whole; one with two keeps its last sentence there
    bare = Prompt("", [" x"], " The code mentioned in the text is", ["7"], 0)
    assert (
        Chat().wrap(bare, chat_tokenizer).question
        == "<|im_end|>\n<|im_start|>assistant\nThe code mentioned in the text is"
    )
    two = Prompt("", [" x"], " Please state the code. The code is", ["7"], 0)
    assert Chat().wrap(two, chat_tokenizer).question.startswith(" Please state the code.<|im_end|>")
    assert get_template("plain").wrap(prompt, chat_tokenizer) is prompt


def test_a_chat_instance_keeps_its_length_and_its_needle(chat_tokenizer):
    plain = make_instance(chat_tokenizer, 600, 0.3, seed=5)
    chat = make_instance(chat_tokenizer, 600, 0.3, seed=5, template="chat")
    assert plain.length == chat.length == 600 and plain.keys == chat.keys  # the same draws, another frame
    text = chat_tokenizer.decode(chat.prompt_ids().tolist())
    assert text.startswith("<|im_start|>user\nThere is an important info")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\nThe pass key is")
    start, end = chat.needle_spans[0]
    assert chat.keys[0] in chat_tokenizer.decode(chat.prompt_ids()[start:end].tolist())


def test_templates_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="no chat template"):
        make_instance(ByteTokenizer(), 600, 0.5, template="chat")
    with pytest.raises(ValueError, match="unknown prompt template 'html'"):
        get_template("html")
    from infini_attention.train.config import TrainConfig

    with pytest.raises(ValueError, match="--templates html: unknown"):
        TrainConfig(task="passkey", templates=["plain", "html"]).validate()


def test_training_draws_one_template_per_batch(chat_tokenizer):
    from infini_attention.train.config import TrainConfig
    from infini_attention.train.tasks.passkey import PasskeyTask

    def frames(templates):
        cfg = TrainConfig(
            task="passkey", tokenizer=chat_tokenizer, seq_len=700, min_len=600, batch_size=2, templates=templates
        )
        task = PasskeyTask(cfg, segment_len=256)
        return [["<|im_start|>" in chat_tokenizer.decode(row.tolist()) for row in task.batch(s).ids] for s in range(8)]

    assert frames(["plain"]) == [[False, False]] * 8
    mixed = frames(["plain", "chat"])
    assert {tuple(f) for f in mixed} == {(False, False), (True, True)}  # both occur, one template per batch


@pytest.mark.parametrize("template, end", [("plain", "."), ("chat", "<|im_end|>")])
def test_training_answers_end_as_their_template_ends_one_when_asked(chat_tokenizer, template, end):
    """TrainConfig.answer_end: the labels hold the key and then the template's end, so the model learns to stop."""
    from infini_attention.train.config import TrainConfig
    from infini_attention.train.tasks.passkey import PasskeyTask

    assert get_template(template).end(chat_tokenizer) == end
    for answer_end in (False, True):
        cfg = TrainConfig(
            task="passkey",
            tokenizer=chat_tokenizer,
            seq_len=700,
            min_len=600,
            batch_size=2,
            templates=[template],
            answer_end=answer_end,
            stretch_max=4.0,
        )
        task = PasskeyTask(cfg, segment_len=256)
        batch, instances = task.batch(3), task._instances(3, 0, 0)
        for labels, inst in zip(batch.labels, instances, strict=True):
            said = chat_tokenizer.decode(labels[labels != -100].tolist())
            assert said == " " + inst.key + (end if answer_end else "")
        assert batch.write_weights.shape == (2, -(-batch.ids.shape[1] // 256))

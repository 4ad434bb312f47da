"""The shipped checkpoints load and compute what they computed when they were trained."""

import torch
from safetensors.torch import load_file

from conftest import DATA, ROOT, assert_close
from infini_attention.checkpoint import load_model

ASSETS = ROOT / "src" / "infini_attention" / "assets"
REFERENCE = DATA / "passkey_reference_logits.safetensors"


def test_the_filler_passkey_checkpoint_gives_its_reference_logits():
    """E15 (runs/EXPERIMENTS.md), read in three calls carrying the state: max abs difference <= 1e-6."""
    model = load_model(ASSETS / "passkey-filler").eval()
    ref = load_file(REFERENCE)
    ids = ref["ids"]
    with torch.no_grad():
        a, state = model(ids[:, :130])
        b, state = model(ids[:, 130:131], state)
        c, _ = model(ids[:, 131:], state)
    assert_close(torch.cat([a, b, c], 1)[:, ::7], ref["logits"], atol=1e-6, rtol=0.0, what="shipped logits")


def test_the_shipped_model_finds_a_key_in_the_questions_own_segment_and_through_the_memory():
    """assets/passkey = E25: E17's weights read with the linear-causal rule and fine-tuned with it; assets/passkey-e17
    holds E17's weights read with the paper's linear rule and finds a needle only through the memory
    (runs/EXPERIMENTS.md, sessions 5 and 7)."""
    from infini_attention.data.passkey import make_instance
    from infini_attention.data.tokenizers import ByteTokenizer
    from infini_attention.eval.passkey import found_via
    from infini_attention.generate import generate

    shipped, e17 = load_model(ASSETS / "passkey").eval(), load_model(ASSETS / "passkey-e17").eval()
    assert shipped.config.rule == "linear-causal" and e17.config.rule == "linear"
    assert {name: p.shape for name, p in shipped.named_parameters()} == {
        name: p.shape for name, p in e17.named_parameters()
    }, "the same architecture"

    def answers(model, instances):
        """Per instance (all of one length, run as one batch): whether the greedy answer is the key."""
        ids = torch.stack([inst.prompt_ids() for inst in instances])
        size = len(instances[0].answer_ids)
        out, _ = generate(model, ids, size, temperature=0)
        return [out[b, -size:].tolist() == inst.answer_ids for b, inst in enumerate(instances)]

    tok, n = ByteTokenizer(), shipped.config.segment_len
    cases = {  # a short filler, so that the needle can sit anywhere
        via: [make_instance(tok, 4 * n + 122, depth, seed=s, filler=" The sky is blue.") for s in range(3)]
        for via, depth in (("local window", 1.0), ("straddling", 0.93), ("memory", 0.3))
    }
    for via, instances in cases.items():
        assert {found_via(i, n) for i in instances} == {via}
        assert all(answers(shipped, instances)), via
    assert not any(answers(e17, cases["local window"] + cases["straddling"]))
    assert all(answers(e17, cases["memory"]))

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

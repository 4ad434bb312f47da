import random
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"  # small files the tests read (data/README.md says what each is)
ROOT = TESTS.parent


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4, what: str = ""):
    """torch.testing.assert_close with max abs and relative error in the message."""
    actual, expected = actual.detach().double(), expected.detach().double()
    err = (actual - expected).abs()
    rel = err / expected.abs().clamp_min(1e-12)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    ok = bool((err <= atol + rtol * expected.abs()).all())
    assert ok, f"{what}: max abs err {err.max().item():.3e}, max rel err {rel.max().item():.3e}"


def shift_term(proj: torch.nn.Linear, x: torch.Tensor, taps: int, t: int):
    """Reference for the key/query shift of token t: sum_{j=1..taps} W_j x_{t-j} over the tokens before t.

    proj: a layer's shift_proj / query_shift_proj, whose rows are [W_1; ...; W_taps]; x: (length, hidden).
    """
    w = proj.weight.view(taps, -1, x.shape[-1])
    return sum(w[j - 1] @ x[t - j] for j in range(1, taps + 1) if t >= j)

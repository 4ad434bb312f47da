import random

import pytest
import torch


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

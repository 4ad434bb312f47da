"""Memory footprints: the paper's Table 1 formulas and the measured state."""

import pytest
import torch

from baseline_helpers import CAP, N, tiny
from infini_attention import (
    InfiniTransformer,
    ModelConfig,
)
from infini_attention.eval.footprint import measured_footprint, memory_footprint, state_size

# ---------------------------------------------------------------- footprint


def test_footprint_reproduces_the_papers_table():
    paper = ModelConfig.from_name("paper-lm")  # 12 layers, 8 heads of dim 128, N = 2048
    infini = memory_footprint(paper, "infini")
    xl = memory_footprint(paper, "xl")
    memorizing = memory_footprint(paper, "memorizing", memory_tokens=65_000, xl_cache=True)
    assert infini == 128 * 129 * 8 * 12 == 1_585_152
    assert xl == 256 * 8 * 2048 * 12 == 50_331_648
    assert memorizing == xl + 256 * 8 * 65_000 == 183_451_648
    assert round(xl / 1e6) == 50
    assert round(memorizing / 1e6) == 183
    assert round(infini / 1e5) / 10 == 1.6
    assert round(round(memorizing / 1e6) / (round(infini / 1e5) / 10)) == 114  # "114x less", from rounded figures
    # the kNN term alone, as Table 1 writes it: (d_k + d_v) * H * N * S with S = 32 segments of 2048
    assert memory_footprint(paper, "memorizing", length=32 * 2048) == 256 * 8 * 2048 * 32
    fields = dict(num_layers=12, num_heads=8, head_dim=128, segment_len=2048)
    assert memory_footprint(fields, "infini") == infini
    assert memory_footprint(fields, "full", length=32768) == 256 * 8 * 32768 * 12


@pytest.mark.parametrize(
    "kind", ["infini", "infini+sparse-cache", "infini+look-back", "xl", "memorizing", "local", "full"]
)
def test_footprint_formula_matches_the_measured_state(kind):
    kind, _, variant = kind.partition("+")
    variants = {"sparse-cache": dict(sparse_cache=2 * N), "look-back": dict(local_tail=N // 2, local_sink=3)}
    cache = variants.get(variant, {})  # 2N: the cache is full after 4 segments
    config = ModelConfig.from_name("tiny", segment_len=N, attention=kind, knn_max_memories=CAP, **cache)
    model = InfiniTransformer(config)
    # an empty window, then the fullest one (N - 1 tokens); 4 segments overflow the kNN memory's CAP
    boundary, fullest = 4 * N, 5 * N - 1
    if kind == "local":
        expected = [0, memory_footprint(config)]  # nothing crosses a boundary; the formula is the full window
    else:
        expected = [memory_footprint(config, length=boundary), memory_footprint(config, length=fullest, window=True)]
    for length, floats in zip((boundary, fullest), expected):
        measured = measured_footprint(model, length, batch_size=2)
        assert measured.floats == floats, f"{kind} after {length} tokens: measured {measured.floats}, formula {floats}"
        assert measured.nbytes == 4 * floats  # every state tensor is float32 without autocast
    assert expected[0] < expected[1]


def test_footprint_errors_and_state_size():
    config = ModelConfig.from_name("tiny")
    with pytest.raises(ValueError, match="pass length"):
        memory_footprint(config, "full")
    with pytest.raises(ValueError, match="unknown attention kind"):
        memory_footprint(config, "sparse")
    with pytest.raises(ValueError, match="memorizing"):
        memory_footprint(config, "xl", xl_cache=True)
    with pytest.raises(ValueError, match="missing field"):
        memory_footprint({"num_layers": 2}, "infini")
    _, state = tiny()(torch.randint(0, 256, (3, N)))
    size = state_size(state)
    assert size.nbytes * 3 == state.nbytes() and size.floats == memory_footprint(config.replace(segment_len=N))

"""The paper's long-context baselines (`xl`, `memorizing`) and the memory-footprint formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from infini_attention import (
    FullAttention,
    InfiniAttention,
    InfiniTransformer,
    KNNState,
    LocalAttention,
    MemorizingAttention,
    ModelConfig,
    ModelState,
    XLAttention,
    XLState,
)
from infini_attention.eval.footprint import measured_footprint, memory_footprint, state_size
from infini_attention.layers.memorizing import knn_attention, knn_search
from infini_attention.models.registry import build_attention, memory_layer_index
from infini_attention.ops import apply_rope, rope_cos_sin

N = 16
CAP = 3 * N + 5  # a kNN memory cap that the 5-segment streams below overflow, and not a multiple of N

KINDS = [
    dict(attention="xl"),
    dict(attention="memorizing", knn_top_k=4, knn_max_memories=CAP),
]


def kind_id(kind):
    return kind["attention"]


def tiny(**overrides):
    return InfiniTransformer(ModelConfig.from_name("tiny", segment_len=N, **overrides))


def layer(cls, **kw):
    return cls(hidden_size=32, num_heads=4, num_key_value_heads=2, head_dim=8, segment_len=N, **kw)


# ---------------------------------------------------------------- model level


# Two calls == one call and causality for `xl` and `memorizing` run with every other kind in
# tests/test_model.py (its KINDS list), teacher-forced decoding in tests/test_generate.py, and the
# layer-level two calls == one call in tests/test_layer.py.


@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_context_reaches_past_the_segment(kind):
    """The baselines read earlier segments (unlike `local`): a token of segment 0 changes segment 1's logits."""
    model = tiny(**kind)
    ids = torch.randint(0, 256, (1, 2 * N))
    changed = ids.clone()
    changed[0, 3] = (changed[0, 3] + 1) % 256
    diff = (model(changed)[0][:, N:] - model(ids)[0][:, N:]).abs().max()
    assert diff > 1e-4, f"segment 1 ignores segment 0 (max logit change {diff:.2e})"


@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_cache_holds_no_gradient(kind):
    """The XL cache and the kNN memory are detached: segment 1's loss reaches no token of segment 0 only."""
    ids = torch.randint(0, 256, (1, 2 * N))
    later = set(ids[0, N:].tolist())
    early = [t for t in ids[0, :N].unique().tolist() if t not in later]
    assert early, "the test needs tokens that appear only in the first segment"

    def grad_of_second_segment(model):
        logits, state = model(ids)
        (grad,) = torch.autograd.grad(logits[:, N:].logsumexp(-1).sum(), model.embed_tokens.weight)
        return grad, state

    grad, state = grad_of_second_segment(tiny(**kind))
    assert grad[early].abs().sum() == 0
    cached = [t for s in state.layers for t in ((s.prev_k, s.prev_v) if kind["attention"] == "xl" else (s.k, s.v))]
    cached += [t for s in state.layers if isinstance(s, KNNState) for t in (s.mem_k, s.mem_v)]
    assert cached and not any(t.requires_grad for t in cached if t.numel())
    grad_full, _ = grad_of_second_segment(tiny(attention="full"))  # control: a cache with gradient
    assert grad_full[early].abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_gradient_checkpointing_gives_the_same_gradients(kind):
    model = tiny(**kind)
    ids = torch.randint(0, 256, (2, 4 * N + 3))

    def grads(**kw):
        model.zero_grad()
        logits, _ = model(ids, **kw)
        logits.logsumexp(-1).mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, checkpointed = grads(), grads(gradient_checkpointing=True)
    assert plain["layers.1.self_attn.q_proj.weight"].abs().sum() > 0
    for name in plain:
        assert_close(checkpointed[name], plain[name], atol=1e-6, what=name)


@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_state_save_load_round_trip(kind, tmp_path):
    model = tiny(**kind)
    ids = torch.randint(0, 256, (2, 5 * N + 5))
    logits, _ = model(ids)
    _, state = model(ids[:, : 4 * N + 3])  # the kNN memory is full and the XL cache is set
    state.save(tmp_path / "state.safetensors")
    loaded = ModelState.load(tmp_path / "state.safetensors")
    assert [type(s) for s in loaded.layers] == [type(s) for s in state.layers]
    assert loaded.position == 4 * N + 3
    logits2, _ = model(ids[:, 4 * N + 3 :], loaded)
    assert_close(logits2, logits[:, 4 * N + 3 :], what="logits after resuming a saved state")


def test_xl_equals_full_attention_over_two_segments():
    """With RoPE positions 0..2N-1 for (cache, segment), XL over 2 segments is ordinary causal attention."""
    xl, full = tiny(attention="xl"), tiny(attention="full")
    full.load_state_dict(xl.state_dict())
    ids = torch.randint(0, 256, (2, 3 * N))
    logits_xl, _ = xl(ids)
    logits_full, _ = full(ids)
    assert_close(logits_xl[:, : 2 * N], logits_full[:, : 2 * N], what="first two segments")
    assert (logits_xl[:, 2 * N :] - logits_full[:, 2 * N :]).abs().max() > 1e-3, "segment 2 must not see segment 0"


def test_memorizing_model_has_one_memory_layer():
    model = tiny(attention="memorizing", num_layers=4)
    kinds = [type(b.self_attn) for b in model.layers]
    assert kinds == [LocalAttention, LocalAttention, MemorizingAttention, LocalAttention]  # ceil(3 * 4 / 4) - 1 = 2
    model = tiny(attention="memorizing", num_layers=4, memory_layer=0)
    assert [type(b.self_attn) for b in model.layers][0] is MemorizingAttention
    assert len(model.gate_parameters()) == 1
    assert memory_layer_index(ModelConfig.from_name("paper-lm", attention="memorizing")) == 8  # Wu et al.: layer 9
    assert memory_layer_index(ModelConfig.from_name("tiny", num_layers=1)) == 0


def test_memorizing_with_an_empty_memory_equals_local():
    mem, local = tiny(attention="memorizing"), tiny(attention="local")
    missing, unexpected = local.load_state_dict(mem.state_dict(), strict=False)
    assert not missing and unexpected == ["layers.1.self_attn.beta"]
    ids = torch.randint(0, 256, (2, 2 * N))
    logits_mem, _ = mem(ids)
    logits_local, _ = local(ids)
    assert torch.equal(logits_mem[:, :N], logits_local[:, :N]), "first segment: empty memory"
    assert (logits_mem[:, N:] - logits_local[:, N:]).abs().max() > 1e-4, "second segment reads the memory"


def test_bad_config_and_state_get_clear_errors():
    with pytest.raises(ValueError, match="memory_layer"):
        ModelConfig.from_name("tiny", attention="memorizing", memory_layer=2)
    with pytest.raises(ValueError, match="knn_top_k"):
        ModelConfig.from_name("tiny", attention="memorizing", knn_top_k=0)
    with pytest.raises(ValueError, match="knn_max_memories"):
        ModelConfig.from_name("tiny", attention="memorizing", knn_max_memories=0)
    with pytest.raises(ValueError, match="layer_index"):
        build_attention(ModelConfig.from_name("tiny", attention="memorizing"))
    _, xl_state = tiny(attention="xl")(torch.randint(0, 256, (1, 5)))
    with pytest.raises(TypeError, match="needs a KVState, got XLState"):  # layer 0 of the memorizing model is local
        tiny(attention="memorizing")(torch.ones(1, 2).long(), xl_state)
    with pytest.raises(TypeError, match="needs a KNNState, got XLState"):
        tiny(attention="memorizing", memory_layer=0)(torch.ones(1, 2).long(), xl_state)
    with pytest.raises(ValueError, match="other shapes"):
        tiny(attention="xl", head_dim=8)(torch.ones(1, 2).long(), xl_state)
    attn = layer(MemorizingAttention, max_memories=N)
    _, state = layer(MemorizingAttention, max_memories=4 * N)(torch.randn(1, 2 * N, 32))
    with pytest.raises(ValueError, match="max_memories"):
        attn(torch.randn(1, 1, 32), state)


# ---------------------------------------------------------------- layer level


def _rotated(attn, x):
    """Queries and keys rotated at absolute positions 0..L-1, and values, expanded to all query heads."""
    q, k, v = attn._project(x)
    cos, sin = rope_cos_sin(torch.arange(x.shape[1]), attn.head_dim, attn.rope_theta)
    group = attn.num_heads // attn.num_key_value_heads
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, H, L, d)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


def test_xl_layer_matches_a_masked_attention_reference():
    """Token t sees tokens of its own segment up to t and all of the previous segment, nothing else."""
    attn = layer(XLAttention)
    x = torch.randn(2, 4 * N + 3, 32)
    y, _ = attn(x)
    with torch.no_grad():
        q, k, v = _rotated(attn, x)
        t = torch.arange(x.shape[1])
        seg = t // N
        mask = (t[None, :] <= t[:, None]) & (seg[None, :] >= seg[:, None] - 1)  # (query, key)
        ref = attn._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert_close(y, ref, atol=1e-5, what="XL vs masked full attention")


def _brute_force_knn(q, mem_k, mem_v, top_k):
    """Per query head and query: sort every score, keep the top_k, softmax, weighted sum of values (float64)."""
    batch, heads, m, d = q.shape
    group = heads // mem_k.shape[1]
    out = torch.zeros(batch, heads, m, mem_v.shape[-1], dtype=torch.float64)
    chosen = {}
    for b in range(batch):
        for h in range(heads):
            keys, values = mem_k[b, h // group].double(), mem_v[b, h // group].double()
            for i in range(m):
                scores = (keys @ q[b, h, i].double()).tolist()
                order = sorted(range(len(scores)), key=lambda j: -scores[j])[:top_k]
                chosen[b, h, i] = set(order)
                w = torch.softmax(torch.tensor([scores[j] for j in order], dtype=torch.float64) / math.sqrt(d), 0)
                out[b, h, i] = (w[:, None] * values[order]).sum(0)
    return out, chosen


@pytest.mark.parametrize("top_k,memories", [(7, 40), (4, 4), (32, 9)])
def test_knn_retrieval_is_the_exact_top_k(top_k, memories):
    q = torch.randn(2, 4, 5, 8)  # 4 query heads over 2 kv heads
    mem_k, mem_v = torch.randn(2, 2, memories, 8), torch.randn(2, 2, memories, 8)
    ref, chosen = _brute_force_knn(q, mem_k, mem_v, top_k)
    out = knn_attention(q, mem_k, mem_v, top_k)
    assert_close(out, ref, atol=1e-5, what="kNN attention vs brute force")
    _, idx = knn_search(q.reshape(2, 2, 10, 8), mem_k, top_k)  # heads grouped by kv head
    assert idx.shape[-1] == min(top_k, memories)
    idx = idx.reshape(2, 4, 5, -1)  # (B, H, m, k)
    for (b, h, i), expected in chosen.items():
        assert set(idx[b, h, i].tolist()) == expected, f"query {(b, h, i)}"


def test_knn_memory_is_a_fifo_with_a_cap():
    big = layer(MemorizingAttention, max_memories=100 * N)
    small = layer(MemorizingAttention, max_memories=2 * N + 3)
    small.load_state_dict(big.state_dict())
    x = torch.randn(2, 6 * N + 5, 32)
    with torch.no_grad():
        _, keys, values = big._project(x)  # (B, Hkv, L, d): what the memory must hold, un-rotated
        state_big = state_small = None
        for start, end in [(0, N + 2), (N + 2, 3 * N), (3 * N, 6 * N + 5)]:
            _, state_big = big(x[:, start:end], state_big)
            _, state_small = small(x[:, start:end], state_small)
            stored = N * (end // N)  # finished segments only
            assert state_big.mem_k.shape[2] == stored
            assert state_small.mem_k.shape[2] == min(stored, 2 * N + 3)
            assert_close(state_big.mem_k, keys[:, :, :stored], what="memory keys")
            assert_close(state_big.mem_v, values[:, :, :stored], what="memory values")
            assert_close(state_small.mem_k, keys[:, :, :stored][:, :, -(2 * N + 3) :], what="newest keys kept")
            assert_close(state_small.mem_v, values[:, :, :stored][:, :, -(2 * N + 3) :], what="newest values kept")


def test_memorizing_layer_matches_the_gated_formula():
    """Segment 1: out = g * A_mem + (1 - g) * A_local with g = sigmoid(b_g) (Wu et al.), A_mem by brute force."""
    attn = layer(MemorizingAttention, top_k=5)
    with torch.no_grad():
        attn.beta.copy_(torch.tensor([-2.0, -0.5, 0.5, 2.0]))
    x = torch.randn(2, 2 * N, 32)
    y, _ = attn(x)
    with torch.no_grad():
        q, k, v = attn._project(x)
        a_mem, _ = _brute_force_knn(q[:, :, N:], k[:, :, :N], v[:, :, :N], 5)
        qr, kr, vr = _rotated(attn, x[:, N:])  # local attention restarts its positions every segment
        a_local = F.scaled_dot_product_attention(qr, kr, vr, is_causal=True)
        g = torch.sigmoid(attn.beta)[None, :, None, None]
        ref = attn._merge((g * a_mem.float() + (1 - g) * a_local).float())
    assert_close(y[:, N:], ref, atol=1e-5, what="gated output")
    local = layer(LocalAttention)
    local.load_state_dict(attn.state_dict(), strict=False)
    assert_close(y[:, :N], local(x[:, :N])[0], atol=0, rtol=0, what="first segment = local")


def test_xl_layer_errors():
    attn = layer(XLAttention)
    _, state = attn(torch.randn(1, N + 2, 32))
    assert isinstance(state, XLState) and state.prev_k.shape[2] == N and state.k.shape[2] == 2
    with pytest.raises(TypeError, match="XLState"):
        attn(torch.randn(1, 1, 32), KNNState(state.prev_k, state.prev_v, state.k, state.v))
    with pytest.raises(ValueError, match="another batch size"):
        attn(torch.randn(2, 1, 32), state)
    too_long = XLState(torch.cat([state.prev_k] * 2, 2), torch.cat([state.prev_v] * 2, 2), state.k, state.v)
    with pytest.raises(ValueError, match="more than segment_len"):
        attn(torch.randn(1, 1, 32), too_long)


def test_registry_keeps_the_old_kinds():
    """build_attention still gives the old kinds their classes, with or without layer_index."""
    for name, cls in [("infini", InfiniAttention), ("local", LocalAttention), ("full", FullAttention)]:
        config = ModelConfig.from_name("tiny", attention=name)
        assert type(build_attention(config)) is cls and type(build_attention(config, 1)) is cls


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


@pytest.mark.parametrize("kind", ["infini", "xl", "memorizing", "local", "full"])
def test_footprint_formula_matches_the_measured_state(kind):
    config = ModelConfig.from_name("tiny", segment_len=N, attention=kind, knn_max_memories=CAP)
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

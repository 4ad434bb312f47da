"""The paper's long-context baselines (`xl`, `memorizing`) and the memory-footprint formulas."""

import pytest
import torch

from baseline_helpers import KINDS, N, kind_id, layer, tiny
from conftest import assert_close
from infini_attention import (
    FullAttention,
    InfiniAttention,
    KNNState,
    LocalAttention,
    MemorizingAttention,
    ModelConfig,
    ModelState,
)
from infini_attention.models.registry import build_attention, memory_layer_index

# ---------------------------------------------------------------- model level


# Two calls == one call and causality for `xl` and `memorizing` run with every other kind in
# tests/models/test_model.py (its KINDS list), teacher-forced decoding in tests/models/test_generate.py, and the
# layer-level two calls == one call in tests/layers/test_layer.py.


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
    with pytest.raises(ValueError, match="another kind of model: attention 'xl' .this model: 'memorizing'"):
        tiny(attention="memorizing")(torch.ones(1, 2).long(), xl_state)  # the state records its model
    with pytest.raises(ValueError, match="another kind of model: head_dim 16 .this model: 8"):
        tiny(attention="xl", head_dim=8)(torch.ones(1, 2).long(), xl_state)
    xl_state.model = None  # a state without a record (made by hand): each layer checks what it is given
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


def test_registry_keeps_the_old_kinds():
    """build_attention still gives the old kinds their classes, with or without layer_index."""
    for name, cls in [("infini", InfiniAttention), ("local", LocalAttention), ("full", FullAttention)]:
        config = ModelConfig.from_name("tiny", attention=name)
        assert type(build_attention(config)) is cls and type(build_attention(config, 1)) is cls

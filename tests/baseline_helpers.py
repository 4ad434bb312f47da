"""Small models and layers of the baseline kinds (`xl`, `memorizing`), shared by their layer, model and
footprint tests."""

from infini_attention import InfiniTransformer, ModelConfig

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

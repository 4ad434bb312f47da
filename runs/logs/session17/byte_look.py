"""Session 17: the shipped byte-level passkey model (assets/passkey, segment 128) with the local look back switched
on after training (tail T, sink S on every layer), held-out prose haystack, the paper's passkey prompt; the memory
reset beside. python runs/logs/session17/byte_look.py HAYSTACK T S LENGTH... (keys 4 per cell, depths 0 0.5 1)."""

import dataclasses
import sys

from infini_attention.data.haystack import get_haystack
from infini_attention.eval import passkey
from infini_attention.eval.models import load_eval_model
from infini_attention.layers.attention import InfiniAttention

haystack, tail, sink, *lengths = sys.argv[1:]
em = load_eval_model("src/infini_attention/assets/passkey")
for m in em.model.modules():
    if isinstance(m, InfiniAttention):
        m.local_tail, m.local_sink = int(tail), int(sink)
em.model.config = dataclasses.replace(em.model.config, local_tail=int(tail), local_sink=int(sink))
rows = passkey.evaluate_passkey(
    em.model, em.tokenizer, [int(x) for x in lengths], [0.0, 0.5, 1.0], 4, haystack=get_haystack(haystack), progress=False
)
print(f"tail {tail} sink {sink}")
print(passkey.format_table(rows))

"""Experiment (session 12): the memory read with a sharper query, zero-shot: φ(τ q) in the read only.

For the Hedgehog map φ(x) = [softmax(xW), softmax(-xW)], φ(τ q) is the softmax at temperature 1/τ: the
query's features concentrate on the dimensions it matches best, so keys that match it (the needle) keep
their share of the normaliser φ(q)·z while the rest of the text's keys lose theirs. The read stays a
convex combination of the stored values (numerator and denominator use the same φ(τ q)), unlike the
capped normaliser of session 11. Writes (and the delta rule's retrieval inside the write) are unchanged.
Patches the rule, then runs runs/smollm2_finetune.py with the arguments given (see qtemp.sh).
"""

import os
import runpy
import sys

from infini_attention.ops.infini import rules

TAU = float(os.environ["TAU"])
KEY_TAU = float(os.environ.get("KEY_TAU", "1"))  # the keys' too (writes and the delta rule's retrieval in them)

_read = rules.Linear.read
_share = rules.Rule.read_share
rules.Linear.read = lambda self, q, M, z: _read(self, q * TAU, M, z)
rules.Rule.read_share = lambda self, q, mass, z: _share(self, q * TAU, mass, z)
if KEY_TAU != 1:
    _write = rules.Linear.write
    _mass = rules.Rule.key_mass
    rules.Linear.write = lambda self, M, z, keys, values: _write(self, M, z, keys * KEY_TAU, values)
    rules.Rule.key_mass = lambda self, keys: _mass(self, keys * KEY_TAU)
print("keys scaled by", KEY_TAU, flush=True)
print("memory read with the query scaled by", TAU, flush=True)
sys.argv = ["runs/smollm2_finetune.py", *sys.argv[1:]]
runpy.run_path("runs/smollm2_finetune.py", run_name="__main__")

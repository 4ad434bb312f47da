"""Experiment (session 12): any `infini` command with the memory read's query scaled by TAU (zero-shot).

The same patch as qtemp_eval.py, for the byte models' rules too (linear-causal's read_segment):
    TAU=2 python runs/logs/session12/qtemp_cli.py eval passkey --checkpoint ... --out ...
"""

import os
import sys

from infini_attention.cli.main import main
from infini_attention.ops.infini import causal, rules

TAU = float(os.environ["TAU"])
KEY_TAU = float(os.environ.get("KEY_TAU", "1"))  # the keys' too: writes, key mass, the causal read's own segment

_read = rules.Linear.read
_share = rules.Rule.read_share
_segment = causal.CausalLinear.read_segment
rules.Linear.read = lambda self, q, M, z: _read(self, q * TAU, M, z)
rules.Rule.read_share = lambda self, q, mass, z: _share(self, q * TAU, mass, z)
causal.CausalLinear.read_segment = lambda self, q, keys, values, M, z: _segment(
    self, q * TAU, keys * KEY_TAU, values, M, z
)
if KEY_TAU != 1:
    _write = rules.Linear.write
    _mass = rules.Rule.key_mass
    rules.Linear.write = lambda self, M, z, keys, values: _write(self, M, z, keys * KEY_TAU, values)
    rules.Rule.key_mass = lambda self, keys: _mass(self, keys * KEY_TAU)
print("keys scaled by", KEY_TAU, flush=True)
print("memory read with the query scaled by", TAU, flush=True)
sys.exit(main(sys.argv[1:]))

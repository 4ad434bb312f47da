"""Experiment (session 11, negative): the delta rule with its normaliser's mass capped at HORIZON tokens.

Hedgehog features add exactly 2 to z's mass per token, so z * min(1, 2 * HORIZON / sum(z)) is the
normaliser of the last HORIZON tokens' worth of mass; the read (eq 7) and the delta write's retrieval (eq 9)
both use it. Identical to the paper's delta rule up to HORIZON tokens. Patches the rule, then runs
runs/smollm2_finetune.py with the arguments given (see cap32.sh).
"""

import os
import runpy
import sys

import torch

from infini_attention.ops.infini import rules

H = float(os.environ["HORIZON"])


def capped(z):
    mass = z.sum(-1, keepdim=True)
    return z * torch.clamp(2 * H / mass.clamp_min(1e-6), max=1.0)


_read = rules.Linear.read
rules.Delta.read = lambda self, q, M, z: _read(self, q, M, capped(z))
rules.Delta.new_values = lambda self, sk, values, M, z: (
    values - rules.normalised(sk @ rules.memory_with_norm(M, capped(z)), self.eps)
)
print("delta rule with normaliser capped at", H, "tokens", flush=True)
sys.argv = ["runs/smollm2_finetune.py", *sys.argv[1:]]
runpy.run_path("runs/smollm2_finetune.py", run_name="__main__")

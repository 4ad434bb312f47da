"""The trainer's OpenMP defaults on a CPU shared with other jobs (docs/performance.md, table 7).

PyTorch's CPU kernels run on OpenMP (libgomp). Left alone, libgomp's threads spin for a while at the
end of every parallel region, waiting for the next one. With as many threads as cores and another
job on one of them, the spinning thread takes the core from that job and the job takes it back: each
op waits for its slowest thread. Measured (benchmarks/train_smollm2.py, 2 cores, one other busy
job): 83 tokens/s with libgomp's default, 285 with OMP_WAIT_POLICY=PASSIVE (threads sleep at once),
240 with one thread. So the trainer asks for the passive policy unless the user chose a policy.
"""

from __future__ import annotations

import os
import sys


def configure_threads(environ: dict | None = None) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless it is set; True if it can still take effect.

    libgomp reads the variable once, when torch loads it: call this before `import torch`
    (`infini train` does). The thread count is left to torch and OMP_NUM_THREADS.
    """
    environ = os.environ if environ is None else environ
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return "torch" not in sys.modules

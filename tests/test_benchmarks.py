"""Every benchmark script runs with --quick and prints its table (a smoke test, no timing asserted).

The scripts start together in subprocesses (most of their time is spent importing torch and
waiting for the CPU), so the whole module takes well under a minute.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = [
    "layer_overhead",
    "scaling",
    "vs_full",
    "vs_peers",
    "bf16",
    "decoding",
    "profile_layer",
    "train_smollm2",
    "gpu",
    "look_back",
]
NEEDS = {  # dev-only dependencies (requirements-dev.txt)
    "vs_peers": "infini_transformer_pytorch",
    "train_smollm2": "transformers",
    "gpu": "transformers",  # its smollm2 section
    "look_back": "transformers",  # a converted Llama
}


def _available(name: str) -> bool:
    return name not in NEEDS or importlib.util.find_spec(NEEDS[name]) is not None


@pytest.fixture(scope="module")
def runs():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick"],
            cwd=BENCHMARKS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in SCRIPTS
        if _available(name)
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_quick_and_prints_its_table(runs, name):
    if not _available(name):
        pytest.skip(f"{NEEDS[name]} is not installed (pip install -r requirements-dev.txt)")
    code, out, err = runs[name]
    assert code == 0, f"{name}.py --quick failed:\n{err[-3000:]}"
    assert "machine:" in out
    table_rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table_rows) >= 3, f"{name}.py printed no table:\n{out}"
    assert "nan" not in "\n".join(table_rows).lower(), f"{name}.py printed NaN:\n{out}"


def test_every_benchmark_script_is_tested_and_documents_its_command():
    scripts = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "bench_common")
    assert scripts == sorted(SCRIPTS)
    for name in SCRIPTS:
        doc = (BENCHMARKS / f"{name}.py").read_text().split('"""')[1]
        assert f"python benchmarks/{name}.py" in doc and "--quick" in doc, f"{name}.py: docstring gives no command"


def test_compiled_memory_path_matches_the_reference():
    """`compile_memory_path()` (the opt-in torch.compile path) passes test_op's reference comparison.

    Uses the `aot_eager` backend: dynamo's graph capture and AOTAutograd's backward, i.e. what the
    compiled path changes, without inductor's C++ build, which takes minutes on a 2-core CPU. Set
    INFINI_TEST_INDUCTOR=1 to compile with inductor instead.
    """
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "compile") or sys.platform == "win32":
        pytest.skip("torch.compile unavailable")
    from conftest import assert_close
    from infini_attention.ops.infini import fast as fast_module
    from infini_attention.ops.infini import infini_attention_naive
    from ops.test_op import N, fast, make_inputs, rope

    backend = "inductor" if os.environ.get("INFINI_TEST_INDUCTOR") == "1" else "aot_eager"
    q, k, v, beta, M0, z0 = make_inputs(3 * N + 5)
    tables = rope()
    out_ref, (M_ref, z_ref) = infini_attention_naive(
        q, k, v, beta, segment_len=N, rule="delta", rope=tables, initial_state=(M0, z0)
    )
    fast_module.compile_memory_path(backend=backend)
    try:
        out, state = fast(q, k, v, beta, M0, z0, rule="delta", rope_tables=tables)
        weights = torch.randn_like(out_ref)
        inputs = [q, k, v, beta, M0, z0]
        grads_ref = torch.autograd.grad((out_ref * weights).sum() + M_ref.sum() * 1e-2, inputs)
        grads = torch.autograd.grad((out * weights).sum() + state.M.sum() * 1e-2, inputs)
    finally:
        fast_module.compile_memory_path(enable=False)
    assert_close(out, out_ref, what="output")
    assert_close(state.M, M_ref, what="M")
    assert_close(state.z, z_ref, what="z")
    for name, g, g_ref in zip("q k v beta M0 z0".split(), grads, grads_ref):
        assert_close(g, g_ref, atol=1e-4, what=f"grad {name}")

"""Smoke test of the benchmark (experiments/bench/): it runs on tiny shapes and writes its files
and its goals table. No timing is asserted here; the speed goals live in the benchmark's report."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parent.parent / "experiments" / "bench"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("mlplab_bench", BENCH / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts the bench folder on sys.path for its modules
    return module


def run_tiny(bench, out, *extra):
    return bench.main(["--quick", "--no-sweep", "--shapes", "1x8x4,2x8x8", "--repeats", "1", "--out", str(out), *extra])


def test_bench_writes_its_files_and_goals(bench, tmp_path):
    out = run_tiny(bench, tmp_path, "--no-torch")
    md = (out / "bench.md").read_text()
    for heading in ("## Goals", "## Instrumentation", "## The public API", "## Training step", "## The step against its matrix products",
                    "GEMM peak", "## Residual and normalised", "## Per-layer gradient norms"):
        assert heading in md
    assert "PyTorch is not installed" in md
    assert "| CPU |" in md and "kernels" in md  # the machine: CPU model, BLAS and its kernel
    df = pd.read_parquet(out / "bench.parquet")
    assert set(df.section) >= {"instrumentation", "api", "step", "gemm", "blocks", "norms", "peak"}
    assert set(df[df.section == "blocks"].impl) == set(bench.BLOCKS)
    assert (df.seconds > 0).all()
    assert len(pd.read_csv(out / "bench.csv")) == len(df)
    goals = md.split("## Goals", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in goals.splitlines() if line.startswith("| ") and not line.startswith("| goal")]
    assert any(r.startswith("| gradients() / in-place") and r.rstrip().endswith(("✔ |", "✘ |")) for r in rows)
    assert any(r.startswith("| float32 gradients against float64") and r.rstrip().endswith("✔ |") for r in rows)
    # tiny shapes are not the shapes the block goal is set for: shown, not judged
    assert all(r.rstrip().endswith("– |") for r in rows if r.startswith("| block step"))


def test_bench_against_pytorch(bench, tmp_path):
    pytest.importorskip("torch")
    out = run_tiny(bench, tmp_path)
    df = pd.read_parquet(out / "bench.parquet")
    assert {"mlplab", "pytorch"} <= set(df[df.section == "step"].impl)
    assert {"gradients", "in-place", "pytorch"} <= set(df[df.section == "api"].impl)


@pytest.mark.parametrize("kind", ["plain", "residual + batch norm", "layer norm"])
def test_gemm_replay_is_the_steps_own_products(bench, kind):
    """The products are recorded from the step itself: the same count, shapes, dtype and
    numbers as the step computed, whatever layers the network has."""
    import gemm
    from problems import mlplab_step, problem

    net, X, Y, _ = problem(3, 8, 4, "sigmoid", "float64", **bench.BLOCKS[kind])
    step = mlplab_step(net, X, Y)
    calls = gemm.record(step)
    L = net.L
    # forward z^l per layer; backward ∂C/∂W, ∂C/∂b per layer and δ W for l ≥ 2; per normalised layer
    # its sums: batch norm μ, v and 1ᵀ(g_u ⊙ x), ∂C/∂β; layer norm μ, v, ∂C/∂γ, ∂C/∂β and two means with γ
    extra = {"plain": 0, "residual + batch norm": 3 * 4, "layer norm": 3 * 6}[kind]
    assert len(calls) == L + 2 * L + (L - 1) + extra, [(a.shape, b.shape) for a, b, _ in calls]
    np.testing.assert_array_equal(calls[0][0], X)  # z^1 = X W^1ᵀ
    assert calls[0][1].shape == net.weights[0].T.shape
    for a, b, out in calls:
        np.dot(a, b, out=out)
        assert out.dtype == net.dtype
    assert gemm.flops(calls[:1]) == 2 * 4 * 64 * 8

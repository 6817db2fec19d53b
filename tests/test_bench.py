"""Smoke test of the benchmark (experiments/bench/bench.py): it runs on a tiny shape and writes
its files. No timing is asserted here; the speed targets live in the benchmark's report."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parent.parent / "experiments" / "bench" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("mlplab_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tiny(bench, out, *extra):
    return bench.main(["--quick", "--no-sweep", "--shapes", "1x8x4", "--repeats", "1", "--out", str(out), *extra])


def test_bench_writes_its_files(bench, tmp_path):
    out = run_tiny(bench, tmp_path, "--no-torch")
    md = (out / "bench.md").read_text()
    for heading in ("Training step", "Cost of instrumentation", "Matrix products", "GEMM peak", "Residual and normalised", "Summary"):
        assert heading in md
    assert "PyTorch is not installed" in md or "not installed" in md
    df = pd.read_parquet(out / "bench.parquet")
    assert set(df.section) >= {"step", "norms", "gemm", "peak", "logging", "blocks"}
    assert set(df[df.section == "blocks"].impl) == set(bench.BLOCKS)
    assert (df.seconds > 0).all()
    assert len(pd.read_csv(out / "bench.csv")) == len(df)


def test_bench_against_pytorch(bench, tmp_path):
    pytest.importorskip("torch")
    out = run_tiny(bench, tmp_path)
    df = pd.read_parquet(out / "bench.parquet")
    assert {"mlplab", "pytorch"} <= set(df[df.section == "step"].impl)
    assert "| ratio |" in (out / "bench.md").read_text()


@pytest.mark.parametrize("kind", ["plain", "residual + batch norm"])
def test_gemm_replay_matches_the_step(bench, kind):
    """The bare matrix products are the step's own: the same shapes, dtype and numbers as the
    products the step computed (replayed on the step's buffers, after one step at lr = 0)."""
    net, X, Y, _ = bench.problem(3, 8, 4, "sigmoid", "float64", **bench.BLOCKS[kind])
    step = bench.mlplab_step(net, X, Y)
    step()
    calls = bench.gemm_calls(net, X)
    assert len(calls) == net.L + 2 * net.L + (net.L - 1)
    for a, b, out in calls:
        np.dot(a, b, out=out)
        assert out.dtype == net.dtype
    # the first product is z^1 - b^1 = X W^1ᵀ; the last two are ∂C/∂W^1 = (δ^1)ᵀ X and ∂C/∂b^1 = 1ᵀ δ^1
    np.testing.assert_array_equal(calls[0][2], X @ net.weights[0].T)
    fresh, *_ = bench.problem(3, 8, 4, "sigmoid", "float64", **bench.BLOCKS[kind])
    g = fresh.gradients(X, Y)
    np.testing.assert_array_equal(calls[-2][2], g.dW[0])
    np.testing.assert_array_equal(calls[-1][2], g.db[0])

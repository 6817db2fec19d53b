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


def test_the_engine_report_checks_every_goal(bench):
    import engine

    notes = {"engine": {"cores": 2, "sweep": "default", "cases": [
        dict(case="default sweep, local", runs=180, wall=12.0, work=21.6, table=19.0, efficiency=0.9, peak_mb=250, plan_s=0.9)],
        "resume": dict(runs=180, wall=7.5, missing_work=11.0, overhead=2.0),
        "tiny": dict(runs=10000, wall=58.0, work=101.5, table=60.0, efficiency=0.875, peak_mb=250, plan_s=3.0, load_s=0.1, files=1)}}
    verdicts = []
    md = "\n".join(engine.report_engine(notes, verdicts, bench.ok))
    assert verdicts == [True] * 7
    assert "| default sweep, local | 180 | 12.0 s | 21.6 s | 19.0 s | 90 % | ≥ 90 % | yes |" in md
    notes["engine"]["tiny"]["files"] = 11  # more than 1 per 1,000 runs
    notes["engine"]["resume"]["overhead"] = 2.5
    verdicts = []
    engine.report_engine(notes, verdicts, bench.ok)
    assert verdicts == [True, False, True, True, True, True, False]


def test_the_engine_reads_the_work_of_a_sweep_from_its_log(tmp_path):
    import engine

    import mlplab

    root = tmp_path / "s"
    mlplab.run(mlplab.RunSpec(depth=1, width=4, n_samples=100, epochs=1), root)
    (root / "hydra" / "x").mkdir(parents=True)
    (root / "hydra" / "x" / "sweep.log").write_text("a ok 0.250s\nb skipped 0.001s\nc diverged 0.5s reason\n")
    logged, table, n = engine.work(root)
    assert logged == 0.75 and n == 1 and table > 0

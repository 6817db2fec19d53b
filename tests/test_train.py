"""One run end to end through the plain function under the CLI: tables, statuses, determinism."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlplab
from mlplab import MLP, RunSpec, load_results, run
from mlplab.train import build_network, load_data, rngs

SMALL = dict(depth=2, width=8, n_samples=200, epochs=6, batch_size=16)


def test_run_writes_three_tables_with_at_least_50_points(tmp_path):
    row = run(RunSpec(**SMALL), tmp_path)
    assert row["status"] == "ok" and not row["skipped"]
    r = load_results(tmp_path)
    assert len(r.runs) == 1 and r.runs.run_id[0] == RunSpec(**SMALL).run_id
    n_steps = 6 * math.ceil(160 / 16)
    assert row["n_steps"] == row["steps_done"] == n_steps
    assert len(r.steps) >= 50 and r.steps.step.iloc[0] == 0
    assert len(r.layers) == len(r.steps) * 3
    assert list(r.layers.layer.unique()) == [1, 2, 3]
    assert list(r.layers.query("step == 0").fan_in) == [8, 8, 8]
    assert list(r.layers.query("step == 0").fan_out) == [8, 8, 3]
    not_applicable = ["data_path", "data_digest", "norm", "spectrum_every", "input_q0"]  # none of these asked for
    assert not r.steps.query("step == 0").drop(columns=not_applicable).isna().any(axis=None)
    layers0 = r.layers.query("step == 0")
    assert layers0[["grad_gamma_norm", "grad_beta_norm"]].isna().all(axis=None)  # no γ, β: null
    assert not layers0.drop(columns=not_applicable + ["grad_gamma_norm", "grad_beta_norm"]).isna().any(axis=None)
    assert r.runs.final_loss[0] < r.steps.train_loss.iloc[0]  # SGD made progress


def test_step_zero_norms_are_the_gradient_of_the_first_minibatch(tmp_path):
    spec = RunSpec(**SMALL)
    run(spec, tmp_path)
    layers = load_results(tmp_path).layers.query("step == 0").sort_values("layer")
    rng_data, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec, rng_data)
    net = build_network(spec, data, rng_init)
    idx = rng_shuffle.permutation(len(data.X_train))[:16]
    g = net.gradients(data.X_train[idx], data.Y_train[idx])
    assert np.allclose(layers.grad_w_norm, [np.linalg.norm(d) for d in g.dW], rtol=1e-12)
    assert np.allclose(layers.grad_b_norm, [np.linalg.norm(d) for d in g.db], rtol=1e-12)
    assert np.allclose(layers.weight_norm, [np.linalg.norm(W) for W in net.weights], rtol=1e-12)
    # update_ratio = ‖ΔW‖/‖W‖ with ΔW = −η ∂C/∂W (no clipping, no decay)
    assert np.allclose(
        layers.update_ratio,
        [spec.lr * np.linalg.norm(d) / np.linalg.norm(W) for d, W in zip(g.dW, net.weights)],
        rtol=1e-6,
    )


def test_same_config_and_seed_give_identical_numbers(tmp_path):
    a = run(RunSpec(**SMALL), tmp_path / "a")
    b = run(RunSpec(**SMALL), tmp_path / "b")
    ra, rb = load_results(tmp_path / "a"), load_results(tmp_path / "b")
    pd.testing.assert_frame_equal(ra.layers, rb.layers)
    pd.testing.assert_frame_equal(ra.steps, rb.steps)
    assert a["final_loss"] == b["final_loss"]
    c = run(RunSpec(**{**SMALL, "seed": 1}), tmp_path / "c")
    assert c["final_loss"] != a["final_loss"]


def test_rerun_is_skipped_and_force_redoes_it(tmp_path):
    first = run(RunSpec(**SMALL), tmp_path)
    again = run(RunSpec(**SMALL), tmp_path)
    assert again["skipped"] and again["final_loss"] == first["final_loss"]
    forced = run(RunSpec(**SMALL), tmp_path, force=True)
    assert not forced["skipped"] and forced["final_loss"] == first["final_loss"]
    assert len(load_results(tmp_path).runs) == 1


EXPLODING = dict(
    depth=8,
    width=32,
    activation="relu",
    init="large",
    loss="softmax_ce",
    lr=1.0,
    epochs=2,
    n_samples=200,
    batch_size=16,
)


def test_divergence_is_recorded_as_data_without_warnings(tmp_path):
    row = run(RunSpec(**EXPLODING), tmp_path)  # pytest turns any RuntimeWarning into an error
    assert row["status"] == "diverged"
    assert "layer" in row["reason"] or "loss" in row["reason"]
    r = load_results(tmp_path)
    assert r.runs.status[0] == "diverged"
    assert r.steps.step.max() == row["diverged_step"] < row["n_steps"]
    last = r.steps[r.steps.step == row["diverged_step"]]
    assert not np.isfinite(last.grad_norm).all() or not np.isfinite(last.train_loss).all()
    assert np.isfinite(r.steps.query("step == 0").grad_norm).all()


def test_norm_clipping_tames_the_same_run(tmp_path):
    """The exploding run diverges unclipped; its norm-clipped twin trains to the end, and no
    logged update moves a weight matrix by more than η × threshold."""
    wild = run(RunSpec(**EXPLODING), tmp_path / "none")
    tame = run(RunSpec(**EXPLODING, clip="norm", clip_threshold=1.0), tmp_path / "norm")
    assert wild["status"] == "diverged" and tame["status"] == "ok" and np.isfinite(tame["final_loss"])
    r = load_results(tmp_path / "norm")
    assert r.steps.clipped.mean() > 0.5 and (r.steps.grad_norm[r.steps.clipped] > 1.0).all()
    moved = r.layers.update_ratio * r.layers.weight_norm  # ‖ΔW^l‖ = η · scale · ‖∂C/∂W^l‖ ≤ η · threshold
    assert (moved <= 1.0 * 1.0 * (1 + 1e-12)).all() and moved.max() > 0.1


def test_an_exception_in_a_run_is_recorded_as_failed_with_rows_kept(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = MLP.backward_

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 20:
            raise FloatingPointError("injected fault")
        return original(self, *a, **k)

    monkeypatch.setattr(MLP, "backward_", flaky)
    row = run(RunSpec(**{**SMALL, "log_every": 1}), tmp_path)
    assert row["status"] == "failed" and row["reason"] == "FloatingPointError: injected fault"
    r = load_results(tmp_path)
    assert r.runs.status[0] == "failed" and r.runs.steps_done[0] == 19
    assert list(r.steps.step) == list(range(19))  # the rows before the fault are kept
    monkeypatch.undo()
    again = run(RunSpec(**{**SMALL, "log_every": 1}), tmp_path)  # failed runs are retried
    assert again["status"] == "ok" and not again["skipped"]


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_a_normalised_residual_run_records_gamma_and_beta_norms(tmp_path, norm):
    spec = RunSpec(**{**SMALL, "depth": 3, "residual": True, "norm": norm, "init": "orthogonal"})
    row = run(spec, tmp_path)
    assert row["status"] == "ok"
    r = load_results(tmp_path)
    assert r.runs.residual[0] and r.runs.norm[0] == norm and r.runs.init[0] == "orthogonal"
    hidden, output = r.layers[r.layers.layer <= 3], r.layers[r.layers.layer == 4]
    assert hidden[["grad_gamma_norm", "grad_beta_norm"]].notna().all(axis=None)
    assert (hidden.grad_gamma_norm > 0).all() and (hidden.grad_beta_norm > 0).all()
    assert output[["grad_gamma_norm", "grad_beta_norm"]].isna().all(axis=None)  # null: no γ, β
    if norm == "batch":  # ∂C/∂b^l = 1ᵀ δ^l = 0 under batch norm (to rounding)
        assert (hidden.grad_b_norm < 1e-12 * hidden.grad_w_norm.max()).all()
    # step 0's γ, β norms are those of the first mini-batch's gradient
    rng_data, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec, rng_data)
    net = build_network(spec, data, rng_init)
    idx = rng_shuffle.permutation(len(data.X_train))[:16]
    g = net.gradients(data.X_train[idx], data.Y_train[idx])
    step0 = hidden[hidden.step == 0].sort_values("layer")
    np.testing.assert_allclose(step0.grad_gamma_norm, [np.linalg.norm(d) for d in g.dgamma], rtol=1e-12)
    np.testing.assert_allclose(step0.grad_beta_norm, [np.linalg.norm(d) for d in g.dbeta], rtol=1e-12)


def test_batch_norm_evaluates_with_running_estimates(tmp_path):
    """The logged training and test losses are evaluation-mode numbers (running estimates),
    the mini-batch loss a training-mode one."""
    spec = RunSpec(**{**SMALL, "norm": "batch", "epochs": 1})
    run(spec, tmp_path)
    steps = load_results(tmp_path).steps
    rng_data, rng_init, _ = rngs(spec.seed)
    data = load_data(spec, rng_data)
    net = build_network(spec, data, rng_init)  # step 0: running mean 0, variance 1
    assert steps.train_loss.iloc[0] == net.evaluate(data.X_train, data.Y_train)[0]
    assert steps.train_loss.iloc[0] != net.loss_value(data.X_train, data.Y_train)


@pytest.mark.parametrize("batch_size,steps_per_epoch", [(1, 160), ("full", 1), (50, 4)])
def test_batch_sizes(batch_size, steps_per_epoch):
    s = RunSpec(**{**SMALL, "batch_size": batch_size}).schedule()
    assert (s.n_train, s.n_test, s.batch_size) == (160, 40, 160 if batch_size == "full" else batch_size)
    assert s.steps_per_epoch == steps_per_epoch and s.n_steps == 6 * steps_per_epoch
    assert math.ceil(s.n_steps / s.log_every) >= min(50, s.n_steps)


def test_full_batch_gradient_descent_and_float32(tmp_path):
    row = run(RunSpec(**{**SMALL, "batch_size": "full", "dtype": "float32", "epochs": 60, "eval_every": 1}), tmp_path)
    r = load_results(tmp_path)
    assert row["status"] == "ok" and row["batch_size"] == 160 and r.runs.full_batch[0]
    assert r.runs.dtype[0] == "float32" and len(r.steps) == 60
    assert (np.diff(r.steps.train_loss) < 0).mean() > 0.9  # full-batch GD at a small lr descends


def test_weight_decay_shrinks_weights(tmp_path):
    base = run(RunSpec(**SMALL), tmp_path / "a")
    decayed = run(RunSpec(**{**SMALL, "weight_decay": 0.05}), tmp_path / "b")
    wa = load_results(tmp_path / "a").layers
    wb = load_results(tmp_path / "b").layers
    last = wa.step.max()  # noqa: F841 - read by the queries (@last)
    assert wb.query("step == @last").weight_norm.sum() < wa.query("step == @last").weight_norm.sum()
    assert base["run_id"] != decayed["run_id"]


def test_version_is_recorded(tmp_path):
    run(RunSpec(**SMALL), tmp_path)
    assert load_results(tmp_path).runs.mlplab_version[0] == mlplab.__version__


@pytest.mark.parametrize("clip", ["none", "norm"])
def test_a_finite_gradient_too_large_to_square_is_recorded_truly(clip):
    """‖g‖ ≈ 1e170 is finite though ‖g‖² overflows: the run goes on (it is not a NaN/Inf) and
    the row keeps the true norms, not inf."""
    from mlplab.train import Record, train

    spec = RunSpec(**{**SMALL, "clip": clip, "epochs": 1, "log_every": 1})
    rng_data, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec, rng_data)
    net = build_network(spec, data, rng_init)
    net.weights[-1] *= 1e170  # δ^(L-1) = δ^L W^L ⊙ σ' ~ 1e170
    sched = spec.schedule()
    rec = Record(net.sizes, sched.n_steps + 2)
    with np.errstate(over="ignore", invalid="ignore"):  # as run() does around training
        train(net, data, spec, rng_shuffle, sched, rec)
    assert rec.steps_done == sched.n_steps
    g0, layers0 = rec.steps["grad_norm"][0], rec.layers["grad_w_norm"][0]
    assert 1e160 < g0 < 1e180 and np.isfinite(layers0).all() and np.isfinite(rec.layers["grad_b_norm"][0]).all()
    scaled = np.concatenate([layers0, rec.layers["grad_b_norm"][0]]) / g0
    assert np.sqrt((scaled**2).sum()) == pytest.approx(1.0, rel=1e-9)  # the global norm is theirs
    if clip == "norm":  # clipping scaled the step to the threshold
        assert rec.layers["update_ratio"][0, -2] < 1.0


def test_a_data_file_is_identified_by_its_content_and_recorded_with_its_shape(tmp_path, rng):
    """Overwrite the .npz with other data and rerun: a new run, not the old results served as
    the new ones. The runs row records the file's sha256 and its real shape."""
    import hashlib

    path = tmp_path / "my.npz"
    np.savez(path, X=rng.standard_normal((60, 5)), labels=np.arange(60) % 4)
    spec = RunSpec(dataset="file", data_path=str(path), depth=1, width=4, epochs=1, batch_size=8)
    first = run(spec, tmp_path / "r")
    assert not first["skipped"] and first["data_digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (first["n_samples"], first["n_features"], first["n_classes"]) == (60, 5, 4)  # not the 1000/8/3 defaults
    assert run(spec, tmp_path / "r")["skipped"]  # same content: already done
    np.savez(path, X=rng.standard_normal((70, 5)), labels=np.arange(70) % 3)
    second = run(spec, tmp_path / "r")
    assert not second["skipped"] and second["run_id"] != first["run_id"]
    assert (second["n_samples"], second["n_classes"]) == (70, 3)
    runs = load_results(tmp_path / "r").runs
    assert len(runs) == 2 and runs.data_digest.nunique() == 2


def test_a_file_changed_after_planning_is_refused(tmp_path, rng):
    from mlplab.spec import ConfigError
    from mlplab.train import prepare

    path = tmp_path / "my.npz"
    np.savez(path, X=rng.standard_normal((60, 5)), labels=np.arange(60) % 4)
    planned = prepare(RunSpec(dataset="file", data_path=str(path), batch_size=8))
    np.savez(path, X=rng.standard_normal((60, 5)), labels=np.arange(60) % 4)
    with pytest.raises(ConfigError, match="the file changed since the run was planned"):
        run(planned, tmp_path / "r")
    assert not (tmp_path / "r" / "runs").exists()


@pytest.mark.parametrize("fail_at", ["layers", "steps"])
def test_a_crash_between_the_table_writes_leaves_the_run_uncommitted(tmp_path, monkeypatch, fail_at):
    """The one-row runs file is the commit and is written last: a crash while the large tables
    are written leaves no runs file, so the run counts as not done and the next command redoes
    it in full."""
    from mlplab import results as res

    spec = RunSpec(**SMALL)
    real = res.atomic_write_table

    def crashing(table, path):
        if f"/{fail_at}/" in str(path).replace("\\", "/"):
            raise OSError("disk full (injected)")
        return real(table, path)

    monkeypatch.setattr(res, "atomic_write_table", crashing)
    with pytest.raises(OSError, match="injected"):
        run(spec, tmp_path)
    assert not res.run_path(tmp_path, "runs", spec.run_id).exists()
    assert not res.is_done(tmp_path, spec.run_id)
    monkeypatch.setattr(res, "atomic_write_table", real)
    row = run(spec, tmp_path)
    assert not row["skipped"] and row["status"] == "ok"
    r = load_results(tmp_path)
    assert len(r.runs) == 1 and len(r.steps) == row["n_steps"] // row["log_every"] + (
        row["n_steps"] % row["log_every"] > 0
    )


# --- prepare and resolve: every refusal names its field, value and rule; the edges pass -------


def _refusal(**fields):
    from mlplab.spec import ConfigError
    from mlplab.train import prepare

    with pytest.raises(ConfigError) as e:
        prepare(RunSpec(**fields))
    return e.value.field, e.value.value, e.value.allowed


@pytest.mark.parametrize(
    "fields",
    [
        dict(n_samples=2, test_fraction=0.5, batch_size=1),  # 1 training and 1 test sample
        dict(n_samples=10, test_fraction=0.9, batch_size=1),  # 1 training sample
        dict(n_samples=200, batch_size=160),  # a batch of every training sample
        dict(n_samples=200, batch_size=1),  # no batch norm: batches of 1 are fine
        dict(n_samples=200, batch_size=1, norm="layer"),  # layer norm normalises each sample
        dict(n_samples=200, batch_size=2, norm="batch"),
        dict(n_samples=200, batch_size=79, norm="batch"),  # a last batch of 2
        dict(n_samples=200, batch_size=160, norm="batch"),  # one batch of all 160
        dict(n_samples=200, batch_size="full", norm="batch"),
    ],
)
def test_prepare_accepts_the_edge_cases(fields):
    from mlplab.train import prepare

    spec = prepare(RunSpec(**fields))
    assert spec == RunSpec(**fields)  # a generated data set adds nothing to the spec


@pytest.mark.parametrize(
    "fields,refusal",
    [
        (
            dict(n_samples=2, test_fraction=0.2),
            (
                "data.test_fraction",
                0.2,
                "splits the 2 samples into 2 for training and 0 for testing; expected at least 1 of each",
            ),
        ),
        (
            dict(n_samples=10, test_fraction=0.95),
            (
                "data.test_fraction",
                0.95,
                "splits the 10 samples into 0 for training and 10 for testing; expected at least 1 of each",
            ),
        ),
        (
            dict(n_samples=200, batch_size=161),
            ("train.batch_size", 161, "must be <= the 160 training samples (or 'full')"),
        ),
        (
            dict(n_samples=200, batch_size=1, norm="batch"),
            (
                "train.batch_size",
                1,
                "with norm=batch every mini-batch needs >= 2 samples; 160 training samples in batches of 1 leave a "
                "batch of 1",
            ),
        ),
        (
            dict(n_samples=200, batch_size=53, norm="batch"),
            (
                "train.batch_size",
                53,
                "with norm=batch every mini-batch needs >= 2 samples; 160 training samples in batches of 53 leave a "
                "last batch of 1",
            ),
        ),
        (
            dict(n_samples=201, batch_size=2, norm="batch"),
            (
                "train.batch_size",
                2,
                "with norm=batch every mini-batch needs >= 2 samples; 161 training samples in batches of 2 leave a "
                "last batch of 1",
            ),
        ),
    ],
)
def test_prepare_refuses_with_the_field_the_value_and_the_rule(fields, refusal):
    assert _refusal(**fields) == refusal


def test_resolve_fills_in_what_a_fixed_data_set_says_of_itself():
    from mlplab.data import DIGITS_SIZE
    from mlplab.train import resolve

    small = RunSpec(dataset="digits", n_samples=100)
    assert resolve(small) == RunSpec(dataset="digits", n_samples=100, n_features=64, n_classes=10)
    assert resolve(RunSpec(dataset="digits", n_samples=5000)).n_samples == DIGITS_SIZE
    assert resolve(RunSpec(dataset="blobs", n_samples=100)) == RunSpec(dataset="blobs", n_samples=100)


def test_resolve_passes_a_data_error_on_as_a_config_error(tmp_path):
    from mlplab.data import DataError, read_npz
    from mlplab.spec import ConfigError
    from mlplab.train import resolve

    missing = str(tmp_path / "nowhere.npz")
    with pytest.raises(DataError) as data_error:
        read_npz(missing)
    with pytest.raises(ConfigError) as e:
        resolve(RunSpec(dataset="file", data_path=missing))
    d = data_error.value
    assert (
        (e.value.field, e.value.value, e.value.allowed)
        == (d.field, d.value, d.problem)
        == ("data.path", missing, d.problem)
    )
    assert d.problem.startswith("no such file")


def test_resolve_refuses_a_file_changed_since_planning_naming_both_digests(tmp_path, rng):
    import hashlib

    from mlplab.spec import ConfigError
    from mlplab.train import resolve

    path = tmp_path / "my.npz"
    np.savez(path, X=rng.standard_normal((20, 3)), labels=np.arange(20) % 2)
    now = hashlib.sha256(path.read_bytes()).hexdigest()
    planned = "ab" * 32
    with pytest.raises(ConfigError) as e:
        resolve(RunSpec(dataset="file", data_path=str(path), data_digest=planned))
    assert (e.value.field, e.value.value) == ("data.path", str(path))
    assert e.value.allowed == (
        f"the file changed since the run was planned (sha256 {now[:12]}…, planned "
        f"{planned[:12]}…); run the command again"
    )
    # a digest planned for a data set that has none (not a file) is refused the same way
    with pytest.raises(ConfigError) as e:
        resolve(RunSpec(dataset="blobs", data_digest=planned))
    assert e.value.allowed.startswith(
        f"the file changed since the run was planned (sha256 -…, planned {planned[:12]}…)"
    )


def test_load_data_draws_with_the_generator_it_is_given():
    from mlplab.train import make_data

    spec = RunSpec(**SMALL)
    own = load_data(spec)
    assert np.array_equal(own.X_train, make_data(spec, rngs(spec.seed)[0]).X_train)  # the data stream
    assert not np.array_equal(own.X_train, make_data(spec, rngs(spec.seed)[1]).X_train)
    other = load_data(spec, np.random.default_rng(12345))
    assert np.array_equal(other.X_train, make_data(spec, np.random.default_rng(12345)).X_train)
    assert not np.array_equal(other.X_train, own.X_train)


# --- the runs row ---------------------------------------------------------------------------


def test_the_runs_row_records_what_made_its_numbers(tmp_path):
    """Python, NumPy, the BLAS NumPy calls (library, version, kernels) as threadpoolctl sees
    them in the process, and the commit of this checkout."""
    import platform
    import subprocess

    from threadpoolctl import threadpool_info

    from mlplab.provenance import COLUMNS, blas_of

    row = run(RunSpec(**SMALL), tmp_path)
    r = load_results(tmp_path).runs
    assert all(c in r.columns for c in COLUMNS) and r.loc[0, "blas"] == row["blas"]
    assert row["python_version"] == platform.python_version() and row["numpy_version"] == np.__version__
    libs = [i for i in threadpool_info() if i["user_api"] == "blas"]
    lib = next((i for i in libs if "numpy" in i["filepath"]), libs[0])
    assert row["blas"] == f"{lib['internal_api']} {lib['version']}" and row["blas_core"] == lib.get("architecture")
    repo = Path(mlplab.__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if (repo / ".git").exists() and head.returncode == 0:
        assert row["mlplab_commit"].split("-")[0] == head.stdout.strip()
    assert blas_of([{"user_api": "openmp"}, {"user_api": "blas", "internal_api": "mkl", "version": "2025.1"}]) == (
        "mkl 2025.1",
        None,
    )
    assert blas_of([]) == (None, None)
    scipys = {
        "user_api": "blas",
        "internal_api": "openblas",
        "version": "0.3.30",
        "architecture": "Haswell",
        "filepath": "/env/site-packages/scipy.libs/libscipy_openblas-1.so",
    }
    numpys = {**scipys, "version": "0.3.31", "filepath": "/env/site-packages/numpy.libs/libscipy_openblas64_-2.so"}
    assert blas_of([scipys, numpys]) == ("openblas 0.3.31", "Haswell")  # NumPy's, whichever was loaded first


def test_a_runs_file_written_before_provenance_was_recorded_still_reads(tmp_path):
    """Folders written before the provenance columns read as before, with those columns
    null, beside runs that have them; compaction merges both."""
    import pyarrow.parquet as pq

    from mlplab import results as res
    from mlplab.provenance import COLUMNS

    old = run(RunSpec(**SMALL), tmp_path)
    f = res.run_path(tmp_path, "runs", old["run_id"])
    pq.write_table(
        pq.read_table(f).drop_columns([c for c in COLUMNS if c not in ("mlplab_version", "numpy_version")]), f
    )
    new = run(RunSpec(**{**SMALL, "seed": 1}), tmp_path)
    res.compact(tmp_path)
    r = load_results(tmp_path).runs.set_index("run_id")
    assert pd.isna(r.loc[old["run_id"], "blas"])
    assert r.loc[new["run_id"], "blas"] == new["blas"] and r.loc[old["run_id"], "numpy_version"] == np.__version__


def test_the_runs_row_records_versions_timings_and_the_largest_gradient(tmp_path):
    import time

    from mlplab import results as res

    tables = []
    t0 = time.perf_counter()
    row = run(RunSpec(**{**SMALL, "log_every": 1}), tmp_path, tables=tables)
    elapsed = time.perf_counter() - t0
    assert row["skipped"] is False and row["sweep"] == ""
    assert row["numpy_version"] == np.__version__ and row["schema_version"] == res.SCHEMA_VERSION
    parts = [row["setup_time_s"], row["train_time_s"], row["write_time_s"]]
    assert all(0 < t for t in parts) and sum(parts) <= row["wall_time_s"] <= elapsed
    r = load_results(tmp_path)
    assert row["max_grad_norm"] == r.steps.grad_norm.max() > 0  # every step logged
    assert [sorted(t) for t in tables] == [["files", "layers", "runs", "spectra", "steps"]]
    assert tables[0]["spectra"] is None and "spectra" not in tables[0]["files"]  # no spectrum asked for: no file
    for name, version in tables[0]["files"].items():  # the version of each file written, to remove only that one
        assert version == res.file_id(res.run_path(tmp_path, name, row["run_id"]).stat())
    for name in ("runs", "steps", "layers"):
        pd.testing.assert_frame_equal(
            tables[0][name].to_pandas(),
            getattr(r, name)
            .iloc[:, : tables[0][name].num_columns]
            .pipe(lambda df, name=name: df[tables[0][name].column_names]),
            check_dtype=False,
            check_categorical=False,
        )


def test_a_run_that_fails_before_training_keeps_nan_results_and_its_setup_time(tmp_path, monkeypatch):
    import mlplab.train as tr

    def broken(*a, **k):
        raise RuntimeError("no network (injected)")

    monkeypatch.setattr(tr, "build_network", broken)
    row = run(RunSpec(**SMALL), tmp_path)
    assert row["status"] == "failed" and row["reason"] == "RuntimeError: no network (injected)"
    for k in ("final_loss", "final_accuracy", "final_test_loss", "final_test_accuracy"):
        assert isinstance(row[k], float) and math.isnan(row[k]), k
    assert row["setup_time_s"] >= 0 and row["train_time_s"] >= 0 and row["steps_done"] == 0


def test_a_non_finite_final_loss_marks_the_run_diverged_at_its_last_step(tmp_path, monkeypatch):
    monkeypatch.setattr(MLP, "evaluate", lambda self, X, Y: (math.inf, 0.0))
    row = run(RunSpec(**SMALL), tmp_path)
    assert (row["status"], row["diverged_step"], row["reason"]) == (
        "diverged",
        row["n_steps"],
        "final training loss is inf",
    )
    r = load_results(tmp_path)
    assert (r.runs.status[0], r.runs.diverged_step[0]) == ("diverged", row["n_steps"])


def test_training_runs_on_one_blas_thread(tmp_path, monkeypatch):
    """Runs are the unit of parallelism: each trains on one BLAS thread, whatever the process had."""
    import mlplab.train as tr

    seen = []
    real = tr.train_runs

    def spy(*a, **k):
        seen.append({d["internal_api"]: d["num_threads"] for d in tr.blas().info()})
        return real(*a, **k)

    monkeypatch.setattr(tr, "train_runs", spy)
    with tr.blas().limit(limits=2):
        run(RunSpec(**SMALL), tmp_path)
    assert seen and seen[0] and all(n == 1 for n in seen[0].values())


# --- the data and targets of a run ------------------------------------------------------------


def test_make_data_turns_data_errors_into_config_errors(tmp_path):
    from mlplab.data import DataError, read_npz
    from mlplab.spec import ConfigError
    from mlplab.train import make_data

    path = tmp_path / "nan.npz"
    np.savez(path, X=np.full((20, 3), np.nan), labels=np.arange(20) % 2)
    with pytest.raises(DataError) as data_error:
        read_npz(str(path))
    with pytest.raises(ConfigError) as e:
        make_data(RunSpec(dataset="file", data_path=str(path)))
    d = data_error.value
    assert (e.value.field, e.value.value, e.value.allowed) == (d.field, d.value, d.problem)
    with pytest.raises(ConfigError) as e:  # what validation would refuse first, refused here too
        make_data(RunSpec(dataset="nosuch"))
    assert (e.value.field, e.value.value) == ("data", "nosuch")  # the config group that picks it
    assert e.value.allowed.startswith("dataset='nosuch' is not registered; choose one of ['blobs', ")


@pytest.mark.parametrize(
    "loss,Y,problem",
    [
        ("bce", [[0.5, 0.5]] * 20, "targets for loss='bce' must be 0/1 (one-hot), got values outside {0, 1}"),
        ("softmax_ce", [[1.0, 1.0]] * 20, "targets for loss='softmax_ce' must be one-hot: every row must sum to 1"),
    ],
)
def test_load_data_refuses_targets_the_loss_is_not_defined_for(tmp_path, rng, loss, Y, problem):
    from mlplab.spec import ConfigError

    path = tmp_path / "soft.npz"
    np.savez(path, X=rng.standard_normal((20, 3)), Y=np.array(Y))
    spec = RunSpec(dataset="file", data_path=str(path), loss=loss, batch_size=4)
    with pytest.raises(ConfigError) as e:
        load_data(spec)
    assert (e.value.field, e.value.value, e.value.allowed) == ("loss", loss, problem)
    assert load_data(RunSpec(dataset="file", data_path=str(path), loss="mse", batch_size=4)).Y_train.shape == (16, 2)


@pytest.mark.parametrize("loss", ["mse", "bce", "softmax_ce"])
@pytest.mark.parametrize("norm", [None, "batch"])
def test_the_evaluation_of_both_sets_is_net_evaluate_on_each(loss, norm):
    from mlplab.train import Evaluation

    spec = RunSpec(**{**SMALL, "loss": loss, "norm": norm})
    rng_data, rng_init, _ = rngs(spec.seed)
    data = load_data(spec, rng_data)
    net = build_network(spec, data, rng_init)
    (train_loss, train_acc), (test_loss, test_acc) = Evaluation(net, data)()
    want_train, want_test = net.evaluate(data.X_train, data.Y_train), net.evaluate(data.X_test, data.Y_test)
    assert train_loss == pytest.approx(want_train[0], rel=1e-12) and train_acc == want_train[1]
    assert test_loss == pytest.approx(want_test[0], rel=1e-12) and test_acc == want_test[1]
    assert 0 < train_acc < 1 and 0 < test_acc < 1 and train_loss != test_loss


@pytest.mark.parametrize("clip,threshold", [("norm", 0.05), ("value", 0.005)])
def test_how_often_a_run_logs_does_not_change_its_training(tmp_path, clip, threshold):
    """The steps between logged rows take the same path (clipping included) as logged ones."""
    base = {**SMALL, "clip": clip, "clip_threshold": threshold, "eval_every": 10}
    every = run(RunSpec(**base, log_every=1), tmp_path / "every")
    sparse = run(RunSpec(**base, log_every=5), tmp_path / "sparse")
    assert every["status"] == sparse["status"] == "ok"
    assert every["final_loss"] == sparse["final_loss"] and every["final_test_loss"] == sparse["final_test_loss"]
    a, b = load_results(tmp_path / "every").steps, load_results(tmp_path / "sparse").steps
    assert a.clipped.all() and len(b) < len(a)
    common = a[a.step.isin(b.step)].reset_index(drop=True)
    for col in ("grad_norm", "batch_loss", "train_loss"):
        np.testing.assert_array_equal(common[col], b[col])


def test_a_global_norm_beyond_every_layers_is_named_as_such(tmp_path, monkeypatch):
    """‖g‖ can overflow to inf though each layer's norm is finite (two of ~1e308): the reason
    then names the global norm and the step."""
    import mlplab.train as tr

    real, calls = tr.Step.gradients, []

    def overflowing(self, X, Y):
        calls.append(1)
        g = real(self, X, Y)
        return math.inf if len(calls) == 4 else g

    monkeypatch.setattr(tr.Step, "gradients", overflowing)
    row = run(RunSpec(**{**SMALL, "log_every": 2}), tmp_path)
    assert (row["status"], row["diverged_step"], row["reason"]) == ("diverged", 3, "gradient norm is inf at step 3")


def test_a_non_finite_training_loss_at_an_evaluation_is_named_with_its_step(tmp_path, monkeypatch):
    import mlplab.train as tr

    real, calls = tr.Evaluation.__call__, []

    def failing(self):
        calls.append(1)
        (loss, acc), test = real(self)
        return ((math.nan if len(calls) == 3 else loss), acc), test

    monkeypatch.setattr(tr.Evaluation, "__call__", failing)
    row = run(RunSpec(**{**SMALL, "eval_every": 4}), tmp_path)
    assert (row["status"], row["diverged_step"], row["reason"]) == ("diverged", 8, "training loss is nan at step 8")


def test_one_batch_of_every_training_sample_is_full_batch_descent(tmp_path):
    """batch_size = n_train and batch_size = 'full' train on the same batch, unshuffled: the
    same numbers to the last bit (only the config differs)."""
    whole = run(RunSpec(**{**SMALL, "batch_size": 160}), tmp_path / "a")
    full = run(RunSpec(**{**SMALL, "batch_size": "full"}), tmp_path / "b")
    assert whole["run_id"] != full["run_id"] and (whole["full_batch"], full["full_batch"]) == (False, True)
    for k in ("final_loss", "final_accuracy", "final_test_loss", "max_grad_norm", "n_steps"):
        assert whole[k] == full[k], k
    a, b = load_results(tmp_path / "a").layers, load_results(tmp_path / "b").layers
    np.testing.assert_array_equal(a.grad_w_norm, b.grad_w_norm)


def test_a_memory_probe_reuses_a_recent_reading_only(monkeypatch):
    from mlplab import resources

    readings = iter([1000, 2000, 3000])
    monkeypatch.setattr(resources, "read_available", lambda: next(readings))
    clock = [100.0]
    monkeypatch.setattr(resources.time, "monotonic", lambda: clock[0])
    probe = resources.MemoryProbe(max_age=1.0)
    assert probe.available() == 1000  # the first call reads
    clock[0] = 100.9
    assert probe.available() == 1000  # younger than max_age: reused
    clock[0] = 101.0
    assert probe.available() == 2000  # max_age old: read again
    assert resources.MemoryProbe().available() == 3000  # another probe reads for itself


def test_the_memory_estimate_follows_the_schedule_and_the_layer_sizes():
    """resources.estimate takes the batches and rows from RunSpec.schedule() and the sizes from
    RunSpec.layer_sizes(): a run of more logged steps needs more, and so does a deeper one."""
    from mlplab import resources

    base = RunSpec()
    e = resources.estimate(base)
    sched, sizes = base.schedule(), base.layer_sizes()
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    assert e["parameters"] == 3 * n_params * 8  # params, grads and their squares (a small network)
    every = dict(log_every=5, eval_every="log")
    assert resources.estimate(RunSpec(epochs=40, **every))["records"] > resources.estimate(RunSpec(**every))["records"]
    assert resources.estimate(RunSpec(depth=3))["parameters"] == 3 * (n_params + 32 * 32 + 32) * 8
    assert e["records"] >= 2 * sched.rows * (len(sizes)) * resources.LOGGED_COLUMNS * 8
    assert resources.estimate(RunSpec(norm="layer"))["parameters"] == 3 * (n_params + 2 * 32 * 2) * 8


def test_a_runner_reads_the_free_memory_once_for_its_runs_of_a_second(tmp_path, monkeypatch):
    """The runs of one Runner share its memory reading (a second old at most); run() alone reads
    it afresh each time."""
    from mlplab import resources
    from mlplab.train import Runner

    reads = []
    monkeypatch.setattr(resources, "read_available", lambda: reads.append(1) or 2**40)
    runner = Runner(tmp_path / "r", "t", False)
    for seed in (0, 1):
        runner(RunSpec(**{**SMALL, "epochs": 1, "seed": seed}))
    assert len(reads) == 1
    run(RunSpec(**{**SMALL, "epochs": 1, "seed": 2}), tmp_path / "r")
    assert len(reads) == 2
    monkeypatch.setattr(resources, "read_available", lambda: 1000)  # too little for any run
    with pytest.raises(mlplab.ConfigError, match="of memory"):
        run(RunSpec(**{**SMALL, "epochs": 1, "seed": 3}), tmp_path / "r")


def test_a_network_is_sized_by_its_data_even_for_a_spec_not_resolved():
    """build_network takes the features and classes from the data (a spec not yet resolved
    says 8 and 3 for the 8x8 digits' 64 and 10)."""
    spec = RunSpec(dataset="digits", depth=1, width=5, n_samples=100, epochs=1)
    data = load_data(spec, rngs(0)[0])
    net = build_network(spec, data, np.random.default_rng(0))
    assert net.sizes == [64, 5, 10] and spec.layer_sizes() == [8, 5, 3]


def test_every_logged_update_ratio_is_the_step_its_row_states(tmp_path):
    """At every logged step of an SGD run with norm clipping: ‖ΔW^l‖ = ‖W^l‖ · update_ratio is
    η · s · ‖∂C/∂W^l‖ with the row's own numbers, s = threshold / ‖g‖ where clipping acted and 1
    elsewhere — a second check of the ratio, from the tables alone, at clipped and unclipped steps."""
    spec = RunSpec(**SMALL, lr=2.0, clip="norm", clip_threshold=0.4, log_every=1)  # a third of the steps unclipped
    run(spec, tmp_path)
    r = load_results(tmp_path)
    rows = r.layers.merge(r.steps[["step", "grad_norm", "clipped"]], on="step")
    scale = np.where(rows.clipped, 0.4 / rows.grad_norm, 1.0)
    np.testing.assert_allclose(rows.update_ratio * rows.weight_norm, spec.lr * scale * rows.grad_w_norm, rtol=1e-6)
    assert rows.clipped.any() and not rows.clipped.all()


def test_a_full_batch_is_the_training_set_in_its_order_and_draws_nothing():
    from mlplab.train import batches, stacked_batches

    spec = RunSpec(**{**SMALL, "batch_size": 160})  # 160 training samples: one batch of all
    data = load_data(spec)
    sched = spec.schedule()
    assert sched.batch_size == sched.n_train == 160
    rng = np.random.default_rng(0)
    (X, Y), *rest = batches(data, sched, rng)
    assert not rest and X is data.X_train and Y is data.Y_train
    assert rng.random() == np.random.default_rng(0).random()  # its state untouched
    Xs, Ys = np.stack([data.X_train] * 2), np.stack([data.Y_train] * 2)
    rngs2 = [np.random.default_rng(1), np.random.default_rng(2)]
    (Xb, Yb), *rest = stacked_batches(Xs, Ys, sched, rngs2)
    assert not rest and Xb is Xs and Yb is Ys
    assert [g.random() for g in rngs2] == [np.random.default_rng(s).random() for s in (1, 2)]


def test_train_raises_diverged_with_the_runs_reason(tmp_path):
    """``train`` (one run, the step-by-step API) stops a diverging run with the reason its runs
    row gives, and keeps the rows up to that step."""
    from mlplab.record import Record
    from mlplab.train import Diverged, train

    spec = RunSpec(depth=4, activation="relu", loss="bce", epochs=3, n_samples=200, lr=2.0)
    row = run(spec, tmp_path)
    assert row["status"] == "diverged"
    rng_data, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec, rng_data)
    net = build_network(spec, data, rng_init)
    sched = spec.schedule()
    rec = Record(net.sizes, sched.rows)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(Diverged) as e:
        train(net, data, spec, rng_shuffle, sched, rec)
    assert str(e.value) == row["reason"]
    assert int(rec.steps["step"][rec.n_steps_rows - 1]) == row["diverged_step"]


@pytest.mark.parametrize("full", [True, False])
def test_a_full_disk_stops_the_runs_after_it_and_another_fault_only_its_own(tmp_path, monkeypatch, full):
    import errno

    from mlplab.train import Runner

    fault = OSError(errno.ENOSPC, "No space left on device") if full else OSError(errno.EACCES, "Permission denied")
    finish, finished = Runner.finish, []

    def failing(self, st, tables=None):
        finished.append(st.spec.seed)
        if st.spec.seed == 0:
            raise fault
        return finish(self, st, tables)

    monkeypatch.setattr(Runner, "finish", failing)
    specs = [RunSpec(**{**SMALL, "epochs": 1, "width": 8 if s < 3 else 9}, seed=s) for s in range(6)]  # two stacks
    out = Runner(tmp_path, "t", False).many(specs)
    assert out[0] is fault
    if full:  # nothing is written after a full disk: the later runs, of its stack and after, get its error
        assert all(x is fault for x in out[1:]) and finished == [0]
    else:
        assert [x["status"] for x in out[1:]] == ["ok"] * 5 and finished == list(range(6))


def test_a_stacks_training_time_is_shared_by_its_runs(tmp_path):
    import time

    from mlplab.train import Runner

    specs = [RunSpec(**SMALL, seed=s) for s in range(4)]
    t0 = time.perf_counter()
    out = Runner(tmp_path, "t", False).many(specs)
    elapsed = time.perf_counter() - t0
    shares = [row["train_time_s"] for row in out]
    assert len(set(shares)) == 1 and 0 < sum(shares) < elapsed


def test_run_many_with_force_trains_a_committed_run_again(tmp_path):
    from mlplab import run_many

    spec = RunSpec(**{**SMALL, "epochs": 1})
    (first,) = run_many([spec], tmp_path)
    (kept,) = run_many([spec], tmp_path)
    (again,) = run_many([spec], tmp_path, force=True)
    assert (first["skipped"], kept["skipped"], again["skipped"]) == (False, True, False)
    assert again["final_loss"] == first["final_loss"]


def test_a_run_builds_and_trains_its_network_on_one_blas_thread(tmp_path, monkeypatch):
    """One BLAS thread per run: a sweep's workers each run one (their numbers do not depend on
    how many there are), and building an orthogonal network's QR is no exception."""
    import mlplab.train as tr

    threads = {}

    def spy(name, f):
        def counted(*args, **kwargs):
            threads.setdefault(name, set()).update(
                p["num_threads"] for p in tr.blas().info() if p["user_api"] == "blas"
            )
            return f(*args, **kwargs)

        monkeypatch.setattr(tr, name, counted)

    spy("build_network", tr.build_network)
    spy("train_runs", tr.train_runs)
    with tr.blas().limit(limits=2, user_api="blas"):
        assert run(RunSpec(**{**SMALL, "epochs": 1}, init="orthogonal"), tmp_path)["status"] == "ok"
    assert threads == {"build_network": {1}, "train_runs": {1}}


def test_weights_that_overflow_as_they_are_drawn_are_a_divergence_not_a_failure(tmp_path):
    """σ_b = 1.7e308: the entries of b = σ_b N(0, 1) beyond |N| > 1.06 overflow to ±inf as they are drawn,
    silently (no warning: divergence is data); the run diverges at its first step."""
    spec = RunSpec(**{**SMALL, "epochs": 1}, sigma_b=1.7e308)
    rng_data, rng_init, _ = rngs(spec.seed)
    with np.errstate(over="ignore"):
        net = build_network(spec, load_data(spec, rng_data), rng_init)
    assert sum(np.isinf(b).sum() for b in net.biases) > 1  # the draw overflows (so a warning would be raised)
    row = run(spec, tmp_path)
    assert (row["status"], row["diverged_step"]) == ("diverged", 0)

"""The spectra table: the singular values of each run's input–output Jacobian at the steps asked
for, equal to those of ``mlplab.jacobian`` of the network at that step, written, compacted and
read back like the other tables."""

import numpy as np
import pandas as pd
import pytest

import mlplab
from mlplab import RunSpec, load_results, run
from mlplab import results as res
from mlplab.jacobian import singular_values
from mlplab.record import Record, Spectra
from mlplab.resources import estimate
from mlplab.spec import ConfigError, validate
from mlplab.train import build_network, load_data, prepare, rngs, train

SMALL = dict(depth=3, width=6, n_features=5, n_samples=60, batch_size=16, epochs=3, activation="tanh", sigma_b=0.3)


def by_step(spectra: pd.DataFrame) -> dict[int, np.ndarray]:
    """step -> the singular values (samples, r) in the table's order."""
    out = {}
    for s, g in spectra.groupby("step"):
        g = g.sort_values(["sample", "index"])
        out[int(s)] = g.singular_value.to_numpy().reshape(g["sample"].nunique(), -1)
    return out


def replay(spec: RunSpec):
    """The run of ``spec`` done here step by step: its data, its trained network and the spectra it logs."""
    spec = prepare(spec)
    _, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec)
    sched = spec.schedule()
    net = build_network(spec, data, rng_init)
    initial = singular_values(mlplab.jacobian(net, data.X_train[: spec.spectrum_samples]))
    spectra = Spectra(data.X_train[: spec.spectrum_samples], sched.spectrum_every)
    train(net, data, spec, rng_shuffle, sched, Record(spec.layer_sizes(), sched.rows, spec.normalised), spectra)
    return data, net, initial, spectra


@pytest.mark.parametrize("norm,residual", [("none", False), ("layer", False), ("none", True)])
def test_the_spectrum_is_recorded_at_step_0_every_n_steps_and_after_the_last_update(tmp_path, norm, residual):
    spec = RunSpec(**SMALL, norm=norm, residual=residual, spectrum_every=3, spectrum_samples=3)
    row = run(spec, tmp_path)
    assert row["status"] == "ok" and row["spectrum_every"] == 3
    n_steps = row["n_steps"]  # 3 epochs of 3 batches (48 training samples, 16 a batch)
    spectra = load_results(tmp_path).spectra
    assert n_steps == 9 and sorted(spectra.step.unique()) == [0, 3, 6, 9]
    values = by_step(spectra)
    assert all(v.shape == (3, 5) for v in values.values())  # 3 samples, min(width 6, n_0 5) values
    for v in values.values():
        assert (v >= 0).all() and (np.diff(v, axis=1) <= 0).all()  # largest first
    data, net, initial, spectra = replay(spec)
    assert [s for s, _ in spectra.logged] == [0, 3, 6, 9]  # train logs into the spectra it is given
    X = data.X_train[:3]
    # step 0: the initial network's Jacobian; the last: the trained network's (the BLAS may use
    # other threads here than in the run, hence not bit for bit)
    np.testing.assert_allclose(values[0], initial, rtol=1e-10)
    np.testing.assert_allclose(values[9], singular_values(mlplab.jacobian(net, X)), rtol=1e-10)
    assert not np.allclose(values[0], values[9], rtol=1e-3)  # training moved them


def test_log_records_it_at_every_logged_step(tmp_path):
    spec = RunSpec(**SMALL, log_every=2, spectrum_every="log", spectrum_samples=2)
    row = run(spec, tmp_path)
    r = load_results(tmp_path)
    assert row["spectrum_every"] == 2
    assert row["n_steps"] % 2 == 1 and sorted(r.spectra.step.unique()) == sorted(r.steps.step)
    again = run(RunSpec(**{**SMALL, "epochs": 2}, log_every=2, spectrum_every="log", spectrum_samples=2), tmp_path)
    steps = load_results(tmp_path).spectra.query(f"run_id == '{again['run_id']}'").step.unique()
    assert again["n_steps"] == 6 and sorted(steps) == [0, 2, 4, 6]  # n_steps on the cadence: the trained net too


def test_a_cadence_past_the_run_records_the_initial_network_only(tmp_path):
    row = run(RunSpec(**{**SMALL, "batch_size": "full", "epochs": 1}, spectrum_every=2), tmp_path)
    assert row["n_steps"] == 1 and list(load_results(tmp_path).spectra.step.unique()) == [0]


def test_the_samples_are_the_first_training_samples_at_most_the_training_set(tmp_path):
    spec = RunSpec(
        **{**SMALL, "n_samples": 10, "batch_size": "full", "epochs": 1}, spectrum_every=1, spectrum_samples=50
    )
    run(spec, tmp_path)
    spectra = load_results(tmp_path).spectra
    assert sorted(spectra["sample"].unique()) == list(range(8))  # 8 training samples of 10
    data = load_data(prepare(spec))
    net = build_network(prepare(spec), data, rngs(spec.seed)[1])
    np.testing.assert_allclose(by_step(spectra)[0], singular_values(mlplab.jacobian(net, data.X_train)), rtol=1e-10)


def test_off_by_default_no_file_and_the_other_numbers_unchanged(tmp_path):
    on, off = tmp_path / "on", tmp_path / "off"
    run(RunSpec(**SMALL, spectrum_every=2), on)
    run(RunSpec(**SMALL), off)
    assert not (off / "spectra").exists()
    a, b = load_results(on), load_results(off)
    assert len(a.spectra) > 0 and len(b.spectra) == 0 and list(b.spectra.columns) == res.SPECTRA_SCHEMA.names
    # recording the spectrum draws nothing and changes nothing else: every metric is the same
    for name, key in (("steps", ["step"]), ("layers", ["step", "layer"])):
        x, y = (getattr(t, name).sort_values(key).reset_index(drop=True) for t in (a, b))
        metrics = [c.name for c in res.SCHEMAS[name] if c.name != "run_id"]
        pd.testing.assert_frame_equal(x[metrics], y[metrics])
    cols = ["final_loss", "final_accuracy", "final_test_loss", "max_grad_norm"]
    pd.testing.assert_frame_equal(a.runs[cols], b.runs[cols])


def test_a_sweep_compacts_the_spectra_and_reads_them_back(tmp_path):
    from mlplab.sweep import run_chunk

    specs = [RunSpec(**SMALL, seed=s, spectrum_every=3 if s != 1 else None, spectrum_samples=2) for s in range(3)]
    run_chunk(specs, tmp_path, "t", False)
    chunked = load_results(tmp_path).spectra
    assert (
        list((tmp_path / "spectra").glob("*.parquet")) and len(chunked) == 2 * 4 * 2 * 5
    )  # 2 runs × steps 0, 3, 6, 9 × 2 × 5
    assert set(chunked.run_id.astype(str)) == {specs[0].run_id, specs[2].run_id}
    assert all(p.name.startswith(res.COMPACT) for p in (tmp_path / "spectra").iterdir())  # its runs' own files gone
    res.compact(tmp_path)
    assert [p.name.startswith(res.COMPACT) for p in (tmp_path / "spectra").iterdir()] == [True]
    again = load_results(tmp_path).spectra
    key = ["run_id", "step", "sample", "index"]
    norm = lambda df: df.astype({"run_id": str}).sort_values(key).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(norm(chunked), norm(again))


def test_a_generation_without_spectra_reads_as_none(tmp_path):
    """A generation of runs without spectra has no spectra file; beside one that has, each run
    reads its own rows."""
    run(RunSpec(**SMALL, seed=0), tmp_path)
    res.compact(tmp_path)
    run(RunSpec(**SMALL, seed=1, spectrum_every=5), tmp_path)
    r = load_results(tmp_path)
    assert len(r.runs) == 2 and set(r.spectra.run_id.astype(str)) == {RunSpec(**SMALL, seed=1, spectrum_every=5).run_id}


def test_duckdb_reads_the_spectra_table(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    run(RunSpec(**SMALL, spectrum_every=3, spectrum_samples=2), tmp_path)
    res.compact(tmp_path)
    got = duckdb.sql(
        f"SELECT x.step, count(*) AS n, max(x.singular_value) AS top FROM '{tmp_path}/runs/*.parquet' r "
        f"JOIN '{tmp_path}/spectra/*.parquet' x USING (run_id) GROUP BY ALL ORDER BY x.step"
    ).df()
    spectra = load_results(tmp_path).spectra
    assert list(got.step) == [0, 3, 6, 9] and list(got.n) == [10] * 4
    np.testing.assert_array_equal(got.top, spectra.groupby("step").singular_value.max().to_numpy())


def test_batch_norm_with_a_spectrum_is_refused_in_one_line():
    with pytest.raises(ConfigError) as e:
        validate(RunSpec(norm="batch", spectrum_every=10))
    assert str(e.value) == (
        "invalid config: train.spectrum_every=10: must be null with norm=batch (a sample's a^l depends on its "
        "batch: it has no Jacobian of its own)"
    )
    validate(RunSpec(norm="batch"))  # without a spectrum: fine


def test_a_jacobian_that_is_not_finite_gives_nan_for_that_sample():
    J = np.random.default_rng(0).standard_normal((3, 4, 2))
    J[1, 2, 0] = np.inf
    sv = singular_values(J)
    assert sv.shape == (3, 2) and np.isnan(sv[1]).all() and np.isfinite(sv[[0, 2]]).all()
    np.testing.assert_allclose(sv[0], np.linalg.svd(J[0], compute_uv=False), rtol=1e-14)


def test_the_memory_estimate_counts_the_jacobian():
    off = estimate(prepare(RunSpec(depth=4, width=64, n_features=32)))
    on = estimate(prepare(RunSpec(depth=4, width=64, n_features=32, spectrum_every=10, spectrum_samples=8)))
    assert off["spectra"] == 0
    assert on["spectra"] >= 3 * 8 * 32 * 64 * 8  # J, the next layer's and the SVD's copy: (8, 64, 32) float64 each
    assert {k: v for k, v in on.items() if k != "spectra"} == {k: v for k, v in off.items() if k != "spectra"}


def test_a_generation_without_spectra_before_one_with_them_is_passed_over(tmp_path):
    """Generations are read in order: one without a spectra file (its runs logged none) is
    passed over, and the later ones' spectra are still read."""
    from mlplab.sweep import run_chunk

    run_chunk([RunSpec(**SMALL, seed=0)], tmp_path, "t", False)
    with_spectra = RunSpec(**SMALL, seed=1, spectrum_every=5)
    run_chunk([with_spectra], tmp_path, "t", False)
    assert len(res.Catalogue.of(tmp_path).generations) == 2
    assert set(load_results(tmp_path).spectra.run_id.astype(str)) == {with_spectra.run_id}


def test_a_file_gone_between_listing_and_reading_is_named(tmp_path):
    """A run's steps file, or a generation's spectra file, missing when read while its runs file
    is gone too (moved into a newer generation since the folder was listed): Vanished, naming it."""
    from mlplab.sweep import run_chunk

    spec = RunSpec(**SMALL, seed=0)
    run(spec, tmp_path / "own")
    cat = res.Catalogue.of(tmp_path / "own")
    steps = res.run_path(tmp_path / "own", "steps", spec.run_id)
    steps.unlink()
    res.run_path(tmp_path / "own", "runs", spec.run_id).unlink()
    with pytest.raises(res.Vanished) as e:
        res._read_table(cat, "steps", res.SCHEMAS["steps"])
    assert str(e.value) == f"results file={str(steps)!r} is gone"
    run_chunk([spec], tmp_path / "gen", "t", False)  # no spectra: the generation has no spectra file
    cat = res.Catalogue.of(tmp_path / "gen")
    (g,) = cat.generations  # its runs file
    g.unlink()
    with pytest.raises(res.Vanished) as e:
        res._read_table(cat, "spectra", res.SCHEMAS["spectra"])
    assert str(e.value) == f"results file={str(tmp_path / 'gen' / 'spectra' / g.name)!r} is gone"

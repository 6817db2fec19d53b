"""How a sweep's runs are cut into chunks for its workers (``mlplab.sweep.chunks``)."""

import pytest

from mlplab.spec import RunSpec
from mlplab.sweep import chunks, cost

SPECS = [
    RunSpec(depth=d, width=w, epochs=e, seed=s) for d in (1, 4, 8) for w in (8, 32) for e in (1, 3) for s in (0, 1)
]


def flat(parts):
    return [s for part in parts for s in part]


@pytest.mark.parametrize("min_seconds", [0.0, 0.05, 0.3, 100.0])
@pytest.mark.parametrize("workers", [1, 2, 16])
def test_every_run_once_longest_first_and_no_chunk_below_the_minimum(workers, min_seconds):
    parts = chunks(SPECS, workers, min_seconds=min_seconds)
    runs = flat(parts)
    assert sorted(s.run_id for s in runs) == sorted(s.run_id for s in SPECS)
    costs = [cost(s) for s in runs]
    assert costs == sorted(costs, reverse=True)
    assert all(sum(map(cost, part)) >= min_seconds for part in parts[:-1])  # the last takes what is left


def test_the_minimum_decides_how_finely_a_sweep_of_short_runs_is_cut():
    assert sum(map(cost, SPECS)) < 100
    assert len(chunks(SPECS, 2, min_seconds=100.0)) == 1
    assert len(chunks(SPECS, 2, min_seconds=0.0)) > len(chunks(SPECS, 2, min_seconds=0.3)) > 1


def test_chunks_shrink_as_the_work_left_to_hand_out_shrinks():
    parts = chunks(SPECS * 4, 2, per_worker=2, min_seconds=0.0)
    work = [sum(map(cost, part)) for part in parts]
    assert work[0] > work[-1] and work[0] >= sum(work) / (2 * 2)  # a quarter of it: 2 workers x 2


def test_no_runs_no_chunks():
    assert chunks([], 4) == []


LAUNCHERS = ["local", "dask"]


def launcher(name, **settings):
    from hydra_plugins.mlplab_sweeps.dask_launcher import DaskLauncher
    from hydra_plugins.mlplab_sweeps.local_launcher import LocalLauncher

    return {"local": LocalLauncher, "dask": DaskLauncher}[name](**settings)


@pytest.mark.parametrize("name", LAUNCHERS)
@pytest.mark.parametrize(
    "field,value,rule",
    [
        ("n_workers", 0, "an integer >= 1, or null"),
        ("n_workers", -2, "an integer >= 1, or null"),
        ("n_workers", 1.5, "an integer >= 1, or null"),
        ("chunks_per_worker", 0, "an integer >= 1"),
        ("chunks_per_worker", True, "an integer >= 1"),
        ("min_chunk_seconds", -0.1, "a number >= 0"),
        ("min_chunk_seconds", float("nan"), "a number >= 0"),
        ("min_chunk_seconds", float("inf"), "a number >= 0"),
    ],
)
def test_a_launcher_refuses_a_bad_setting_naming_it(name, field, value, rule):
    with pytest.raises(ValueError) as e:
        launcher(name, **{field: value})
    assert str(e.value) == f"hydra.launcher.{field}={value!r}: must be {rule}" + (
        " for one per core" if field == "n_workers" else " (seconds)" if field == "min_chunk_seconds" else ""
    )


@pytest.mark.parametrize("name", LAUNCHERS)
def test_a_launcher_takes_its_settings(name):
    chosen = launcher(name, n_workers=3, chunks_per_worker=2, min_chunk_seconds=0)
    assert (chosen.n_workers, chosen.chunks_per_worker, chosen.min_chunk_seconds) == (3, 2, 0)
    default = launcher(name)
    assert (default.n_workers, default.chunks_per_worker, default.min_chunk_seconds) == (None, 8, 0.3)

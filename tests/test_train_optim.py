"""Optimisers and schedules inside a run: what is recorded is what was applied.

The update ratio a run logs, ‖ΔW^l‖/‖W^l‖, is checked against the change of the weights that the
step made (measured here around each update), for every optimiser, with clipping, decay and a
schedule; the learning rate column against the schedule's formula; the runs table against the
spec; the memory estimate against the state the optimiser allocates; a results folder written
before there were optimisers is read with today's columns filled in, and resumed.
"""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplab import RunSpec, load_results, resources, run
from mlplab import results as res
from mlplab.lr_schedule import LearningRate
from mlplab.network import MLP
from mlplab.optim import OPTIMISERS
from mlplab.record import Record
from mlplab.spec import BEFORE, ConfigError
from mlplab.train import Step, build_network, load_data, prepare, rngs, train

SMALL = dict(depth=2, width=8, n_samples=120, epochs=3, batch_size=16, log_every=1)
LR = {"sgd": 0.5, "momentum": 0.05, "nesterov": 0.05, "adam": 1e-2, "adamw": 1e-2, "rmsprop": 1e-2}


def trained(spec, monkeypatch):
    """Train ``spec`` as ``mlplab.run`` does, keeping the weights before and after each update."""
    spec = prepare(spec)
    rng_data, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec, rng_data)
    net = build_network(spec, data, rng_init)
    sched = spec.schedule()
    rec = Record(net.sizes, sched.rows)
    moves, lrs = [], []
    update = Step.update

    def watched(self, scale):
        before = [W.copy() for W in self.net.weights]
        lrs.append(self.opt.lr)
        update(self, scale)
        moves.append([np.linalg.norm(W - B) / np.linalg.norm(B) for W, B in zip(self.net.weights, before)])

    monkeypatch.setattr(Step, "update", watched)
    train(net, data, spec, rng_shuffle, sched, rec)
    rec.close()
    return rec, np.asarray(moves), np.asarray(lrs), sched


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"clip": "norm", "clip_threshold": 0.05, "weight_decay": 0.01},
        {"clip": "value", "clip_threshold": 0.01, "lr_schedule": "cosine", "warmup_steps": 4},
    ],
    ids=["plain", "norm clip + decay", "value clip + cosine warmup"],
)
def test_the_logged_update_ratio_is_the_change_the_step_made(name, extra, monkeypatch):
    """‖ΔW^l‖/‖W^l‖ in the layers table = the weights' actual change around that update, for
    every optimiser: after clipping, decay, momentum or Adam's scaling, at the schedule's η."""
    spec = RunSpec(**SMALL, optim=name, lr=LR[name], **extra)
    rec, moves, lrs, sched = trained(spec, monkeypatch)
    n = rec.n_steps_rows
    steps = rec.steps["step"][:n]
    assert list(steps) == list(range(sched.n_steps)) and len(moves) == sched.n_steps
    logged = rec.layers["update_ratio"][:n]
    # the two agree to the rounding of W_after − W_before (~1e-16 ‖W‖): relative 1e-9 at these ratios
    assert np.allclose(logged, moves, rtol=1e-9, atol=1e-15)
    assert (moves[1:] > 0).all()
    assert np.array_equal(rec.steps["learning_rate"][:n], lrs)  # the η recorded is the η applied
    if "clip" in extra:
        assert rec.steps["clipped"][:n].any()


@pytest.mark.parametrize(
    "schedule,warmup,gamma,step_size",
    [
        ("constant", 5, 0.1, None),
        ("cosine", 0, 0.1, None),
        ("cosine", 7, 0.1, None),
        ("step", 3, 0.5, 4),
        ("step", 0, 0.1, None),
    ],
)
def test_the_learning_rate_column_is_the_schedule(tmp_path, schedule, warmup, gamma, step_size):
    """η at every logged step: linear warmup from 0, then the schedule, written out here."""
    spec = RunSpec(
        **SMALL,
        lr_schedule=schedule,
        warmup_steps=warmup,
        lr_gamma=gamma,
        lr_step_size=step_size,
        optim="adam",
        lr=0.01,
    )
    row = run(spec, tmp_path)
    steps = load_results(tmp_path).steps.sort_values("step")
    n = row["n_steps"]
    size = step_size or max(1, (n - warmup) // 3)
    assert row["lr_step_size"] == size  # the runs table holds the step size used

    def eta(t):
        if t < warmup:
            return 0.01 * t / warmup
        u, T = t - warmup, n - warmup
        return (
            0.01
            * {
                "constant": 1.0,
                "cosine": (1 + math.cos(math.pi * u / T)) / 2,
                "step": gamma ** (u // size),
            }[schedule]
        )

    assert np.allclose(steps.learning_rate, [eta(t) for t in steps.step], rtol=1e-15, atol=0)
    if warmup:
        assert steps.learning_rate.iloc[0] == 0 and steps.learning_rate.iloc[warmup] == 0.01


def test_a_constant_rate_without_warmup_is_the_same_run_as_before(tmp_path):
    """Schedules and optimisers at their old values change nothing: same numbers as a run that
    sets every one of them explicitly, and the same run id (so old folders resume)."""
    a = run(RunSpec(**SMALL), tmp_path / "a")
    b = run(RunSpec(**SMALL, **BEFORE), tmp_path / "b")
    assert a["run_id"] == b["run_id"]
    la, lb = load_results(tmp_path / "a").layers, load_results(tmp_path / "b").layers
    assert la.grad_w_norm.equals(lb.grad_w_norm) and la.update_ratio.equals(lb.update_ratio)
    assert (load_results(tmp_path / "a").steps.learning_rate == 0.5).all()


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_each_optimiser_trains_and_the_runs_table_says_which(tmp_path, name):
    spec = RunSpec(**{**SMALL, "epochs": 10, "log_every": None}, optim=name, lr=LR[name])
    row = run(spec, tmp_path)
    r = load_results(tmp_path)
    assert row["status"] == "ok" and r.runs.optim[0] == name
    assert r.runs.lr[0] == LR[name] and r.runs.beta2[0] == 0.999 and r.runs.momentum[0] == 0.9
    assert r.runs.final_loss[0] < r.steps.train_loss.iloc[0]  # it learns
    assert r.layers.optim.eq(name).all()  # joined onto the per-layer rows, for the analysis


def test_the_optimisers_hyperparameters_reach_it(tmp_path, monkeypatch):
    """Every optim.* key is passed to the rule that uses it (and only to it)."""
    made = {}
    original = Step.__init__

    def spy(self, net, clip, threshold, lr, weight_decay=0.0, optim="sgd", **hyper):
        made.update(optim=optim, lr=lr, weight_decay=weight_decay, **hyper)
        original(self, net, clip, threshold, lr, weight_decay, optim, **hyper)

    monkeypatch.setattr(Step, "__init__", spy)
    cases = {
        "adam": ({"beta1": 0.8, "beta2": 0.99, "eps": 1e-6}, {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6}),
        "adamw": ({"beta1": 0.7, "weight_decay": 0.1}, {"beta1": 0.7, "beta2": 0.999, "eps": 1e-8}),
        "rmsprop": ({"rms_alpha": 0.9, "eps": 1e-7}, {"alpha": 0.9, "eps": 1e-7}),
        "momentum": ({"momentum": 0.5}, {"momentum": 0.5}),
        "nesterov": ({"momentum": 0.3}, {"momentum": 0.3}),
        "sgd": ({"momentum": 0.3, "beta1": 0.1}, {}),
    }
    for i, (name, (fields, hyper)) in enumerate(cases.items()):
        made.clear()
        run(RunSpec(**{**SMALL, "epochs": 1}, optim=name, lr=0.01, **fields), tmp_path / str(i))
        wd = fields.get("weight_decay", 0.0)
        assert made == {"optim": name, "lr": 0.01, "weight_decay": wd, **hyper}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_the_memory_estimate_counts_the_state_the_optimiser_keeps(name, rng):
    """``ARRAYS`` is the number of arrays of the parameters' size the optimiser allocates, and the
    estimate's "optimiser" part is that many times the parameters' bytes."""
    net = MLP([3, 5, 4, 2], seed=rng)
    opt = OPTIMISERS[name](net, lr=0.1)
    n = net.params.size
    kept = [v for v in vars(opt).values() if isinstance(v, np.ndarray) and v.size == n and v is not net.params]
    assert len({id(v) for v in kept}) == OPTIMISERS[name].ARRAYS
    spec = RunSpec(depth=2, width=32, optim=name)
    n_params = 8 * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3
    assert resources.estimate(spec)["optimiser"] == OPTIMISERS[name].ARRAYS * n_params * 8


def test_a_warmup_longer_than_the_run_is_refused():
    spec = RunSpec(**SMALL, warmup_steps=10_000)
    with pytest.raises(ConfigError) as e:
        prepare(spec)
    assert str(e.value) == (
        "invalid config: train.warmup_steps=10000: must be <= the run's 18 updates (epochs × steps per epoch)"
    )
    assert prepare(RunSpec(**SMALL, warmup_steps=18)).warmup_steps == 18


def _drop_new_columns(root):
    """Rewrite a folder's files as mlplab wrote them before optimisers and schedules: without
    their columns (the parquet metadata's schema version is unchanged)."""
    for table, cols in (("runs", list(BEFORE)), ("steps", ["learning_rate"])):
        for f in (root / table).glob("*.parquet"):
            t = pq.read_table(f)
            meta = t.schema.metadata
            t = t.drop_columns(cols).replace_schema_metadata(meta)
            pq.write_table(t, f)


def test_a_folder_written_before_optimisers_is_read_with_their_columns_filled_and_resumed(tmp_path):
    specs = [RunSpec(**{**SMALL, "log_every": None}, seed=s) for s in (0, 1)]
    for spec in specs:
        run(spec, tmp_path)
    new = load_results(tmp_path)
    _drop_new_columns(tmp_path)
    assert "optim" not in pq.read_table(next((tmp_path / "runs").glob("*.parquet"))).column_names
    old = load_results(tmp_path)
    for name, value in BEFORE.items():
        if value is not None:
            assert (old.runs[name] == value).all(), name
    assert old.runs.lr_step_size.isna().all()  # not known then: it stays null
    assert (old.steps.learning_rate == old.steps.lr).all() and old.steps.learning_rate.notna().all()
    pd.testing.assert_frame_equal(
        old.layers.drop(columns=["lr_step_size"]), new.layers.drop(columns=["lr_step_size"]), check_categorical=False
    )
    assert all(run(spec, tmp_path)["skipped"] for spec in specs)  # the same ids: nothing to redo
    res.compact(tmp_path)  # old and new rows in one generation
    run(RunSpec(**{**SMALL, "log_every": None}, optim="adam", lr=0.01), tmp_path)
    both = load_results(tmp_path)
    assert sorted(both.runs.optim) == ["adam", "sgd", "sgd"]
    by_run = both.steps.groupby("run_id", observed=True).learning_rate.first()
    assert sorted(by_run) == [0.01, 0.5, 0.5]


def test_the_steps_schema_ends_with_the_learning_rate():
    assert res.STEPS_SCHEMA.field("learning_rate").type == pa.float64()
    assert "learning_rate" in res.COLUMN_DOCS


def test_an_adam_learning_rate_schedule_object_is_the_one_the_run_uses():
    spec = RunSpec(**SMALL, lr_schedule="step", lr_gamma=0.5, warmup_steps=2, optim="adam", lr=0.01)
    eta = spec.learning_rate()
    n = spec.schedule().n_steps
    ref = LearningRate(0.01, "step", 2, n, 0.5, max(1, (n - 2) // 3))
    assert [eta(t) for t in range(n)] == [ref(t) for t in range(n)]


def test_a_step_forwards_the_optimisers_own_hyperparameters_and_decays_nothing_by_default(rng):
    net = MLP([3, 5, 2], seed=rng)
    step = Step(net, "none", 1.0, 0.01, optim="adam", beta1=0.5, beta2=0.9, eps=1e-6)
    assert (step.opt.beta1, step.opt.beta2, step.opt.eps, step.opt.weight_decay) == (0.5, 0.9, 1e-6, 0.0)
    assert (
        Step(net, "none", 1.0, 0.1).opt.weight_decay == 0.0 and type(Step(net, "none", 1.0, 0.1).opt).__name__ == "SGD"
    )
    assert Step(net, "none", 1.0, 0.1, optim="momentum", momentum=0.3).opt.momentum == 0.3


@pytest.mark.parametrize("epochs,warmup,expected", [(1, 0, 2), (1, 1, 1), (3, 0, 6), (3, 3, 5)])
def test_the_step_schedules_default_step_size_is_a_third_of_the_updates_after_warmup_and_at_least_1(
    epochs, warmup, expected
):
    """96 training samples in batches of 16: 6 updates an epoch; (6·epochs − warmup) // 3, and
    at least 1 in a run too short for that."""
    spec = RunSpec(**{**SMALL, "epochs": epochs}, warmup_steps=warmup)
    assert spec.schedule().n_steps == 6 * epochs
    assert spec.step_size() == expected
    tiny = RunSpec(**{**SMALL, "n_samples": 40, "epochs": 1}, warmup_steps=warmup)  # 2 updates: 2 // 3 = 0
    assert tiny.schedule().n_steps == 2 and tiny.step_size() == 1
    assert RunSpec(**SMALL, lr_step_size=4).step_size() == 4

"""Runs trained together: a stack of networks (``MLP.stack``) and ``run_many`` give each run the
numbers it has alone, bit for bit, over the registries; a diverged run stops alone."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlplab import RunSpec, load_results, run, run_many
from mlplab import train as tr
from mlplab.activations import ACTIVATIONS
from mlplab.clipping import CLIPS
from mlplab.losses import LOSSES
from mlplab.network import MLP
from mlplab.optim import OPTIMISERS
from mlplab.train import Runner, Step

SIZES = [5, 7, 7, 7, 3]
SMALL = dict(depth=2, width=8, n_samples=200, epochs=3, batch_size=16)
# seeds 0, 2, 3 and 4 of this one diverge (steps 8-11), 1 and 5 do not
DIVERGING = dict(depth=4, activation="relu", loss="bce", epochs=3, n_samples=200, lr=2.0)


def batch(rng, runs, m=6):
    X = rng.normal(size=(runs, m, SIZES[0])) * 3
    Y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], size=(runs, m))]
    return X, Y


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("residual", [False, True])
def test_a_stacks_gradients_are_each_networks_own_bit_for_bit(activation, loss, residual):
    rng = np.random.default_rng(7)
    nets = [MLP(SIZES, activation, loss, seed=s, residual=residual) for s in range(4)]
    alone = [MLP(SIZES, activation, loss, seed=s, residual=residual) for s in range(4)]
    stack = MLP.stack(nets)
    X, Y = batch(rng, 4)
    with np.errstate(over="ignore"):
        stack.forward_(X, track=True)
        stack.backward_(Y, norms=True)
        totals = stack.sq.totals()
        for r, net in enumerate(alone):
            net.forward_(np.ascontiguousarray(X[r]), track=True)
            net.backward_(np.ascontiguousarray(Y[r]), norms=True)
            assert np.array_equal(stack.grads[r], net.grads)
            assert np.array_equal(stack.sq.sums[r], net.sq.sums)
            assert totals[r] == net.sq.total()
            assert np.array_equal(stack.last_workspace.outputs[r], net.last_workspace.outputs)
            for W, W_alone in zip(stack.weights, net.weights):
                assert np.array_equal(W[r], W_alone)


def test_each_network_of_a_stack_is_its_row():
    """After ``MLP.stack`` a network keeps its parameters in the stack's row: it is that run as
    the stack trains it, and its own copying API reads them."""
    rng = np.random.default_rng(1)
    nets = [MLP(SIZES, seed=s) for s in range(3)]
    before = [net.params.copy() for net in nets]
    stack = MLP.stack(nets)
    assert all(np.array_equal(stack.params[r], before[r]) for r in range(3))
    stack.params[1] += 1.0
    assert np.array_equal(nets[1].params, before[1] + 1.0)
    assert np.array_equal(nets[1].weights[0], stack.weights[0][1])
    X = rng.normal(size=(4, SIZES[0]))
    assert np.array_equal(nets[1].forward(X)[-1], MLP(SIZES, seed=1).forward(X)[-1]) is False


def test_only_networks_that_differ_in_their_parameters_stack():
    with pytest.raises(ValueError, match="only their parameters may differ"):
        MLP.stack([MLP(SIZES, seed=0), MLP(SIZES, "relu", seed=1)])
    with pytest.raises(ValueError, match="only their parameters may differ"):
        MLP.stack([MLP(SIZES, seed=0), MLP([5, 7, 3], seed=1)])
    with pytest.raises(ValueError, match="norm='layer': a stack of runs holds plain and residual layers only"):
        MLP.stack([MLP(SIZES, seed=0, norm="layer"), MLP(SIZES, seed=1, norm="layer")])


@pytest.mark.parametrize("optim", sorted(OPTIMISERS))
@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_a_stacks_steps_are_each_runs_own_bit_for_bit(optim, clip):
    """Every optimiser and clipping rule, with weight decay: five steps of a stack, each run
    clipped by its own norm, leave each run where it is alone, and the update sizes the record
    reads are its own."""
    rng = np.random.default_rng(3)
    R = 3
    kw = dict(lr=0.3, weight_decay=0.01)
    stack = MLP.stack([MLP(SIZES, seed=s) for s in range(R)])
    alone = [MLP(SIZES, seed=s) for s in range(R)]
    S = Step(stack, clip, 0.05, optim=optim, **kw)
    singles = [Step(net, clip, 0.05, optim=optim, **kw) for net in alone]
    scale = np.ones((R, 1))
    with np.errstate(over="ignore"):
        for _ in range(5):
            X, Y = batch(rng, R)
            gnorms = S.gradients(X, Y)
            wants = []
            for r, single in enumerate(singles):
                g = single.gradients(np.ascontiguousarray(X[r]), np.ascontiguousarray(Y[r]))
                assert g == gnorms[r]
                assert all(np.array_equal(v, S.norms(r)[k]) for k, v in single.norms().items())
                scale[r], clipped = S.clip(float(gnorms[r]), r)
                s, clipped_alone = single.clip(g)
                assert (s, clipped_alone) == (scale[r, 0], clipped)
                wants.append(single.opt.weight_step_norms(s, None))
                single.update(s)
            # once every run is clipped (as training does): each run's update sizes are its own
            for r, want in enumerate(wants):
                assert np.array_equal(S.opt.weight_step_norms(scale, None, r), want)
            S.update(scale)
            for r, net in enumerate(alone):
                assert np.array_equal(stack.params[r], net.params)


def tables(root, run_id):
    res = load_results(root)
    out = {}
    for name in ("steps", "layers"):
        df = getattr(res, name)
        df = df[df.run_id == run_id].drop(columns=["sweep"], errors="ignore").reset_index(drop=True)
        # categories as plain values: two folders' dictionaries list their runs in different orders
        out[name] = df.astype({c: object for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)})
    return out


def same_row(a: dict, b: dict) -> bool:
    skip = {"setup_time_s", "train_time_s", "write_time_s", "wall_time_s", "skipped"}
    for k in a.keys() - skip:
        x, y = a[k], b[k]
        if isinstance(x, float) and math.isnan(x):
            if not (isinstance(y, float) and math.isnan(y)):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize(
    "extra",
    [
        dict(activation="sigmoid", loss="mse"),
        dict(activation="tanh", loss="softmax_ce", residual=True, clip="norm", clip_threshold=0.1),
        dict(activation="relu", loss="bce", optim="adam", lr=0.01, clip="value", clip_threshold=0.01),
        dict(activation="tanh", loss="mse", clip="value", clip_threshold=0.02, log_every=7),  # clipped unlogged too
        dict(activation="leaky_relu", loss="softmax_ce", optim="momentum", weight_decay=0.01, eval_every="log"),
    ],
)
def test_run_many_gives_each_run_its_numbers_alone(tmp_path, extra):
    specs = [RunSpec(**SMALL, **extra, seed=s) for s in range(3)]
    together = run_many(specs, tmp_path / "many", sweep="s")
    for spec, row in zip(specs, together):
        alone = run(spec, tmp_path / "alone", sweep="s")
        assert row["run_id"] == spec.run_id and same_row(row, alone)
    for spec in specs:
        a, b = tables(tmp_path / "many", spec.run_id), tables(tmp_path / "alone", spec.run_id)
        for name in a:
            assert a[name].equals(b[name]), name


def test_a_diverged_run_stops_alone_and_the_others_go_on(tmp_path):
    specs = [RunSpec(**DIVERGING, seed=s) for s in range(6)]
    rows = run_many(specs, tmp_path / "many")
    statuses = [r["status"] for r in rows]
    assert statuses == ["diverged", "ok", "diverged", "diverged", "diverged", "ok"]
    for spec, row in zip(specs, rows):
        alone = run(spec, tmp_path / "alone")
        assert same_row(row, alone)
        a, b = tables(tmp_path / "many", spec.run_id), tables(tmp_path / "alone", spec.run_id)
        assert a["steps"].equals(b["steps"]) and a["layers"].equals(b["layers"])
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["steps_done"] == r["n_steps"] for r in ok)
    assert all(r["steps_done"] == r["diverged_step"] < r["n_steps"] for r in rows if r["status"] == "diverged")


def test_run_many_trains_seeds_together_and_the_rest_alone(tmp_path, monkeypatch):
    """Consecutive specs that differ only in their seed form one stack (up to its size); a
    normalised network, and a spec of another configuration, train alone; a spectrum is taken
    from a run's own network, the stack's row; the rows come back in the specs' order."""
    stacks = []
    train_runs = tr.train_runs
    monkeypatch.setattr(tr, "train_runs", lambda net, runs, *a: stacks.append(len(runs)) or train_runs(net, runs, *a))
    monkeypatch.setattr(tr, "STACK_RUNS", 2)
    spec = RunSpec(**SMALL, spectrum_every=10, spectrum_samples=2)
    specs = [dataclasses.replace(spec, seed=s) for s in range(3)]
    specs += [dataclasses.replace(spec, norm="layer", seed=s) for s in range(2)]
    specs += [dataclasses.replace(spec, width=6, seed=s) for s in range(2)]
    rows = run_many(specs, tmp_path / "many")
    assert [r["run_id"] for r in rows] == [s.run_id for s in specs]
    assert stacks == [2, 1, 1, 1, 2]
    spectra = load_results(tmp_path / "many").spectra
    for s in specs[:3]:
        run(s, tmp_path / "alone")
    alone = load_results(tmp_path / "alone").spectra
    for s in specs[:3]:
        a = spectra[spectra.run_id == s.run_id].drop(columns="run_id").reset_index(drop=True)
        b = alone[alone.run_id == s.run_id].drop(columns="run_id").reset_index(drop=True)
        assert len(a) and a.equals(b)
    assert [r["skipped"] for r in run_many(specs[:3], tmp_path / "many")] == [True] * 3


def test_run_many_raises_for_bad_input_after_the_other_runs(tmp_path):
    good = [RunSpec(**SMALL, seed=s) for s in range(2)]
    bad = RunSpec(**{**SMALL, "batch_size": 10_000})
    with pytest.raises(Exception, match="batch_size"):
        run_many([good[0], bad, good[1]], tmp_path)
    assert all(run(s, tmp_path)["skipped"] for s in good)


def test_a_stack_holds_as_many_runs_as_its_memory_allows(monkeypatch):
    spec = RunSpec(**SMALL, n_features=5)
    assert tr.stack_size(spec) == tr.STACK_RUNS
    monkeypatch.setattr(tr, "STACK_BYTES", 1)
    assert tr.stack_size(spec) == 1
    # per run, 8 bytes × 200 samples × (inputs, outputs and every layer's outputs, twice):
    # 8 × 200 × 2 × (5 + 3 + 8 + 8 + 3) = 86,400 bytes
    for n in (1, 2, 10, 63):
        monkeypatch.setattr(tr, "STACK_BYTES", n * 86_400 + 86_399)
        assert tr.stack_size(spec) == n
        monkeypatch.setattr(tr, "STACK_BYTES", n * 86_400)
        assert tr.stack_size(spec) == n
    assert tr.stack_key(spec) == tr.stack_key(dataclasses.replace(spec, seed=9))
    assert tr.stack_key(spec) != tr.stack_key(dataclasses.replace(spec, lr=0.1))
    assert tr.stack_key(dataclasses.replace(spec, norm="batch")) is None


def test_a_stack_that_fails_fails_each_of_its_runs(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("out of luck")

    monkeypatch.setattr(tr, "train_runs", boom)
    rows = Runner(tmp_path, "", False).many([RunSpec(**SMALL, seed=s) for s in range(2)])
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", "RuntimeError: out of luck")] * 2
    assert pa.types.is_floating(pa.array([rows[0]["train_time_s"]]).type)


@pytest.mark.parametrize("extra", [dict(loss="softmax_ce"), dict(loss="mse", residual=True, activation="tanh")])
def test_a_stacks_statistics_computed_at_each_step_are_each_runs_own(tmp_path, monkeypatch, extra):
    """Runs too large to keep their mini-batches raw compute the statistics at each logged step:
    from their own row of the stack's outputs, losses and targets."""
    from mlplab.record import Pending

    monkeypatch.setattr(Pending, "MAX_BYTES", 0)
    specs = [RunSpec(**SMALL, **extra, log_every=3, seed=s) for s in range(3)]
    run_many(specs, tmp_path / "many", sweep="s")
    for spec in specs:
        run(spec, tmp_path / "alone", sweep="s")
        a, b = tables(tmp_path / "many", spec.run_id), tables(tmp_path / "alone", spec.run_id)
        for name in a:
            assert a[name].equals(b[name]), name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_stack_is_in_its_networks_dtype(dtype):
    nets = [MLP([4, 5, 3], "tanh", "softmax_ce", seed=s, dtype=dtype) for s in range(2)]
    stack = MLP.stack(nets)
    assert stack.dtype == np.dtype(dtype) and stack.params.dtype == np.dtype(dtype)
    assert all(W.dtype == np.dtype(dtype) for W in stack.weights)

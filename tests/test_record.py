"""What a run records and when: the logging and evaluation schedules, and the statistics kept
raw during training (``mlplab.record.Pending``) against the same numbers computed at once."""

import numpy as np
import pandas as pd
import pytest

from mlplab import MLP, RunSpec, load_results, run
from mlplab.record import Pending, block_stats
from mlplab.spec import EVAL_POINTS, cadence

SMALL = dict(depth=2, width=8, n_samples=200, epochs=6, batch_size=16)  # 10 steps per epoch, 60 steps


@pytest.mark.parametrize(
    "n_steps, log_every, eval_every, want",
    [
        (500, None, None, (10, 100)),  # the default run: 50 rows of gradients, 5 evaluations
        (60, None, None, (1, 12)),
        (1000, None, None, (20, 200)),
        (7, None, None, (1, 1)),  # fewer steps than evaluation points: every step
        (500, 10, 10, (10, 10)),
        (500, 4, 6, (4, 6)),
        (500, None, "log", (10, 10)),  # at every logged step, whatever the run's length
        (900, None, "log", (18, 18)),
        (500, 25, "log", (25, 25)),
        (500, 10, 21, (10, 21)),  # 21 % 10 == 1: evaluations off the logged steps
        (500, 10, 30, (10, 30)),
    ],
)
def test_cadence(n_steps, log_every, eval_every, want):
    log, ev, rows = cadence(n_steps, log_every, eval_every)
    assert (log, ev) == want
    logged = {s for s in range(n_steps) if s % log == 0 or s % ev == 0}
    assert len(logged) < rows <= len(range(0, n_steps, log)) + len(range(0, n_steps, ev)) + 1  # + a diverging step
    if ev % log == 0:  # evaluations on logged steps: room for exactly those rows and a diverging step
        assert rows == len(logged) + 1
    else:
        assert rows == len(range(0, n_steps, log)) + len(range(0, n_steps, ev)) + 1
    if eval_every is None:  # on logged steps, as many as asked for (or every logged step)
        assert ev % log == 0 and EVAL_POINTS <= len(range(0, n_steps, ev)) < 2 * EVAL_POINTS


def test_rows_and_evaluations_follow_their_schedules(tmp_path):
    row = run(RunSpec(**SMALL, log_every=4, eval_every=6), tmp_path)
    r = load_results(tmp_path)
    assert (row["log_every"], row["eval_every"]) == (4, 6) and (r.runs.log_every[0], r.runs.eval_every[0]) == (4, 6)
    steps = r.steps.sort_values("step")
    assert steps.step.tolist() == [s for s in range(60) if s % 4 == 0 or s % 6 == 0]
    evaluated = steps[["train_loss", "train_accuracy", "test_loss", "test_accuracy"]].notna()
    assert (evaluated.all(axis=1) == (steps.step % 6 == 0)).all()  # all four at once, only there
    assert evaluated.any(axis=1).equals(evaluated.all(axis=1))
    assert steps[["batch_loss", "grad_norm"]].notna().all(axis=None)  # every row has the gradient metrics
    assert r.layers.groupby("step").size().eq(3).all() and r.layers.grad_w_norm.notna().all()


@pytest.mark.parametrize("extra", [{}, {"norm": "batch"}, {"residual": True, "activation": "relu"}])
def test_evaluating_more_often_changes_nothing_else(tmp_path, extra):
    """Evaluation is a forward pass in evaluation mode: it changes no weight and no batch-norm
    running estimate, so the runs agree at every step both log, bit for bit."""
    dense = run(RunSpec(**{**SMALL, **extra, "log_every": 2, "eval_every": 2}), tmp_path / "a")
    sparse = run(RunSpec(**{**SMALL, **extra, "log_every": 2, "eval_every": 30}), tmp_path / "b")
    assert dense["final_loss"] == sparse["final_loss"] and dense["final_test_accuracy"] == sparse["final_test_accuracy"]
    a, b = (load_results(tmp_path / k) for k in "ab")
    assert a.layers.step.tolist() == b.layers.step.tolist()
    for c in ("grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "sat_frac"):
        np.testing.assert_array_equal(a.layers[c].to_numpy(), b.layers[c].to_numpy(), err_msg=c)
    np.testing.assert_array_equal(a.steps.batch_loss.to_numpy(), b.steps.batch_loss.to_numpy())
    both = b.steps.train_loss.notna().to_numpy()
    assert both.sum() == 2  # steps 0 and 30
    np.testing.assert_array_equal(a.steps.train_loss.to_numpy()[both], b.steps.train_loss.to_numpy()[both])


@pytest.mark.parametrize(
    "extra",
    [{}, {"residual": True, "norm": "layer"}, {"loss": "mse", "activation": "tanh"}, {"batch_size": 48, "loss": "bce"}],
)  # 160 = 3 x 48 + 16: two batch sizes
def test_statistics_kept_raw_equal_those_taken_at_each_step(tmp_path, monkeypatch, extra):
    spec = RunSpec(**{**SMALL, **extra, "log_every": 1})
    run(spec, tmp_path / "deferred")
    monkeypatch.setattr(Pending, "MAX_BYTES", 0)  # nothing kept: every row's statistics at once
    run(spec, tmp_path / "now")
    a, b = (load_results(tmp_path / k) for k in ("deferred", "now"))
    for c in ("act_mean", "act_std", "sat_frac"):
        np.testing.assert_array_equal(a.layers[c].to_numpy(), b.layers[c].to_numpy(), err_msg=c)
    np.testing.assert_allclose(a.steps.batch_loss.to_numpy(), b.steps.batch_loss.to_numpy(), rtol=1e-14)


@pytest.mark.parametrize("residual, norm", [(False, None), (True, None), (True, "batch")])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_block_statistics_are_each_layers_mean_std_and_saturation(rng, residual, norm, activation):
    net = MLP([5, 6, 6, 6, 3], activation, "softmax_ce", seed=1, residual=residual, norm=norm, sigma_w=3.0)
    X = rng.standard_normal((9, 5))
    net.forward_(X)
    ws = net.last_workspace
    output = np.arange(net.L) == net.L - 1
    mean, std, sat = block_stats(ws.outputs.copy(), ws.starts, ws.counts, output, net.activation, net.loss)
    for l, c in enumerate(ws.buffers):
        assert mean[l] == pytest.approx(c.a.mean(), rel=1e-13, abs=1e-15)
        assert std[l] == pytest.approx(c.a.std(), rel=1e-13, abs=1e-15)
        rule = net.loss if output[l] else net.activation
        if l not in ws.residuals:  # a residual layer's saturation is σ's output h^l, not a^l = a^(l-1) + h^l
            assert sat[l] == rule.saturated(c.a).mean()
    assert (0 < sat).any() and (sat < 1).all()
    assert ws.residuals == ([1, 2] if residual else [])


def test_a_scratch_hands_a_finished_runs_memory_to_the_next_and_never_shares_it():
    from mlplab.record import Scratch

    scratch = Scratch()
    a = scratch.take(100, np.float64)
    b = scratch.take(100, np.float64)  # a is in use: b is other memory
    assert a.size == b.size == 100 and not np.shares_memory(a, b)
    scratch.give(a.base if a.base is not None else a)
    c = scratch.take(60, np.float64)
    assert np.shares_memory(a, c) and c.size == 60 and not scratch.free  # taken out while in use
    scratch.give(c.base)
    d = scratch.take(500, np.float64)  # too small: new memory, of the size asked
    assert not np.shares_memory(a, d) and d.size == 500
    assert scratch.take(10, np.float32).dtype == np.float32 and not np.shares_memory(a, scratch.take(10, np.float64))


def test_a_runner_reuses_the_records_memory_from_run_to_run_with_the_same_numbers(tmp_path):
    """The runs of a Runner (a sweep's chunk) hand the records' memory on; each run's tables are
    those of the run done alone."""
    from mlplab.train import Runner

    runner = Runner(tmp_path / "together", "t", False)
    specs = [RunSpec(**SMALL, seed=s) for s in (0, 1)]
    runner(specs[0])
    first = runner.scratch.free["d"]
    runner(specs[1])
    assert runner.scratch.free["d"] is first  # taken by the second run, handed back
    for s in specs:
        run(s, tmp_path / "alone", sweep="t")
    together, alone = load_results(tmp_path / "together"), load_results(tmp_path / "alone")
    for name in ("steps", "layers"):
        a, b = (getattr(r, name).drop(columns=["sweep"]).sort_values(["run_id", "step"]) for r in (together, alone))
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_a_residual_runs_logged_statistics_are_its_mini_batches_own(tmp_path, norm):
    """Every logged step of a residual sigmoid run (and a layer-normalised residual one), every
    layer: ``act_mean`` and ``act_std`` are those of the layer's output a^l on that step's
    mini-batch, ``sat_frac`` the share of σ's output h^l within 0.01 of 0 or 1 (a skip layer's
    h^l = σ(·), not a^l = a^(l-1) + h^l) — computed here from the network's own outputs while
    the run is replayed step by step, without ``mlplab.record``."""
    from mlplab.train import Step, batches, build_network, load_data, prepare, rngs

    spec = prepare(RunSpec(**{**SMALL, "epochs": 2}, residual=True, norm=norm, log_every=1, sigma_w=2.0))
    run(spec, tmp_path)
    lay = load_results(tmp_path).layers.sort_values(["step", "layer"])
    _, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec)
    net = build_network(spec, data, rng_init)
    step = Step(net, spec.clip, spec.clip_threshold, optim=spec.optim, **spec.optimiser_kwargs())
    want, skips, s, apart = [], 0, 0, 0

    def sat(x):
        return np.count_nonzero((x < 0.01) | (x > 0.99)) / x.size

    with np.errstate(over="ignore"):
        for _ in range(spec.epochs):
            for Xb, Yb in batches(data, spec.schedule(), rng_shuffle):
                gnorm = step.gradients(Xb, Yb)
                for l, (a, h) in enumerate(net.layer_outputs()):
                    want.append((s, l + 1, a.mean(), a.std(), sat(h if l < net.L - 1 else a)))
                    skips += h is not a
                    apart += h is not a and sat(h) != sat(a)  # the two counts tell h^l from a^l here
                step.update(step.clip(gnorm)[0])
                s += 1
    want = pd.DataFrame(want, columns=["step", "layer", "act_mean", "act_std", "sat_frac"])
    assert skips == s and len(lay) == len(want) == s * net.L  # one skip layer (layer 2), every step
    np.testing.assert_allclose(lay["act_mean"], want["act_mean"].astype(np.float32), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lay["act_std"], want["act_std"].astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(lay["sat_frac"].to_numpy(), want["sat_frac"].to_numpy(np.float32))
    assert apart > s // 2  # so a count on a^l would fail

"""What a run records and when: the logging and evaluation schedules, and the statistics kept
raw during training (``mlplab.record.Pending``) against the same numbers computed at once."""

import dataclasses

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
    [
        {},
        {"residual": True, "norm": "layer"},
        {"loss": "mse", "activation": "tanh"},
        {"batch_size": 48, "loss": "bce"},  # 160 = 3 x 48 + 16: two batch sizes
        {"dtype": "float32", "activation": "relu", "sigma_w": 3.0},
        {"dtype": "float32", "residual": True, "batch_size": 48},
    ],
)
def test_statistics_kept_raw_equal_those_taken_at_each_step(tmp_path, monkeypatch, extra):
    spec = RunSpec(**{**SMALL, **extra, "log_every": 1})
    run(spec, tmp_path / "deferred")
    monkeypatch.setattr(Pending, "MAX_BYTES", 0)  # nothing kept: every row's statistics at once
    run(spec, tmp_path / "now")
    a, b = (load_results(tmp_path / k) for k in ("deferred", "now"))
    for c in ("act_mean", "act_std", "sat_frac"):
        np.testing.assert_array_equal(a.layers[c].to_numpy(), b.layers[c].to_numpy(), err_msg=c)
    np.testing.assert_array_equal(a.steps.batch_loss.to_numpy(), b.steps.batch_loss.to_numpy())


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


HAND_SATURATED = {  # the documented rules, written out again: hidden σ's output, and the output layer's a^L
    "sigmoid": lambda x: (x < 0.01) | (x > 0.99),
    "tanh": lambda x: np.abs(x) > 0.99,
    "relu": lambda x: x <= 0.0,
    "output": lambda x: (x < 0.01) | (x > 0.99),  # every loss's a^L is a probability
}


@pytest.mark.parametrize(
    "activation, loss, residual, norm, dtype",
    [
        ("sigmoid", "softmax_ce", True, "none", "float64"),
        ("sigmoid", "softmax_ce", True, "layer", "float64"),
        ("tanh", "softmax_ce", False, "none", "float64"),
        ("relu", "mse", False, "none", "float64"),
        ("relu", "bce", True, "none", "float64"),
        ("sigmoid", "mse", True, "none", "float32"),
    ],
)
def test_a_runs_logged_statistics_are_its_mini_batches_own(tmp_path, activation, loss, residual, norm, dtype):
    """Every logged step, every layer: ``act_mean`` and ``act_std`` are those of the layer's
    output a^l on that step's mini-batch, ``sat_frac`` the share of σ's output h^l saturated by
    the activation's rule (a skip layer's h^l = σ(·), not a^l = a^(l-1) + h^l), and of a^L by
    the output's (within 0.01 of 0 or 1); ``batch_loss`` the mean loss of the mini-batch —
    computed here while the run is replayed step by step, without ``mlplab.record``. A float32
    run's mini-batch loss is the mean of its float32 losses summed in float64."""
    from mlplab.train import Step, batches, build_network, load_data, prepare, rngs

    spec = RunSpec(
        **{**SMALL, "epochs": 2}, activation=activation, loss=loss, residual=residual, norm=norm, dtype=dtype
    )
    spec = prepare(dataclasses.replace(spec, log_every=1, sigma_w=2.0))
    run(spec, tmp_path)
    results = load_results(tmp_path)
    lay, steps = results.layers.sort_values(["step", "layer"]), results.steps.sort_values("step")
    _, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec)
    net = build_network(spec, data, rng_init)
    step = Step(net, spec.clip, spec.clip_threshold, optim=spec.optim, **spec.optimiser_kwargs())
    want, losses, skips, s, apart, rules_differ = [], [], 0, 0, 0, 0
    hidden, output = HAND_SATURATED[activation], HAND_SATURATED["output"]

    def sat(rule, x):
        return np.count_nonzero(rule(x)) / x.size

    with np.errstate(over="ignore"):
        for _ in range(spec.epochs):
            for Xb, Yb in batches(data, spec.schedule(), rng_shuffle):
                gnorm = step.gradients(Xb, Yb)
                for l, (a, h) in enumerate(net.layer_outputs()):
                    last = l == net.L - 1
                    want.append((s, l + 1, a.mean(), a.std(), sat(output, a) if last else sat(hidden, h)))
                    skips += h is not a
                    apart += h is not a and sat(hidden, h) != sat(hidden, a)  # the counts tell h^l from a^l
                    rules_differ += last and sat(output, a) != sat(hidden, a)
                z, aL = net.last_workspace.buffers[-1].z, net.last_workspace.buffers[-1].a
                losses.append(np.mean(net.loss.fn(z, aL, Yb), dtype=np.float64))
                step.update(step.clip(gnorm)[0])
                s += 1
    want = pd.DataFrame(want, columns=["step", "layer", "act_mean", "act_std", "sat_frac"])
    assert len(lay) == len(want) == s * net.L and skips == (s if residual else 0)  # one skip layer (layer 2)
    np.testing.assert_allclose(lay["act_mean"], want["act_mean"].astype(np.float32), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lay["act_std"], want["act_std"].astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(lay["sat_frac"].to_numpy(), want["sat_frac"].to_numpy(np.float32))
    np.testing.assert_allclose(steps["batch_loss"], losses, rtol=1e-12)
    if residual and activation == "sigmoid":
        assert apart > s // 2  # so a count on a^l would fail
    if activation == "relu":
        assert rules_differ > s // 2  # so the hidden layers' rule on a^L would fail


def test_a_segments_saturated_units_are_counted_past_255_and_its_moments_in_float64():
    """One segment of 100,000 float32 numbers, 0.1 and 0.3 in turn, all saturated for tanh: the
    count does not wrap at a byte, and the mean and standard deviation (0.2, 0.1) are summed
    in float64 (a float32 sum of this many numbers is off in the fourth digit)."""
    from mlplab.activations import ACTIVATIONS
    from mlplab.losses import LOSSES

    n = 100_000
    x = np.tile(np.array([0.1, 0.3], np.float32), n // 2)
    saturates = type("Saturated", (), {"saturated": staticmethod(lambda v: np.ones(v.shape, bool))})()
    mean, std, sat = block_stats(x.copy(), np.array([0]), np.array([n]), np.array([False]), saturates, None)
    assert sat.tolist() == [1.0]
    lo, hi = float(np.float32(0.1)), float(np.float32(0.3))
    assert mean[0] == pytest.approx((lo + hi) / 2, rel=1e-12)
    assert std[0] == pytest.approx((hi - lo) / 2, rel=1e-7)
    # and by the real rules, a hidden segment and an output segment side by side
    act, loss = ACTIVATIONS["tanh"](), LOSSES["softmax_ce"]()
    z = np.repeat(np.array([0.999, 0.1], np.float64), 300)
    two = block_stats(z.copy(), np.array([0, 300]), np.array([300, 300]), np.array([False, True]), act, loss)[2]
    np.testing.assert_array_equal(two, [act.saturated(z[:300]).mean(), loss.saturated(z[300:]).mean()])


def _pending(monkeypatch, max_bytes=None, m=9, capacity=4):
    from mlplab.record import Record, Scratch

    if max_bytes is not None:
        monkeypatch.setattr(Pending, "MAX_BYTES", max_bytes)
    net = MLP([5, 6, 7, 3], "sigmoid", "softmax_ce", seed=1)
    net.forward_(np.random.default_rng(0).standard_normal((m, 5)))
    rec = Record(net.sizes, capacity)
    return net, rec, Pending(net, capacity, m, Scratch())


def test_a_runs_raw_copies_are_kept_up_to_max_bytes_exactly(monkeypatch):
    """Per sample of a row: its outputs a^1..a^L (6 + 7 + 3 numbers) and z^L, a^L, Y (3 x 3), in
    float64: 4 rows x 9 samples x 25 x 8 bytes = 7,200 bytes."""
    assert _pending(monkeypatch, 7200)[2].deferred
    assert not _pending(monkeypatch, 7199)[2].deferred
    net, _, p = _pending(monkeypatch, 7200)
    assert p.memory.dtype == net.dtype and p.memory.size == 4 * 9 * 25


def test_rows_are_kept_raw_while_their_batch_fits_and_a_larger_one_is_computed_at_once(monkeypatch):
    net, rec, p = _pending(monkeypatch)
    Y = np.eye(3)[np.arange(9) % 3]
    for i in range(3):  # batches of the first batch's size: kept
        p.add(rec, i, net, Y)
    assert p.rows == [(0, 9), (1, 9), (2, 9)] and p.used == 27
    assert np.isnan(rec.layers["act_mean"][:3]).all()
    X10 = np.random.default_rng(1).standard_normal((10, 5))
    net.forward_(X10)
    p.add(rec, 3, net, np.eye(3)[np.arange(10) % 3])  # larger: at once
    assert len(p.rows) == 3 and p.used == 27
    means = [c.a.mean() for c in net.last_workspace.buffers]
    np.testing.assert_allclose(rec.layers["act_mean"][3], means, rtol=1e-6)  # stored as float32
    assert np.isnan(rec.layers["act_mean"][:3]).all()
    p.flush(rec)
    assert not np.isnan(rec.layers["act_mean"]).any()


def test_closing_a_record_twice_hands_its_memory_on_once(monkeypatch):
    """A record closed again (its tables asked for twice) must not hand on memory that the next
    run has taken since: two runs would then write into the same store."""
    from mlplab.record import Scratch

    net, rec, _ = _pending(monkeypatch)
    rec.scratch = scratch = Scratch()
    rec.pending = Pending(net, 4, 9, scratch)
    rec.pending.add(rec, 0, net, np.eye(3)[np.arange(9) % 3])
    rec.n_steps_rows = 1
    store = rec.pending.memory
    first = rec.tables("r")
    taken = scratch.take(10, np.float64)  # the next run's: the record's store, handed on
    assert not scratch.free and np.shares_memory(taken, store)
    second = rec.tables("r")
    assert not scratch.free  # nothing handed on again
    assert all(a.to_pandas().equals(b.to_pandas()) for a, b in zip(first, second))


class _Opt:
    """An optimiser's face to the record: its rate and ‖ΔW^l‖, and what it was told."""

    lr = 0.5

    def __init__(self, norms):
        self.norms, self.known = np.asarray(norms, float), []

    def weight_step_norms(self, scale, known, run):
        self.known.append(None if known is None else np.array(known))
        return self.norms


@pytest.mark.parametrize("clipped, scales, told", [(False, False, True), (True, True, True), (True, False, False)])
def test_an_update_ratio_is_the_steps_norm_over_the_weights_and_infinite_for_zero_weights(clipped, scales, told):
    """‖ΔW^l‖/‖W^l‖, ∞ where W^l = 0 (without a division-by-zero warning); the optimiser is given
    the logged gradient norms unless clipping changed the gradients in place (a rule that does
    not scale the whole gradient), when it must work them out again."""
    from types import SimpleNamespace

    from mlplab.record import Record

    rec = Record([2, 3, 4, 2], capacity=1)
    rec.layers["weight_norm"][0] = [0.0, 4.0, 0.5]
    rec.layers["grad_w_norm"][0] = [7.0, 8.0, 9.0]
    opt = _Opt([1.0, 2.0, 3.0])
    step = SimpleNamespace(opt=opt, rule=SimpleNamespace(scales=scales))
    assert np.isnan(rec.log_update(0, step, 1.0, clipped))  # not evaluated
    np.testing.assert_array_equal(rec.layers["update_ratio"][0], [np.inf, 0.5, 6.0])
    assert (rec.steps["clipped"][0], rec.steps["learning_rate"][0]) == (clipped, 0.5)
    if told:
        np.testing.assert_array_equal(opt.known[0], [7.0, 8.0, 9.0])
    else:
        assert opt.known == [None]
    assert rec.log_update(0, step, 1.0, clipped, evaluation=((0.25, 0.5), (0.75, 1.0))) == 0.25
    evaluated = [rec.steps[k][0] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")]
    assert evaluated == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("normalised", [False, True])
def test_a_new_record_holds_each_column_in_its_type_empty(normalised):
    """One array per column in the schema's type (float32 where the table stores float32: the
    memory of a run's rows), NaN or zero until a row is written; γ and β null on the layers
    without them (all of a plain net's, a normalised net's output layer); no gradient yet."""
    from mlplab import results as res
    from mlplab.record import KEY_COLUMNS, Record

    rec = Record([3, 4, 4, 2], capacity=5, normalised=normalised)
    for schema, arrays, shape in ((res.STEPS_SCHEMA, rec.steps, (5,)), (res.LAYERS_SCHEMA, rec.layers, (5, 3))):
        for f in schema:
            if f.name in KEY_COLUMNS and f.name not in arrays:
                continue
            a, want = arrays[f.name], np.dtype(f.type.to_pandas_dtype())
            assert (f.name, a.dtype, a.shape) == (f.name, want, shape)
            assert np.isnan(a).all() if want.kind == "f" else not a.any(), f.name
    no_norm = [False, False, True] if normalised else [True, True, True]
    for column in ("grad_gamma_norm", "grad_beta_norm"):
        assert rec.nulls[column].tolist() == no_norm
    assert rec.max_grad_norm == 0.0 and rec.n_steps_rows == rec.steps_done == 0
    assert Record([3, 4, 2], capacity=1).nulls["grad_gamma_norm"].tolist() == [True, True]  # plain by default

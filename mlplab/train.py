"""One run: data -> network -> SGD with per-layer instrumentation -> three tables.

``run(spec, root)`` is the plain function under the CLI (and what the tests call). It never
imports Hydra. A run ends with one of three statuses:

* ``ok``        trained for every epoch;
* ``diverged``  the loss or a gradient became NaN/Inf: training stops at that step, the rows up to
                and including it are kept, and ``diverged_step`` and ``reason`` say where;
* ``failed``    any other exception: its message is kept in ``reason``, with the rows so far.

Bad input (``ConfigError``) is raised before any training starts and writes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from mlplab import results as res
from mlplab.clipping import get_clip
from mlplab.data import Dataset, make_dataset
from mlplab.losses import check_targets, get_loss
from mlplab.network import MLP
from mlplab.spec import ConfigError, RunSpec, validate

MIN_LOG_POINTS = 50


class Diverged(Exception):
    pass


def rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the data, the initial weights and the shuffling."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def load_data(spec: RunSpec, rng: np.random.Generator | None = None) -> Dataset:
    """The run's data set, checked against the loss and the batch size (ConfigError if not)."""
    rng = rng if rng is not None else rngs(spec.seed)[0]
    try:
        data = make_dataset(
            spec.dataset, rng, spec.n_samples, spec.n_features, spec.n_classes, spec.noise,
            spec.test_fraction, spec.dtype, spec.standardise, spec.data_path,
        )
    except ValueError as e:
        raise ConfigError("dataset", spec.dataset, str(e)) from None
    n = len(data.X_train)
    if spec.batch_size != "full" and spec.batch_size > n:
        raise ConfigError("batch_size", spec.batch_size, f"must be <= the {n} training samples (or 'full')")
    try:
        check_targets(get_loss(spec.loss), data.Y_train)
        check_targets(get_loss(spec.loss), data.Y_test)
    except ValueError as e:
        raise ConfigError("loss", spec.loss, str(e)) from None
    return data


def layer_sizes(spec: RunSpec, data: Dataset) -> list[int]:
    """[n_0, n_1, ..., n_L]: the data's features, ``depth`` hidden layers of ``width``, the classes."""
    return [data.n_features] + [spec.width] * spec.depth + [data.n_classes]


def build_network(spec: RunSpec, data: Dataset, rng) -> MLP:
    return MLP(
        layer_sizes(spec, data), spec.activation, spec.loss, spec.init, rng,
        sigma_w=spec.sigma_w, sigma_b=spec.sigma_b, dtype=spec.dtype, alpha=spec.alpha,
    )


@dataclass
class Schedule:
    n_train: int
    batch_size: int
    steps_per_epoch: int
    n_steps: int
    log_every: int

    @classmethod
    def of(cls, spec: RunSpec, n_train: int) -> "Schedule":
        bs = n_train if spec.batch_size == "full" else int(spec.batch_size)
        spe = math.ceil(n_train / bs)
        n_steps = spe * spec.epochs
        log_every = spec.log_every or max(1, n_steps // MIN_LOG_POINTS)
        return cls(n_train, bs, spe, n_steps, log_every)


@dataclass
class Record:
    """Rows accumulated in preallocated arrays during a run, turned into tables once."""

    L: int
    capacity: int
    sizes: list[int]
    n_steps_rows: int = 0
    steps_done: int = 0
    steps: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)

    def __post_init__(self):
        c, L = self.capacity, self.L
        self.steps = {
            "step": np.zeros(c, np.int32), "epoch": np.zeros(c, np.int32),
            "loss": np.full(c, np.nan), "accuracy": np.full(c, np.nan, np.float32),
            "test_loss": np.full(c, np.nan), "test_accuracy": np.full(c, np.nan, np.float32),
            "batch_loss": np.full(c, np.nan), "grad_norm": np.full(c, np.nan),
            "clipped": np.zeros(c, bool),
        }
        self.layers = {
            k: np.full((c, L), np.nan, dt)
            for k, dt in [
                ("grad_w_norm", np.float64), ("grad_b_norm", np.float64), ("weight_norm", np.float64),
                ("update_ratio", np.float64), ("act_mean", np.float32), ("act_std", np.float32),
                ("sat_frac", np.float32),
            ]
        }

    def tables(self, run_id: str):
        n, L = self.n_steps_rows, self.L
        steps = {k: v[:n] for k, v in self.steps.items()}
        steps["run_id"] = [run_id] * n
        layers = {k: v[:n].reshape(-1) for k, v in self.layers.items()}
        layers["run_id"] = [run_id] * (n * L)
        layers["step"] = np.repeat(steps["step"], L)
        layers["epoch"] = np.repeat(steps["epoch"], L)
        layers["layer"] = np.tile(np.arange(1, L + 1, dtype=np.int16), n)
        layers["fan_in"] = np.tile(np.asarray(self.sizes[:-1], np.int32), n)
        layers["fan_out"] = np.tile(np.asarray(self.sizes[1:], np.int32), n)
        return res.to_table(layers, "layers"), res.to_table(steps, "steps")


def evaluate(net: MLP, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """(mean loss, accuracy) of ``net`` on (X, Y); argmax of a^L against argmax of y."""
    if len(X) == 0:
        return math.nan, math.nan
    ws = net._workspace(len(X))
    net._forward(X, ws)
    loss = float(net.loss.fn(ws.zL, ws.a[-1], Y).mean())
    acc = float((ws.a[-1].argmax(axis=1) == Y.argmax(axis=1)).mean())
    return loss, acc


def safe_norm(g: np.ndarray) -> float:
    """‖g‖ without overflow: max|g| · ‖g / max|g|‖ (NaN or inf when an entry is)."""
    m = float(np.abs(g).max(initial=0.0))
    if m == 0.0 or not math.isfinite(m):
        return m
    x = g / m
    return m * math.sqrt(np.vdot(x, x))


def safe_norms(net: MLP) -> tuple[list[float], list[float], float]:
    """Per-layer ‖∂C/∂W^l‖, ‖∂C/∂b^l‖ and the global norm, without overflow (``safe_norm``)."""
    nw, nb = [safe_norm(g) for g in net.dW], [safe_norm(g) for g in net.db]
    return nw, nb, safe_norm(np.asarray(nw + nb))


def divergence(nw: list[float], nb: list[float], gnorm: float, step: int) -> str:
    """The reason a gradient is not finite: the first layer with a NaN or Inf in its gradient."""
    for name, norms in (("grad_w_norm", nw), ("grad_b_norm", nb)):
        for l, v in enumerate(norms):
            if not math.isfinite(v):
                return f"{name} of layer {l + 1} is {v} at step {step}"
    return f"gradient norm is {gnorm} at step {step}"


def train(net: MLP, data: Dataset, spec: RunSpec, shuffle_rng: np.random.Generator, sched: Schedule, rec: Record) -> None:
    """Plain mini-batch SGD with per-layer instrumentation; fills ``rec``.

    Update (weights only decay): W ← W − η (clip(∂C/∂W) + λ W),  b ← b − η clip(∂C/∂b).
    At every logged step s (s updates done; s = 0 is the initialisation) it records, for the
    mini-batch about to be applied: per layer the pre-clip ‖∂C/∂W^l‖_F, ‖∂C/∂b^l‖, ‖W^l‖_F,
    ‖ΔW^l‖/‖W^l‖, and the mean, std and saturated fraction of a^l; per step the training and
    test loss and accuracy (whole sets), the mini-batch loss, the pre-clip global norm and
    whether clipping acted. A non-finite gradient (checked every step) or loss (checked at every
    logged step) raises ``Diverged``, with that step's row kept in ``rec``.
    """
    L = net.L
    X, Y = data.X_train, data.Y_train
    rule = get_clip(spec.clip)
    thr, lr, wd = float(spec.clip_threshold), float(spec.lr), float(spec.weight_decay)
    sq_w, sq_b = np.empty(L), np.empty(L)
    params = [net.grads] if net._flat() else net.dW + net.db  # what clipping acts on
    full = sched.batch_size >= sched.n_train
    step = 0
    for epoch in range(spec.epochs):
        perm = None if full else shuffle_rng.permutation(sched.n_train)
        for start in range(0, sched.n_train, sched.batch_size):
            if full:
                Xb, Yb = X, Y
            else:
                idx = perm[start : start + sched.batch_size]
                Xb, Yb = X[idx], Y[idx]
            ws = net._workspace(len(Xb))
            net._forward(Xb, ws)
            net._backward(Xb, Yb, ws, sq_w, sq_b)
            # ‖g‖² = Σ_l ‖∂C/∂W^l‖² + ‖∂C/∂b^l‖² (a few numbers: cheaper in Python than two NumPy sums)
            gnorm = math.sqrt(sum(sq_w.tolist()) + sum(sq_b.tolist()))
            nw = nb = None
            if not math.isfinite(gnorm):
                # rare: a NaN/Inf entry, or a finite gradient beyond ~1e154 whose square overflows;
                # the norms again without squaring large numbers tell the two apart
                nw, nb, gnorm = safe_norms(net)
            finite = math.isfinite(gnorm)
            log = step % sched.log_every == 0 or not finite
            if log:
                i = rec.n_steps_rows
                rec.n_steps_rows += 1
                s, lay = rec.steps, rec.layers
                s["step"][i], s["epoch"][i], s["grad_norm"][i] = step, epoch, gnorm
                s["batch_loss"][i] = net.loss.fn(ws.zL, ws.a[-1], Yb).mean()
                lay["grad_w_norm"][i] = np.sqrt(sq_w) if nw is None else nw
                lay["grad_b_norm"][i] = np.sqrt(sq_b) if nb is None else nb
                for l in range(L):
                    a = ws.a[l]
                    sat = net.loss.saturated(a) if l == L - 1 else net.activation.saturated(a)
                    lay["weight_norm"][i, l] = math.sqrt(np.vdot(net.weights[l], net.weights[l]))
                    lay["act_mean"][i, l] = a.mean()
                    lay["act_std"][i, l] = a.std()
                    lay["sat_frac"][i, l] = sat.mean()
            if not finite:
                raise Diverged(divergence(nw, nb, gnorm, step))
            scale, clipped = rule.clip_(params, gnorm, thr)
            if log:
                s["clipped"][i] = clipped
                tr = evaluate(net, X, Y)
                s["loss"][i], s["accuracy"][i] = tr
                s["test_loss"][i], s["test_accuracy"][i] = evaluate(net, data.X_test, data.Y_test)
                for l in range(L):  # ‖ΔW^l‖/‖W^l‖ with ΔW^l = −η (scale · g + λ W)
                    W, g = net.weights[l], net.dW[l]
                    wn = lay["weight_norm"][i, l]
                    step_norm = safe_norm(scale * g + wd * W if wd else g) * (1.0 if wd else scale)
                    lay["update_ratio"][i, l] = lr * step_norm / wn if wn > 0 else math.inf
                if not math.isfinite(tr[0]):
                    raise Diverged(f"training loss is {tr[0]} at step {step}")
            # SGD: W ← (1 − ηλ) W − η·scale·g,  b ← b − η·scale·g_b
            net._sgd_update(lr, scale, wd)
            step += 1
            rec.steps_done = step


def run(spec: RunSpec, root, sweep: str = "", force: bool = False) -> dict:
    """Do one run and write its tables under ``root``; return its ``runs`` row as a dict.

    A run already committed as ``ok`` or ``diverged`` is skipped (its row is read back) unless
    ``force``; a ``failed`` run is done again.
    Raises ``ConfigError`` for bad input before anything is trained or written.
    """
    from mlplab import __version__

    t0 = time.perf_counter()
    validate(spec)
    run_id = spec.run_id
    if not force and res.is_done(root, run_id):
        row = res.pq.read_table(res.run_path(root, "runs", run_id)).to_pylist()[0]
        row["skipped"] = True
        return row
    rng_data, rng_init, rng_shuffle = rngs(spec.seed)
    data = load_data(spec, rng_data)
    sched = Schedule.of(spec, len(data.X_train))
    row = {k: v for k, v in spec.as_dict().items() if k in res.CONFIG_TYPES}
    row.update(
        run_id=run_id, sweep=sweep, batch_size=sched.batch_size, full_batch=spec.batch_size == "full",
        log_every=sched.log_every, n_steps=sched.n_steps, diverged_step=None, reason=None,
        final_loss=math.nan, final_accuracy=math.nan, final_test_loss=math.nan, final_test_accuracy=math.nan,
        mlplab_version=__version__, numpy_version=np.__version__, schema_version=res.SCHEMA_VERSION,
    )
    sizes = layer_sizes(spec, data)
    rec = Record(len(sizes) - 1, sched.n_steps // sched.log_every + 2, sizes)
    t1 = time.perf_counter()
    with threadpool_limits(limits=1), np.errstate(over="ignore", invalid="ignore"):
        # overflow and inf-inf are expected in exploding runs; they are caught as divergence
        # (non-finite norms and losses) right where they arise, not silenced elsewhere.
        try:
            net = build_network(spec, data, rng_init)
            t1 = time.perf_counter()
            train(net, data, spec, rng_shuffle, sched, rec)
            row["status"] = "ok"
            row["final_loss"], row["final_accuracy"] = evaluate(net, data.X_train, data.Y_train)
            row["final_test_loss"], row["final_test_accuracy"] = evaluate(net, data.X_test, data.Y_test)
            if not math.isfinite(row["final_loss"]):
                row.update(status="diverged", diverged_step=sched.n_steps, reason=f"final training loss is {row['final_loss']}")
        except Diverged as e:
            row.update(status="diverged", diverged_step=int(rec.steps["step"][rec.n_steps_rows - 1]), reason=str(e))
        except Exception as e:  # noqa: BLE001 - any fault of one run is recorded, the sweep goes on
            row.update(status="failed", reason=f"{type(e).__name__}: {e}")
        t2 = time.perf_counter()
    layers, steps = rec.tables(run_id)
    row.update(steps_done=rec.steps_done, setup_time_s=t1 - t0, train_time_s=t2 - t1)
    # write_time_s covers the two large tables; the one-row runs file (the commit) comes last
    t3 = time.perf_counter()
    res.mark_folder(root)
    res.atomic_write_table(layers, res.run_path(root, "layers", run_id))
    res.atomic_write_table(steps, res.run_path(root, "steps", run_id))
    t4 = time.perf_counter()
    row.update(write_time_s=t4 - t3, wall_time_s=t4 - t0)
    res.atomic_write_table(res.to_table({k: [v] for k, v in row.items()}, "runs"), res.run_path(root, "runs", run_id))
    row["skipped"] = False
    return row

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

import dataclasses
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from mlplab import resources
from mlplab import results as res
from mlplab.clipping import get_clip
from mlplab.data import DataError, Dataset, facts, make_dataset, split_sizes
from mlplab.losses import check_targets as loss_targets
from mlplab.losses import get_loss
from mlplab.network import MLP, sgd_step
from mlplab.spec import ConfigError, RunSpec, validate

MIN_LOG_POINTS = 50


@functools.lru_cache(maxsize=1)
def blas() -> ThreadpoolController:
    """This process's BLAS libraries, found once (finding them reads the process's memory map)."""
    return ThreadpoolController()


class Diverged(Exception):
    pass


def rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the data, the initial weights and the shuffling."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def resolve(spec: RunSpec) -> RunSpec:
    """The spec completed by what its data say about themselves (``mlplab.data.facts``): a
    data file's real shape and the sha256 of its bytes — so a run is identified by the data's
    content, not its path — and a fixed-size data set's shape. ConfigError for a data file that
    cannot be used, or one that changed since ``spec`` was resolved."""
    try:
        found = facts(spec.dataset, spec.n_samples, spec.data_path)
    except DataError as e:
        raise ConfigError(e.field, e.value, e.problem) from None
    digest = found.get("data_digest")
    if spec.data_digest is not None and digest != spec.data_digest:
        raise ConfigError("data_path", spec.data_path, f"the file changed since the run was planned (sha256 "
                          f"{(digest or '-')[:12]}…, planned {spec.data_digest[:12]}…); run the command again")
    return dataclasses.replace(spec, **found) if found else spec


def prepare(spec: RunSpec) -> RunSpec:
    """The spec validated, resolved and checked for everything that needs no data values:
    a non-empty training and test split, the batch size, batch norm's batches, the memory the
    run needs. ConfigError (exit code 2) before anything is trained or written."""
    spec = resolve(validate(spec))
    n_train, n_test = split_sizes(spec.n_samples, spec.test_fraction)
    if n_train < 1 or n_test < 1:
        raise ConfigError("test_fraction", spec.test_fraction, f"splits the {spec.n_samples} samples into {n_train} "
                          f"for training and {n_test} for testing; expected at least 1 of each")
    if spec.batch_size != "full" and spec.batch_size > n_train:
        raise ConfigError("batch_size", spec.batch_size, f"must be <= the {n_train} training samples (or 'full')")
    if spec.norm == "batch":
        bs = n_train if spec.batch_size == "full" else spec.batch_size
        if bs < 2 or n_train % bs == 1:
            raise ConfigError(
                "batch_size", spec.batch_size,
                f"with norm=batch every mini-batch needs >= 2 samples; {n_train} training samples in batches of {bs} "
                f"leave {'a batch' if bs < 2 else 'a last batch'} of 1",
            )
    resources.check(spec)
    return spec


def load_data(spec: RunSpec, rng: np.random.Generator | None = None) -> Dataset:
    """The data set of a prepared spec, its targets checked against the loss (ConfigError)."""
    data = make_data(spec, rng)
    check_targets(spec, data)
    return data


def make_data(spec: RunSpec, rng: np.random.Generator | None = None) -> Dataset:
    """The run's data set (the same for every spec with the same ``spec.data_key()``)."""
    rng = rng if rng is not None else rngs(spec.seed)[0]
    try:
        return make_dataset(rng=rng, **spec.used_by("data"))
    except DataError as e:
        raise ConfigError(e.field, e.value, e.problem) from None
    except ValueError as e:
        raise ConfigError("dataset", spec.dataset, str(e)) from None


def check_targets(spec: RunSpec, data: Dataset) -> None:
    """ConfigError unless the targets are the kind the loss is defined for."""
    try:
        for Y in (data.Y_train, data.Y_test):
            loss_targets(get_loss(spec.loss), Y)
    except ValueError as e:
        raise ConfigError("loss", spec.loss, str(e)) from None


def layer_sizes(spec: RunSpec, data: Dataset) -> list[int]:
    """[n_0, n_1, ..., n_L]: the data's features, ``depth`` hidden layers of ``width``, the classes."""
    return [data.n_features] + [spec.width] * spec.depth + [data.n_classes]


def build_network(spec: RunSpec, data: Dataset, rng) -> MLP:
    return MLP(layer_sizes(spec, data), seed=rng, **spec.used_by("net"))


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


def safe_norm(g: np.ndarray) -> float:
    """‖g‖ without overflow: max|g| · ‖g / max|g|‖ (NaN or inf when an entry is)."""
    m = float(np.abs(g).max(initial=0.0))
    if m == 0.0 or not math.isfinite(m):
        return m
    x = g / m
    return m * math.sqrt(np.vdot(x, x))


class Step:
    """One step of mini-batch SGD: the only one in mlplab (training, the benchmark and the tests
    all use it). ``step(X, Y)`` runs its three parts, which ``train`` calls one by one to log
    between them:

    * ``gradients(X, Y)`` — forward (mini-batch statistics; batch norm's running estimates
      updated), backward with the squared norm of every gradient array; returns ‖g‖ over all
      parameters (``norms()`` gives the per-layer norms);
    * ``clip(gnorm)`` — the clipping rule: (scale, clipped); value clipping acts in place;
    * ``update(scale)`` — ``sgd_step``: W ← (1 − ηλ) W − η·scale·∂C/∂W, θ ← θ − η·scale·∂C/∂θ.
    """

    def __init__(self, net: MLP, clip: str, threshold: float, lr: float, weight_decay: float):
        self.net, self.rule = net, get_clip(clip)
        self.threshold, self.lr, self.weight_decay = float(threshold), float(lr), float(weight_decay)
        self.params = [net.grads]  # what clipping acts on: every gradient, flat
        self.safe: dict | None = None

    def gradients(self, X: np.ndarray, Y: np.ndarray) -> float:
        net = self.net
        net.forward_(X, track=True)
        net.backward_(Y, norms=True)
        self.safe = None
        gnorm = math.sqrt(net.sq.total())
        if not math.isfinite(gnorm):
            # rare: a NaN/Inf entry, or a finite gradient beyond ~1e154 whose square overflows;
            # the norms again without squaring large numbers tell the two apart
            self.safe = {k: [safe_norm(g) for g in gs] for k, gs in net.layout.grads_by_kind.items() if gs}
            gnorm = safe_norm(np.asarray([v for vs in self.safe.values() for v in vs]))
        return gnorm

    def norms(self) -> dict[str, np.ndarray]:
        """Per-layer norms ‖∂C/∂θ^l‖ of the last ``gradients``, by kind ("W", "b", "gamma", "beta")."""
        if self.safe is not None:
            return {k: np.asarray(v) for k, v in self.safe.items()}
        return {k: np.sqrt(v) for k, v in self.net.sq.by_kind.items() if len(v)}

    def clip(self, gnorm: float) -> tuple[float, bool]:
        return self.rule.clip_(self.params, gnorm, self.threshold)

    def update(self, scale: float) -> None:
        sgd_step(self.net, self.lr, scale, self.weight_decay)

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> float:
        gnorm = self.gradients(X, Y)
        if not math.isfinite(gnorm):
            raise Diverged(f"gradient norm is {gnorm}")
        self.update(self.clip(gnorm)[0])
        return gnorm


KEY_COLUMNS = ("run_id", "step", "epoch", "layer", "fan_in", "fan_out")
NORM_COLUMNS = {"W": "grad_w_norm", "b": "grad_b_norm", "gamma": "grad_gamma_norm", "beta": "grad_beta_norm"}


def _metric_arrays(schema, shape) -> dict[str, np.ndarray]:
    """One preallocated array per metric column of ``schema``: NaN (floats) or zeros."""
    out = {}
    for f in schema:
        if f.name not in KEY_COLUMNS:
            dt = np.dtype(f.type.to_pandas_dtype())
            out[f.name] = np.full(shape, np.nan, dt) if dt.kind == "f" else np.zeros(shape, dt)
    return out


class Record:
    """Rows accumulated in preallocated arrays during a run, turned into tables once: one
    array per metric column of the steps and layers tables (``mlplab.results``)."""

    def __init__(self, sizes: list[int], capacity: int, normalised: bool = False):
        L = len(sizes) - 1
        self.L, self.sizes, self.n_steps_rows, self.steps_done = L, list(sizes), 0, 0
        self.max_grad_norm = 0.0  # the largest finite global gradient norm of every step, logged or not
        self.steps = {"step": np.zeros(capacity, np.int32), "epoch": np.zeros(capacity, np.int32)}
        self.steps.update(_metric_arrays(res.STEPS_SCHEMA, capacity))
        self.layers = _metric_arrays(res.LAYERS_SCHEMA, (capacity, L))
        # the layers each kind of parameter lives in (γ, β: every hidden layer of a normalised net)
        hidden = list(range(L - 1)) if normalised else []
        self.kind_layers = {"W": list(range(L)), "b": list(range(L)), "gamma": hidden, "beta": hidden}
        self.nulls = {}
        for kind in ("gamma", "beta"):
            null = np.ones(L, bool)
            null[self.kind_layers[kind]] = False
            self.nulls[NORM_COLUMNS[kind]] = null

    def log_gradients(self, s: int, epoch: int, net: MLP, step: Step, gnorm: float, Yb) -> int:
        """A new row for step ``s``: gradient norms, weights and activations of the mini-batch
        about to be applied (before clipping). Returns the row's index."""
        i = self.n_steps_rows
        self.n_steps_rows += 1
        st, lay = self.steps, self.layers
        st["step"][i], st["epoch"][i], st["grad_norm"][i] = s, epoch, gnorm
        st["batch_loss"][i] = net.loss_(Yb)
        for kind, norms in step.norms().items():
            lay[NORM_COLUMNS[kind]][i, self.kind_layers[kind]] = norms
        outputs = net.layer_outputs()
        for l, ((a, h), W) in enumerate(zip(outputs, net.weights)):
            sat = net.loss.saturated(a) if l == self.L - 1 else net.activation.saturated(h)
            lay["weight_norm"][i, l] = math.sqrt(np.vdot(W, W))
            lay["act_mean"][i, l] = a.mean()
            lay["act_std"][i, l] = a.std()
            lay["sat_frac"][i, l] = sat.mean()
        return i

    def log_update(self, i: int, net: MLP, step: Step, scale: float, clipped: bool, evaluation) -> float:
        """The rest of row i: whether clipping acted, ‖ΔW^l‖/‖W^l‖ of the update about to be made,
        and ``evaluation`` ((loss, accuracy) on the whole training and test sets). Returns the
        training loss."""
        st, lay = self.steps, self.layers
        st["clipped"][i] = clipped
        lr, wd = step.lr, step.weight_decay
        for l, (W, g) in enumerate(zip(net.weights, net.dW)):  # ΔW^l = −η (scale · g + λ W)
            wn = lay["weight_norm"][i, l]
            step_norm = safe_norm(scale * g + wd * W if wd else g) * (1.0 if wd else scale)
            lay["update_ratio"][i, l] = lr * step_norm / wn if wn > 0 else math.inf
        (st["train_loss"][i], st["train_accuracy"][i]), (st["test_loss"][i], st["test_accuracy"][i]) = evaluation
        return float(st["train_loss"][i])

    def divergence(self, norms: dict, gnorm: float, s: int) -> str:
        """The reason a gradient is not finite: the first array with a NaN or Inf."""
        for kind, values in norms.items():
            for l, v in zip(self.kind_layers[kind], values):
                if not math.isfinite(v):
                    return f"{NORM_COLUMNS[kind]} of layer {l + 1} is {v} at step {s}"
        return f"gradient norm is {gnorm} at step {s}"

    def tables(self, run_id: str):
        n, L = self.n_steps_rows, self.L
        steps = {k: v[:n] for k, v in self.steps.items()}
        steps["run_id"] = [run_id] * n
        layers = {k: v[:n].reshape(-1) for k, v in self.layers.items()}
        layers["run_id"] = [run_id] * (n * L)
        layers["step"] = np.repeat(steps["step"], L)
        layers["epoch"] = np.repeat(steps["epoch"], L)
        layers["layer"] = np.tile(np.arange(1, L + 1, dtype=np.int32), n)
        layers["fan_in"] = np.tile(np.asarray(self.sizes[:-1], np.int32), n)
        layers["fan_out"] = np.tile(np.asarray(self.sizes[1:], np.int32), n)
        nulls = {k: np.tile(v, n) for k, v in self.nulls.items()}
        return res.to_table(layers, "layers", nulls), res.to_table(steps, "steps")


def batches(data: Dataset, sched: Schedule, rng: np.random.Generator):
    """The mini-batches of one epoch, in a fresh random order (the whole set when full batch)."""
    X, Y = data.X_train, data.Y_train
    if sched.batch_size >= sched.n_train:
        yield X, Y
        return
    perm = rng.permutation(sched.n_train)
    for start in range(0, sched.n_train, sched.batch_size):
        idx = perm[start : start + sched.batch_size]
        yield X[idx], Y[idx]


def train(net: MLP, data: Dataset, spec: RunSpec, shuffle_rng: np.random.Generator, sched: Schedule, rec: Record) -> None:
    """Plain mini-batch SGD with per-layer instrumentation; fills ``rec``.

    Update (weights only decay): W ← W − η (clip(∂C/∂W) + λ W),  θ ← θ − η clip(∂C/∂θ) for b, γ, β.
    At every logged step s (s updates done; s = 0 is the initialisation) it records, for the
    mini-batch about to be applied: per layer the pre-clip gradient norms ‖∂C/∂W^l‖_F,
    ‖∂C/∂b^l‖ (and ‖∂C/∂γ^l‖, ‖∂C/∂β^l‖), ‖W^l‖_F, ‖ΔW^l‖/‖W^l‖, and the mean, std and saturated
    fraction of the layer's output; per step the training and test loss and accuracy (whole
    sets, evaluation mode), the mini-batch loss, the pre-clip global norm and whether clipping
    acted. A non-finite gradient (checked every step) or loss (checked at every logged step)
    raises ``Diverged``, with that step's row kept in ``rec``.
    """
    step = Step(net, spec.clip, spec.clip_threshold, spec.lr, spec.weight_decay)
    s = 0
    for epoch in range(spec.epochs):
        for Xb, Yb in batches(data, sched, shuffle_rng):
            logged = s % sched.log_every == 0
            if logged:  # the network after s updates (batch norm: running estimates of s batches)
                evaluation = net.evaluate(data.X_train, data.Y_train), net.evaluate(data.X_test, data.Y_test)
            gnorm = step.gradients(Xb, Yb)
            finite = math.isfinite(gnorm)
            if gnorm > rec.max_grad_norm and finite:
                rec.max_grad_norm = gnorm
            if logged or not finite:
                i = rec.log_gradients(s, epoch, net, step, gnorm, Yb)
                if not finite:
                    raise Diverged(rec.divergence(step.norms(), gnorm, s))
                scale, clipped = step.clip(gnorm)
                train_loss = rec.log_update(i, net, step, scale, clipped, evaluation)
                if not math.isfinite(train_loss):
                    raise Diverged(f"training loss is {train_loss} at step {s}")
            else:
                scale, clipped = step.clip(gnorm)
            step.update(scale)
            s += 1
            rec.steps_done = s


def run(spec: RunSpec, root, sweep: str = "", force: bool = False, tables: list | None = None) -> dict:
    """Do one run and write its tables under ``root``; return its ``runs`` row as a dict.

    A run already committed as ``ok`` or ``diverged`` is skipped (its row is read back) unless
    ``force``; a ``failed`` run is done again. With ``tables``, the run's three tables, once
    committed, are appended to it as a dict.
    Raises ``ConfigError`` for bad input, and ``ResultsError`` for a folder that cannot be
    written, before anything is trained or written.
    """
    from mlplab import __version__

    t0 = time.perf_counter()
    spec = prepare(spec)
    run_id = spec.run_id
    if not force and res.is_done(root, run_id):
        row = res.committed_row(root, run_id)
        row["skipped"] = True
        return row
    res.prepare_folder(root)  # before training: an unusable folder is bad input, not a lost run
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
    rec = Record(layer_sizes(spec, data), sched.n_steps // sched.log_every + 2, spec.norm is not None)
    t1 = time.perf_counter()
    with blas().limit(limits=1), np.errstate(over="ignore", invalid="ignore"):
        # overflow and inf-inf are expected in exploding runs; they are caught as divergence
        # (non-finite norms and losses) right where they arise, not silenced elsewhere.
        try:
            net = build_network(spec, data, rng_init)
            t1 = time.perf_counter()
            train(net, data, spec, rng_shuffle, sched, rec)
            row["status"] = "ok"
            row["final_loss"], row["final_accuracy"] = net.evaluate(data.X_train, data.Y_train)
            row["final_test_loss"], row["final_test_accuracy"] = net.evaluate(data.X_test, data.Y_test)
            if not math.isfinite(row["final_loss"]):
                row.update(status="diverged", diverged_step=sched.n_steps, reason=f"final training loss is {row['final_loss']}")
        except Diverged as e:
            row.update(status="diverged", diverged_step=int(rec.steps["step"][rec.n_steps_rows - 1]), reason=str(e))
        except Exception as e:  # noqa: BLE001 - any fault of one run is recorded, the sweep goes on
            row.update(status="failed", reason=f"{type(e).__name__}: {e}")
        t2 = time.perf_counter()
    layers, steps = rec.tables(run_id)
    row.update(steps_done=rec.steps_done, max_grad_norm=rec.max_grad_norm, setup_time_s=t1 - t0, train_time_s=t2 - t1)
    # write_time_s covers the two large tables; the one-row runs file (the commit) comes last
    t3 = time.perf_counter()
    res.atomic_write_table(layers, res.run_path(root, "layers", run_id))
    res.atomic_write_table(steps, res.run_path(root, "steps", run_id))
    t4 = time.perf_counter()
    row.update(write_time_s=t4 - t3, wall_time_s=t4 - t0)
    runs = res.to_table({k: [v] for k, v in row.items()}, "runs")
    res.atomic_write_table(runs, res.run_path(root, "runs", run_id))
    if tables is not None:  # the caller gathers them (a sweep's chunk, to compact it)
        tables.append({"runs": runs, "steps": steps, "layers": layers})
    row["skipped"] = False
    return row

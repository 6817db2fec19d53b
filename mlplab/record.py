"""What a run records at its logged steps, and how it stays cheap.

``Record`` holds one preallocated array per metric column of the ``steps`` and ``layers`` tables
(``mlplab.results``) and turns them into tables once, at the end. At each logged step it takes
what only that moment has: the per-layer gradient norms (already summed by the backward pass),
the weight norms, and — kept raw in ``Pending`` — the mini-batch's layer outputs a^1..a^L, z^L
and targets. The statistics of the outputs (mean, standard deviation, saturated fraction) and
the mini-batch loss are computed from those raw copies for all rows at once, when the tables
are made: a few array operations per run instead of a few dozen per logged step. A run whose
raw copies would exceed ``Pending.MAX_BYTES`` computes them at each step instead; the numbers
are the same either way.

A stack of runs trained together (``mlplab.network.MLP.stack``) gives each run its own
``Record``; ``run=r`` tells the record which run's row of the stack's arrays is its own.
"""

from __future__ import annotations

import math

import numpy as np

from mlplab import results as res
from mlplab.jacobian import jacobian, singular_values

KEY_COLUMNS = ("run_id", "step", "epoch", "layer", "fan_in", "fan_out")
NORM_COLUMNS = {"W": "grad_w_norm", "b": "grad_b_norm", "gamma": "grad_gamma_norm", "beta": "grad_beta_norm"}


def at(x: np.ndarray, run: int | None) -> np.ndarray:
    """Run ``run``'s part of an array of a stack of runs; the array itself for one network."""
    return x if run is None else x[run]


def block_stats(x: np.ndarray, starts: np.ndarray, counts: np.ndarray, output: np.ndarray, activation, loss):
    """Mean, standard deviation (two passes: the mean, then the squared deviations from it) and
    saturated fraction of every segment of the flat array ``x`` (segment k: ``counts[k]``
    numbers from ``starts[k]``, the segments back to back), in float64. A segment with
    ``output[k]`` set is an output layer's a^L, saturated by the loss's rule; the others are
    hidden outputs, saturated by the activation's. Overwrites ``x`` (with the squared deviations)."""
    # saturated units per segment (add.reduceat sums bytes in the platform's int, as add.reduce does)
    sat = np.add.reduceat(activation.saturated(x).view(np.uint8), starts)
    if output.any():
        by_loss = np.add.reduceat(loss.saturated(x).view(np.uint8), starts)
        sat = np.where(output, by_loss, sat)
    mean = np.add.reduceat(x, starts, dtype=np.float64) / counts
    x -= np.repeat(mean, counts)
    np.multiply(x, x, out=x)
    std = np.sqrt(np.add.reduceat(x, starts, dtype=np.float64) / counts)
    return mean, std, sat / counts


class Scratch:
    """Memory handed from one run's record to the next: a sweep's worker runs one run after
    another, and fresh memory would fault its pages in on every run. Its owner runs them
    (``mlplab.train.Runner``); a record without one takes fresh memory."""

    def __init__(self):
        self.free: dict[str, np.ndarray] = {}  # a finished run's store, per dtype

    def take(self, n: int, dtype) -> np.ndarray:
        """n numbers of memory for a run's store: the last finished run's when it is large
        enough, else new. Taken out while in use, so no two runs share it."""
        dtype = np.dtype(dtype)
        buf = self.free.pop(dtype.char, None)
        if buf is None or buf.size < n:
            buf = np.empty(n, dtype)
        return buf[:n]

    def give(self, buf: np.ndarray) -> None:
        """A finished run's store, for the next run."""
        self.free[buf.dtype.char] = buf


class Pending:
    """The raw copies of logged mini-batches whose statistics are computed at the end.

    Per row: the workspace's block of layer outputs (``mlplab.network.Workspace.outputs``:
    a^1..a^L back to back), z^L, a^L and the targets Y — each in a flat store, rows back to
    back. With residual layers, σ's output h^l is apart from a^l; their saturated fractions are
    counted at once (``residual_sat``)."""

    MAX_BYTES = 32 * 2**20  # raw copies of a run beyond this: statistics at each logged step

    def __init__(self, net, capacity: int, m: int, scratch: Scratch):
        ws = net.last_workspace
        self.scratch = scratch
        n_out = net.sizes[-1]
        self.activation, self.loss = net.activation, net.loss  # the saturation rules and the loss
        self.block, self.m = ws.outputs.shape[-1] // ws.m, m  # numbers per sample in a run's outputs block
        self.base = ws.starts // ws.m  # each layer's start within a sample-block of the outputs
        self.widths = np.asarray(net.sizes[1:])
        size = capacity * m * (self.block + 3 * n_out) * net.dtype.itemsize
        self.deferred = size <= self.MAX_BYTES
        if self.deferred:
            n = capacity * m * self.block
            self.memory = scratch.take(n + 3 * capacity * m * n_out, net.dtype)
            self.out = self.memory[:n]
            self.zaY = self.memory[n:].reshape(3, capacity * m, n_out)
        self.rows: list[tuple[int, int]] = []  # (row, samples) of each deferred row
        self.used = 0  # samples stored
        self.residual_sat = np.full((capacity, net.L), np.nan)

    def add(self, rec: Record, i: int, net, Yb: np.ndarray, run: int | None = None) -> None:
        ws = net.last_workspace
        m, c = ws.m, ws.buffers[-1]
        for l in ws.residuals:
            h = at(ws.buffers[l].h, run)
            self.residual_sat[i, l] = np.count_nonzero(net.activation.saturated(h)) / ws.counts[l]
        if not self.deferred or m > self.m:  # too large to keep: now, as the kept rows are at the end
            row, ms = np.array([i]), np.array([m])
            self.compute(rec, row, ms, at(ws.outputs, run).copy(), at(c.z, run), at(c.a, run), Yb)
            return
        u = self.used
        self.out[u * self.block : (u + m) * self.block] = at(ws.outputs, run)
        z, a, Y = self.zaY[:, u : u + m]
        z[...], a[...], Y[...] = at(c.z, run), at(c.a, run), Yb
        self.rows.append((i, m))
        self.used += m

    def release(self) -> None:
        """Hand the store back for the next run (``Scratch``)."""
        if self.deferred:
            self.scratch.give(self.memory.base)  # the whole buffer take sliced

    def flush(self, rec: Record) -> None:
        """The statistics and mini-batch losses of every deferred row, into ``rec``."""
        if self.rows:
            rows, ms = (np.asarray(v) for v in zip(*self.rows))
            z, a, Y = self.zaY[:, : self.used]
            self.compute(rec, rows, ms, self.out[: self.used * self.block], z, a, Y)
        has = ~np.isnan(self.residual_sat)
        rec.layers["sat_frac"][has] = self.residual_sat[has]

    def compute(self, rec: Record, rows, ms, x, z, a, Y) -> None:
        """The statistics and mini-batch losses of rows ``rows`` of ``ms`` samples each, from
        their raw copies back to back (x: the outputs blocks; z^L, a^L, Y), into ``rec``."""
        first = np.concatenate([[0], np.cumsum(ms)[:-1]])  # each row's first sample
        L = len(self.widths)
        starts = (first[:, None] * self.block + ms[:, None] * self.base[None, :]).ravel()
        counts = (ms[:, None] * self.widths[None, :]).ravel()
        output = np.tile(np.arange(L) == L - 1, len(rows))
        stats = block_stats(x, starts, counts, output, self.activation, self.loss)
        rec.put_stats(rows, *(v.reshape(len(rows), L) for v in stats))
        rec.steps["batch_loss"][rows] = np.add.reduceat(self.loss.fn(z, a, Y), first, dtype=np.float64) / ms


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

    def __init__(self, sizes: list[int], capacity: int, normalised: bool = False, scratch: Scratch | None = None):
        L = len(sizes) - 1
        self.scratch = scratch if scratch is not None else Scratch()  # the memory of its raw copies
        self.L, self.sizes, self.capacity, self.n_steps_rows, self.steps_done = L, list(sizes), capacity, 0, 0
        self.max_grad_norm = 0.0  # the largest finite global gradient norm of every step, logged or not
        self.steps = {"step": np.zeros(capacity, np.int32), "epoch": np.zeros(capacity, np.int32)}
        self.steps.update(_metric_arrays(res.STEPS_SCHEMA, capacity))
        self.layers = _metric_arrays(res.LAYERS_SCHEMA, (capacity, L))
        # the layers each kind of parameter lives in (γ, β: every hidden layer; only a normalised net has them)
        hidden = np.arange(L - 1)
        self.kind_layers = {"W": slice(None), "b": slice(None), "gamma": hidden, "beta": hidden}
        no_norm = np.arange(L) >= (L - 1 if normalised else 0)  # the layers without γ and β: null
        self.nulls = {NORM_COLUMNS["gamma"]: no_norm, NORM_COLUMNS["beta"]: no_norm}
        self.pending: Pending | None = None

    def log_gradients(self, s: int, epoch: int, net, step, gnorm: float, Yb, run: int | None = None) -> int:
        """A new row for step ``s``: gradient norms, weights and activations of the mini-batch
        about to be applied (before clipping); ``run``: this record's run in a stack of runs.
        Returns the row's index."""
        i = self.n_steps_rows
        self.n_steps_rows += 1
        st, lay = self.steps, self.layers
        st["step"][i], st["epoch"][i], st["grad_norm"][i] = s, epoch, gnorm
        for kind, norms in step.norms(run).items():
            lay[NORM_COLUMNS[kind]][i, self.kind_layers[kind]] = norms
        if self.pending is None:
            self.pending = Pending(net, self.capacity, len(Yb), self.scratch)
        wn, vdot = lay["weight_norm"][i], np.vdot
        for l, W in enumerate(net.weights):
            W = at(W, run)
            wn[l] = vdot(W, W)
        np.sqrt(wn, out=wn)
        self.pending.add(self, i, net, Yb, run)
        return i

    def put_stats(self, i: int, mean, std, sat) -> None:
        lay = self.layers
        lay["act_mean"][i], lay["act_std"][i], lay["sat_frac"][i] = mean, std, sat

    def log_update(self, i: int, step, scale, clipped: bool, evaluation=None, run: int | None = None) -> float:
        """The rest of row i: whether clipping acted, the learning rate and ‖ΔW^l‖/‖W^l‖ of the
        update about to be made, and ``evaluation`` ((loss, accuracy) on the whole training and
        test sets; None: not evaluated at this step, NaN). Returns the training loss (NaN when
        not evaluated). In a stack of runs ``scale`` is every run's column, ``run`` this record's."""
        st, lay = self.steps, self.layers
        st["clipped"][i], st["learning_rate"][i] = clipped, step.opt.lr
        wn, ratio = lay["weight_norm"][i], lay["update_ratio"][i]
        # ‖ΔW^l‖ as the optimiser's rule gives it; the logged gradient norms are the gradients'
        # unless clipping changed them in place
        known = None if clipped and not step.rule.scales else lay["grad_w_norm"][i]
        np.divide(step.opt.weight_step_norms(scale, known, run), wn, out=ratio, where=wn > 0)
        ratio[wn <= 0] = math.inf
        if evaluation is not None:
            (st["train_loss"][i], st["train_accuracy"][i]), (st["test_loss"][i], st["test_accuracy"][i]) = evaluation
        return float(st["train_loss"][i])

    def divergence(self, norms: dict, gnorm: float, s: int) -> str:
        """The reason a gradient is not finite: the first array with a NaN or Inf."""
        for kind, values in norms.items():
            for l, v in zip(np.arange(self.L)[self.kind_layers[kind]], values):
                if not math.isfinite(v):
                    return f"{NORM_COLUMNS[kind]} of layer {l + 1} is {v} at step {s}"
        return f"gradient norm is {gnorm} at step {s}"

    def flush(self) -> None:
        """Compute what the logged rows kept raw (``Pending``)."""
        if self.pending is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                self.pending.flush(self)

    def close(self) -> None:
        """The run is over: compute what is pending and hand its store on."""
        self.flush()
        if self.pending is not None:
            self.pending.release()
            self.pending = None  # closed: its statistics are in the arrays, its memory handed on

    def tables(self, run_id: str):
        self.close()
        n, L = self.n_steps_rows, self.L
        steps = {k: v[:n] for k, v in self.steps.items()}
        steps["run_id"] = [run_id] * n
        layers = {k: v[:n].ravel() for k, v in self.layers.items()}  # to_table casts to the schema's types
        layers["run_id"] = [run_id] * (n * L)
        layers["step"] = np.repeat(steps["step"], L)
        layers["epoch"] = np.repeat(steps["epoch"], L)
        layers["layer"] = np.tile(np.arange(1, L + 1), n)
        layers["fan_in"] = np.tile(self.sizes[:-1], n)
        layers["fan_out"] = np.tile(self.sizes[1:], n)
        nulls = {k: np.tile(v, n) for k, v in self.nulls.items()}
        return res.to_table(layers, "layers", nulls), res.to_table(steps, "steps")


class Spectra:
    """The rows of the ``spectra`` table: at each step it is asked for (``log``), the singular
    values of J = ∂a^depth/∂a^0 (``mlplab.jacobian``, the network in training mode) for each of
    the fixed samples ``X`` (a run's first training samples), largest first."""

    def __init__(self, X: np.ndarray, every: int):
        self.X, self.every = X, every
        self.logged: list[tuple[int, np.ndarray]] = []  # (step, singular values (samples, r))

    def due(self, s: int) -> bool:
        return s % self.every == 0

    def log(self, s: int, net) -> None:
        self.logged.append((s, singular_values(jacobian(net, self.X))))

    def table(self, run_id: str):
        """The rows (run_id, step, sample, index, singular_value): one per value, in the order
        logged; None when nothing was logged."""
        if not self.logged:
            return None
        m, r = self.logged[0][1].shape
        n = len(self.logged)
        values = np.concatenate([sv.ravel() for _, sv in self.logged])
        columns = {
            "run_id": [run_id] * (n * m * r),
            "step": np.repeat([s for s, _ in self.logged], m * r),  # to_table casts to the schema's types
            "sample": np.tile(np.repeat(np.arange(m), r), n),
            "index": np.tile(np.arange(r), n * m),
            "singular_value": values,
        }
        return res.to_table(columns, "spectra")

"""One run: data -> network -> SGD with per-layer instrumentation -> three tables.

``run(spec, root)`` is the plain function under the CLI (and what the tests call). It never
imports Hydra. A run ends with one of three statuses:

* ``ok``        trained for every epoch;
* ``diverged``  the loss or a gradient became NaN/Inf: training stops at that step, the rows up to
                and including it are kept, and ``diverged_step`` and ``reason`` say where;
* ``failed``    any other exception: its message is kept in ``reason``, with the rows so far.

Bad input (``ConfigError``) is raised before any training starts and writes nothing.

``run_many(specs, root)`` does many runs; the seeds of one configuration are trained together,
as one stack of networks (``MLP.stack``), each run's numbers bit for bit its own.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import numpy as np
from threadpoolctl import ThreadpoolController

from mlplab import resources
from mlplab import results as res
from mlplab.clipping import get_clip
from mlplab.data import DataError, Dataset, facts, make_dataset
from mlplab.layout import safe_norm
from mlplab.losses import check_targets as loss_targets
from mlplab.losses import get_loss
from mlplab.network import MLP
from mlplab.optim import make as make_optimiser
from mlplab.provenance import provenance
from mlplab.record import Record, Scratch, Spectra, at
from mlplab.spec import ConfigError, RunSpec, Schedule, validate


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
        raise ConfigError(
            "data_path",
            spec.data_path,
            f"the file changed since the run was planned (sha256 "
            f"{(digest or '-')[:12]}…, planned {spec.data_digest[:12]}…); run the command again",
        )
    return dataclasses.replace(spec, **found) if found else spec


def prepare(spec: RunSpec, memory: resources.MemoryProbe | None = None) -> RunSpec:
    """The spec validated, resolved and checked for everything that needs no data values:
    a non-empty training and test split, the batch size, batch norm's batches, the memory the
    run needs (``memory``: the caller's probe, which reuses a recent reading; else one reading
    now). ConfigError (exit code 2) before anything is trained or written."""
    spec = resolve(validate(spec))
    sched = spec.schedule()
    n_train, n_test = sched.n_train, sched.n_test
    if n_train < 1 or n_test < 1:
        raise ConfigError(
            "test_fraction",
            spec.test_fraction,
            f"splits the {spec.n_samples} samples into {n_train} "
            f"for training and {n_test} for testing; expected at least 1 of each",
        )
    if spec.batch_size != "full" and spec.batch_size > n_train:
        raise ConfigError("batch_size", spec.batch_size, f"must be <= the {n_train} training samples (or 'full')")
    if spec.warmup_steps > sched.n_steps:
        raise ConfigError(
            "warmup_steps",
            spec.warmup_steps,
            f"must be <= the run's {sched.n_steps} updates (epochs × steps per epoch)",
        )
    if spec.norm == "batch":
        bs = sched.batch_size
        if bs < 2 or n_train % bs == 1:
            raise ConfigError(
                "batch_size",
                spec.batch_size,
                f"with norm=batch every mini-batch needs >= 2 samples; {n_train} training samples in batches of {bs} "
                f"leave {'a batch' if bs < 2 else 'a last batch'} of 1",
            )
    resources.check(spec, memory=memory)
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


def build_network(spec: RunSpec, data: Dataset, rng) -> MLP:
    """The network of ``spec`` for ``data`` (its features and classes), its initial weights drawn from ``rng``."""
    return MLP(spec.layer_sizes(data.n_features, data.n_classes), seed=rng, **spec.network_kwargs())


class Step:
    """One training step: the only one in mlplab (training, the benchmark and the tests all use
    it). ``step(X, Y)`` runs its three parts, which ``train`` calls one by one to log between them:

    * ``gradients(X, Y)`` — forward (mini-batch statistics; batch norm's running estimates
      updated), backward with the squared norm of every gradient array; returns ‖g‖ over all
      parameters (``norms()`` gives the per-layer norms);
    * ``clip(gnorm)`` — the clipping rule: (scale, clipped); value clipping acts in place;
    * ``update(scale)`` — the optimiser's step (``opt``, ``mlplab.optim``; ``optim`` names it, ``hyper``
      its own hyperparameters) on the clipped gradient, e.g. sgd's
      W ← (1 − ηλ) W − η·scale·∂C/∂W, θ ← θ − η·scale·∂C/∂θ.

    On a stack of runs (``MLP.stack``) ``gradients`` returns every run's ‖g‖ (an array),
    ``norms(run)`` and ``clip(gnorm, run)`` act on one run, and ``update`` takes the (runs, 1)
    column of their scales.
    """

    def __init__(
        self, net: MLP, clip: str, threshold: float, lr: float, weight_decay: float = 0.0, optim="sgd", **hyper
    ):
        self.net, self.rule, self.threshold = net, get_clip(clip), float(threshold)
        self.opt = make_optimiser(net, optim, lr=lr, weight_decay=weight_decay, **hyper)
        self.params = [net.grads]  # what clipping acts on: every gradient, flat
        if net.runs is not None:  # a stack: each run's own
            self.params = [[g] for g in net.grads]
        self.safe: dict = {}

    def gradients(self, X: np.ndarray, Y: np.ndarray):
        net = self.net
        net.forward_(X, track=True)
        net.backward_(Y, norms=True)
        self.safe = {}
        if net.runs is not None:
            gnorms = np.sqrt(net.sq.totals())
            for r in np.flatnonzero(~np.isfinite(gnorms)):
                gnorms[r] = self._safe(int(r))
            return gnorms
        gnorm = math.sqrt(net.sq.total())
        if not math.isfinite(gnorm):
            gnorm = self._safe(None)
        return gnorm

    def _safe(self, run: int | None) -> float:
        """Rare: a NaN/Inf entry, or a finite gradient beyond ~1e154 whose square overflows; the
        norms again without squaring large numbers tell the two apart."""
        by_kind = self.net.layout.grads_by_kind
        self.safe[run] = {k: [safe_norm(at(g, run)) for g in gs] for k, gs in by_kind.items() if gs}
        return safe_norm(np.asarray([v for vs in self.safe[run].values() for v in vs]))

    def norms(self, run: int | None = None) -> dict[str, np.ndarray]:
        """Per-layer norms ‖∂C/∂θ^l‖ of the last ``gradients``, by kind ("W", "b", "gamma", "beta")."""
        if run in self.safe:
            return {k: np.asarray(v) for k, v in self.safe[run].items()}
        return {k: np.sqrt(at(v, run)) for k, v in self.net.sq.by_kind.items() if v.shape[-1]}

    def clip(self, gnorm: float, run: int | None = None) -> tuple[float, bool]:
        return self.rule.clip_(self.params if run is None else self.params[run], gnorm, self.threshold)

    def update(self, scale) -> None:
        self.opt.step(scale)

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> float:
        gnorm = self.gradients(X, Y)
        if not math.isfinite(gnorm):
            raise Diverged(f"gradient norm is {gnorm}")
        self.update(self.clip(gnorm)[0])
        return gnorm


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


def stacked_batches(X: np.ndarray, Y: np.ndarray, sched: Schedule, rngs: list[np.random.Generator]):
    """``batches`` of a stack of runs at once: X, Y (runs, n_train, ·) hold each run's training
    set, and each run draws its own order from its own generator, so that its mini-batch r is
    the one ``batches`` gives it alone."""
    if sched.batch_size >= sched.n_train:
        yield X, Y
        return
    perm = np.stack([rng.permutation(sched.n_train) for rng in rngs])
    rows = np.arange(len(rngs))[:, None]
    for start in range(0, sched.n_train, sched.batch_size):
        idx = perm[:, start : start + sched.batch_size]
        yield X[rows, idx], Y[rows, idx]


class Evaluation:
    """(loss, accuracy) on the whole training and test sets, in evaluation mode (batch norm:
    running estimates): what ``MLP.evaluate`` gives for each set, from one forward pass over
    both (each sample's output is its own in evaluation mode), without its input checks (the
    sets are checked once, here) and with the labels taken once."""

    def __init__(self, net: MLP, data: Dataset):
        self.net, self.n = net, len(data.X_train)
        self.X = net.as_input(np.concatenate([data.X_train, data.X_test]))
        self.Y = net.as_targets(self.X, np.concatenate([data.Y_train, data.Y_test]))
        self.labels = self.Y.argmax(axis=1)

    def __call__(self) -> tuple[tuple[float, float], tuple[float, float]]:
        net, n = self.net, self.n
        aL = net.forward_(self.X, "running")
        c = net.last_workspace.buffers[-1]
        loss = net.loss.fn(c.z, c.a, self.Y)
        hit = aL.argmax(axis=1) == self.labels
        return tuple(
            (float(loss[part].mean()), np.count_nonzero(hit[part]) / len(hit[part]))
            for part in (slice(n), slice(n, None))
        )


@dataclasses.dataclass
class Trainee:
    """One run in training: alone, or one row ``r`` of a stack of runs trained together. What
    training fills: its record, its spectra, and ``diverged`` (the reason it stopped, or None)."""

    data: Dataset
    shuffle: np.random.Generator
    rec: Record
    spectra: Spectra | None = None
    net: MLP | None = None  # its own network (in a stack: row r of the stack's parameters, MLP.stack)
    diverged: str | None = None


def train(
    net: MLP,
    data: Dataset,
    spec: RunSpec,
    shuffle_rng: np.random.Generator,
    sched: Schedule,
    rec: Record,
    spectra: Spectra | None = None,
) -> None:
    """One run's training (``train_runs`` of one); ``Diverged``, with the rows up to that step
    kept in ``rec``, when it diverges."""
    t = Trainee(data, shuffle_rng, rec, spectra)
    train_runs(net, [t], spec, sched)
    if t.diverged is not None:
        raise Diverged(t.diverged)


def train_runs(net: MLP, runs: list[Trainee], spec: RunSpec, sched: Schedule) -> None:
    """Mini-batch training with per-layer instrumentation; fills each run's record. ``net`` is
    one network (one run) or a stack of ``len(runs)`` runs (``MLP.stack``), which differ only in
    their seed (data, initial weights, order of the mini-batches): each operation serves them
    all, and each run's numbers are bit for bit those of the run alone.

    Update: the optimiser ``spec.optim`` on the clipped gradient, at η_s of the learning-rate
    schedule (sgd: W ← W − η_s (clip(∂C/∂W) + λ W),  θ ← θ − η_s clip(∂C/∂θ) for b, γ, β).
    At every logged step s (s updates done; s = 0 is the initialisation; every ``log_every``-th
    and every ``eval_every``-th step) it records, for the mini-batch about to be applied: per
    layer the pre-clip gradient norms ‖∂C/∂W^l‖_F, ‖∂C/∂b^l‖ (and ‖∂C/∂γ^l‖, ‖∂C/∂β^l‖),
    ‖W^l‖_F, ‖ΔW^l‖/‖W^l‖ of the update applied, and the mean, std and saturated fraction of the
    layer's output; per step η_s, the mini-batch loss, the pre-clip global norm and whether clipping acted. At every
    ``eval_every``-th step also the training and test loss and accuracy (whole sets, evaluation
    mode); NaN at the other rows. With ``spectra``, at the steps it is due (the last one, n_steps,
    too: the trained network) the singular values of the network's Jacobian for its samples. A non-finite gradient
    (checked every step) or training loss (every evaluation) stops a run (``diverged`` says why),
    with that step's row kept in its record; the others go on. (A non-finite mini-batch loss
    needs a non-finite z^L, whose gradient is not finite either.)
    """
    stack = net.runs is not None
    step = Step(net, spec.clip, spec.clip_threshold, optim=spec.optim, **spec.optimiser_kwargs())
    eta = spec.learning_rate()  # η_s of every update (constant: the rate itself, lr × 1.0)
    # each run evaluated by its own network (in a stack: its row), the cheaper pass for whole sets
    evaluate = [Evaluation(t.net if stack else net, t.data) for t in runs]
    log_every, eval_every = sched.log_every, sched.eval_every
    live = list(enumerate(runs)) if stack else [(None, runs[0])]  # (its row of the stack, the run)
    if stack:
        scale = np.ones((len(runs), 1))  # the clipping factors: a column per run (one run: a number)
        X = np.stack([t.data.X_train for t in runs])
        Y = np.stack([t.data.Y_train for t in runs])
    s = 0
    for epoch in range(spec.epochs):
        if stack:
            epoch_batches = stacked_batches(X, Y, sched, [t.shuffle for t in runs])
        else:
            epoch_batches = batches(runs[0].data, sched, runs[0].shuffle)
        for Xb, Yb in epoch_batches:
            step.opt.lr = eta(s)
            evaluated = s % eval_every == 0
            # the network after s updates (batch norm: running estimates of s batches), each live run's
            evaluation = {r: evaluate[0 if r is None else r]() for r, _ in live} if evaluated else {}
            for r, t in live:
                if t.spectra is not None and t.spectra.due(s):
                    t.spectra.log(s, net if r is None else t.net)
            gnorms = step.gradients(Xb, Yb)
            logged = []
            for r, t in live:
                gnorm, rec = (gnorms if r is None else float(gnorms[r])), t.rec
                finite = math.isfinite(gnorm)
                if finite:
                    rec.max_grad_norm = max(rec.max_grad_norm, gnorm)
                if evaluated or not finite or s % log_every == 0:
                    i = rec.log_gradients(s, epoch, net, step, gnorm, at(Yb, r), r)
                    if not finite:
                        t.diverged = rec.divergence(step.norms(r), gnorm, s)
                        continue
                    run_scale, clipped = step.clip(gnorm, r)
                    logged.append((r, t, i, clipped))
                else:
                    run_scale, clipped = step.clip(gnorm, r)
                if stack:
                    scale[r] = run_scale
                else:
                    scale = run_scale
            # the update's sizes once every run's scale is known (a stack's optimiser computes them at once)
            for r, t, i, clipped in logged:
                train_loss = t.rec.log_update(i, step, scale, clipped, evaluation.get(r), r)
                if evaluated and not math.isfinite(train_loss):
                    t.diverged = f"training loss is {train_loss} at step {s}"
            live = [(r, t) for r, t in live if t.diverged is None]
            if not live:
                return
            step.update(scale)
            s += 1
            for _, t in live:
                t.rec.steps_done = s
    for r, t in live:
        if t.spectra is not None and t.spectra.due(s):
            t.spectra.log(s, net if r is None else t.net)  # the trained network, when the cadence reaches n_steps


STACK_BYTES = 64 * 2**20  # a stack's data and evaluation buffers at most this (else fewer runs per stack)
STACK_RUNS = 64  # at most this many runs in one stack


def stack_key(spec: RunSpec) -> str | None:
    """What runs trained together in one stack share: everything but the seed. None for a run
    that trains alone: a normalised network (its layers are written for one run), a data file."""
    if spec.norm != "none" or spec.data_path is not None:
        return None
    return repr(sorted((k, v) for k, v in spec.as_dict().items() if k != "seed"))


def stack_size(spec: RunSpec) -> int:
    """How many runs like ``spec`` a stack holds: its data and its evaluation's outputs (the
    largest arrays a stack keeps per run) within ``STACK_BYTES``."""
    sched = spec.schedule()
    sizes = spec.layer_sizes()
    n = sched.n_train + sched.n_test
    per_run = 8 * n * (2 * sizes[0] + 2 * sizes[-1] + 2 * sum(sizes[1:]))
    return max(1, min(STACK_RUNS, STACK_BYTES // per_run))  # per_run > 0: at least 2 samples


@dataclasses.dataclass
class Started:
    """A run set up for training (``Runner.start``): its trainee and what its ``runs`` row needs."""

    spec: RunSpec
    sched: Schedule
    trainee: Trainee
    row: dict
    setup_s: float = 0.0
    train_s: float = 0.0
    failed: str | None = None


class Runner:
    """Runs done into the results folder ``root`` (a sweep's worker, a command): ``runner(spec)``
    does one (``run``), ``runner.many(specs)`` several, training those that differ only in their
    seed together (``MLP.stack``). What the runs share is owned here: the folder, created and
    checked once (``results.ResultsFolder``), the memory reading (``resources.MemoryProbe``) and
    the memory of the records' raw copies (``record.Scratch``)."""

    def __init__(self, root, sweep: str, force: bool):
        self.root, self.sweep, self.force = root, sweep, force
        self.folder = res.ResultsFolder(root)
        self.memory = resources.MemoryProbe()
        self.scratch = Scratch()

    def __call__(self, spec: RunSpec, tables: list | None = None) -> dict:
        """Do one run and write its tables under ``root``; return its ``runs`` row as a dict.

        A run already committed as ``ok`` or ``diverged`` is skipped (its row is read back) unless
        ``force``; a ``failed`` run is done again. With ``tables``, the run's three tables, once
        committed, are appended to it as a dict, with ``files``: table -> the version of the file
        written (``results.file_id``), so that only that version is removed when it is compacted.
        Raises ``ConfigError`` for bad input, and ``ResultsError`` for a folder that cannot be
        written, before anything is trained or written; ``results.DiskFull`` when the disk is full
        (the run is then not committed, and no half-written file is left).
        """
        (out,) = self.many([spec], tables)
        if isinstance(out, BaseException):
            raise out
        return out

    def many(self, specs: list[RunSpec], tables: list | None = None) -> list:
        """Do the runs ``specs``, each as ``__call__`` does it; return, in their order, each one's
        ``runs`` row, or the exception that stopped it (bad input, a folder or disk that cannot
        be written: a full disk stops the runs not yet written too). Consecutive specs that
        differ only in their seed (``stack_key``) are trained together, up to ``stack_size``
        at a time; each run's numbers are those it has alone, bit for bit, and a diverged run
        stops alone. A stack's training time is shared equally by its runs (``train_time_s``)."""
        out: list = [None] * len(specs)
        group: list[tuple[int, Started]] = []
        group_key: str | None = None  # what the runs of the group share (stack_key)
        full: BaseException | None = None

        def flush():
            nonlocal full
            self.train([st for _, st in group])
            for k, st in group:
                if full is not None:
                    out[k] = full
                    continue
                try:
                    out[k] = self.finish(st, tables)
                except Exception as e:  # noqa: BLE001 - the caller records it; a full disk stops the rest
                    out[k] = e
                    full = e if res.is_disk_full(e) else None
            group.clear()

        for k, spec in enumerate(specs):
            if full is not None:
                out[k] = full
                continue
            try:
                st = self.start(spec)
            except Exception as e:  # noqa: BLE001 - bad input: this run's outcome
                out[k] = e
                continue
            if isinstance(st, dict):  # already done
                out[k] = st
                continue
            key = stack_key(st.spec)
            if group and (key is None or key != group_key or len(group) >= stack_size(st.spec)):
                flush()
            group.append((k, st))
            group_key = key
        if group:
            flush()
        return out

    def start(self, spec: RunSpec) -> Started | dict:
        """A run prepared for training: its spec checked, data, network, record; or its committed
        row when it is already done (and not ``force``)."""
        t0 = time.perf_counter()
        spec = prepare(spec, self.memory)
        run_id = spec.run_id
        if not self.force and res.is_done(self.root, run_id):
            row = res.committed_row(self.root, run_id)
            row["skipped"] = True
            return row
        self.folder.prepare()  # before training: an unusable folder is bad input, not a lost run
        _, rng_init, rng_shuffle = rngs(spec.seed)
        data = load_data(spec)  # drawn from the first of the three streams, as make_data says
        sched = spec.schedule()
        row = {k: v for k, v in spec.as_dict().items() if k in res.CONFIG_TYPES}
        row.update(
            run_id=run_id,
            sweep=self.sweep,
            batch_size=sched.batch_size,
            full_batch=spec.batch_size == "full",
            log_every=sched.log_every,
            eval_every=sched.eval_every,
            spectrum_every=sched.spectrum_every,
            lr_step_size=spec.step_size(),
            n_steps=sched.n_steps,
            diverged_step=None,
            reason=None,
            final_loss=math.nan,
            final_accuracy=math.nan,
            final_test_loss=math.nan,
            final_test_accuracy=math.nan,
            schema_version=res.SCHEMA_VERSION,
            **provenance(blas()),
        )
        rec = Record(spec.layer_sizes(), sched.rows, spec.normalised, self.scratch)  # spec: resolved
        spectra = None
        if sched.spectrum_every is not None:  # the first training samples, the same at every step
            spectra = Spectra(data.X_train[: spec.spectrum_samples], sched.spectrum_every)
        st = Started(spec, sched, Trainee(data, rng_shuffle, rec, spectra), row)
        try:
            with blas().limit(limits=1), np.errstate(over="ignore"):  # weights too large to draw: inf, a divergence
                st.trainee.net = build_network(spec, data, rng_init)
        except Exception as e:  # noqa: BLE001 - any fault of one run is recorded, the sweep goes on
            st.failed = f"{type(e).__name__}: {e}"
        st.setup_s = time.perf_counter() - t0
        return st

    def train(self, started: list[Started]) -> None:
        """Train the started runs (their specs differ only in their seed): alone, or as one stack."""
        live = [st for st in started if st.failed is None]
        if not live:
            return
        spec, sched, runs = live[0].spec, live[0].sched, [st.trainee for st in live]
        t1 = time.perf_counter()
        with blas().limit(limits=1), np.errstate(over="ignore", invalid="ignore"):
            # overflow and inf-inf are expected in exploding runs; they are caught as divergence
            # (non-finite norms and losses) right where they arise, not silenced elsewhere.
            try:
                net = runs[0].net if len(runs) == 1 else MLP.stack([t.net for t in runs])
                train_runs(net, runs, spec, sched)
                for r, t in enumerate(runs):  # each network holds its trained parameters (MLP.stack)
                    if t.diverged is None:
                        st = live[r]
                        row, data = st.row, t.data
                        row["status"] = "ok"
                        row["final_loss"], row["final_accuracy"] = t.net.evaluate(data.X_train, data.Y_train)
                        row["final_test_loss"], row["final_test_accuracy"] = t.net.evaluate(data.X_test, data.Y_test)
                        if not math.isfinite(row["final_loss"]):
                            row.update(
                                status="diverged",
                                diverged_step=sched.n_steps,
                                reason=f"final training loss is {row['final_loss']}",
                            )
            except Exception as e:  # noqa: BLE001 - any fault of one run is recorded, the sweep goes on
                for st in live:
                    st.failed = f"{type(e).__name__}: {e}"
        share = (time.perf_counter() - t1) / len(live)
        for st in live:
            st.train_s = share

    def finish(self, st: Started, tables: list | None = None) -> dict:
        """Write a trained run's tables, its ``runs`` row last (the commit); return the row."""
        row, t, run_id = st.row, st.trainee, st.spec.run_id
        if st.failed is not None:
            row.update(status="failed", reason=st.failed)
        elif t.diverged is not None:
            rec = t.rec
            row.update(status="diverged", diverged_step=int(rec.steps["step"][rec.n_steps_rows - 1]), reason=t.diverged)
        layers, steps = t.rec.tables(run_id)
        spectrum = t.spectra.table(run_id) if t.spectra is not None else None
        row.update(
            steps_done=t.rec.steps_done,
            max_grad_norm=t.rec.max_grad_norm,
            setup_time_s=st.setup_s,
            train_time_s=st.train_s,
        )
        # write_time_s covers the large tables (steps, layers, spectra); the one-row runs file (the commit) comes last
        t3 = time.perf_counter()
        files = {
            "layers": res.atomic_write_table(layers, res.run_path(self.root, "layers", run_id)),
            "steps": res.atomic_write_table(steps, res.run_path(self.root, "steps", run_id)),
        }
        if spectrum is not None:
            files["spectra"] = res.atomic_write_table(spectrum, res.run_path(self.root, "spectra", run_id))
        t4 = time.perf_counter()
        row.update(write_time_s=t4 - t3, wall_time_s=st.setup_s + st.train_s + (t4 - t3))
        runs = res.to_table({k: [v] for k, v in row.items()}, "runs")
        files["runs"] = res.atomic_write_table(runs, res.run_path(self.root, "runs", run_id))
        if tables is not None:  # the caller gathers them (a sweep's chunk, to compact it)
            tables.append({"runs": runs, "steps": steps, "layers": layers, "spectra": spectrum, "files": files})
        row["skipped"] = False
        return row


def run(spec: RunSpec, root, sweep: str = "", force: bool = False, tables: list | None = None) -> dict:
    """One run (``Runner.__call__``) into ``root``. Many runs into one folder: ``run_many``."""
    return Runner(root, sweep, force)(spec, tables)


def run_many(specs: list[RunSpec], results_dir, sweep: str | None = None, force: bool = False) -> list[dict]:
    """The runs ``specs`` into ``results_dir``, those that differ only in their seed trained
    together (``Runner.many``); one ``runs`` row per spec, in their order. The first run that
    cannot be done (bad input, a folder or disk that cannot be written) raises, after every
    other run was done and written."""
    out = Runner(results_dir, sweep or "", force).many(list(specs))
    for x in out:
        if isinstance(x, BaseException):
            raise x
    return out

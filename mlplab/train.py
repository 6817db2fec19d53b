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
from mlplab.record import Record, Scratch, Spectra
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
    """

    def __init__(
        self, net: MLP, clip: str, threshold: float, lr: float, weight_decay: float = 0.0, optim="sgd", **hyper
    ):
        self.net, self.rule, self.threshold = net, get_clip(clip), float(threshold)
        self.opt = make_optimiser(net, optim, lr=lr, weight_decay=weight_decay, **hyper)
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
            for part in (slice(0, n), slice(n, None))
        )


def train(
    net: MLP,
    data: Dataset,
    spec: RunSpec,
    shuffle_rng: np.random.Generator,
    sched: Schedule,
    rec: Record,
    spectra: Spectra | None = None,
) -> None:
    """Mini-batch training with per-layer instrumentation; fills ``rec``.

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
    (checked every step) or training loss (every evaluation) raises ``Diverged``, with that
    step's row kept in ``rec``. (A non-finite mini-batch loss needs a non-finite z^L, whose
    gradient is not finite either.)
    """
    step = Step(net, spec.clip, spec.clip_threshold, optim=spec.optim, **spec.optimiser_kwargs())
    eta = None if spec.lr_schedule == "constant" and not spec.warmup_steps else spec.learning_rate()
    evaluate = Evaluation(net, data)
    log_every, eval_every = sched.log_every, sched.eval_every
    s = 0
    for epoch in range(spec.epochs):
        for Xb, Yb in batches(data, sched, shuffle_rng):
            if eta is not None:
                step.opt.lr = eta(s)
            evaluated = s % eval_every == 0
            # the network after s updates (batch norm: running estimates of s batches)
            evaluation = evaluate() if evaluated else None
            if spectra is not None and spectra.due(s):
                spectra.log(s, net)
            gnorm = step.gradients(Xb, Yb)
            finite = math.isfinite(gnorm)
            if gnorm > rec.max_grad_norm and finite:
                rec.max_grad_norm = gnorm
            if evaluated or not finite or s % log_every == 0:
                i = rec.log_gradients(s, epoch, net, step, gnorm, Yb)
                if not finite:
                    raise Diverged(rec.divergence(step.norms(), gnorm, s))
                scale, clipped = step.clip(gnorm)
                train_loss = rec.log_update(i, step, scale, clipped, evaluation)
                if evaluated and not math.isfinite(train_loss):
                    raise Diverged(f"training loss is {train_loss} at step {s}")
            else:
                scale, clipped = step.clip(gnorm)
            step.update(scale)
            s += 1
            rec.steps_done = s
    if spectra is not None and spectra.due(s):
        spectra.log(s, net)  # the trained network, when the cadence reaches n_steps


class Runner:
    """Runs done one after another into the results folder ``root`` (a sweep's worker, a
    command): ``runner(spec)`` does one (``run``). What the runs share is owned here: the folder,
    created and checked once (``results.ResultsFolder``), the memory reading
    (``resources.MemoryProbe``) and the memory of the records' raw copies (``record.Scratch``)."""

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
        t1 = time.perf_counter()
        with blas().limit(limits=1), np.errstate(over="ignore", invalid="ignore"):
            # overflow and inf-inf are expected in exploding runs; they are caught as divergence
            # (non-finite norms and losses) right where they arise, not silenced elsewhere.
            try:
                net = build_network(spec, data, rng_init)
                t1 = time.perf_counter()
                train(net, data, spec, rng_shuffle, sched, rec, spectra)
                row["status"] = "ok"
                row["final_loss"], row["final_accuracy"] = net.evaluate(data.X_train, data.Y_train)
                row["final_test_loss"], row["final_test_accuracy"] = net.evaluate(data.X_test, data.Y_test)
                if not math.isfinite(row["final_loss"]):
                    row.update(
                        status="diverged",
                        diverged_step=sched.n_steps,
                        reason=f"final training loss is {row['final_loss']}",
                    )
            except Diverged as e:
                row.update(status="diverged", diverged_step=int(rec.steps["step"][rec.n_steps_rows - 1]), reason=str(e))
            except Exception as e:  # noqa: BLE001 - any fault of one run is recorded, the sweep goes on
                row.update(status="failed", reason=f"{type(e).__name__}: {e}")
            t2 = time.perf_counter()
        layers, steps = rec.tables(run_id)
        spectrum = spectra.table(run_id) if spectra is not None else None
        row.update(
            steps_done=rec.steps_done, max_grad_norm=rec.max_grad_norm, setup_time_s=t1 - t0, train_time_s=t2 - t1
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
        row.update(write_time_s=t4 - t3, wall_time_s=t4 - t0)
        runs = res.to_table({k: [v] for k, v in row.items()}, "runs")
        files["runs"] = res.atomic_write_table(runs, res.run_path(self.root, "runs", run_id))
        if tables is not None:  # the caller gathers them (a sweep's chunk, to compact it)
            tables.append({"runs": runs, "steps": steps, "layers": layers, "spectra": spectrum, "files": files})
        row["skipped"] = False
        return row


def run(spec: RunSpec, root, sweep: str = "", force: bool = False, tables: list | None = None) -> dict:
    """One run (``Runner.__call__``) into ``root``. Many runs into one folder: a ``Runner``,
    which keeps what they share."""
    return Runner(root, sweep, force)(spec, tables)

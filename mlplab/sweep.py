"""Running a planned sweep's runs on a pool of workers: chunks, progress, the sweep log, the summary.

The runs of a sweep are ``RunSpec``s, planned and validated beforehand (``mlplab.plan``).
This module sends them to workers in chunks — the longest runs first, and chunks of many short
runs, so that scheduling costs little beside the work and the last workers are not left waiting
for one long run — and follows them to the end. It never imports Hydra: the Hydra plugins in
``hydra_plugins/mlplab_sweeps`` are thin adapters over it, and any engine with a
``concurrent.futures``-like interface (``submit`` returning futures, here Dask's ``Client``)
can run it.

Each worker does its chunk's runs with ``mlplab.train.Runner.many``, which trains the seeds of
one configuration together; the results are committed per run as always (atomic files, the
``runs`` row last), so a worker that dies loses at most the runs it was training, and the engine
sends the unfinished chunk to another worker, where the runs already committed are skipped.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlplab.spec import RunSpec

if TYPE_CHECKING:
    from mlplab.plan import Plan

# a run's seconds ≈ fixed + per step (Python's work per layer and per step dominates small
# networks) + its arithmetic; fitted to the default sweep's runs on one core (only ratios matter)
RUN_S, STEP_S, LAYER_STEP_S, LAYER_LOG_S, FLOPS = 0.005, 30e-6, 50e-6, 5e-6, 1e10


def cost(spec: RunSpec) -> float:
    """A rough estimate of a run's seconds, to order and group the runs (not a promise)."""
    sizes, sched = spec.layer_sizes(), spec.schedule()
    L = len(sizes) - 1
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # per sample, forward
    n_train, n_test, n_steps, eval_every, logged = (
        sched.n_train,
        sched.n_test,
        sched.n_steps,
        sched.eval_every,
        sched.rows,
    )
    flops = 6 * macs * n_train * spec.epochs + 2 * macs * (n_train + n_test) * (n_steps // eval_every + 1)
    return RUN_S + n_steps * (STEP_S + LAYER_STEP_S * L) + logged * L * LAYER_LOG_S + flops / FLOPS


def chunks(specs: list[RunSpec], workers: int, per_worker: int = 8, min_seconds: float = 0.3) -> list[list[RunSpec]]:
    """The runs grouped into chunks, longest runs first, each chunk about 1/(``per_worker`` ×
    workers) of the estimated work still to hand out (guided scheduling): big chunks first,
    smaller and smaller ones last, so that an estimate that is off leaves little for the last
    worker to finish alone. No chunk under ``min_seconds`` (its scheduling stays a small part
    of it) unless a single run is that short."""
    if not specs:
        return []
    order = sorted(specs, key=cost, reverse=True)
    remaining = sum(cost(s) for s in order)
    share = max(workers, 1) * per_worker
    out, current, acc = [], [], 0.0
    for s in order:
        current.append(s)
        acc += cost(s)
        if acc >= max(remaining / share, min_seconds):
            out.append(current)
            remaining -= acc
            current, acc = [], 0.0
    if current:
        out.append(current)
    return out


def check_launcher(n_workers, chunks_per_worker, min_chunk_seconds) -> None:
    """The launchers' own settings (``hydra.launcher.*``), refused with one line naming the
    field, the value and what is allowed, before anything starts."""

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if n_workers is not None and not (integer(n_workers) and n_workers >= 1):
        raise ValueError(f"hydra.launcher.n_workers={n_workers!r}: must be an integer >= 1, or null for one per core")
    if not (integer(chunks_per_worker) and chunks_per_worker >= 1):
        raise ValueError(f"hydra.launcher.chunks_per_worker={chunks_per_worker!r}: must be an integer >= 1")
    if not (
        isinstance(min_chunk_seconds, (int, float)) and math.isfinite(min_chunk_seconds) and min_chunk_seconds >= 0
    ):
        raise ValueError(f"hydra.launcher.min_chunk_seconds={min_chunk_seconds!r}: must be a number >= 0 (seconds)")


@dataclass
class Outcome:
    """One run as a worker reports it."""

    run_id: str
    status: str  # ok, diverged, failed, skipped (already committed)
    seconds: float
    reason: str | None = None
    disk_full: bool = False  # its results could not be written: no space left on the device


def run_chunk(specs: list[RunSpec], root: str, sweep: str, force: bool) -> list[Outcome]:
    """What a worker does with a chunk: its runs (``Runner.many``; a run already committed is skipped,
    so a chunk sent again after a worker died does only what is missing), each committed in
    its own files; then the chunk's runs are compacted into one generation from the tables
    still in memory, so that a sweep never reads its thousands of small files back (without
    the folder's lease: ``results.commit_generation`` says why it needs none).

    A full disk stops the chunk at the run that could not be written (its outcome says so, and
    the runs after it are left out, to be counted missing); the runs committed before it stay
    in their own files if their generation cannot be written either."""
    import pyarrow as pa

    from mlplab import results as res
    from mlplab.train import Runner

    tables, t0 = [], time.perf_counter()
    # seeds of one configuration are trained together (Runner.many); each run's seconds: an equal share
    rows = Runner(root, sweep, force).many(specs, tables)
    share = (time.perf_counter() - t0) / max(len(specs), 1)
    out = []
    for spec, row in zip(specs, rows):
        if isinstance(row, BaseException):
            full = res.is_disk_full(row)
            out.append(Outcome(spec.run_id, "failed", share, f"{type(row).__name__}: {row}", full))
            if full:
                break
        else:
            status = "skipped" if row["skipped"] else row["status"]
            out.append(Outcome(spec.run_id, status, share, row.get("reason")))
    if tables:
        merged = {
            t: pa.concat_tables(parts).unify_dictionaries().combine_chunks()
            for t in res.ALL_TABLES
            if (parts := [x[t] for x in tables if x.get(t) is not None])
        }
        own = {x["runs"].column("run_id")[0].as_py(): x["files"] for x in tables}
        try:
            res.commit_generation(root, merged, own=own)
        except res.DiskFull:
            pass  # the runs stay committed in their own files; the sweep's end reports the full disk
    return out


class Progress:
    """Runs done / total, rate, ETA: one line rewritten in place on a terminal, else a line
    every ``every`` seconds (and the last)."""

    def __init__(self, total: int, stream=None, note: str = "", every: float = 5.0):
        self.total, self.done, self.note, self.every = total, 0, note, every
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = self.last = time.perf_counter()

    def line(self) -> str:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        rate = self.done / dt
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        eta_s = "?" if math.isinf(eta) else f"{eta:.0f}s"
        pct = 100 * self.done / max(self.total, 1)
        return f"mlplab: {self.done}/{self.total} runs ({pct:.0f}%), {rate:.1f} runs/s, ETA {eta_s}{self.note}"

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.tty:
            print("\r" + self.line(), end="", file=self.stream, flush=True)
        elif now - self.last >= self.every or self.done == self.total:
            print(self.line(), file=self.stream, flush=True)
            self.last = now

    def close(self) -> None:
        if self.tty:
            print(file=self.stream, flush=True)


def execute(
    submit,
    as_completed,
    specs: list[RunSpec],
    root,
    sweep: str,
    force: bool,
    workers: int,
    log_path: Path | None = None,
    note: str = "",
    per_worker: int = 8,
    min_seconds: float = 0.3,
) -> dict[str, Outcome]:
    """Run ``specs`` through an engine: ``submit(fn, *args)`` returns a future, and
    ``as_completed(futures)`` yields them as they finish (Dask's ``Client.submit`` and
    ``distributed.as_completed``; ``concurrent.futures`` alike). Returns run_id -> Outcome; a
    chunk whose every attempt failed (e.g. its workers were killed) leaves its runs out, to be
    counted as missing."""
    parts = chunks(specs, workers, per_worker, min_seconds)
    futures = {submit(run_chunk, part, str(root), sweep, force): part for part in parts}
    progress = Progress(len(specs), note=note)
    outcomes: dict[str, Outcome] = {}
    log = open(log_path, "a", buffering=1) if log_path else None
    try:
        for future in as_completed(list(futures)):
            part = futures[future]
            try:
                results = future.result()
            except Exception as e:  # noqa: BLE001 - e.g. every worker that tried it died
                results = []
                if log:
                    log.write(f"chunk of {len(part)} runs lost: {type(e).__name__}: {e}\n")
            for o in results:
                outcomes[o.run_id] = o
                if log:
                    log.write(f"{o.run_id} {o.status} {o.seconds:.3f}s" + (f" {o.reason}" if o.reason else "") + "\n")
            progress.advance(len(part))
    finally:
        progress.close()
        if log:
            log.close()
    return outcomes


def summary(plan: Plan, outcomes, seconds: float) -> None:
    """The end of a sweep: its folder compacted (``results.compact``, waiting for any other
    sweep's compaction of the folder to end), then the runs ok / diverged / failed / missing of
    the plan, with ``seconds`` since the sweep started; exit code 1 if any failed or are
    missing, or if the disk filled up (``outcomes`` says so, or the compaction: a line saying
    how many runs are committed, and the same command finishes the job once there is space)."""
    from mlplab import results as res
    from mlplab.errors import fail

    root = plan.root
    full: BaseException | bool = any(o.disk_full for o in outcomes)
    try:
        res.compact(root)
    except res.DiskFull as e:
        full = e
    status = res.completed_statuses(root)
    counts = {"ok": 0, "diverged": 0, "failed": 0, "missing": 0}
    for rid in set(plan.run_ids):
        counts[status.get(rid, "missing")] += 1
    print(
        f"mlplab: sweep '{plan.sweep_name}' done in {seconds:.1f}s: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f" -> {root}",
        flush=True,
    )
    if full:
        plan.tally().disk_full(full if isinstance(full, BaseException) else None)
    if counts["failed"] or counts["missing"]:
        fail(
            f"sweep '{plan.sweep_name}': {counts['failed']} failed, {counts['missing']} missing of "
            f"{len(set(plan.run_ids))} runs; rerun the same command to retry them -> {root}",
            1,
        )

"""Seeds in bulk (issue 26): what a run of the default sweep costs when its seeds are trained
together (``mlplab.run_many``: one stack per configuration) against the same runs one by one —
at 5 seeds (the default sweep) and at 30 (a tight interval). Each repeat does both, in turn, into
fresh folders, on one BLAS thread; the figure is each run's seconds (``Runner.many`` as a
sweep's worker calls it, the tables written)."""

from __future__ import annotations

import tempfile
import time

from timing import Threads

import mlplab.train as tr
from mlplab.spec import RunSpec

DEPTHS = (1, 4, 16)
SEEDS = (5, 30)


def _per_run(specs: list[RunSpec], stack: bool) -> float:
    keep = tr.STACK_RUNS
    tr.STACK_RUNS = keep if stack else 1
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            tr.Runner(tmp, "bench", force=True).many(specs)
            return (time.perf_counter() - t0) / len(specs)
    finally:
        tr.STACK_RUNS = keep


def seeds_section(quick: bool, repeats: int, rows: list) -> None:
    """Rows impl "stacked" / "alone", seconds per run, per depth and number of seeds (``batch``
    column: the seeds)."""
    epochs = 4 if quick else None
    for depth in DEPTHS:
        for n in SEEDS:
            specs = [
                RunSpec(depth=depth, seed=s, eval_every="log", **({"epochs": epochs} if epochs else {}))
                for s in range(n)
            ]
            _per_run(specs[:2], True)  # warm: the first runs of a process fault their memory in
            with Threads(1):
                for rep in range(repeats):
                    for impl, stack in (("stacked", True), ("alone", False)):
                        s = _per_run(specs, stack)
                        rows.append(
                            dict(
                                section="seeds",
                                impl=impl,
                                dtype="float64",
                                activation="sigmoid",
                                threads=1,
                                depth=depth,
                                width=32,
                                batch=n,
                                rep=rep,
                                seconds=s,
                            )
                        )
            print(
                f"seeds: depth {depth}, {n} seeds: {rows[-2]['seconds'] * 1e3:.1f} ms stacked, "
                f"{rows[-1]['seconds'] * 1e3:.1f} ms alone per run",
                flush=True,
            )

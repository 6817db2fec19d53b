"""What instrumentation costs a default run (``RunSpec()``: blobs, width 32, batch 32, 20
epochs = 500 steps): ``train`` with the default schedule — per-layer gradient metrics at 50
logged steps, the whole sets evaluated 5 times — against the same run logging and evaluating
step 0 only. Both include the Record's statistics, computed when the run ends. With SGD, and
with Adam (whose logged update ratio is the norm of the step it computes for the update)."""

from __future__ import annotations

import numpy as np
from timing import Threads, race

from mlplab.spec import RunSpec
from mlplab.train import Record, build_network, load_data, rngs, train

DEPTHS = (1, 2, 4, 8, 16)
OPTIMS = ("sgd", "adam")


def training(spec: RunSpec):
    """One run's training, from the same data and initial weights each call."""
    data = load_data(spec, rngs(spec.seed)[0])
    sched = spec.schedule()

    def go():
        net = build_network(spec, data, rngs(spec.seed)[1])
        rec = Record(net.sizes, sched.rows, net.normalised)
        with np.errstate(over="ignore", invalid="ignore"):
            train(net, data, spec, np.random.default_rng(spec.seed), sched, rec)
            rec.close()  # the statistics computed when a run ends

    return go


def instrumentation_section(depths, repeats, rows, epochs: int | None = None, optims=OPTIMS):
    for optim in optims:
        for depth in depths:
            _one(optim, depth, repeats, rows, epochs)


def _one(optim, depth, repeats, rows, epochs):
    """One depth's race, default against step 0 only, with ``optim``."""
    extra = {} if epochs is None else {"epochs": epochs}
    extra |= {} if optim == "sgd" else {"optim": optim, "lr": 1e-3}
    default = RunSpec(depth=depth, **extra)
    quiet = RunSpec(depth=depth, log_every=10**9, eval_every=10**9, **extra)
    with Threads(1):
        times = race({"default": training(default), "step 0 only": training(quiet)}, repeats, 0.0)
    for impl, ts in times.items():
        for r, t in enumerate(ts):
            rows.append(
                dict(
                    section="instrumentation",
                    impl=impl,
                    optim=optim,
                    dtype="float64",
                    activation="sigmoid",
                    threads=1,
                    depth=depth,
                    width=32,
                    batch=32,
                    rep=r,
                    seconds=t,
                )
            )
    a, b = np.median(times["default"]), np.median(times["step 0 only"])
    print(
        f"instrumentation {optim} depth {depth}: {a * 1e3:.1f} ms vs {b * 1e3:.1f} ms ({100 * (a - b) / a:.1f} %)",
        flush=True,
    )

"""The core's sections: the step against PyTorch, the public API against the in-place step,
the step against its own matrix products, float32 against float64, residual and normalised
networks against the plain one, the cost of the per-layer norms, the machine's GEMM peak.

Each section appends long-format rows (section, impl, shape, dtype, activation, threads, rep,
seconds) to ``rows``; ``bench.py`` turns them into the report and the goals table."""

from __future__ import annotations

import gemm
import numpy as np
from problems import mlplab_inplace, mlplab_step, problem, torch_gradients, torch_twin
from timing import Threads, race

from mlplab.activations import ACTIVATIONS
from mlplab.losses import LOSSES
from mlplab.network import MLP

PAUSE = 0.1  # seconds between timed turns with several threads (see timing.race)
BLOCKS = {
    "plain": dict(),
    "residual": dict(residual=True),
    "batch norm": dict(norm="batch"),
    "layer norm": dict(norm="layer"),
    "residual + batch norm": dict(residual=True, norm="batch"),
}


def _rows(rows, section, times, **key):
    for impl, ts in times.items():
        for r, t in enumerate(ts):
            rows.append(dict(section=section, impl=impl, rep=r, seconds=t, **key))


def step_section(torch, shapes, dtypes, activations, threads, repeats, budget, rows, notes):
    """mlplab's training step against PyTorch's, from the same weights."""
    for depth, width, batch in shapes:
        for dtype in dtypes:
            for act in activations:
                for nt in threads:
                    net, X, Y, labels = problem(depth, width, batch, act, dtype)
                    fns = {"mlplab": mlplab_step(net, X, Y)}
                    if torch is not None:
                        fns["pytorch"] = torch_twin(torch, net, X, labels, act)[0]
                    with Threads(nt, torch):
                        if torch is not None:  # the two agree before either has taken a step
                            net2, *_ = problem(depth, width, batch, act, dtype)
                            s2 = mlplab_step(net2, X, Y)
                            t2, o2 = torch_twin(torch, net2, X, labels, act)
                            s2()
                            t2()
                            ours = np.sqrt(np.column_stack([net2.sq.by_kind["W"], net2.sq.by_kind["b"]]).ravel())
                            theirs = o2["norms"].numpy().astype(np.float64)
                            err = float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)))
                            notes.setdefault("norm_err", {})[(depth, width, batch, dtype, act, nt)] = err
                        times = race(fns, repeats, budget, PAUSE if nt > 1 else 0.0)
                    _rows(
                        rows,
                        "step",
                        times,
                        dtype=dtype,
                        activation=act,
                        threads=nt,
                        depth=depth,
                        width=width,
                        batch=batch,
                    )
                    print(
                        f"step {depth:>2}x{width:<3}x{batch:<3} {dtype} {act:<7} {nt}t  "
                        + "  ".join(f"{k} {np.median(v) * 1e6:9.1f} us" for k, v in times.items()),
                        flush=True,
                    )


def api_section(torch, shapes, repeats, budget, rows):
    """``MLP.gradients`` (checks, forward, loss, backward, arrays the caller owns) against the
    same arithmetic on the in-place API, and against PyTorch's forward and backward; float64,
    sigmoid, 1 thread."""
    for depth, width, batch in shapes:
        net, X, Y, labels = problem(depth, width, batch)
        fns = {"gradients": lambda net=net, X=X, Y=Y: net.gradients(X, Y), "in-place": mlplab_inplace(net, X, Y)}
        if torch is not None:
            fns["pytorch"] = torch_gradients(torch, net, X, labels, "sigmoid")
        with Threads(1, torch), np.errstate(over="ignore"):
            times = race(fns, repeats, budget)
        _rows(
            rows, "api", times, dtype="float64", activation="sigmoid", threads=1, depth=depth, width=width, batch=batch
        )
        print(
            f"api {depth}x{width}x{batch}: " + "  ".join(f"{k} {np.median(v) * 1e6:.1f} us" for k, v in times.items()),
            flush=True,
        )


def gemm_section(shapes, dtypes, activations, threads, repeats, budget, rows):
    """The step against its own matrix products (recorded from the step, replayed bare)."""
    for depth, width, batch in shapes:
        for dtype in dtypes:
            for act in activations:
                for nt in threads:
                    net, X, Y, _ = problem(depth, width, batch, act, dtype)
                    step = mlplab_step(net, X, Y)
                    with Threads(nt):
                        calls = gemm.record(step)
                        times = race(
                            {"step": step, "gemm_bare": gemm.replay(calls)}, repeats, budget, PAUSE if nt > 1 else 0.0
                        )
                    _rows(
                        rows,
                        "gemm",
                        times,
                        dtype=dtype,
                        activation=act,
                        threads=nt,
                        depth=depth,
                        width=width,
                        batch=batch,
                        flops=gemm.flops(calls),
                    )


def blocks_section(shapes, activations, repeats, budget, rows):
    """The step of each kind of network (plain, residual, batch norm, layer norm) on the same
    shape, float64, 1 thread."""
    for depth, width, batch in shapes:
        for act in activations:
            fns = {}
            for name, kw in BLOCKS.items():
                net, X, Y, _ = problem(depth, width, batch, act, "float64", **kw)
                fns[name] = mlplab_step(net, X, Y)
            with Threads(1):
                times = race(fns, repeats, budget)
            _rows(
                rows, "blocks", times, dtype="float64", activation=act, threads=1, depth=depth, width=width, batch=batch
            )
            print(
                f"blocks {depth}x{width}x{batch} {act}: "
                + "  ".join(f"{k} {np.median(v) * 1e3:.2f} ms" for k, v in times.items()),
                flush=True,
            )


def norms_section(shapes, dtypes, repeats, budget, rows):
    """The per-layer squared gradient norms (what ``backward_(norms=True)`` adds) timed bare,
    against the step."""
    for depth, width, batch in shapes:
        for dtype in dtypes:
            net, X, Y, _ = problem(depth, width, batch, "sigmoid", dtype)
            with Threads(1):
                times = race({"step": mlplab_step(net, X, Y), "norms_bare": net.sq.fill_}, repeats, budget)
            _rows(
                rows,
                "norms",
                times,
                dtype=dtype,
                activation="sigmoid",
                threads=1,
                depth=depth,
                width=width,
                batch=batch,
            )


def peak_section(dtypes, threads, repeats, n, rows):
    """The machine's GEMM rate on two square n×n matrices."""
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        A = rng.standard_normal((n, n)).astype(dtype)
        B = rng.standard_normal((n, n)).astype(dtype)
        C = np.empty((n, n), dtype)
        for nt in threads:
            with Threads(nt):
                ts = race({"peak": lambda A=A, B=B, C=C: np.dot(A, B, out=C)}, repeats, 0.2)["peak"]
            _rows(
                rows,
                "peak",
                {"numpy": ts},
                dtype=dtype,
                activation="",
                threads=nt,
                depth=0,
                width=n,
                batch=n,
                flops=2.0 * n**3,
            )


def oracle_nets():
    """The gradient oracle's networks (``tests/data/make_reference.py``): every activation ×
    loss, 5-7-7-6-4 with a width change, σ_w = 1.5, a batch of 9."""
    for a in ACTIVATIONS:
        for l in LOSSES:
            rng = np.random.default_rng(7)
            X = rng.standard_normal((9, 5))
            Y = np.eye(4)[rng.integers(0, 4, 9)]
            yield (
                f"{a}-{l}",
                (
                    lambda dtype, a=a, l=l: MLP(
                        [5, 7, 7, 6, 4], a, l, "normal", seed=3, sigma_w=1.5, sigma_b=0.5, dtype=dtype
                    )
                ),
                X,
                Y,
            )


def float32_error(notes) -> None:
    """float32 gradients against float64 on the oracle nets: the largest ‖g32 − g64‖ / ‖g64‖
    over every gradient array."""
    worst = 0.0
    for _, make, X, Y in oracle_nets():
        g64, g32 = make("float64").gradients(X, Y), make("float32").gradients(X, Y)
        for a, b in zip(g32.dW + g32.db, g64.dW + g64.db):
            worst = max(worst, float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b)))
    notes["float32_error"] = worst

"""How fast is mlplab's NumPy core? One run, one machine, the same thread settings for everyone.

    python experiments/bench/bench.py [--quick] [--out results/bench] [--no-torch] [--no-sweep]

Writes ``<out>/bench.md`` (the tables below, with the targets) and ``<out>/bench.parquet`` plus
``<out>/bench.csv`` (every timed repeat, long format). Sections:

1. **step**: one SGD step, ``mlplab.train.Step`` — the step ``train`` takes (forward, backward
   with per-layer gradient norms, norm clipping, update) — against the same model in PyTorch on the CPU (an nn.Linear
   stack, autograd, per-layer ``p.grad`` norms, ``clip_grads_with_norm_``, ``optimizer.step``),
   from the same weights, in float64 and float32, sigmoid and ReLU, 1 thread and all threads.
   PyTorch is optional (``pip install torch==2.13.0``); without it the section says so.
2. **norms**: the per-layer gradient norms as a share of the step (the norms timed bare), and
   a whole logged step of ``train`` (every metric, whole-set loss
   and accuracy) against an unlogged one.
3. **gemm**: the step's own matrix products (the same ``np.dot`` calls on the same arrays,
   threads and dtype) timed bare, their share of the step, and the machine's GEMM peak.
4. **blocks**: the step of residual, batch-norm and layer-norm networks against the plain one at
   (20, 128, 256).
5. **engine** (``engine.py``): sweeps end to end — the default sweep on each launcher
   (``sweep=smoke`` with --quick), resuming it from half done, 10,000 tiny runs (1,000 with
   --quick): parallel efficiency, driver memory, planning, compaction and loading.

Every number is the median over repeats; runs of mlplab and PyTorch alternate so that a noisy
neighbour hurts both alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's modules, however bench.py is loaded
from engine import engine_section, report_engine  # noqa: E402

from mlplab.network import MLP
from mlplab.spec import RunSpec
from mlplab.train import Record, Schedule, Step, build_network, load_data, rngs, train

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(2, 32, 32), (5, 32, 64), (10, 64, 128), (20, 128, 256), (50, 256, 256)]  # depth, width, batch
N_IN, N_OUT = 64, 10
LR, CLIP = 0.0, 1.0  # lr = 0: every repeat does the same arithmetic on the same numbers
# largest allowed mlplab/PyTorch step-time ratio per shape (float64, both activations and thread settings)
TARGET_RATIO = {(2, 32, 32): 0.25, (5, 32, 64): 0.25, (10, 64, 128): 0.5, (20, 128, 256): 0.8, (50, 256, 256): 0.9}
TARGET_GEMM = 1.25  # step / bare matrix products on (50, 256, 256)
TARGET_NORMS = 5.0  # per-layer norms every step, % of the step
PAUSE = 0.1  # seconds between timed turns with several threads (see race)
INIT = {"sigmoid": "normal", "relu": "he_normal"}
BLOCK_SHAPE = (20, 128, 256)  # where residual and normalised steps are compared with the plain one


# -- timing ------------------------------------------------------------------------------------
def per_call(fn, budget: float) -> int:
    """How many calls of ``fn`` fill about ``budget`` seconds (after two warm-up calls)."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(budget / once))


def timed(fn, n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def race(fns: dict, repeats: int, budget: float, pause: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` times, the functions taking turns.

    ``pause`` seconds of sleep before each turn let the idle worker threads of the previous
    function (OpenBLAS and OpenMP spin for a while after a parallel call) go to sleep, so they
    do not steal a core from the next one.
    """
    ns = {}
    for k, f in fns.items():
        time.sleep(pause)
        ns[k] = per_call(f, budget)
    out = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            time.sleep(pause)
            out[k].append(timed(f, ns[k]))
    return out


class Threads:
    """Limit NumPy's BLAS (threadpoolctl) and PyTorch (set_num_threads) to ``n`` threads."""

    def __init__(self, n: int, torch=None):
        self.n, self.torch = n, torch

    def __enter__(self):
        self.limit = threadpool_limits(limits=self.n)
        self.limit.__enter__()
        if self.torch is not None:
            self.old = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.torch is not None:
            self.torch.set_num_threads(self.old)
        self.limit.__exit__(*exc)


# -- the two implementations -------------------------------------------------------------------
def problem(depth: int, width: int, batch: int, activation: str, dtype: str, seed: int = 0, residual=False, norm=None):
    """An mlplab network and a batch (X, one-hot Y, integer labels)."""
    rng = np.random.default_rng(seed)
    sizes = [N_IN] + [width] * depth + [N_OUT]
    net = MLP(sizes, activation, "softmax_ce", INIT[activation], seed, residual, norm, sigma_w=1.0, sigma_b=0.1, dtype=dtype)
    X = rng.standard_normal((batch, N_IN)).astype(dtype)
    labels = rng.integers(0, N_OUT, batch)
    Y = np.eye(N_OUT, dtype=dtype)[labels]
    return net, X, Y, labels


def mlplab_step(net: MLP, X, Y):
    """One unlogged training step: ``mlplab.train.Step``, the step ``train`` takes (forward,
    backward with per-layer squared norms, norm clipping, SGD update)."""
    step = Step(net, "norm", CLIP, LR, 0.0)
    return lambda: step(X, Y)


def torch_twin(torch, net: MLP, X, labels, activation: str):
    """The same network in PyTorch (nn.Linear stack with net's weights) and its SGD step."""
    nn = torch.nn
    dtype = {np.dtype("float64"): torch.float64, np.dtype("float32"): torch.float32}[net.dtype]
    act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[activation]
    layers = []
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        lin = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < net.L - 1:
            layers.append(act())
    model = nn.Sequential(*layers)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(labels)
    clip = nn.utils.clip_grads_with_norm_
    out = {}

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        norms = torch.stack([p.grad.norm() for p in params])  # per layer: W^1, b^1, W^2, ...
        total = norms.norm()
        if not torch.isfinite(total):
            raise FloatingPointError(f"gradient norm {float(total)}")
        clip(params, CLIP, total)
        opt.step()
        out["norms"] = norms

    return step, out


def step_section(torch, shapes, dtypes, activations, threads, repeats, budget, rows, notes):
    for depth, width, batch in shapes:
        for dtype in dtypes:
            for act in activations:
                for nt in threads:
                    net, X, Y, labels = problem(depth, width, batch, act, dtype)
                    fns = {}
                    fns["mlplab"] = mlplab_step(net, X, Y)
                    if torch is not None:
                        tstep, tout = torch_twin(torch, net, X, labels, act)
                        fns["pytorch"] = tstep
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
                    for impl, ts in times.items():
                        for r, t in enumerate(ts):
                            rows.append(dict(section="step", impl=impl, dtype=dtype, activation=act, threads=nt,
                                             depth=depth, width=width, batch=batch, rep=r, seconds=t))
                    print(f"step {depth:>2}x{width:<3}x{batch:<3} {dtype} {act:<7} {nt}t  "
                          + "  ".join(f"{k} {np.median(v) * 1e6:9.1f} us" for k, v in times.items()), flush=True)


# -- norms: what instrumentation costs ---------------------------------------------------------
def norms_section(shapes, dtypes, repeats, budget, rows):
    for depth, width, batch in shapes:
        for dtype in dtypes:
            net, X, Y, _ = problem(depth, width, batch, "sigmoid", dtype)
            step = mlplab_step(net, X, Y)
            sq = net.sq

            def bare():  # what backward_(norms=True) adds to the step
                if sq.flat:
                    sq.from_flat_()
                    return
                for slots in sq.slots:
                    for g, j in slots:
                        sq.sums[j] = np.vdot(g, g)

            with Threads(1):
                times = race({"step": step, "norms_bare": bare}, repeats, budget)
            for impl, ts in times.items():
                for r, t in enumerate(ts):
                    rows.append(dict(section="norms", impl=impl, dtype=dtype, activation="sigmoid", threads=1,
                                     depth=depth, width=width, batch=batch, rep=r, seconds=t))


def logging_section(repeats, rows, quick):
    """``train`` itself on a default-sweep run (depth 8, width 32, batch 32, 1000 blobs): every
    step logged against only step 0 logged."""
    epochs = 2 if quick else 5
    for log_every, name in [(10**9, "train_unlogged"), (1, "train_logged_every_step")]:
        spec = RunSpec(depth=8, width=32, epochs=epochs, log_every=log_every)
        data = load_data(spec, rngs(0)[0])
        sched = Schedule.of(spec, len(data.X_train))
        for r in range(repeats):
            net = build_network(spec, data, rngs(0)[1])
            rec = Record(net.sizes, sched.n_steps // sched.log_every + 2)
            with Threads(1), np.errstate(over="ignore", invalid="ignore"):
                t0 = time.perf_counter()
                train(net, data, spec, np.random.default_rng(0), sched, rec)
                t = (time.perf_counter() - t0) / sched.n_steps
            rows.append(dict(section="logging", impl=name, dtype="float64", activation="sigmoid", threads=1,
                             depth=8, width=32, batch=32, rep=r, seconds=t))


BLOCKS = {"plain": dict(), "residual": dict(residual=True), "batch norm": dict(norm="batch"),
          "layer norm": dict(norm="layer"), "residual + batch norm": dict(residual=True, norm="batch")}


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
            for impl, ts in times.items():
                for r, t in enumerate(ts):
                    rows.append(dict(section="blocks", impl=impl, dtype="float64", activation=act, threads=1,
                                     depth=depth, width=width, batch=batch, rep=r, seconds=t))
            print(f"blocks {depth}x{width}x{batch} {act}: " + "  ".join(f"{k} {np.median(v) * 1e3:.2f} ms" for k, v in times.items()), flush=True)


# -- gemm: the step's own matrix products, bare ------------------------------------------------
def gemm_calls(net: MLP, X):
    """The np.dot calls of one step of ``net`` on the batch X: (a, b, out), derived from the
    network's layers and reading the step's own buffers (so the same shapes, memory layout and
    numbers), writing into private copies of its outputs (so the replay never disturbs the step)."""
    ws = net.workspace(len(X))
    inputs = [X] + ws.inputs[1:]
    calls = []
    for layer, c, a_prev in zip(net.layers, ws.buffers, inputs):  # forward: z^l = a^(l-1) W^lᵀ
        calls.append((a_prev, layer.WT, c.z))
    for i in reversed(range(net.L)):  # backward: ∂C/∂W, ∂C/∂b, ∂C/∂a^(l-1)
        layer, c, delta = net.layers[i], ws.buffers[i], ws.g[i]
        calls.append((delta.T, inputs[i], layer.dW))
        calls.append((c.ones, delta, layer.db))
        if i > 0:
            calls.append((delta, layer.W, ws.g[i - 1]))
    return [(a, b, np.empty_like(out)) for a, b, out in calls]


def step_flops(net: MLP, m: int) -> float:
    """Floating-point operations of the step's matrix products (2 per multiply-add)."""
    f = 0
    for l in range(net.L):
        n_in, n_out = net.sizes[l], net.sizes[l + 1]
        f += 2 * m * n_in * n_out * 2 + 2 * m * n_out  # z, dW, db
        if l > 0:
            f += 2 * m * n_in * n_out  # δ^(l-1)
    return float(f)


def gemm_section(shapes, dtypes, activations, threads, repeats, budget, rows):
    for depth, width, batch in shapes:
        for dtype in dtypes:
            for act in activations:
                for nt in threads:
                    net, X, Y, _ = problem(depth, width, batch, act, dtype)
                    step = mlplab_step(net, X, Y)
                    calls = gemm_calls(net, X)
                    dot = np.dot

                    def bare():
                        for a, b, out in calls:
                            dot(a, b, out=out)

                    with Threads(nt):
                        times = race({"step": step, "gemm_bare": bare}, repeats, budget, PAUSE if nt > 1 else 0.0)
                    for impl, ts in times.items():
                        for r, t in enumerate(ts):
                            rows.append(dict(section="gemm", impl=impl, dtype=dtype, activation=act, threads=nt,
                                             depth=depth, width=width, batch=batch, rep=r, seconds=t,
                                             flops=step_flops(net, batch)))


def peak_section(dtypes, threads, repeats, n, rows):
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        A = rng.standard_normal((n, n)).astype(dtype)
        B = rng.standard_normal((n, n)).astype(dtype)
        C = np.empty((n, n), dtype)
        for nt in threads:
            with Threads(nt):
                ts = race({"peak": lambda: np.dot(A, B, out=C)}, repeats, 0.2)["peak"]
            for r, t in enumerate(ts):
                rows.append(dict(section="peak", impl="numpy", dtype=dtype, activation="", threads=nt,
                                 depth=0, width=n, batch=n, rep=r, seconds=t, flops=2.0 * n**3))


# -- report ------------------------------------------------------------------------------------
def med(df: pd.DataFrame, **where) -> float:
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return float(sel["seconds"].median()) if len(sel) else math.nan


def fmt_us(s: float) -> str:
    if not math.isfinite(s):
        return "–"
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} µs"


def ok(flag: bool | None) -> str:
    return "–" if flag is None else ("yes" if flag else "**no**")


def report(df: pd.DataFrame, info: dict, notes: dict) -> str:
    L = [f"# mlplab benchmark ({info['date']})", ""]
    L += ["Medians over repeats on one machine in one run; ratios < 1 mean mlplab is faster.", ""]
    L += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items() if k != "date"] + [""]
    verdicts = []

    st = df[df.section == "step"]
    if len(st):
        has_torch = "pytorch" in set(st.impl)
        L += ["## 1. Training step: mlplab vs PyTorch (CPU)", ""]
        if not has_torch:
            L += ["PyTorch is not installed (or was turned off with --no-torch); only mlplab's times are "
                  "shown. `make bench-torch` installs it (`torch==2.13.0`, CPU build) and compares.", ""]
        L += ["Forward, backward, per-layer gradient norms, norm clipping and the SGD update; input 64, "
              "10 classes, softmax cross-entropy. Same weights in both.", ""]
        L += ["| depth×width×batch | dtype | act | threads | mlplab | PyTorch | ratio | target | met |",
              "|---|---|---|---|---|---|---|---|---|"]
        keys = st[["depth", "width", "batch", "dtype", "activation", "threads"]].drop_duplicates()
        for k in keys.itertuples(index=False):
            shape = (k.depth, k.width, k.batch)
            w = dict(depth=k.depth, width=k.width, batch=k.batch, dtype=k.dtype, activation=k.activation, threads=k.threads)
            m, t = med(st, impl="mlplab", **w), med(st, impl="pytorch", **w)
            r = m / t if has_torch else math.nan
            tgt = TARGET_RATIO.get(shape) if k.dtype == "float64" else None
            met = None if (tgt is None or not has_torch) else r <= tgt
            if met is not None:
                verdicts.append(met)
            L.append(f"| {k.depth}×{k.width}×{k.batch} | {k.dtype} | {k.activation} | {k.threads} | {fmt_us(m)} | "
                     f"{fmt_us(t)} | {f'{r:.2f}' if has_torch else '–'} | {'≤ ' + str(tgt) if tgt else ''} | {ok(met)} |")
        L.append("")
        if "float32" in set(st.dtype) and "float64" in set(st.dtype):
            L += ["float32 against float64 (mlplab; target ≤ 1.00, i.e. float32 no slower):", "",
                  "| depth×width×batch | act | threads | float32 / float64 | met |", "|---|---|---|---|---|"]
            for k in keys[keys.dtype == "float64"].itertuples(index=False):
                w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation, threads=k.threads)
                r = med(st, impl="mlplab", dtype="float32", **w) / med(st, impl="mlplab", dtype="float64", **w)
                # medians of a few repeats wobble by a few %: "no slower" allows 5 % of noise
                L.append(f"| {k.depth}×{k.width}×{k.batch} | {k.activation} | {k.threads} | {r:.2f} | {ok(r <= 1.05)} |")
            L.append("")
        if notes.get("norm_err"):
            e = max(notes["norm_err"].values())
            L += [f"Check: after one step from the same weights, mlplab's and PyTorch's per-layer gradient "
                  f"norms differ by at most {e:.1e} (relative) over all cases above.", ""]

    nm = df[df.section == "norms"]
    if len(nm):
        L += ["## 2. Cost of instrumentation", "",
              "Per-layer gradient norms ‖∂C/∂W^l‖, ‖∂C/∂b^l‖ every step (sigmoid, 1 thread), as a share "
              "of the step: the norms alone (what `backward_(norms=True)` adds: one pass over the flat "
              f"gradient, or `vdot(g, g)` per array for large networks) timed bare. Target ≤ {TARGET_NORMS:g} %.", "",
              "| depth×width×batch | dtype | step | norms bare | share | met |",
              "|---|---|---|---|---|---|"]
        for k in nm[["depth", "width", "batch", "dtype"]].drop_duplicates().itertuples(index=False):
            w = dict(depth=k.depth, width=k.width, batch=k.batch, dtype=k.dtype)
            s, b = med(nm, impl="step", **w), med(nm, impl="norms_bare", **w)
            pct = 100 * b / s
            verdicts.append(pct <= TARGET_NORMS)
            L.append(f"| {k.depth}×{k.width}×{k.batch} | {k.dtype} | {fmt_us(s)} | {fmt_us(b)} | {pct:.1f} % | {ok(pct <= TARGET_NORMS)} |")
        L.append("")
    lg = df[df.section == "logging"]
    if len(lg):
        u, e = med(lg, impl="train_unlogged"), med(lg, impl="train_logged_every_step")
        L += [f"`mlplab.train.train` on a default-sweep run (depth 8, width 32, batch 32, 800 training and 200 "
              f"test samples), per step: {fmt_us(u)} with the default logging (about 50 logged steps per "
              f"run; here only step 0), {fmt_us(e)} when every step is logged with every metric, "
              f"including the loss and accuracy on the whole training and test sets ({e / u:.1f}×). "
              "That whole-set evaluation, not the per-layer metrics, is what makes logging every step "
              "expensive; the default schedule logs ~50 points per run.", ""]

    gm = df[df.section == "gemm"]
    pk = df[df.section == "peak"]
    if len(gm):
        L += ["## 3. Matrix products: share of the step and machine peak", "",
              "The step's own `np.dot` calls (same arrays, shapes, dtype and threads) timed bare. "
              f"Target on 50×256×256: step ≤ {TARGET_GEMM} × bare products.", "",
              "| depth×width×batch | dtype | act | threads | step | bare products | step / bare | step GFLOP/s | met |",
              "|---|---|---|---|---|---|---|---|---|"]
        for k in gm[["depth", "width", "batch", "dtype", "activation", "threads"]].drop_duplicates().itertuples(index=False):
            w = dict(depth=k.depth, width=k.width, batch=k.batch, dtype=k.dtype, activation=k.activation, threads=k.threads)
            s, b = med(gm, impl="step", **w), med(gm, impl="gemm_bare", **w)
            sel = gm[(gm.depth == k.depth) & (gm.width == k.width) & (gm.batch == k.batch)]
            fl = float(sel["flops"].iloc[0])
            r = s / b
            met = None
            if (k.depth, k.width, k.batch) == (50, 256, 256):
                met = r <= TARGET_GEMM
                verdicts.append(met)
            L.append(f"| {k.depth}×{k.width}×{k.batch} | {k.dtype} | {k.activation} | {k.threads} | {fmt_us(s)} | "
                     f"{fmt_us(b)} | {r:.2f} | {fl / s / 1e9:.1f} | {ok(met)} |")
        L.append("")
    if len(pk):
        L += ["GEMM peak (`np.dot` of two square matrices):", "", "| n | dtype | threads | GFLOP/s |", "|---|---|---|---|"]
        for k in pk[["width", "dtype", "threads"]].drop_duplicates().itertuples(index=False):
            s = med(pk, width=k.width, dtype=k.dtype, threads=k.threads)
            L.append(f"| {k.width} | {k.dtype} | {k.threads} | {2 * k.width**3 / s / 1e9:.1f} |")
        L.append("")

    bl = df[df.section == "blocks"]
    if len(bl):
        L += ["## 5. Residual and normalised networks", "",
              "The same step (forward, backward, norms, clipping, update) for each kind of network on the "
              "same shape (float64, 1 thread), against the plain network.", "",
              "| depth×width×batch | act | " + " | ".join(BLOCKS) + " |", "|---|---|" + "---|" * len(BLOCKS)]
        for k in bl[["depth", "width", "batch", "activation"]].drop_duplicates().itertuples(index=False):
            w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation)
            plain = med(bl, impl="plain", **w)
            cells = [fmt_us(plain)] + [f"{fmt_us(med(bl, impl=b, **w))} ({med(bl, impl=b, **w) / plain:.2f}×)" for b in list(BLOCKS)[1:]]
            L.append(f"| {k.depth}×{k.width}×{k.batch} | {k.activation} | " + " | ".join(cells) + " |")
        L.append("")
    L += report_engine(notes, verdicts, ok)
    if notes.get("load"):
        L += ["## Machine load", "",
              f"1-minute load average before and after each section ({os.cpu_count()} CPUs). Anything "
              "else running on the machine inflates the times, most of all with every thread in use.", "",
              "| section | load before | load after | duration |", "|---|---|---|---|"]
        L += [f"| {k} | {a:.2f} | {b:.2f} | {d:.0f} s |" for k, (a, b, d) in notes["load"].items()]
        L.append("")
    L += ["## Summary", "", f"{sum(verdicts)} of {len(verdicts)} checked targets met.", ""]
    return "\n".join(L)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.platform()


def machine_info(torch, sweep: str | None) -> dict:
    blas = "; ".join(f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture')}, {d.get('num_threads')} threads)"
                     for d in threadpool_info() if d.get("user_api") == "blas")
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {cpu_model()}",
        "python": platform.python_version(),
        "numpy": f"{np.__version__}; BLAS: {blas}",
        "pytorch": torch.__version__ if torch is not None else "not installed",
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "(unset)"),
        "sweep": sweep or "(skipped)",
    }


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, sweep=smoke (about a minute)")
    p.add_argument("--out", default=str(REPO / "results" / "bench"), help="output folder")
    p.add_argument("--shapes", default=None, help="depth x width x batch list, e.g. 2x32x32,5x32x64")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    p.add_argument("--no-sweep", action="store_true", help="skip the sweep timings")
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)

    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: F811
        except ImportError:
            torch = None
    shapes = SHAPES if args.shapes is None else [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    block_shapes = [BLOCK_SHAPE] if args.shapes is None else shapes[-1:]
    repeats = args.repeats or (3 if args.quick else 7)
    budget = 0.02 if args.quick else 0.1  # seconds per timed repeat
    threads = sorted({1, os.cpu_count() or 1})
    dtypes, acts = ["float64", "float32"], ["sigmoid", "relu"]
    sweep = None if args.no_sweep else ("smoke" if args.quick else "default")
    rows: list[dict] = []
    notes: dict = {}
    info = machine_info(torch, sweep)

    sections = [
        ("step", lambda: step_section(torch, shapes, dtypes, acts, threads, repeats, budget, rows, notes)),
        ("norms", lambda: norms_section(shapes, dtypes, repeats, budget, rows)),
        ("logging", lambda: logging_section(repeats, rows, args.quick or args.shapes is not None)),
        ("gemm", lambda: gemm_section(shapes, dtypes, acts, threads, repeats, budget, rows)),
        ("blocks", lambda: blocks_section(block_shapes, acts, repeats, budget, rows)),
        ("peak", lambda: peak_section(dtypes, threads, repeats, 512 if args.quick or args.shapes else 2048, rows)),
    ]
    if sweep:
        sections.append(("engine", lambda: engine_section(args.quick, notes)))
    load = notes["load"] = {}
    for name, run_section in sections:
        before = os.getloadavg()[0]
        t0 = time.perf_counter()
        run_section()
        load[name] = (before, os.getloadavg()[0], time.perf_counter() - t0)

    df = pd.DataFrame(rows)
    for col, fill in [("dtype", ""), ("activation", ""), ("depth", 0), ("width", 0), ("batch", 0), ("flops", math.nan)]:
        df[col] = df[col].fillna(fill) if col in df else fill
    df = df.astype({"depth": int, "width": int, "batch": int, "threads": int, "rep": int})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / "bench.parquet", index=False)
    df.to_csv(out / "bench.csv", index=False)
    (out / "bench.md").write_text(report(df, info, notes))
    print(f"wrote {out / 'bench.md'}", flush=True)
    return out


if __name__ == "__main__":
    main()

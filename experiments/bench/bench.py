"""How fast is mlplab? One run, one machine, the same thread settings for everyone.

    python experiments/bench/bench.py [--quick] [--out results/bench] [--no-torch] [--no-jax] [--no-sweep]

Writes ``<out>/bench.md`` — the goals table (every speed goal with its measured ratio, its
target and ✔/✘), then each section's numbers and the machine they ran on — and
``<out>/bench.parquet`` plus ``<out>/bench.csv`` (every timed repeat, long format).

Sections (modules of this folder):

* ``instrumentation``: a default run's training with its logging against the same run logging
  step 0 only, at depth 1 to 16;
* ``core``: the step against PyTorch's (float64 and float32, sigmoid and ReLU, 1 thread and all);
  ``MLP.gradients`` against the same arithmetic on the in-place API and against PyTorch's
  forward and backward; the step against its own matrix products (``gemm``: recorded from the
  step itself, replayed bare); residual and normalised steps against the plain one; the
  per-layer norms' share of the step; the GEMM peak; float32 gradients against float64;
* ``jacobian``: ``mlplab.jacobian`` of the spectrum study's net (depth 128, width 256, 16
  samples) and the singular values of its J's, against the training step and against its own
  matrix products;
* ``seeds``: a default run's seconds with the seeds of its configuration trained together
  (``mlplab.run_many``) against one by one, at 5 and 30 seeds;
* ``jax``: the default sweep's configurations (depth 1, 4, 16 × mse, softmax_ce, sigmoid, 5 seeds)
  as mlplab runs them against their JAX twin (``jax_twin``: ``jit`` over a ``lax.scan`` of the
  steps, ``vmap`` over the seeds, the same numbers), with and without XLA's compilation;
* ``engine``: sweeps end to end (the default sweep on each launcher, resuming, 10,000 tiny runs).

Every number is the median over repeats, the compared functions taking turns so that a noisy
neighbour slows them alike; every goal is a ratio of two numbers of the same run.
PyTorch is optional (``make bench-torch`` installs ``torch==2.13.0``, CPU build), and so is JAX
(``make bench-jax``; without it the ``jax`` section says so in one line).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's modules, however bench.py is loaded
import goals as G  # noqa: E402
from core import (  # noqa: E402
    BLOCKS,
    api_section,
    blocks_section,
    float32_error,
    gemm_section,
    norms_section,
    peak_section,
    step_section,
)
from engine import engine_section, report_engine  # noqa: E402
from instrumentation import DEPTHS, instrumentation_section  # noqa: E402
from jacobian import SHAPE as JACOBIAN_SHAPE  # noqa: E402
from jacobian import jacobian_section, report_jacobian  # noqa: E402
from jax_twin import jax_section  # noqa: E402
from seeds import seeds_section  # noqa: E402
from timing import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COLUMNS = [
    "section",
    "impl",
    "optim",
    "dtype",
    "activation",
    "threads",
    "depth",
    "width",
    "batch",
    "rep",
    "seconds",
    "flops",
]
SHAPES = [(2, 32, 32), (5, 32, 64), (10, 64, 128), (20, 128, 256), (50, 256, 256)]  # depth, width, batch


def fmt_us(s: float) -> str:
    if not math.isfinite(s):
        return "–"
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} µs"


def ok(flag: bool | None) -> str:
    return "–" if flag is None else ("✔" if flag else "✘")


def shapes_of(df, *cols):
    return df[list(cols)].drop_duplicates().itertuples(index=False)


def report(df: pd.DataFrame, info: dict, notes: dict) -> str:
    med = G.med
    L = [f"# mlplab benchmark ({info['date']})", ""]
    L += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items() if k != "date"] + [""]
    rows = G.goals(df, notes)
    L += (
        [
            "## Goals",
            "",
            "Every figure is a ratio of two timings taken in this run: the median over repeats of the ratio "
            "of the two functions' times in the same repeat (they take turns); "
            "float64 and 1 thread unless the case says otherwise.",
            "",
        ]
        + G.table(rows)
        + [""]
    )
    met = [m for *_, m in rows if m is not None]
    L += [f"{sum(met)} of {len(met)} goals met.", ""]

    ins = df[df.section == "instrumentation"]
    if len(ins):
        L += [
            "## Instrumentation",
            "",
            "`train` on a default run (blobs, width 32, batch 32, 500 steps): the default "
            "schedule (gradient metrics at 50 logged steps, the whole sets evaluated 5 times) against logging and "
            "evaluating step 0 only.",
            "",
            "| optimiser | depth | default | step 0 only | share |",
            "|---|---|---|---|---|",
        ]
        for o, d in sorted(set(zip(ins.optim, ins.depth)), key=lambda k: (k[0] != "sgd", k)):
            a, b = med(ins, impl="default", depth=d, optim=o), med(ins, impl="step 0 only", depth=d, optim=o)
            L.append(f"| {o} | {d} | {fmt_us(a)} | {fmt_us(b)} | {100 * (a - b) / a:.1f} % |")
        L.append("")

    api = df[df.section == "api"]
    if len(api):
        has_torch = "pytorch" in set(api.impl)
        L += [
            "## The public API",
            "",
            "`MLP.gradients(X, Y)` (input checks, forward, loss, backward, arrays the caller "
            "owns) against the same arithmetic on the in-place API (`forward_`, `loss_`, `backward_`) and against "
            "PyTorch's forward and backward (autograd, `p.grad` of every parameter); softmax-CE, sigmoid.",
            "",
            "| depth×width×batch | gradients() | in-place | ratio | PyTorch | gradients() / PyTorch |",
            "|---|---|---|---|---|---|",
        ]
        for k in shapes_of(api, "depth", "width", "batch"):
            w = dict(depth=k.depth, width=k.width, batch=k.batch)
            g, i, t = med(api, impl="gradients", **w), med(api, impl="in-place", **w), med(api, impl="pytorch", **w)
            L.append(
                f"| {G.fmt_shape(G.shape_of(k))} | {fmt_us(g)} | {fmt_us(i)} | {g / i:.2f} | {fmt_us(t)} | "
                f"{f'{g / t:.2f}' if has_torch else '–'} |"
            )
        L.append("")

    st = df[df.section == "step"]
    if len(st):
        has_torch = "pytorch" in set(st.impl)
        L += ["## Training step against PyTorch", ""]
        if not has_torch:
            L += [
                "PyTorch is not installed (or was turned off with --no-torch); only mlplab's times are shown. "
                "`make bench-torch` installs it (`torch==2.13.0`, CPU build) and compares.",
                "",
            ]
        L += [
            "Forward, backward, per-layer gradient norms, norm clipping and the SGD update; input 64, 10 classes, "
            "softmax cross-entropy; the same weights in both.",
            "",
            "| depth×width×batch | dtype | act | threads | mlplab | PyTorch | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for k in shapes_of(st, "depth", "width", "batch", "dtype", "activation", "threads"):
            w = dict(
                depth=k.depth, width=k.width, batch=k.batch, dtype=k.dtype, activation=k.activation, threads=k.threads
            )
            m, t = med(st, impl="mlplab", **w), med(st, impl="pytorch", **w)
            L.append(
                f"| {G.fmt_shape(G.shape_of(k))} | {k.dtype} | {k.activation} | {k.threads} | {fmt_us(m)} | "
                f"{fmt_us(t)} | "
                f"{f'{m / t:.2f}' if has_torch else '–'} |"
            )
        L.append("")
        if notes.get("norm_err"):
            L += [
                "Check: after one step from the same weights, mlplab's and PyTorch's per-layer gradient norms "
                "differ by "
                f"at most {max(notes['norm_err'].values()):.1e} (relative) over all cases above.",
                "",
            ]
    if "float32_error" in notes:
        L += [
            f"float32 gradients on the oracle nets (every activation × loss, 5-7-7-6-4, σ_w = 1.5): at most "
            f"{notes['float32_error']:.1e} from float64 (‖g32 − g64‖ / ‖g64‖ per array).",
            "",
        ]

    gm, pk = df[df.section == "gemm"], df[df.section == "peak"]
    if len(gm):
        L += [
            "## The step against its matrix products",
            "",
            "The step's own `dot` calls, recorded while it runs "
            "(`gemm.py`) and replayed bare on the same arrays, threads and dtype.",
            "",
            "| depth×width×batch | dtype | act | threads | step | products | step / products | step GFLOP/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in shapes_of(gm, "depth", "width", "batch", "dtype", "activation", "threads"):
            w = dict(
                depth=k.depth, width=k.width, batch=k.batch, dtype=k.dtype, activation=k.activation, threads=k.threads
            )
            s, b = med(gm, impl="step", **w), med(gm, impl="gemm_bare", **w)
            fl = float(gm[(gm.depth == k.depth) & (gm.width == k.width) & (gm.batch == k.batch)]["flops"].iloc[0])
            L.append(
                f"| {G.fmt_shape(G.shape_of(k))} | {k.dtype} | {k.activation} | {k.threads} | {fmt_us(s)} | "
                f"{fmt_us(b)} | "
                f"{s / b:.2f} | {fl / s / 1e9:.1f} |"
            )
        L.append("")
    if len(pk):
        L += [
            "GEMM peak (`np.dot` of two square matrices):",
            "",
            "| n | dtype | threads | GFLOP/s |",
            "|---|---|---|---|",
        ]
        for k in shapes_of(pk, "width", "dtype", "threads"):
            L.append(
                f"| {k.width} | {k.dtype} | {k.threads} | "
                f"{2 * k.width**3 / med(pk, width=k.width, dtype=k.dtype, threads=k.threads) / 1e9:.1f} |"
            )
        L.append("")

    bl = df[df.section == "blocks"]
    if len(bl):
        L += [
            "## Residual and normalised networks",
            "",
            "The same step for each kind of network on the same shape (float64, 1 thread), against the plain network.",
            "",
            "| depth×width×batch | act | " + " | ".join(BLOCKS) + " |",
            "|---|---|" + "---|" * len(BLOCKS),
        ]
        for k in shapes_of(bl, "depth", "width", "batch", "activation"):
            w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation)
            plain = med(bl, impl="plain", **w)
            cells = [fmt_us(plain)] + [
                f"{fmt_us(med(bl, impl=b, **w))} ({med(bl, impl=b, **w) / plain:.2f}×)" for b in list(BLOCKS)[1:]
            ]
            L.append(f"| {G.fmt_shape(G.shape_of(k))} | {k.activation} | " + " | ".join(cells) + " |")
        L.append("")

    nm = df[df.section == "norms"]
    if len(nm):
        L += [
            "## Per-layer gradient norms",
            "",
            "What `backward_(norms=True)` adds to the step (one pass over the flat "
            "gradient, or `vdot` per array for large networks), timed bare.",
            "",
            "| depth×width×batch | dtype | step | norms | share |",
            "|---|---|---|---|---|",
        ]
        for k in shapes_of(nm, "depth", "width", "batch", "dtype"):
            w = dict(depth=k.depth, width=k.width, batch=k.batch, dtype=k.dtype)
            s, b = med(nm, impl="step", **w), med(nm, impl="norms_bare", **w)
            L.append(f"| {G.fmt_shape(G.shape_of(k))} | {k.dtype} | {fmt_us(s)} | {fmt_us(b)} | {100 * b / s:.1f} % |")
        L.append("")
    L += report_jacobian(df, notes, fmt_us)
    L += report_jax(df, notes)
    L += report_engine(notes, [], ok)
    if notes.get("load"):
        L += [
            "## Machine load",
            "",
            f"1-minute load average before and after each section ({os.cpu_count()} CPUs). "
            "Anything else running on the machine inflates the times, most of all with every thread in use.",
            "",
            "| section | load before | load after | duration |",
            "|---|---|---|---|",
        ]
        L += [f"| {k} | {a:.2f} | {b:.2f} | {d:.0f} s |" for k, (a, b, d) in notes["load"].items()]
        L.append("")
    return "\n".join(L)


def fmt_s(s: float) -> str:
    return "–" if not math.isfinite(s) else f"{s:.2f} s"


def report_jax(df: pd.DataFrame, notes: dict) -> list[str]:
    jn = notes.get("jax")
    if jn is None:
        return []
    L = ["## JAX twin of the default sweep", ""]
    if jn["skipped"]:
        return L + [
            "JAX is not installed; the comparison is skipped (`make bench-jax` installs it, the `bench-jax` extra).",
            "",
        ]
    jx = G.jax_times(df)
    L += [
        f"The default sweep's runs at each depth ({', '.join(jn['losses'])} × sigmoid, {jn['seeds']} seeds, "
        f"{jn['steps']} steps, logged and evaluated every {jn['log_every']} step(s)) as mlplab does them "
        "(`Runner.many`: the seeds of a configuration in one stack, one BLAS thread, the tables written; of "
        "which training: the runs' `train_time_s`) against their JAX twin "
        "(`experiments/bench/jax_twin.py`: `jit` over a `lax.scan` of the steps, `vmap` over the seeds, float64, "
        "the same statistics at the same logged steps): its first call (tracing and XLA's compilation included) "
        f"and its compiled call; medians of {jn['repeats']} repeat(s), mlplab and the compiled twin taking turns; "
        "the seconds are summed over the configurations of a depth.",
        "",
        "| depth | mlplab | of which training | JAX with compilation | JAX compiled | mlplab / JAX compiled | "
        "mlplab / JAX with compilation |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, v in jx.items():
        L.append(
            f"| {k} | {fmt_s(v['mlplab'])} | {fmt_s(v['training'])} | {fmt_s(v['first'])} | {fmt_s(v['compiled'])} "
            f"| {v['vs_compiled']:.2f} | {v['vs_first']:.2f} |"
        )
    c = jn["check"]
    L += [
        "",
        f"Check: the twin's numbers against the mlplab runs' tables (every logged step's per-layer and per-step "
        f"numbers, the evaluations, the final ones): at most {c['max_relative']:.1e} apart (relative, float64 "
        f"columns; the largest in {c['worst']}); the float32 columns (activation statistics, accuracies) at most "
        f"{c['max_float32_steps']} float32 step(s) apart.",
        "",
        f"JAX {jn['version']} on one CPU thread: {jn['threads']}; CPU time / wall time of the compiled calls "
        f"{jn['cpu_per_wall']:.2f}.",
        "",
    ]
    return L


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and shapes, sweep=smoke (a few minutes)")
    p.add_argument("--out", default=str(REPO / "results" / "bench"), help="output folder")
    p.add_argument("--shapes", default=None, help="depth x width x batch list, e.g. 2x32x32,5x32x64")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    p.add_argument("--no-jax", action="store_true", help="do not compare with JAX")
    p.add_argument("--no-sweep", action="store_true", help="skip the sweep timings")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument(
        "--sections",
        default=None,
        help="run only these, comma-separated: instrumentation, api, step, float32, gemm, blocks, norms, peak, "
        "seeds, jacobian, jax, engine",
    )
    args = p.parse_args(argv)

    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: F811
        except ImportError:
            torch = None
    custom = args.shapes is not None
    shapes = SHAPES if not custom else [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    big = [s for s in shapes if s in G.GEMM_SHAPES] or shapes[-1:]
    block_shapes = [G.BLOCK_SHAPE] if not custom else shapes[-1:]
    repeats = args.repeats or (3 if args.quick else 7)
    budget = 0.02 if args.quick else 0.1  # seconds per timed repeat
    threads = sorted({1, os.cpu_count() or 1})
    dtypes, acts = ["float64", "float32"], ["sigmoid", "relu"]
    sweep = None if args.no_sweep else ("smoke" if args.quick else "default")
    depths = DEPTHS if not custom else DEPTHS[:1]
    rows: list[dict] = []
    notes: dict = {}
    info = machine(torch, sweep)
    if args.no_torch:  # installed or not, it was not asked for
        info["PyTorch"] = "not used (--no-torch)"
    try:  # the version only: importing JAX here would start it before the jax section sets its threads
        info["JAX"] = importlib.metadata.version("jax")
    except importlib.metadata.PackageNotFoundError:
        info["JAX"] = "not installed"
    if args.no_jax:
        info["JAX"] = "not used (--no-jax)"

    sections = [
        ("instrumentation", lambda: instrumentation_section(depths, max(repeats, 5), rows, 2 if custom else None)),
        ("api", lambda: api_section(torch, shapes, repeats, budget, rows)),
        ("step", lambda: step_section(torch, shapes, dtypes, acts, threads, repeats, budget, rows, notes)),
        ("float32", lambda: float32_error(notes)),
        ("gemm", lambda: gemm_section(big, ["float64"], acts, threads, repeats, budget, rows)),
        ("blocks", lambda: blocks_section(block_shapes, acts, repeats, budget, rows)),
        ("norms", lambda: norms_section(shapes, dtypes, repeats, budget, rows)),
        ("peak", lambda: peak_section(dtypes, threads, repeats, 512 if args.quick or custom else 2048, rows)),
    ]
    wanted = set(args.sections.split(",")) if args.sections else set()
    if not custom or "jacobian" in wanted:  # --shapes: the last shape's depth and width, n_0 = width, if asked for
        jshape = JACOBIAN_SHAPE if not custom else (*shapes[-1][:2], JACOBIAN_SHAPE[2])
        sections.append(("jacobian", lambda: jacobian_section(jshape, repeats, budget, rows, notes)))
    if not custom or "seeds" in wanted:  # --shapes: only when asked for (default runs)
        sections.append(("seeds", lambda: seeds_section(args.quick, 2 if args.quick else 3, rows)))
    if not args.no_jax and (not custom or "jax" in wanted):  # --shapes: only when asked for
        sections.append(("jax", lambda: jax_section(args.quick, rows, notes)))
    if sweep:
        sections.append(("engine", lambda: engine_section(args.quick, notes)))
    if args.sections:
        unknown = wanted - {name for name, _ in sections} - {"engine", "jax"}
        if unknown:
            p.error(f"--sections: unknown {sorted(unknown)}; choose from {[name for name, _ in sections]}")
        sections = [(name, f) for name, f in sections if name in wanted]
    notes["default_runs"] = not custom  # --shapes: 2-epoch runs, not the default run the goal is set for
    load = notes["load"] = {}
    for name, run_section in sections:
        before = os.getloadavg()[0]
        t0 = time.perf_counter()
        run_section()
        load[name] = (before, os.getloadavg()[0], time.perf_counter() - t0)
    eng = notes.get("engine")
    if eng and eng.get("sweep") == "default":
        notes["engine_goals"] = [(k["case"], k["efficiency"], 0.9) for k in eng["cases"] if k["case"].endswith("local")]

    df = pd.DataFrame(rows, columns=COLUMNS)  # every column, even when the sections run gave no timings (float32)
    df["optim"] = df["optim"].astype(object)  # text where a section sets it (instrumentation), else empty
    for col, fill in [
        ("optim", ""),
        ("dtype", ""),
        ("activation", ""),
        ("depth", 0),
        ("width", 0),
        ("batch", 0),
        ("flops", math.nan),
    ]:
        df[col] = df[col].fillna(fill) if col in df else fill
    df = df.astype({"depth": int, "width": int, "batch": int, "threads": int, "rep": int})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / "bench.parquet", index=False)
    df.to_csv(out / "bench.csv", index=False)
    text = report(df, info, notes)
    (out / "bench.md").write_text(text)
    print("\n".join(text.split("## Goals", 1)[1].split("\n## ", 1)[0].splitlines()[1:]), flush=True)
    print(f"wrote {out / 'bench.md'}", flush=True)
    return out


if __name__ == "__main__":
    main()

"""The speed goals, each a ratio measured in one run on one machine, with its target."""

from __future__ import annotations

import math

import pandas as pd

# the first performance round: mlplab's step / PyTorch's, float64, both activations and thread settings
STEP_VS_TORCH = {(2, 32, 32): 0.25, (5, 32, 64): 0.25, (10, 64, 128): 0.5, (20, 128, 256): 0.8, (50, 256, 256): 0.9}
NORMS_SHARE = 0.05  # per-layer norms every step, of the step
# the second
INSTRUMENTATION = 0.15  # of a default run's training, every depth
API = 1.10  # gradients() / the same arithmetic in place, every shape
GEMM = 1.15  # step / its own matrix products, 1 thread
GEMM_SHAPES = [(20, 128, 256), (50, 256, 256)]
API_VS_TORCH = {(5, 32, 64): 0.25, (10, 64, 128): 0.5}  # gradients() / PyTorch forward + backward, 1 thread
FLOAT32 = 0.6  # float32 step / float64 step
FLOAT32_SHAPES = [(20, 128, 256), (50, 256, 256)]
FLOAT32_ERROR = 1e-4  # float32 gradients against float64 on the oracle nets, relative
BLOCKS = 1.3  # residual / normalised step over the plain one
BLOCK_SHAPE = (20, 128, 256)
# the third: the spectrum study
JACOBIAN = 1.15  # mlplab.jacobian / its own matrix products, 1 thread
JACOBIAN_SHAPE = (128, 256, 16)  # depth, width (= n_0), samples
# the fourth (issue 26): mlplab against compiled JAX on the default sweep's configurations at 5 seeds
VS_JAX = 1.0  # mlplab's runs / the JAX twin's compiled calls, all depths together
SEEDS_BULK = 0.5  # a run's seconds with its seeds stacked / alone, at 30 seeds (issue 26)
JAX_CHECK = 1e-12  # the twin's numbers against mlplab's, relative (float64 columns)


def med(df: pd.DataFrame, **where) -> float:
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return float(sel["seconds"].median()) if len(sel) else math.nan


def ratio(df: pd.DataFrame, a: dict, b: dict, **where) -> float:
    """The median over repeats of time(a) / time(b), paired by repeat: the two took turns, so
    each pair ran under the same conditions (a drifting machine cancels out of the ratio)."""
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    x = sel
    for k, v in a.items():
        x = x[x[k] == v]
    y = sel
    for k, v in b.items():
        y = y[y[k] == v]
    pairs = x.set_index("rep")["seconds"] / y.set_index("rep")["seconds"]
    return float(pairs.median()) if pairs.notna().any() else math.nan


def jax_times(df: pd.DataFrame) -> dict:
    """The JAX section's figures per depth and for all depths together ("all"): medians over
    repeats of mlplab's runs, their training, the twin's compiled call, its first call (once);
    mlplab / compiled JAX as the median of the per-repeat ratios (the two took turns), mlplab /
    JAX with compilation from the medians."""
    jx = df[df.section == "jax"]
    if not len(jx):
        return {}
    p = jx.pivot_table(index=["depth", "rep"], columns="impl", values="seconds", aggfunc="sum")
    out = {}
    for key, sel in [
        *((int(d), p.xs(d, level="depth")) for d in sorted(set(jx.depth))),
        ("all", p.groupby("rep").sum()),
    ]:
        m = sel.median()
        first = float(sel["jax first call"].dropna().sum()) if key != "all" else math.nan
        out[key] = dict(
            mlplab=float(m["mlplab"]),
            training=float(m["mlplab training"]),
            compiled=float(m["jax compiled"]),
            first=first,
            vs_compiled=float((sel["mlplab"] / sel["jax compiled"]).median()),
        )
    out["all"]["first"] = sum(v["first"] for k, v in out.items() if k != "all")
    for v in out.values():
        v["vs_first"] = v["mlplab"] / v["first"]
    return out


def shape_of(k) -> tuple[int, int, int]:
    return (int(k.depth), int(k.width), int(k.batch))


def fmt_shape(s) -> str:
    return "×".join(map(str, s))


def goals(df: pd.DataFrame, notes: dict) -> list[tuple[str, str, float, str, bool | None]]:
    """(goal, case, measured, target, met) for every goal the run measured."""
    out = []

    def add(goal, case, value, target, op="≤", applies=True):
        """``applies``: the case is the one the goal is set for (else its ratio is shown, unjudged)."""
        met = None if not (applies and math.isfinite(value)) else (value <= target if op == "≤" else value >= target)
        out.append((goal, case, value, f"{op} {target:g}" if applies else "", met))

    ins = df[df.section == "instrumentation"]
    cases = set(zip(ins.optim, ins.depth)) if len(ins) else set()
    for o, d in sorted(cases, key=lambda k: (k[0] != "sgd", k)):
        share = 1.0 - ratio(ins, dict(impl="step 0 only"), dict(impl="default"), depth=d, optim=o)
        add(
            "instrumentation share of a default run",
            f"depth {d}" + ("" if o == "sgd" else f", {o}"),
            share,
            INSTRUMENTATION,
            applies=notes.get("default_runs", True),
        )
    api = df[df.section == "api"]
    for k in api[["depth", "width", "batch"]].drop_duplicates().itertuples(index=False):
        w = dict(depth=k.depth, width=k.width, batch=k.batch)
        add(
            "gradients() / in-place forward, loss, backward",
            fmt_shape(shape_of(k)),
            ratio(api, dict(impl="gradients"), dict(impl="in-place"), **w),
            API,
        )
    for k in api[["depth", "width", "batch"]].drop_duplicates().itertuples(index=False):
        if shape_of(k) in API_VS_TORCH and "pytorch" in set(api.impl):
            w = dict(depth=k.depth, width=k.width, batch=k.batch)
            add(
                "gradients() / PyTorch forward + backward",
                fmt_shape(shape_of(k)),
                ratio(api, dict(impl="gradients"), dict(impl="pytorch"), **w),
                API_VS_TORCH[shape_of(k)],
            )
    gm = df[(df.section == "gemm") & (df.threads == 1) & (df.dtype == "float64")]
    for k in gm[["depth", "width", "batch", "activation"]].drop_duplicates().itertuples(index=False):
        if shape_of(k) in GEMM_SHAPES:
            w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation)
            add(
                "step / its matrix products",
                f"{fmt_shape(shape_of(k))} {k.activation}",
                ratio(gm, dict(impl="step"), dict(impl="gemm_bare"), **w),
                GEMM,
            )
    jc = df[(df.section == "jacobian") & (df.impl.isin(["jacobian", "products"]))]
    for k in jc[["depth", "width", "batch", "activation"]].drop_duplicates().itertuples(index=False):
        w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation)
        add(
            "jacobian / its matrix products",
            f"{k.depth}×{k.width}, {k.batch} samples {k.activation}",
            ratio(jc, dict(impl="jacobian"), dict(impl="products"), **w),
            JACOBIAN,
            applies=shape_of(k) == JACOBIAN_SHAPE,
        )
    st = df[(df.section == "step") & (df.impl == "mlplab") & (df.threads == 1)]
    for k in st[["depth", "width", "batch", "activation"]].drop_duplicates().itertuples(index=False):
        if shape_of(k) in FLOAT32_SHAPES:
            w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation)
            add(
                "float32 step / float64 step",
                f"{fmt_shape(shape_of(k))} {k.activation}",
                ratio(st, dict(dtype="float32"), dict(dtype="float64"), **w),
                FLOAT32,
            )
    if "float32_error" in notes:
        add(
            "float32 gradients against float64 (oracle nets, relative)",
            "12 nets",
            notes["float32_error"],
            FLOAT32_ERROR,
        )
    bl = df[df.section == "blocks"]
    for k in bl[["depth", "width", "batch", "activation"]].drop_duplicates().itertuples(index=False):
        w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation)
        for b in sorted(set(bl.impl) - {"plain"}):
            add(
                "block step / plain step",
                f"{b}, {fmt_shape(shape_of(k))} {k.activation}",
                ratio(bl, dict(impl=b), dict(impl="plain"), **w),
                BLOCKS,
                applies=shape_of(k) == BLOCK_SHAPE,
            )
    sv = df[(df.section == "step") & (df.dtype == "float64")]
    if "pytorch" in set(sv.impl):
        for k in sv[["depth", "width", "batch", "activation", "threads"]].drop_duplicates().itertuples(index=False):
            if shape_of(k) in STEP_VS_TORCH:
                w = dict(depth=k.depth, width=k.width, batch=k.batch, activation=k.activation, threads=k.threads)
                add(
                    "step / PyTorch step (round 1)",
                    f"{fmt_shape(shape_of(k))} {k.activation} {k.threads}t",
                    ratio(sv, dict(impl="mlplab"), dict(impl="pytorch"), **w),
                    STEP_VS_TORCH[shape_of(k)],
                )
    nm = df[df.section == "norms"]
    for k in nm[["depth", "width", "batch", "dtype"]].drop_duplicates().itertuples(index=False):
        w = dict(depth=k.depth, width=k.width, batch=k.batch, dtype=k.dtype)
        add(
            "per-layer norms / step (round 1)",
            f"{fmt_shape(shape_of(k))} {k.dtype}",
            ratio(nm, dict(impl="norms_bare"), dict(impl="step"), **w),
            NORMS_SHARE,
        )
    sd = df[df.section == "seeds"]
    for k in sd[["depth", "batch"]].drop_duplicates().sort_values(["batch", "depth"]).itertuples(index=False):
        add(
            "a run with its seeds stacked / alone (issue 26)",
            f"depth {k.depth}, {k.batch} seeds",
            ratio(sd, dict(impl="stacked"), dict(impl="alone"), depth=k.depth, batch=k.batch),
            SEEDS_BULK,
            applies=k.batch >= 30 and notes.get("default_runs", True),
        )
    jx = jax_times(df)
    if jx:
        full = notes.get("jax", {}).get("full", False)
        case = "depth " + ", ".join(str(k) for k in jx if k != "all") + " × mse, softmax_ce, 5 seeds"
        add("mlplab / compiled JAX (issue 26)", case, jx["all"]["vs_compiled"], VS_JAX, applies=full)
        add("mlplab / JAX with compilation", case, jx["all"]["vs_first"], VS_JAX, applies=False)
    check = notes.get("jax", {}).get("check")
    if check:
        add(
            "JAX twin's numbers against mlplab's (relative, float64)",
            "every logged number",
            check["max_relative"],
            JAX_CHECK,
        )
    for case, value, target in notes.get("engine_goals", []):
        add("sweep efficiency (round 1)", case, value, target, "≥")
    return out


def table(rows) -> list[str]:
    L = ["| goal | case | measured | target | met |", "|---|---|---|---|---|"]
    for goal, case, value, target, met in rows:
        v = f"{value:.2e}" if abs(value) < 1e-2 and value != 0 else f"{value:.3f}"
        L.append(f"| {goal} | {case} | {v} | {target} | {'–' if met is None else ('✔' if met else '✘')} |")
    return L

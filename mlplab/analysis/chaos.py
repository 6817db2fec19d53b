"""The edge-of-chaos study: Schoenholz et al. (2017), "Deep Information Propagation", measured.

    python -m mlplab.analysis.chaos results/chaos

For W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²) mean-field theory (``mlplab.theory``) predicts that the
squared gradient of one input changes by χ1 = σ_w² E[φ'(z)²], z ~ N(0, q*), per layer toward the
input:

    ln ‖δ^l‖² − ln ‖δ^(l+1)‖² → ln χ1,        ‖δ^l‖² ∝ exp(−(L − l)/ξ_∇),  ξ_∇ = −1/ln χ1,

vanishing in the ordered phase (χ1 < 1), exploding in the chaotic one (χ1 > 1), and neither on the
critical line χ1 = 1. Two inputs' correlation settles over ξ_c = −1/ln(σ_w² E[φ'(u1) φ'(u2)]) at
its fixed point c*, and the paper reports networks trainable up to a depth of about 6 ξ_c.

Two kinds of runs are read back from a results folder (``conf/sweep/chaos.yaml`` and
``chaos_train.yaml`` make both, into ``results/chaos``):

* **at initialisation** — plain networks (``init=normal``, no residual, no normalisation) trained
  on one image with batch size 1: step 0's ‖∂C/∂b^l‖ = ‖δ^l‖ of a single input, the quantity
  the theory describes. ``decay_table`` fits the per-layer rate of ln ‖∂C/∂b^l‖² by least
  squares over the hidden layers away from both ends and sets it beside ln χ1 (the infinitely
  deep prediction) and beside the mean-field prediction along the same layers (the length map
  started from the measured second layer), which separates the ends of the net from the rest;
* **trained** — plain networks trained for more than one step: ``trainability_table`` counts the
  runs whose final training accuracy reaches ``ACC_TARGET``, against depth <= 6 ξ_c.

Provenance of "6 ξ_c": papers that build on Schoenholz et al. quote it (the maximum trainable
depth is about 6 ξ_c), and their code draws it; the primary text (arXiv:1611.01232) could not be
read here to confirm the constant, and a third-party reproduction drew ξ_c, 2 ξ_c and 4.5 ξ_c
instead. The multiple is therefore a parameter (``TRAIN_MULTIPLE``), and the tables report the
measured trainable depth in units of ξ_c as well.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mlplab import theory
from mlplab.analysis import load
from mlplab.analysis.blocks import Block

ACC_TARGET = 0.5  # "trainable": final training accuracy >= this (10 classes: chance is 0.1)
TRAIN_MULTIPLE = 6.0  # the paper's trainable depth, in units of ξ_c (see the module docstring)
SKIP_INPUT = 5  # hidden layers next to the input left out of the fit (q^l has not settled there)
SKIP_OUTPUT = 2  # hidden layers next to the output layer left out of the fit
MIN_FIT_LAYERS = 3
RATE_TOL = 0.05  # |measured − predicted| per-layer rate of ln‖δ‖² called a disagreement
NEAR_CRITICAL = 0.1  # |ln χ1| below this: "near the critical line"
CURVE_POINTS = 41  # σ_w² values on which the 6 ξ_c curve is drawn

PROVENANCE = (
    "Where “6 ξ_c” comes from: Schoenholz et al. (2017) report random networks trainable up to a depth of "
    "about 6 ξ_c; later work on critical initialisation quotes the same constant and draws a 6 ξ_c curve. The "
    "primary text (arXiv:1611.01232) has not been checked for the constant, and one third-party "
    "reproduction drew ξ_c, 2 ξ_c and 4.5 ξ_c instead, so read the multiple as the paper's rule of thumb, not "
    "as a derived bound: the tables also give each measured trainable depth in units of ξ_c."
)


# -- selections ---------------------------------------------------------------------------------
def _plain(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs the mean-field theory describes: init=normal, no residual, no normalisation, no
    clipping or weight decay, a bounded activation (sigmoid, tanh)."""
    keep = (runs["init"] == "normal") & ~runs["residual"].astype(bool) & (runs["norm"] == "none")
    keep &= (runs["clip"] == "none") & (runs["weight_decay"] == 0.0)
    keep &= runs["activation"].isin(["sigmoid", "tanh"])
    return runs[keep]


def init_runs(res) -> pd.DataFrame:
    """The single-input runs at initialisation: plain, batch size 1, deep enough for a fit."""
    runs = _plain(res.runs)
    return runs[(runs["batch_size"] == 1) & (runs["depth"] >= SKIP_INPUT + SKIP_OUTPUT + MIN_FIT_LAYERS)]


def train_runs(res) -> pd.DataFrame:
    """The trained runs: plain, more than one step."""
    runs = _plain(res.runs)
    return runs[(runs["n_steps"] > 1) & (runs["depth"] >= 1)]


def present(source) -> bool:
    """Whether the folder holds the study: single-input runs at initialisation deep enough for
    a fit, or trained runs over a grid of ≥ 3 depths × ≥ 3 σ_w (not just any trained runs)."""
    res = load(source)
    train = train_runs(res)
    grid = train["depth"].nunique() >= 3 and train["sigma_w"].nunique() >= 3
    return not init_runs(res).empty or grid


# -- part 1: the per-layer decay at initialisation ------------------------------------------------
def fit_layers(depth: int) -> tuple[int, int]:
    """The first and last hidden layer of the fit: SKIP_INPUT and SKIP_OUTPUT left out."""
    return SKIP_INPUT + 1, int(depth) - SKIP_OUTPUT


def rate_of(layers, log_sq_norm) -> float:
    """−(least-squares slope of ln ‖δ^l‖² against l): the per-layer change of ln ‖δ‖² going one
    layer toward the input (ln χ1 in the theory). NaN if any value is not finite."""
    y = np.asarray(log_sq_norm, float)
    if len(y) < 2 or not np.isfinite(y).all():
        return math.nan
    return -float(np.polyfit(np.asarray(layers, float), y, 1)[0])


def path_rate(activation: str, sigma_w: float, sigma_b: float, q2: float, depth: int) -> float:
    """The mean-field rate over the fitted layers of a net whose second layer has variance q2:
    q^l from the length map (q^2 = q2), ln ‖δ^l‖² − ln ‖δ^(l+1)‖² = ln χ(q^l), fitted like the
    measurement. It differs from ln χ1 where q^l is still on its way to q* (the ends)."""
    first, last = fit_layers(depth)
    if not math.isfinite(q2):
        return math.nan
    q = {2: q2}
    for l in range(3, last + 1):
        q[l] = theory.length_map(q[l - 1], activation, sigma_w, sigma_b)
    log_chi = {l: math.log(theory.chi(q[l], activation, sigma_w)) for l in range(first, last)}
    y = np.zeros(last - first + 1)  # ln ‖δ^l‖² relative to the last fitted layer
    for i, l in enumerate(range(last - 1, first - 1, -1)):
        y[-2 - i] = y[-1 - i] + log_chi[l]
    return rate_of(range(first, last + 1), y)


def run_rates(res) -> pd.DataFrame:
    """One row per single-input run: the measured rate over the fitted layers (``rate``), the
    same over every hidden layer (``rate_all``), the second layer's variance estimated from the
    first layer's output, q^2 = σ_w² E[(a^1)²] + σ_b² (``q2``), the mean-field rate along the
    fitted layers from that q^2 (``rate_path``) and ``nonfinite``: whether a norm in the fit was
    0, NaN or inf."""
    runs = init_runs(res)
    cols = ["run_id", "activation", "width", "depth", "sigma_w", "sigma_b", "seed"]
    if runs.empty:
        return pd.DataFrame(
            columns=cols + ["first", "last", "rate", "rate_all", "q2", "rate_path", "step_var", "nonfinite"]
        )
    lay = res.layers[["run_id", "step", "layer", "grad_b_norm", "act_mean", "act_std"]]
    lay = lay[(lay["step"] == 0) & lay["run_id"].isin(runs["run_id"])].merge(runs[cols], on="run_id")
    rows = []
    for _, g in lay.groupby("run_id", sort=False):
        g = g.sort_values("layer")
        r = g.iloc[0]
        depth = int(r["depth"])
        first, last = fit_layers(depth)
        hidden = g[g["layer"] <= depth]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = 2.0 * np.log(hidden["grad_b_norm"].to_numpy(float))
        ls = hidden["layer"].to_numpy()
        fit = (ls >= first) & (ls <= last)
        a1 = g[g["layer"] == 1]
        second_moment = float(a1["act_mean"].iloc[0]) ** 2 + float(a1["act_std"].iloc[0]) ** 2 if len(a1) else math.nan
        q2 = r["sigma_w"] ** 2 * second_moment + r["sigma_b"] ** 2
        finite = bool(np.isfinite(y[fit]).all())
        steps = y[fit][:-1] - y[fit][1:] if finite else np.array([])
        rows.append(
            {
                **{c: r[c] for c in cols},
                "first": first,
                "last": last,
                "rate": rate_of(ls[fit], y[fit]),
                "rate_all": rate_of(ls, y),
                "q2": q2,
                "step_var": float(np.var(steps, ddof=1)) if len(steps) > 1 else math.nan,
                "rate_path": path_rate(r["activation"], float(r["sigma_w"]), float(r["sigma_b"]), q2, depth),
                "nonfinite": not finite,
            }
        )
    return pd.DataFrame(rows)


def decay_table(res, rates: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (activation, width, depth, σ_w, σ_b): the measured per-layer rate of ln ‖∂C/∂b^l‖²
    toward the input — median over seeds (``rate``) with ``rate_min``, ``rate_max`` and ``n`` —
    against the theory: ``log_chi1`` = ln χ1 (the infinitely deep net), ``rate_path`` (median
    mean-field rate along the fitted layers), ``chi1``, ``phase``; and the depth scales: measured
    ``xi_measured`` = −1/rate against ``xi_grad`` = −1/ln χ1 (signed: negative = growth toward
    the input). ``diff`` = rate − ln χ1, ``diff_path`` = rate − rate_path; ``jensen`` = −½ × the
    median variance of the per-layer increments, the bias expected of a rate of the *log* of a
    product of fluctuating factors (E ln X ≈ ln E X − Var/2 per layer, at finite width);
    ``n_nonfinite`` runs whose fit met a zero or non-finite norm (their rate is NaN and left out of
    the median)."""
    rates = run_rates(load(res)) if rates is None else rates
    keys = ["activation", "width", "depth", "sigma_w", "sigma_b"]
    if rates.empty:
        return pd.DataFrame(columns=keys + ["sigma_w2", "sigma_b2", "n", "rate", "rate_min", "rate_max", "log_chi1"])
    g = rates.groupby(keys, sort=True)
    t = g.agg(
        n=("rate", "size"),
        n_nonfinite=("nonfinite", "sum"),
        rate=("rate", "median"),
        rate_min=("rate", "min"),
        rate_max=("rate", "max"),
        rate_all=("rate_all", "median"),
        rate_path=("rate_path", "median"),
        step_var=("step_var", "median"),
        first=("first", "first"),
        last=("last", "first"),
    ).reset_index()
    t.insert(len(keys), "sigma_w2", np.round(t["sigma_w"].astype(float) ** 2, 6))
    t.insert(len(keys) + 1, "sigma_b2", np.round(t["sigma_b"].astype(float) ** 2, 6))
    t["chi1"] = [theory.chi1(a, float(sw), float(sb)) for a, sw, sb in zip(t["activation"], t["sigma_w"], t["sigma_b"])]
    t["log_chi1"] = np.log(t["chi1"])
    t["phase"] = [theory.phase(c) for c in t["chi1"]]
    t["diff"] = t["rate"] - t["log_chi1"]
    t["diff_path"] = t["rate"] - t["rate_path"]
    t["jensen"] = -0.5 * t["step_var"]
    t["xi_grad"] = [_xi(r) for r in t["log_chi1"]]
    t["xi_measured"] = [_xi(r) for r in t["rate"]]
    return t


def _xi(rate: float) -> float:
    """−1/rate: the signed depth scale of a per-layer log rate (inf at 0)."""
    if math.isnan(rate):
        return math.nan
    return math.inf if rate == 0.0 else -1.0 / rate


# -- part 2: trainability against depth -----------------------------------------------------------
def trainability_table(res, multiple: float = TRAIN_MULTIPLE) -> pd.DataFrame:
    """Per (activation, width, σ_b, depth, σ_w): ``n`` runs, ``n_trainable`` that finished (not
    diverged) with final training accuracy >= ACC_TARGET, their ``fraction``, the median final
    training accuracy, ``n_diverged``; the theory's ``xi_c``, ``max_depth`` = multiple × ξ_c,
    ``predicted`` (depth <= max_depth), and ``depth_over_xi_c``."""
    res = load(res)
    runs = train_runs(res)
    keys = ["activation", "width", "sigma_b", "depth", "sigma_w"]
    if runs.empty:
        return pd.DataFrame(
            columns=keys + ["sigma_w2", "sigma_b2", "n", "n_trainable", "fraction", "xi_c", "max_depth", "predicted"]
        )
    runs = runs.assign(
        trainable=(runs["status"] == "ok") & (runs["final_accuracy"].astype(float) >= ACC_TARGET),
        diverged=runs["status"] == "diverged",
    )
    t = (
        runs.groupby(keys, sort=True)
        .agg(
            n=("run_id", "size"),
            n_trainable=("trainable", "sum"),
            n_diverged=("diverged", "sum"),
            accuracy=("final_accuracy", "median"),
            steps=("n_steps", "median"),
        )
        .reset_index()
    )
    t.insert(len(keys), "sigma_w2", np.round(t["sigma_w"].astype(float) ** 2, 6))
    t.insert(len(keys) + 1, "sigma_b2", np.round(t["sigma_b"].astype(float) ** 2, 6))
    t["fraction"] = t["n_trainable"] / t["n"]
    xi = {k: theory.xi_c(k[0], float(k[1]), float(k[2])) for k in set(zip(t["activation"], t["sigma_w"], t["sigma_b"]))}
    t["xi_c"] = [xi[k] for k in zip(t["activation"], t["sigma_w"], t["sigma_b"])]
    t["max_depth"] = multiple * t["xi_c"]
    t["predicted"] = t["depth"] <= t["max_depth"]
    t["depth_over_xi_c"] = t["depth"] / t["xi_c"]
    return t


def trainable_depths(tt: pd.DataFrame) -> pd.DataFrame:
    """Per (activation, width, σ_b, σ_w): ``first_failure``, the shallowest depth at which fewer
    than half the runs are trainable (NaN if none); ``deepest``, the deepest depth below it at
    which at least half are (0 if none; every depth if nothing fails); ``trains_deeper``: whether
    some depth beyond the first failure trains again; ξ_c, the predicted ``max_depth`` and
    ``deepest_over_xi_c``."""
    rows = []
    for key, g in tt.groupby(["activation", "width", "sigma_b", "sigma_w"], sort=True):
        g = g.sort_values("depth")
        ok = (g["fraction"] >= 0.5).to_numpy()
        depths = g["depth"].to_numpy()
        fail = depths[~ok].min() if (~ok).any() else math.inf
        below = depths[ok & (depths < fail)]
        rows.append(
            {
                "activation": key[0],
                "width": key[1],
                "sigma_b2": g["sigma_b2"].iloc[0],
                "sigma_w2": g["sigma_w2"].iloc[0],
                "depths": len(g),
                "deepest": int(below.max()) if len(below) else 0,
                "first_failure": float(fail) if math.isfinite(fail) else math.nan,
                "trains_deeper": bool((ok & (depths > fail)).any()),
                "xi_c": g["xi_c"].iloc[0],
                "max_depth": g["max_depth"].iloc[0],
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["deepest_over_xi_c"] = out["deepest"] / out["xi_c"]
    return out


# -- figures ------------------------------------------------------------------------------------------


def _edges(values) -> np.ndarray:
    """Cell edges around sorted centres: midpoints, the ends mirrored."""
    v = np.asarray(sorted(values), float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


@functools.lru_cache(maxsize=256)
def _critical_sigma_w2(activation: str, sigma_b2: float) -> float:
    return theory.critical_sigma_w(activation, math.sqrt(sigma_b2), lo=0.3, hi=3.0, tol=1e-6) ** 2


def critical_line(activation: str, sigma_b2) -> pd.DataFrame:
    """σ_w² with χ1 = 1 for each σ_b² (``mlplab.theory.critical_sigma_w``; remembered)."""
    sb2 = [float(b) for b in np.asarray(sigma_b2, float)]
    return pd.DataFrame({"sigma_b2": sb2, "sigma_w2": [_critical_sigma_w2(activation, b) for b in sb2]})


def fig_chaos_heatmap(res, table: pd.DataFrame | None = None):
    """Left: the measured per-layer rate of ln ‖∂C/∂b^l‖² over σ_w² × σ_b² with the theory's
    critical line χ1 = 1. Right: measured against ln χ1, one point per (σ_w², σ_b²)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.colors import TwoSlopeNorm

    t = decay_table(res) if table is None else table
    if t.empty:
        raise ValueError("no single-input runs at initialisation")
    first_row = t.iloc[0]
    t = t[
        (t["activation"] == first_row["activation"])
        & (t["width"] == first_row["width"])
        & (t["depth"] == first_row["depth"])
    ]
    act, width, depth = t["activation"].iloc[0], int(t["width"].iloc[0]), int(t["depth"].iloc[0])
    grid = t.pivot_table(index="sigma_b2", columns="sigma_w2", values="rate", aggfunc="median")
    xs, ys = grid.columns.to_numpy(float), grid.index.to_numpy(float)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 5.0), gridspec_kw={"width_ratios": [1.25, 1]})
    vals = grid.to_numpy(float)
    finite = vals[np.isfinite(vals)]
    vmin = min(float(finite.min()) if finite.size else -1.0, -1e-3)
    vmax = max(float(finite.max()) if finite.size else 1.0, 1e-3)
    cmap = sns.color_palette("viridis", as_cmap=True).with_extremes(bad="0.85")
    mesh = ax.pcolormesh(
        _edges(xs),
        _edges(ys),
        np.ma.masked_invalid(vals),
        cmap=cmap,
        norm=TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax),
        shading="flat",
    )
    cb = fig.colorbar(mesh, ax=ax, pad=0.02)
    cb.set_label(r"measured rate of $\ln\|\partial C/\partial b^l\|^2$ per layer")
    sb_fine = np.linspace(ys.min(), ys.max(), 13)
    crit = critical_line(act, sb_fine)
    ax.plot(crit["sigma_w2"], crit["sigma_b2"], color="white", lw=3.2)
    ax.plot(crit["sigma_w2"], crit["sigma_b2"], color="black", lw=1.6, ls="--", label=r"theory: $\chi_1 = 1$")
    if len(xs) > 1 and len(ys) > 1 and np.isfinite(vals).all() and vals.min() < 0 < vals.max():
        ax.contour(xs, ys, vals, levels=[0.0], colors="crimson", linewidths=1.6)
        ax.plot([], [], color="crimson", lw=1.6, label="measured rate = 0")
    ax.set_xlim(_edges(xs)[0], _edges(xs)[-1])
    ax.set_ylim(_edges(ys)[0], _edges(ys)[-1])
    ax.set_xlabel(r"weight variance $\sigma_w^2$ (W ~ N(0, $\sigma_w^2/n_{in}$))")
    ax.set_ylabel(r"bias variance $\sigma_b^2$")
    ax.text(0.03, 0.95, "ordered:\nvanishing", transform=ax.transAxes, va="top", color="white", fontsize=9)
    ax.text(0.97, 0.95, "chaotic:\nexploding", transform=ax.transAxes, va="top", ha="right", color="black", fontsize=9)
    ax.legend(loc="lower right", frameon=True, framealpha=0.85)
    ax.set_title(f"{act}, {depth} hidden layers of {width}: median over seeds")

    colors = dict(zip(ys, sns.color_palette("viridis", len(ys))))
    bx.axhspan(-RATE_TOL, RATE_TOL, color="0.92", lw=0)
    bx.axhline(0, color="0.4", lw=1, ls=":")
    for sb2, g in t.groupby("sigma_b2"):
        err = np.vstack([g["rate"] - g["rate_min"], g["rate_max"] - g["rate"]])
        bx.errorbar(
            g["log_chi1"],
            g["diff"],
            yerr=np.where(np.isfinite(err), err, 0),
            fmt="o",
            ms=4,
            lw=0.8,
            elinewidth=0.8,
            alpha=0.85,
            color=colors[sb2],
            label=f"{sb2:g}",
        )
        bx.plot(g["log_chi1"], g["rate_path"] - g["log_chi1"], "x", ms=5, color=colors[sb2])
    bx.plot([], [], "x", color="0.3", label="mean field")
    bx.axvline(0, color="0.6", lw=0.8)
    bx.set_xlabel(r"theory: $\ln\chi_1$ per layer")
    bx.set_ylabel(r"measured rate $-\ln\chi_1$ (bars: seeds' min–max)")
    handles, labels = bx.get_legend_handles_labels()
    order = [i for i, l in enumerate(labels) if l != "mean field"] + [labels.index("mean field")]
    bx.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        title=r"$\sigma_b^2$ (dots: measured, median over seeds; ×: mean field along the same layers)",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
        ncol=4,
        frameon=False,
    )
    first, last = int(t["first"].iloc[0]), int(t["last"].iloc[0])
    inside = int((np.abs(t["diff"]) <= RATE_TOL).sum())
    bx.set_title(
        f"measured − predicted, layers {first}–{last}\n(grey band: ±{RATE_TOL:g}; {inside} of {len(t)} cells inside)"
    )
    fig.suptitle(
        r"Per-layer decay of the squared gradient at initialisation, one input: "
        r"$\ln\|\delta^l\|^2 - \ln\|\delta^{l+1}\|^2 \to \ln\chi_1$",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


@functools.lru_cache(maxsize=4096)
def _xi_c(activation: str, sigma_w2: float, sigma_b: float) -> float:
    return theory.xi_c(activation, math.sqrt(sigma_w2), sigma_b)


def xi_c_curve(
    activation: str, sigma_b: float, sigma_w2_lo: float, sigma_w2_hi: float, points: int = CURVE_POINTS
) -> pd.DataFrame:
    """ξ_c on an even grid of σ_w² in [lo, hi] (lo > 0; for drawing multiples of it), with two
    points 0.001 either side of the critical σ_w², which is in every row (remembered)."""
    sw2 = np.linspace(max(sigma_w2_lo, 1e-3), sigma_w2_hi, points)
    crit = _critical_sigma_w2(activation, float(sigma_b) ** 2)
    if sw2[0] < crit < sw2[-1]:
        sw2 = np.sort(np.concatenate([sw2, [crit - 1e-3, crit + 1e-3]]))
    xi = [_xi_c(activation, round(float(s), 12), float(sigma_b)) for s in sw2]
    return pd.DataFrame({"sigma_w2": sw2, "xi_c": xi}).assign(critical_sigma_w2=crit)


def fig_trainability(res, table: pd.DataFrame | None = None, multiple: float = TRAIN_MULTIPLE):
    """The fraction of trainable runs over σ_w² × depth, with the multiple × ξ_c curve and the
    critical σ_w² (χ1 = 1) at the runs' σ_b."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    t = trainability_table(res, multiple) if table is None else table
    if t.empty:
        raise ValueError("no trained runs")
    t = t[
        (t["activation"] == t["activation"].iloc[0])
        & (t["sigma_b"] == t["sigma_b"].iloc[0])
        & (t["width"] == t["width"].iloc[0])
    ]
    act, sb, width = t["activation"].iloc[0], float(t["sigma_b"].iloc[0]), int(t["width"].iloc[0])
    frac = t.pivot_table(index="depth", columns="sigma_w2", values="fraction")
    n = t.pivot_table(index="depth", columns="sigma_w2", values="n")
    k = t.pivot_table(index="depth", columns="sigma_w2", values="n_trainable")
    xs, ys = frac.columns.to_numpy(float), frac.index.to_numpy(float)
    xe = _edges(xs)
    ye = np.exp(_edges(np.log(ys)))
    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = sns.color_palette("viridis", as_cmap=True).with_extremes(bad="0.85")
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(frac.to_numpy(float)), cmap=cmap, vmin=0, vmax=1, shading="flat")
    cb = fig.colorbar(mesh, ax=ax, pad=0.02)
    cb.set_label(f"fraction of seeds trainable (train accuracy ≥ {ACC_TARGET:g})")
    for i in range(len(ys)):
        for j, x in enumerate(xs):
            if np.isfinite(frac.iloc[i, j]):
                f = frac.iloc[i, j]
                ax.text(
                    x,
                    math.sqrt(ye[i] * ye[i + 1]),
                    f"{k.iloc[i, j]:.0f}/{n.iloc[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="black" if f > 0.6 else "white",
                )
    curve = xi_c_curve(act, sb, xe[0], xe[-1])
    crit = float(curve["critical_sigma_w2"].iloc[0])
    ax.plot(curve["sigma_w2"], multiple * curve["xi_c"], color="white", lw=3.4)
    ax.plot(
        curve["sigma_w2"], multiple * curve["xi_c"], color="crimson", lw=1.8, label=rf"theory: ${multiple:g}\,\xi_c$"
    )
    ax.plot(curve["sigma_w2"], curve["xi_c"], color="crimson", lw=1.2, ls=":", label=r"$\xi_c$")
    if math.isfinite(crit):
        ax.axvline(crit, color="black", lw=1.4, ls="--", label=rf"critical $\sigma_w^2$ = {crit:.3g} ($\chi_1 = 1$)")
    ax.set_yscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{y:g}" for y in ys])
    ax.minorticks_off()
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(r"weight variance $\sigma_w^2$")
    ax.set_ylabel("depth L (hidden layers, log scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=3, frameon=False)
    steps = int(t["steps"].median())
    ax.set_title(
        f"Trainability of {act} nets ({width} units, $\\sigma_b^2$ = {sb * sb:.3g}) after {steps} SGD steps;"
        f"\ncell: seeds reaching the target / seeds run",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def make_figures(source, outdir=None, decay: pd.DataFrame | None = None, train: pd.DataFrame | None = None) -> dict:
    """Both figures as PNG and SVG in ``outdir`` (default ``<folder>/figures``): name -> [png,
    svg], or name -> a note when the folder lacks the runs a figure needs."""

    from mlplab.analysis.figures import save, style

    res = load(source)
    outdir = Path(outdir) if outdir is not None else Path(res.path) / "figures"
    decay = decay_table(res) if decay is None else decay
    train = trainability_table(res) if train is None else train
    out = {}
    with style():
        for name, draw, table in (
            ("chaos_heatmap", fig_chaos_heatmap, decay),
            ("chaos_trainability", fig_trainability, train),
        ):
            if table.empty:
                out[name] = "skipped: no runs for it"
                continue
            out[name] = save(draw(res, table), outdir, name)
    return out


# -- the report's section -------------------------------------------------------------------------------
def _values(s) -> str:
    return ", ".join(f"{v:g}" for v in sorted(pd.unique(s.astype(float))))


def what_was_run(res) -> list[str]:
    """One sentence per part of the study, from the runs themselves."""
    out = []
    ir, tr = init_runs(res), train_runs(res)
    if len(ir):
        first, last = fit_layers(int(ir["depth"].median()))
        out.append(
            f"At initialisation: {len(ir)} {_values_str(ir['activation'])} networks of {_values(ir['depth'])} hidden layers × "
            f"{_values(ir['width'])} units, W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²), over σ_w² ∈ {{{_values(ir['sigma_w'] ** 2)}}} × "
            f"σ_b² ∈ {{{_values(ir['sigma_b'] ** 2)}}} with {ir.groupby(['sigma_w', 'sigma_b']).size().max()} seeds each; "
            f"the gradient of one input at step 0, the rate of ln ‖∂C/∂b^l‖² per layer fitted by least squares over "
            f"hidden layers {first}–{last} (the first {SKIP_INPUT} and last {SKIP_OUTPUT} left out)."
        )
    if len(tr):
        out.append(
            f"Trainability: {len(tr)} {_values_str(tr['activation'])} networks of {_values(tr['width'])} units, "
            f"σ_b² ∈ {{{_values(tr['sigma_b'] ** 2)}}}, depth ∈ {{{_values(tr['depth'])}}} × σ_w² ∈ {{{_values(tr['sigma_w'] ** 2)}}}, "
            f"{tr.groupby(['depth', 'sigma_w', 'sigma_b']).size().max()} seeds each, trained on {_values_str(tr['dataset'])} with SGD "
            f"(learning rate {_values(tr['lr'])}, batch {_values(tr['batch_size'])}, {_values(tr['n_steps'])} steps). "
            f"A run is *trainable* if it ends with training accuracy ≥ {ACC_TARGET:g} (chance: 1/classes)."
        )
    return out


def _values_str(s) -> str:
    return ", ".join(sorted(map(str, pd.unique(s))))


def _compare(a: float, b: float) -> str:
    """'about equal to' (within 10%), 'more than' or 'less than'."""
    return "about equal to" if abs(a - b) <= 0.1 * abs(b) else "more than" if a > b else "less than"


def decay_sentences(t: pd.DataFrame) -> list[str]:
    """Where the measured per-layer rate and the theory agree and disagree, from the numbers."""
    t = t[np.isfinite(t["rate"])]
    if t.empty:
        return ["No single-input run had finite gradient norms over the fitted layers."]
    out = []
    off = t[np.abs(t["diff"]) > RATE_TOL]
    out.append(
        f"Over {len(t)} (σ_w², σ_b²) cells the measured rate is within {RATE_TOL:g} of ln χ1 in {len(t) - len(off)}; "
        f"the median |measured − ln χ1| is {np.median(np.abs(t['diff'])):.3g} per layer "
        f"(ln χ1 itself spans {t['log_chi1'].min():.3g} to {t['log_chi1'].max():.3g})."
    )
    if len(off):
        worst = off.loc[np.abs(off["diff"]).idxmax()]
        ends = off[np.abs(off["diff_path"]) <= RATE_TOL]
        text = (
            f"The {len(off)} cell(s) beyond {RATE_TOL:g}: σ_w² ∈ {{{_values(off['sigma_w2'])}}}, σ_b² ∈ "
            f"{{{_values(off['sigma_b2'])}}}; the largest gap is at σ_w² = {worst['sigma_w2']:g}, σ_b² = "
            f"{worst['sigma_b2']:g} (measured {worst['rate']:.3g}, ln χ1 = {worst['log_chi1']:.3g}, mean field along "
            f"the same layers {worst['rate_path']:.3g})."
        )
        if len(ends):
            text += (
                f" In {len(ends)} of them the mean-field rate along the same layers, started from the measured "
                f"second layer, is within {RATE_TOL:g} of the measurement: there q^l has not reached q* inside the "
                f"fitted layers, and the ends of the net, not the theory, make the difference."
            )
        if len(ends) < len(off):
            text += (
                f" In {len(off) - len(ends)} the mean field along the same layers misses by more than {RATE_TOL:g} too."
            )
        out.append(text)
    near = t[np.abs(t["log_chi1"]) < NEAR_CRITICAL]
    if len(near):
        same = (np.sign(near["rate"]) == np.sign(near["log_chi1"])).sum()
        spread, size = np.median(near["rate_max"] - near["rate_min"]), np.median(np.abs(near["log_chi1"]))
        out.append(
            f"Near the critical line (|ln χ1| < {NEAR_CRITICAL:g}, {len(near)} cells; |ξ_∇| > {1 / NEAR_CRITICAL:g} layers) "
            f"the measured rate has the sign of ln χ1 in {same} of {len(near)}. The seeds spread by a median "
            f"{spread:.3g} per layer (min–max), {_compare(spread, size)} the median |ln χ1| = {size:.3g} of these cells"
            + (
                ": there a single seed cannot tell the phase, and the measured ξ is poorly determined."
                if spread > 0.9 * size
                else "."
            )
        )
    width = int(t["width"].median())
    bias = t["diff_path"].median()
    low = (t["diff_path"] < 0).sum()
    spread = (t["rate_max"] - t["rate_min"]).median()
    jensen = t["jensen"].median()
    alike = np.sign(bias) == np.sign(jensen) and 1 / 3 <= abs(bias / jensen) <= 3 if jensen else False
    out.append(
        f"Finite width ({width} units): against the mean-field rate along the same layers the measured rate is lower in "
        f"{low} of {len(t)} cells, by a median {bias:+.3g} per layer (seeds spread by a median {spread:.3g}, min–max). "
        f"A rate of the log of a product of fluctuating factors is biased low by about half the variance of one "
        f"factor's log (E ln X ≈ ln E X − Var/2, a bias that vanishes in the infinitely wide limit of the theory); "
        f"the measured per-layer increments give a median {jensen:+.3g}, "
        + (
            "of the same sign and within a factor 3."
            if alike
            else "which does not match it in sign or within a factor 3."
        )
    )
    ends = (t["rate_all"] - t["rate"]).dropna()
    if ends.empty:
        return out
    out.append(
        f"The ends of the net: fitting every hidden layer instead of layers {int(t['first'].iloc[0])}–{int(t['last'].iloc[0])} "
        f"moves the rate by a median {ends.median():+.3g} (largest |change| {np.abs(ends).max():.3g}, at σ_w² = "
        f"{t.loc[np.abs(ends).idxmax(), 'sigma_w2']:g}, σ_b² = {t.loc[np.abs(ends).idxmax(), 'sigma_b2']:g})."
    )
    return out


def _pairs(d: pd.DataFrame) -> str:
    """'σ_w² = 0.75 at depth 8, 1 at 16 and 32, ...' for the rows of d."""
    return ", ".join(
        f"{sw2:g} at depth {' and '.join(f'{x:g}' for x in sorted(g['depth']))}" for sw2, g in d.groupby("sigma_w2")
    )


def multiple_brackets(tt: pd.DataFrame) -> pd.DataFrame:
    """Per σ_w²: the multiple of ξ_c that the measured trainable depths allow, from ``lower`` =
    deepest trainable depth / ξ_c (0 if none) to ``upper`` = first failing depth / ξ_c (inf if
    every depth trained)."""
    d = trainable_depths(tt)
    if d.empty:
        return d
    d["lower"] = d["deepest"] / d["xi_c"]
    d["upper"] = (d["first_failure"] / d["xi_c"]).fillna(math.inf)
    return d


def train_sentences(tt: pd.DataFrame, multiple: float = TRAIN_MULTIPLE) -> list[str]:
    """Measured trainable depth against multiple × ξ_c, from the numbers."""
    if tt.empty:
        return []
    measured = tt["fraction"] >= 0.5
    agree = (measured == tt["predicted"]).sum()
    out = [
        f"A (depth, σ_w²) cell counts as trainable when at least half its seeds are. The prediction "
        f"depth ≤ {multiple:g} ξ_c agrees with that in {agree} of {len(tt)} cells."
    ]
    over = tt[~measured & tt["predicted"]]
    under = tt[measured & ~tt["predicted"]]
    if len(over):
        out.append(
            f"Predicted trainable but below the target after the budget: {len(over)} cell(s), σ_w² = {_pairs(over)} "
            f"(depth/ξ_c from {over['depth_over_xi_c'].min():.3g} to {over['depth_over_xi_c'].max():.3g}). The theory "
            f"bounds how deep signals travel at initialisation, not how many steps of one fixed learning rate a deep "
            f"net needs."
        )
    if len(under):
        out.append(
            f"Trainable although deeper than {multiple:g} ξ_c: {len(under)} cell(s), σ_w² = {_pairs(under)} "
            f"(depth/ξ_c up to {under['depth_over_xi_c'].max():.3g})."
        )
    b = multiple_brackets(tt)
    b = b[np.isfinite(b["upper"]) & (b["lower"] > 0)]
    shallow = b[b["upper"] < 1]  # a failure less than one ξ_c deep: not a loss of signal
    if len(shallow):
        out.append(
            "Failing within one ξ_c: σ_w² = "
            + ", ".join(
                f"{r.sigma_w2:g} at depth {r.first_failure:g} (ξ_c = {r.xi_c:.3g})" for r in shallow.itertuples()
            )
            + ". Correlations there survive far deeper than the net, so the budget of steps, not the loss of signal, "
            "limits the depth; these σ_w² are left out of the brackets below."
        )
    b = b[b["upper"] >= 1]
    if len(b):
        lo, hi = b["lower"].max(), b["upper"].min()
        spans = ", ".join(f"{r.sigma_w2:g}: {r.lower:.3g}–{r.upper:.3g}" for r in b.itertuples())
        verdict = (
            f"one multiple between {lo:.3g} and {hi:.3g} fits them all"
            if lo < hi
            else f"no single multiple fits them all (the largest lower end, {lo:.3g}, exceeds the smallest upper end, {hi:.3g})"
        )
        out.append(
            f"Where the depth grid brackets the trainable depth (some depth trains, a deeper one does not), it lies "
            f"between these multiples of ξ_c — σ_w² = {spans}: {verdict}, under this budget. The paper's {multiple:g} "
            f"lies above the bracket in {(b['upper'] <= multiple).sum()} of {len(b)} (there {multiple:g} ξ_c overstates the "
            f"depth trained), inside it in {((b['lower'] <= multiple) & (multiple < b['upper'])).sum()} and below it in "
            f"{(b['lower'] > multiple).sum()}."
        )
    return out


def short_decay_table(t: pd.DataFrame, sigma_b2: float | None = None) -> pd.DataFrame:
    """A few rows of ``decay_table`` for the report: σ_w² ∈ {0.5, 1, 1.5, 1.75, 2, 3, 4} (the
    nearest present) at one σ_b² (the given one if present, else the middle one)."""
    if t.empty:
        return t
    sb = sorted(t["sigma_b2"].unique())
    pick = sigma_b2 if sigma_b2 in sb else sb[len(sb) // 2]
    d = t[t["sigma_b2"] == pick]
    want = [0.5, 1.0, 1.5, 1.75, 2.0, 3.0, 4.0]
    sw = d["sigma_w2"].to_numpy()
    rows = sorted({int(np.argmin(np.abs(sw - w))) for w in want})
    d = d.iloc[rows]
    return pd.DataFrame(
        {
            "σ_w²": d["sigma_w2"],
            "σ_b²": d["sigma_b2"],
            "phase": d["phase"],
            "ln χ1 (theory)": d["log_chi1"],
            "mean field, same layers": d["rate_path"],
            "measured (median)": d["rate"],
            "min–max": [f"{a:.3g} – {b:.3g}" for a, b in zip(d["rate_min"], d["rate_max"])],
            "ξ_∇ theory": d["xi_grad"],
            "ξ measured": d["xi_measured"],
            "seeds": d["n"],
        }
    ).reset_index(drop=True)


def short_train_table(tt: pd.DataFrame, multiple: float = TRAIN_MULTIPLE) -> pd.DataFrame:
    d = trainable_depths(tt)
    if d.empty:
        return d
    return pd.DataFrame(
        {
            "σ_w²": d["sigma_w2"],
            "σ_b²": d["sigma_b2"],
            "deepest trainable": d["deepest"],
            "first failing depth": d["first_failure"],
            "ξ_c": d["xi_c"],
            f"{multiple:g} ξ_c": d["max_depth"],
            "deepest / ξ_c": d["deepest_over_xi_c"],
        }
    )


CAPTION_HEATMAP = (
    "Left: the measured per-layer rate of ln ‖∂C/∂b^l‖² toward the input (negative: the gradient vanishes toward the "
    "input; positive: it explodes), median over seeds, with the mean-field critical line χ1 = 1 (dashed) and where the "
    "measured rate crosses 0 (solid). Right: measured rate − ln χ1 for each (σ_w², σ_b²) cell (bars: the seeds' range; "
    "grey band: ±{tol:g}), and as crosses the mean-field rate along the same layers − ln χ1, which is off 0 only where "
    "q^l has not settled within the fitted layers."
)
CAPTION_TRAIN = (
    "Fraction of seeds that reach the training-accuracy target after a fixed budget of SGD steps, over σ_w² and "
    "depth, with the theory's {m:g} ξ_c (solid), ξ_c (dotted) and the critical σ_w² (dashed, where ξ_c diverges)."
)


def report_blocks(folder) -> list[Block]:
    """The "Edge of chaos" section of a report: what was run, both figures, short tables and
    computed sentences on where measurement and theory disagree; [] without chaos runs."""
    res = load(folder)
    if not present(res):
        return []
    decay = decay_table(res)
    train = trainability_table(res)
    made = make_figures(res, decay=decay, train=train)
    out = [
        Block("h2", "Edge of chaos"),
        Block(
            "p",
            "Schoenholz et al. (2017, *Deep Information Propagation*): for W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²), "
            "mean-field theory predicts that ‖δ^l‖² changes by χ1 = σ_w² E[φ'(z)²] per layer toward the input "
            "(ξ_∇ = −1/ln χ1 layers per factor e), critical at χ1 = 1, and that inputs' correlations settle over "
            "ξ_c layers, with networks trainable up to about 6 ξ_c.",
        ),
        Block("list", what_was_run(res)),
    ]
    if not decay.empty:
        sb_train = float(train["sigma_b2"].iloc[0]) if not train.empty else None
        out += [
            Block("h3", "Per-layer decay at initialisation"),
            Block("figure", str(made["chaos_heatmap"][0]), CAPTION_HEATMAP.format(tol=RATE_TOL)),
            Block("table", short_decay_table(decay, sb_train)),
            Block("list", decay_sentences(decay)),
        ]
    if not train.empty:
        out += [
            Block("h3", "Trainable depth against ξ_c"),
            Block("figure", str(made["chaos_trainability"][0]), CAPTION_TRAIN.format(m=TRAIN_MULTIPLE)),
            Block("table", short_train_table(train)),
            Block("list", train_sentences(train)),
        ]
    out.append(Block("p", PROVENANCE))
    return out


# -- command line ---------------------------------------------------------------------------------------------
def _round(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(
        lambda c: c.map(lambda x: float(f"{x:.4g}") if math.isfinite(x) else x) if c.dtype.kind == "f" else c
    )


def write_outputs(folder) -> str:
    """Figures (``figures/chaos_*.png`` and ``.svg``) and ``chaos_table.md`` / ``.csv`` (the
    decay table; the trainability table in ``chaos_train_table.csv``) in the results folder;
    returns the Markdown."""
    from mlplab.analysis.table import markdown_table

    res = load(folder)
    path = Path(res.path)
    decay, train = decay_table(res), trainability_table(res)
    if decay.empty and train.empty:
        return f"{path.name}: no edge-of-chaos runs (plain tanh or sigmoid runs with batch size 1, or trained)."
    made = make_figures(res, decay=decay, train=train)
    parts = ["# Edge of chaos", "", *what_was_run(res)]
    if not decay.empty:
        sb_train = float(train["sigma_b2"].iloc[0]) if not train.empty else None
        parts += [
            "",
            "## Per-layer decay at initialisation",
            "",
            markdown_table(_round(short_decay_table(decay, sb_train))),
            "",
            *[f"- {s}" for s in decay_sentences(decay)],
        ]
        decay.to_csv(path / "chaos_table.csv", index=False)
    if not train.empty:
        parts += [
            "",
            "## Trainable depth against ξ_c",
            "",
            markdown_table(_round(short_train_table(train))),
            "",
            *[f"- {s}" for s in train_sentences(train)],
        ]
        train.to_csv(path / "chaos_train_table.csv", index=False)
    parts += [
        "",
        PROVENANCE,
        "",
        "Figures: "
        + ", ".join(
            str(Path(w[0]).relative_to(path)) if not isinstance(w, str) else f"{n} ({w})" for n, w in made.items()
        ),
    ]
    md = "\n".join(parts) + "\n"
    (path / "chaos_table.md").write_text(md)
    return md


def main(argv: list[str] | None = None) -> int:
    """``python -m mlplab.analysis.chaos [results/chaos]``."""
    from mlplab.analysis import command

    return command(write_outputs, argv, "results/chaos")


if __name__ == "__main__":
    raise SystemExit(main())

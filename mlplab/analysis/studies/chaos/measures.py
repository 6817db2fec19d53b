"""The edge-of-chaos study's measures: the per-layer rate of ln ‖∂C/∂b^l‖² of each single-input
run against ln χ1 and the mean-field path (``run_rates``, ``decay_table``), and the trainable
depth against multiples of ξ_c (``trainability_table``, ``trainable_depths``, ``multiple_brackets``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab import theory
from mlplab.analysis import load
from mlplab.analysis.measures import rate_of
from mlplab.analysis.studies.chaos.select import fit_layers, init_runs, train_runs

ACC_TARGET = 0.5  # "trainable": final training accuracy >= this (10 classes: chance is 0.1)
TRAIN_MULTIPLE = 6.0  # the paper's trainable depth, in units of ξ_c (see the package docstring)
RATE_TOL = 0.05  # |measured − predicted| per-layer rate of ln‖δ‖² called a disagreement
NEAR_CRITICAL = 0.1  # |ln χ1| below this: "near the critical line"


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

"""What the isometry study measures, per run and per case, and its four claims' verdicts.

Per run at initialisation (the ``spectra`` table at step 0): the eigenvalues λ = s² of JJᵀ (J's
squared singular values) of its samples pooled, their mean m1 and variance, the scale-free
spread var/m1², the median log10 condition number of J, and beside them the free-probability
theory's m1 and spread (``mlplab.theory.jjt_moments``, for the run's activation, σ_w, σ_b, depth
and init, from the run's input q0: at the fixed point when the inputs were scaled to it).

Per trained run: the steps to ``TARGET`` training accuracy (evaluated every ``eval_every`` steps;
a run that never reaches it counts one evaluation past its end).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab import theory
from mlplab.analysis import load
from mlplab.analysis.measures import log_ratio, steps_effect
from mlplab.analysis.select import one_at_a_time, per_run, steps_to, twins
from mlplab.analysis.verdictmap import cells_from_cases
from mlplab.analysis.verdicts import case_frame, evidence, verdict

TOL_M1 = 2.0  # claim (a): the measured mean λ within this factor of the theory's
TOL_SPREAD = 1.5  # claims (b), (c): the measured spread within this factor of the theory's
TARGET = 0.7  # claim (d): training accuracy to reach (chance: 0.1)
ZERO_SPREAD = 1e-12  # a spread the theory says is 0 (linear, orthogonal) is "0" below this: rounding
INITS = ("normal", "orthogonal")  # Gaussian and orthogonal weights, in the figures' order
CLAIMS = {
    "a": "mean squared singular value ≈ χ^L (theory), both inits",
    "b": "spread ∝ depth for Gaussian, flat for orthogonal tanh near q* → 0, as theory says",
    "c": "ReLU: no isometry with either init (spread ∝ depth, as theory says)",
    "d": "orthogonal-critical tanh reaches the target in fewer steps than Gaussian at depth ≥ 64",
}


def point_label(activation: str, sigma_w: float, sigma_b: float) -> str:
    """The critical point a run sits at, as the figures name it: the activation, and q* for the
    saturating ones (linear and ReLU are scale-free: any q* is the same)."""
    if activation in ("linear", "relu", "leaky_relu"):
        return activation
    q = theory.q_star(activation, sigma_w, sigma_b)
    frac = 1 / q if q < 0.5 and abs(1 / q - round(1 / q)) < 1e-6 else None
    return f"{activation}, q* = 1/{round(frac)}" if frac else f"{activation}, q* = {q:.3g}"


def _q0(r) -> float:
    """The inputs' mean square q0 the theory starts from: ``data.q0`` when the run scaled its
    inputs, 1 for standardised ones (each feature has mean square 1 over the training split)."""
    if r.input_q0 is not None and not (isinstance(r.input_q0, float) and math.isnan(r.input_q0)):
        return float(r.input_q0)
    return 1.0


def spectrum_runs(res) -> pd.DataFrame:
    """One row per run with a spectrum at step 0: its config, the measured moments of λ and the
    theory's (``jjt_moments``)."""
    res = load(res)
    sp = res.spectra
    if sp is None or sp.empty:
        return pd.DataFrame()
    s0 = sp[sp["step"] == 0]
    lam = s0["singular_value"].to_numpy() ** 2
    d = pd.DataFrame({"run_id": s0["run_id"].astype(str).to_numpy(), "sample": s0["sample"].to_numpy(), "lam": lam})
    moments = d.groupby("run_id")["lam"].agg(m1="mean", var=lambda x: float(np.var(x)), n_values="size")
    per_sample = d.groupby(["run_id", "sample"])["lam"].agg(["max", "min"])
    with np.errstate(divide="ignore"):
        per_sample["log10_cond"] = 0.5 * np.log10(per_sample["max"] / per_sample["min"])
    moments["log10_cond"] = per_sample.groupby("run_id")["log10_cond"].median()
    runs = per_run(res)
    runs = runs[runs["status"] == "ok"].copy()
    runs.index = runs.index.astype(str)
    out = runs.join(moments, how="inner")
    out["spread"] = out["var"] / out["m1"] ** 2
    out["q0"] = [_q0(r) for r in out.itertuples()]
    keys = ["activation", "sigma_w", "sigma_b", "depth", "init", "q0"]
    th = {
        k: theory.jjt_moments(k[0], k[1], k[2], int(k[3]), k[4], q0=k[5])
        for k in set(out[keys].itertuples(index=False, name=None))
    }
    rows = [th[k] for k in out[keys].itertuples(index=False, name=None)]
    out["theory_m1"] = [t.m1 for t in rows]
    out["theory_spread"] = [t.spread for t in rows]
    out["point"] = [
        point_label(a, w, b) for a, w, b in out[["activation", "sigma_w", "sigma_b"]].itertuples(index=False)
    ]
    return out


spectrum_runs_once = one_at_a_time(spectrum_runs)


def main_width(runs: pd.DataFrame) -> int:
    """The width of the depth sweep: the one with the most depths."""
    return int(runs.groupby("width")["depth"].nunique().idxmax())


def depth_runs(res) -> pd.DataFrame:
    """The runs of the depth sweep (one width, every depth)."""
    runs = spectrum_runs_once(res)
    return runs if runs.empty else runs[runs["width"] == main_width(runs)]


def width_runs(res) -> pd.DataFrame:
    """The runs of the width sweep: the depth at which several widths were run."""
    runs = spectrum_runs_once(res)
    if runs.empty:
        return runs
    widths = runs.groupby("depth")["width"].nunique()
    if widths.max() < 2:
        return runs.iloc[0:0]
    at = runs[runs["depth"] == widths.idxmax()]
    several = (
        at.groupby(["point", "init"])["width"].transform("nunique") > 1
    )  # the depth sweep's other points: one width
    return at[several]


def within(measured, predicted, tol: float) -> np.ndarray:
    """log10(tol) − |log10(measured/predicted)|: > 0 when within the factor ``tol``."""
    return math.log10(tol) - np.abs(log_ratio(measured, predicted))


def spread_effect(g: pd.DataFrame) -> np.ndarray:
    """Claims (b), (c) per run: ``within`` the theory's spread by TOL_SPREAD; where the theory
    says 0 (orthogonal linear nets), log10(ZERO_SPREAD / spread): > 0 when it is 0 to rounding."""
    th, m = g["theory_spread"].to_numpy(float), g["spread"].to_numpy(float)
    with np.errstate(divide="ignore"):
        zero = np.log10(ZERO_SPREAD / np.maximum(m, 1e-300))
    return np.where(th == 0, zero, within(m, np.where(th == 0, 1.0, th), TOL_SPREAD))


def _cases(d: pd.DataFrame, effect, conds: list[str]) -> pd.DataFrame:
    rows = []
    for key, g in d.groupby(conds, sort=True):
        ev = evidence(effect(g))
        rows.append({**dict(zip(conds, key if isinstance(key, tuple) else (key,))), **ev.row()})
    return case_frame(rows, conds)


CASE_CONDS = {
    "a": ["point", "init", "depth"],
    "b": ["point", "init", "depth"],
    "c": ["init", "depth"],
    "d": ["depth", "lr"],
}


def claim_cases(res) -> dict[str, pd.DataFrame]:
    """Each claim's cases (``verdicts.case_frame``): a case per point, init and depth (a, b), per
    init and depth (c: ReLU), per depth and learning rate (d: Gaussian against orthogonal by seed)."""
    d = depth_runs(res)
    out = {k: case_frame([], v) for k, v in CASE_CONDS.items()}
    if not d.empty:
        out["a"] = _cases(d, lambda g: within(g["m1"], g["theory_m1"], TOL_M1), CASE_CONDS["a"])
        small_q = d[(d["activation"] == "linear") | ((d["activation"] == "tanh") & (d["sigma_b"] < 0.01))]
        out["b"] = _cases(small_q, spread_effect, CASE_CONDS["b"])
        relu = d[d["activation"] == "relu"]
        out["c"] = _cases(relu, spread_effect, CASE_CONDS["c"])
    pairs = trained_pairs(res)
    if not pairs.empty:
        out["d"] = _cases(pairs, lambda g: steps_effect(g, "steps"), CASE_CONDS["d"])
    return out


def _trained(res) -> pd.DataFrame:
    """The trained runs (no spectrum, more than one update) with their steps to TARGET."""
    res = load(res)
    runs = per_run(res)
    runs = runs[(runs["n_steps"] > 1) & runs["spectrum_every"].isna() & runs["status"].isin(["ok", "diverged"])]
    runs = runs[runs["init"].isin(INITS)]
    if runs.empty:
        return runs.assign(steps=pd.Series(dtype=float))
    targets = pd.Series(TARGET, index=runs.index)
    steps = res.steps[res.steps["run_id"].isin(runs.index)].dropna(subset=["train_accuracy"])
    return runs.assign(steps=steps_to(steps, "train_accuracy", targets, runs["beyond"]))


def trained_pairs(res) -> pd.DataFrame:
    """Gaussian (a) against orthogonal (b) trained runs of the same config and seed."""
    t = _trained(res)
    if t.empty or set(t["init"]) < set(INITS):
        return pd.DataFrame()
    return twins(t, "init", "normal", "orthogonal")


def trained_runs(res) -> pd.DataFrame:
    """The trained runs that have a twin of the other init (``trained_pairs``), with their steps to TARGET."""
    t, pairs = _trained(res), trained_pairs(res)
    if pairs.empty:
        return t.iloc[0:0]
    return t[t.index.isin(set(pairs["run_id_a"]) | set(pairs["run_id_b"]))]


def verdicts(res) -> pd.DataFrame:
    """One row per claim: its statement, verdict and cases."""
    cases = claim_cases(res)
    untested = {
        "a": "no spectra at initialisation",
        "b": "no linear or small-q* tanh spectra",
        "c": "no ReLU spectra",
        "d": "no trained Gaussian and orthogonal runs",
    }
    rows = []
    for k, text in CLAIMS.items():
        c = cases[k]
        rows.append(
            {
                "claim": f"({k}) {text}",
                "verdict": verdict(c, CASE_CONDS[k], untested[k]),
                "cases": len(c),
                "hold": int((c["holds"] == True).sum()),  # noqa: E712 - a column of True, False and None
                "fail": int((c["holds"] == False).sum()),  # noqa: E712
            }
        )
    return pd.DataFrame(rows)


def verdict_cells(res) -> pd.DataFrame:
    """The verdict map: a row per claim, a column per init (the steps claim: one column)."""
    cases = claim_cases(res)
    rows = []
    for k in CLAIMS:
        c = cases[k]
        if c.empty:
            continue
        columns = [("both inits", c)] if k == "d" else [(i, c[c["init"] == i]) for i in INITS if i in set(c["init"])]
        unit = "decades, log10 steps G/O" if k == "d" else "decades inside the tolerance"
        for name, g in columns:
            rows.append(
                {
                    "row": f"({k}) {CLAIMS[k]}",
                    "column": name,
                    "verdict": verdict(g, [x for x in CASE_CONDS[k] if x != "init"]),
                    "unit": unit,
                    **cells_from_cases(g),
                }
            )
    from mlplab.analysis.verdictmap import COLUMNS

    return pd.DataFrame(rows, columns=COLUMNS)


def all_cases(res) -> pd.DataFrame:
    """Every case of every claim, one row each (the report's searchable table)."""
    parts = []
    for k, c in claim_cases(res).items():
        if not c.empty:
            parts.append(c.assign(claim=f"({k})"))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    front = ["claim", "point", "init", "depth", "lr"]
    return out[[c for c in front if c in out] + [c for c in out if c not in front]]


def moments_table(res) -> pd.DataFrame:
    """Per point, init and depth (the depth sweep): median measured m1 and spread over seeds,
    their theory, and the median log10 condition number."""
    d = depth_runs(res)
    if d.empty:
        return pd.DataFrame()
    g = d.groupby(["point", "init", "depth"], sort=True)
    return pd.DataFrame(
        {
            "seeds": g.size(),
            "m1": g["m1"].median(),
            "m1 theory": g["theory_m1"].first(),
            "spread": g["spread"].median(),
            "spread min": g["spread"].min(),
            "spread max": g["spread"].max(),
            "spread theory": g["theory_spread"].first(),
            "log10 cond": g["log10_cond"].median(),
        }
    ).reset_index()


def width_table(res) -> pd.DataFrame:
    """The finite-width gap: per point, init and width (the width sweep's depth), the median of
    measured/theory spread over seeds, and |median − 1|."""
    w = width_runs(res)
    if w.empty:
        return pd.DataFrame()
    w = w[w["theory_spread"] > 0].assign(ratio=lambda x: x["spread"] / x["theory_spread"])
    g = w.groupby(["point", "init", "depth", "width"], sort=True)
    t = pd.DataFrame(
        {"seeds": g.size(), "spread / theory": g["ratio"].median(), "min": g["ratio"].min(), "max": g["ratio"].max()}
    )
    t["gap"] = (t["spread / theory"] - 1).abs()
    return t.reset_index()


def steps_table(res) -> pd.DataFrame:
    """Per init, depth and learning rate: median steps to TARGET over seeds, how many reached it."""
    t = trained_runs(res)
    if t.empty:
        return pd.DataFrame()
    t = t.assign(reached=t["steps"] < t["beyond"])
    g = t.groupby(["init", "depth", "lr"], sort=True)
    out = pd.DataFrame(
        {
            "seeds": g.size(),
            "reached": g["reached"].sum(),
            "median steps": g["steps"].median(),
            "n_steps": g["n_steps"].max(),
            "final accuracy": g["final_accuracy"].median(),
        }
    ).reset_index()
    out.loc[out["median steps"] > out["n_steps"], "median steps"] = math.inf
    return out

"""The optimisers study: does Adam cure vanishing gradients, or only hide them?

Each *optimiser* (an arm: ``sgd``, ``momentum``, ``adam``, ``rmsprop``; one whose ε is not PyTorch's
1e-8 is an arm of its own, e.g. ``adam ε=1e-30``) runs at its own best learning rate
(``best_rates``): per data set, activation, depth and optimiser, the rate of the sweep's grid with
the lowest median final training loss over the seeds, a run that diverged or failed counting as
+∞, a tie going to the smaller rate. The chosen runs of two optimisers are paired by seed: the
same data, initial weights and batch order.

Per run (``per_run``), from the layers table: the first-to-last *gradient* ratio
g = ‖∂C/∂W^1‖/‖∂C/∂W^L‖ and *update* ratio u = (‖ΔW^1‖/‖W^1‖)/(‖ΔW^L‖/‖W^L‖) of the update
applied, at step 0 and at the last logged step of a run that finished; and the steps to the
test-accuracy target of its data set, ``ACC_FRAC`` × the best median final test accuracy of any
optimiser, activation and depth there (a run that never reaches it counts one evaluation past its
end). The claims, each a per-seed effect that is positive when the claim holds, decided by
``mlplab.analysis.verdicts`` per case (activation, depth, optimiser, phase) and per data set:

* (a) *updates stay level*: under an adaptive optimiser (adam, rmsprop) u is within a factor 10
  of 1: 1 − |log10 u|;
* (b) *gradients still vanish*: under an adaptive optimiser g, after training, is below 1/10:
  −log10 g − 1;
* (c) *adam reaches the target where sgd and momentum do not*: log10(steps_rival/steps_adam)
  against its sgd and momentum twins (pairs where neither reaches it say nothing);
* (d) *momentum does not change the update ratio*: u within half a decade of its sgd twin's:
  0.5 − |log10(u_momentum/u_sgd)|.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab.analysis import load, select
from mlplab.analysis.fmt import number
from mlplab.analysis.measures import ACC_FRAC, first_to_last, log_ratio, steps_effect
from mlplab.analysis.prose import Prose
from mlplab.analysis.select import one_at_a_time, steps_to
from mlplab.analysis.verdictmap import COLUMNS, cells_from_cases
from mlplab.analysis.verdicts import case_frame, evidence, verdict
from mlplab.optim import OPTIMISERS
from mlplab.spec import BEFORE

PROSE = Prose.of("mlplab.analysis.studies.optimisers")
CLAIMS = PROSE.mapping("claims")  # claim -> what it says
SHORT = PROSE.mapping("short")  # claim -> a few words, for the verdict map's rows
UNTESTED = PROSE.mapping("untested")  # claim -> what a folder lacks
ADAPTIVE = ("adam", "adamw", "rmsprop")  # the rules that divide by a running RMS of the gradient
ORDER = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"]  # the report's order of the optimisers
PHASES = {"init": "initialisation", "end": "after training"}
CASE = ["dataset", "activation", "depth", "optimiser", "versus", "phase"]  # what tells a claim's cases apart
KEYS = ["dataset", "activation", "depth"]  # a cell of the study: each optimiser's best rate is chosen per cell
WITHIN = {"a": 1.0, "d": 0.5}  # decades: (a) u within ×10 of 1; (d) within ×√10 of sgd's
VANISHED = 1.0  # (b): g below 10^-1


def optimiser_of(optim: str, eps: float) -> str:
    """A run's arm: its optimiser, and ε where it is not the default of one that uses it."""
    uses_eps = "eps" in OPTIMISERS[optim].HYPER
    return f"{optim} ε={eps:g}" if uses_eps and not math.isclose(eps, BEFORE["eps"]) else optim


def arm_order(names) -> list[str]:
    """The optimisers present, in the report's order (variants after their rule)."""
    names = set(names)
    out = []
    for rule in ORDER:
        out += [rule] if rule in names else []
        out += sorted(n for n in names if n.startswith(rule + " "))
    return out + sorted(names - set(out))


def is_adaptive(arm: str) -> bool:
    return arm.split(" ")[0] in ADAPTIVE


@one_at_a_time
def all_runs(res) -> pd.DataFrame:
    """Every run with its optimiser (arm), its gradient and update ratios at step 0 and at the end
    (``g_init``, ``g_end``, ``u_init``, ``u_end``) and its final loss for choosing the rate (+∞
    unless it finished)."""
    res = load(res)
    pr = select.per_run(res)
    pr = pr.assign(optimiser=[optimiser_of(o, e) for o, e in zip(pr["optim"], pr["eps"])])
    g = first_to_last(res.layers, "grad_w_norm").add_prefix("g_")
    u = first_to_last(res.layers, "update_ratio").add_prefix("u_")
    pr = pr.join(g).join(u)
    ok = pr["status"] == "ok"
    pr["loss_for_rate"] = pr["final_loss"].where(ok & np.isfinite(pr["final_loss"]), np.inf)
    return pr


def best_rates(res) -> pd.DataFrame:
    """Per data set, activation, depth and optimiser: the learning rates tried, the chosen one
    (lowest median final training loss over seeds; diverged or failed = +∞; a tie: the smaller
    rate), its median loss and whether it lies at an end of the grid."""
    pr = all_runs(res)
    med = pr.groupby([*KEYS, "optimiser", "lr"])["loss_for_rate"].median().reset_index()
    rows = []
    for key, g in med.groupby([*KEYS, "optimiser"]):
        g = g.sort_values("lr")
        best = g.iloc[int(np.argmin(g["loss_for_rate"].to_numpy()))]
        rates = g["lr"].to_list()
        rows.append(
            {
                **dict(zip([*KEYS, "optimiser"], key)),
                "lr": float(best["lr"]),
                "median final loss": float(best["loss_for_rate"]),
                "rates tried": ", ".join(number(r) for r in rates),
                "at grid edge": len(rates) > 1 and best["lr"] in (rates[0], rates[-1]),
            }
        )
    return pd.DataFrame(rows, columns=[*KEYS, "optimiser", "lr", "median final loss", "rates tried", "at grid edge"])


@one_at_a_time
def per_run(res) -> pd.DataFrame:
    """The runs at their optimiser's best rate (``best_rates``), with the steps to the target."""
    pr = all_runs(res)
    best = best_rates(res)[[*KEYS, "optimiser", "lr"]]
    chosen = pr.reset_index(drop=True).merge(best, on=[*KEYS, "optimiser", "lr"])
    chosen.index = chosen["run_id"].to_numpy()
    ok = chosen[chosen["status"] == "ok"]
    best_acc = ok.groupby([*KEYS, "optimiser"])["final_test_accuracy"].median().groupby(level="dataset").max()
    chosen["target"] = np.round(ACC_FRAC * chosen["dataset"].map(best_acc).to_numpy(float), 4)
    chosen["steps"] = steps_to(load(res).steps, "test_accuracy", chosen["target"], chosen["beyond"])
    return chosen


def pairs(pr: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Runs of optimiser ``a`` against ``b`` (suffixes ``_a``, ``_b``), paired by cell and seed."""
    on = [*KEYS, "seed"]
    cols = ["run_id", "u_init", "u_end", "g_init", "g_end", "steps", "beyond"]
    A, B = pr[pr["optimiser"] == a], pr[pr["optimiser"] == b]
    return A[on + cols].merge(B[on + cols], on=on, suffixes=("_a", "_b"))


def _case(claim: str, key: tuple, effects, **extra) -> dict | None:
    ev = evidence([x for x in np.asarray(effects, float) if np.isfinite(x)])
    if not ev.n:
        return None
    return {"claim": claim, **dict(zip(KEYS, key)), **extra, **ev.row()}


@one_at_a_time
def cases(res) -> pd.DataFrame:
    """One row per claim and case: the per-seed effects' statistics (``verdicts.STAT_COLUMNS``),
    with ``sgd |log10 u|``: the median of sgd's twins in that case, for (a)'s "where sgd's spans
    decades"."""
    pr = per_run(res)
    arms = arm_order(pr["optimiser"])
    rows = []
    for key, cell in pr.groupby(KEYS):
        sgd = cell[cell["optimiser"] == "sgd"]
        for arm in [a for a in arms if is_adaptive(a)]:
            runs = cell[cell["optimiser"] == arm]
            for phase, label in PHASES.items():
                u = runs[f"u_{phase}"].to_numpy(float)
                context = float(np.nanmedian(np.abs(np.log10(sgd[f"u_{phase}"])))) if len(sgd) else math.nan
                extra = {"optimiser": arm, "phase": label, "sgd |log10 u|": context}
                rows.append(_case("a", key, WITHIN["a"] - np.abs(np.log10(u)), **extra))
            g = runs["g_end"].to_numpy(float)
            rows.append(_case("b", key, -np.log10(g) - VANISHED, optimiser=arm, phase=PHASES["end"]))
        for rival in ("sgd", "momentum"):
            p = pairs(cell, "adam", rival)
            if len(p):
                rows.append(_case("c", key, -steps_effect(p, "steps"), optimiser="adam", versus=rival))
        p = pairs(cell, "momentum", "sgd")
        for phase, label in PHASES.items() if len(p) else ():
            d = np.abs(log_ratio(p[f"u_{phase}_a"], p[f"u_{phase}_b"]))
            rows.append(_case("d", key, WITHIN["d"] - d, optimiser="momentum", versus="sgd", phase=label))
    found = [r for r in rows if r is not None]
    context = [r.get("sgd |log10 u|", math.nan) for r in found]
    return case_frame(found, ["claim", *CASE]).assign(**{"sgd |log10 u|": context})


def verdicts(res) -> pd.DataFrame:
    """claim × data set: the verdict over its cases, and the range of the cases' median effects."""
    c = cases(res)
    datasets = sorted(all_runs(res)["dataset"].unique())
    rows = []
    for claim in CLAIMS:
        for ds in datasets:
            sub = c[(c["claim"] == claim) & (c["dataset"] == ds)] if not c.empty else c
            span = "" if sub.empty else f"{number(sub['effect'].min())} to {number(sub['effect'].max())}"
            text = verdict(sub, [c for c in CASE if c != "dataset"], UNTESTED[claim])
            rows.append({"claim": claim, "dataset": ds, "verdict": text, "median effects": span})
    return pd.DataFrame(rows)


def verdict_cells(res) -> pd.DataFrame:
    """The verdict map: claims (rows) × data sets (columns)."""
    c = cases(res)
    rows = []
    for r in verdicts(res).itertuples(index=False):
        sub = c[(c["claim"] == r.claim) & (c["dataset"] == r.dataset)] if not c.empty else c
        rows.append(
            {
                "row": f"({r.claim}) {SHORT[r.claim]}",
                "column": r.dataset,
                "verdict": r.verdict,
                "unit": PROSE.mapping("units")[r.claim],
                **cells_from_cases(sub),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def steps_table(res) -> pd.DataFrame:
    """Per cell and optimiser: runs, how many reach the target, the median steps (never: inf)."""
    pr = per_run(res)
    rows = []
    for (ds, act, depth, arm), g in pr.groupby([*KEYS, "optimiser"]):
        v = np.where(g["steps"] < g["beyond"], g["steps"], np.inf)
        rows.append(
            {
                "dataset": ds,
                "activation": act,
                "depth": depth,
                "optimiser": arm,
                "lr": float(g["lr"].iloc[0]),
                "n": len(v),
                "n_reached": int(np.isfinite(v).sum()),
                "median": float(np.median(v)),
                "target": float(g["target"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def profiles(res) -> pd.DataFrame:
    """Per layer, for the chosen runs: ‖∂C/∂W^l‖ and ‖ΔW^l‖/‖W^l‖ at step 0 and at the last
    logged step of runs that finished (``phase``), one row per run and layer (figure O1)."""
    res = load(res)
    pr = per_run(res)
    lay = res.layers[res.layers["run_id"].isin(pr.index)]
    last = lay.groupby("run_id")["step"].transform("max")
    picks = {PHASES["init"]: lay["step"] == 0, PHASES["end"]: (lay["step"] == last) & (lay["status"] == "ok")}
    frames = []
    for phase, keep in picks.items():
        d = lay.loc[keep, ["run_id", "seed", *KEYS, "layer", "grad_w_norm", "update_ratio"]]
        frames.append(d.assign(phase=phase))
    out = pd.concat(frames, ignore_index=True)
    out["optimiser"] = out["run_id"].map(pr["optimiser"])
    out["lr"] = out["run_id"].map(pr["lr"])
    return out

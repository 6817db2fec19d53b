"""The blog post's empirical claims, checked on a results folder with matched comparisons.

The post's claims (see the seed post's summary):
  1. cross-entropy converges faster than MSE with a sigmoid output (its δ^L lacks σ');
  2. gradients vanish toward the lower layers of a sigmoid network (σ' ≤ 1/4 at every layer);
  3. gradients explode when the per-layer factor exceeds 1;
  4. remedies: ReLU (derivative 1), gradient clipping.

Every comparison is **matched**: the arms are runs whose config differs only in the factor
under test (loss, activation, clip rule) and they are paired by seed (same data, same initial
weights where the shapes agree). Each case turns its pairs into per-seed effects and gets an
interval and a decision (``mlplab.analysis.verdicts``); the claim's verdict names the cases.

What is measured, the same for every arm a claim compares:

* claim 1: steps until the test accuracy (1a) and the training accuracy (1b) reach a target,
  ``ACC_FRAC`` × the best median final accuracy of the compared losses at that depth and
  setting (accuracy means the same for every loss; a loss value does not: 10-class BCE starts
  near 7 nats, MSE near 1.2, softmax-CE near ln 10). A run that never reaches it counts as one
  logged step past its end.
* claims 2, 3, 4a: the first-to-last gradient ratio ‖∂C/∂b^1‖/‖∂C/∂b^L‖ (Nielsen's speeds of
  learning; ‖∂C/∂W‖ under batch norm, where ∂C/∂b = 0), at step 0 and after training.
* claim 3 is the post's mechanism: a per-layer factor above 1 from the start. Its cases are the
  settings whose mean-field factor √χ1 exceeds 1 (``mlplab.theory``); the check is whether the
  gradient grows toward the input at initialisation. Divergence during training is reported
  beside it ("non-finite at step s"), not taken for the mechanism.
* claim 4b: in those settings, norm-clipped runs against their unclipped twins: a pair scores
  +1 when only the unclipped run diverges (−1 the other way), else the log10 ratio of their
  final training losses.

This module computes the cases; ``wording`` writes the verdicts and the evidence behind them,
``summaries`` the claims' measures as the tables of the report and the figures.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab.analysis import select
from mlplab.analysis.measures import (
    ACC_FRAC,
    PHASES,
    closer_to_one,
    gradient_ratios,
    log_ratio,
    steps_effect,
    with_factor,
)
from mlplab.analysis.select import CONFIG, plain, steps_to, twins
from mlplab.analysis.verdicts import case_frame, evidence

CE_LOSSES = ("bce", "softmax_ce")
VANISH_BELOW = 0.1  # claim 2: first-to-last ratio below this = the first layer learns >= 10x slower
DESCRIBE = ["dataset", "activation", "loss", "depth", "phase", "sigma_w", "init", "lr"]  # how cases are named


# -- per-run measures -------------------------------------------------------------------------------
def per_run(res) -> pd.DataFrame:
    """One row per run: its config, status, and the measures the claims compare (the
    accuracy targets of claim 1, the steps to reach them, the gradient ratios)."""
    runs = select.per_run(res)
    ratios = gradient_ratios(res.layers)
    for phase, name in zip(PHASES, ("ratio_init", "ratio_end")):
        runs[name] = ratios[ratios["phase"] == phase].set_index("run_id")["ratio"].reindex(runs.index)
    runs["diverged"] = runs["status"] == "diverged"
    # claim 1's targets: ACC_FRAC × the best median final accuracy over the losses compared at
    # that depth and setting (every config field but loss and seed)
    # (a target the runs already meet at initialisation — nothing learns — is no target: NaN)
    group = [c for c in CONFIG if c not in ("loss", "seed") and c in runs]
    setting = runs.groupby(group, dropna=False, sort=False).ngroup()  # one id per setting: grouped once
    ok = runs["status"] == "ok"
    step0 = res.steps[res.steps["step"] == 0].set_index("run_id")
    for column, final in (("test_accuracy", "final_test_accuracy"), ("train_accuracy", "final_accuracy")):
        best = runs.loc[ok, final].groupby([setting[ok], runs.loc[ok, "loss"]]).median().groupby(level=0).max()
        initial = step0[column].reindex(runs.index).groupby(setting).transform("max")
        target = np.round(ACC_FRAC * setting.map(best).to_numpy(dtype=best.dtype), 4)
        runs[f"target_{column}"] = np.where(target > initial.to_numpy(), target, np.nan)
        runs[f"steps_{column}"] = steps_to(res.steps, column, runs[f"target_{column}"], runs["beyond"])
        runs.loc[runs[f"target_{column}"].isna(), f"steps_{column}"] = np.nan
    return runs.reset_index(drop=True)


# -- the claims -------------------------------------------------------------------------------------
def _decide(pairs: pd.DataFrame, conds: list[str], effect) -> pd.DataFrame:
    """The cases of one claim: one per value of ``conds`` and of any other config field that
    varies among the pairs (a case is one setting; its pairs differ only by seed), each with its
    effects' evidence. The case columns are in ``cases.attrs["conds"]``."""
    rows = []
    if not pairs.empty:
        # other config fields that vary among the pairs make cases too, unless the conditions
        # already fix them (n_features, n_samples... follow from the data set)
        present_conds = [c for c in conds if c in pairs]
        grouped = pairs.groupby(present_conds, dropna=False) if present_conds else None
        extra = [
            c
            for c in CONFIG
            if c not in conds
            and c != "seed"
            and c in pairs
            and pairs[c].nunique(dropna=False) > 1
            and (grouped is None or grouped[c].nunique(dropna=False).max() > 1)
        ]
        conds = conds + extra
        for key, g in pairs.groupby(conds, dropna=False, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            ev = evidence(effect(g))
            if ev.n:  # a setting where no pair has a measurable effect is not a case
                rows.append({**dict(zip(conds, key)), **ev.row()})
    out = case_frame(rows, conds)
    out.attrs["conds"] = conds
    return out


def convergence_cases(pr: pd.DataFrame, column: str) -> pd.DataFrame:
    """Claim 1, on the post's networks (plain sigmoid nets, no clipping): per (data set, depth,
    cross-entropy loss), MSE's steps to the target over the cross-entropy twin's, log10 (> 0:
    cross-entropy is faster)."""
    pr = pr[(pr["activation"] == "sigmoid") & plain(pr) & (pr["clip"] == "none")]
    frames = []
    for ce in CE_LOSSES:
        p = twins(pr, "loss", "mse", ce)
        if not p.empty:
            frames.append(p.assign(loss=ce))
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    conds = ["dataset", "depth", "loss"]
    return _decide(pairs, conds, lambda g: steps_effect(g, f"steps_{column}"))


def _phase_rows(pr: pd.DataFrame) -> pd.DataFrame:
    """Each run twice, once per phase, with that phase's ratio as ``ratio``."""
    return pd.concat(
        [pr.assign(phase=ph, ratio=pr[col]) for ph, col in zip(PHASES, ("ratio_init", "ratio_end"))], ignore_index=True
    )


def vanishing_cases(pr: pd.DataFrame, activation: str = "sigmoid") -> pd.DataFrame:
    """Claim 2: per (data set, phase, depth) of plain unclipped ``activation`` networks,
    log10(VANISH_BELOW / ratio) over seeds (> 0: the first layer learns ≥ 10× slower)."""
    d = pr[(pr["activation"] == activation) & plain(pr) & (pr["clip"] == "none") & (pr["depth"] >= 1)]
    d = _phase_rows(d)
    d = d[d["ratio"].notna()]
    return _decide(d, ["dataset", "phase", "depth"], lambda g: log_ratio(VANISH_BELOW, g["ratio"]))


def exploding_settings(pr: pd.DataFrame) -> pd.DataFrame:
    """Plain runs whose mean-field per-layer factor √χ1 exceeds 1 (the post's exploding case)."""
    d = pr[plain(pr) & (pr["depth"] >= 1)]
    if d.empty:
        return d.assign(factor=[])
    d = with_factor(d)
    return d[d["factor"] > 1]


def explode_cases(pr: pd.DataFrame) -> pd.DataFrame:
    """Claim 3: per setting with √χ1 > 1 (data set, activation, σ_w, init, depth), unclipped,
    the step-0 first-to-last ratio, log10 (> 0: the gradient grows toward the input)."""
    d = exploding_settings(pr)
    d = d[(d["clip"] == "none") & d["ratio_init"].notna()]
    return _decide(
        d, ["dataset", "activation", "sigma_w", "init", "depth"], lambda g: np.log10(g["ratio_init"].to_numpy(float))
    )


def relu_cases(pr: pd.DataFrame) -> pd.DataFrame:
    """Claim 4a: relu against its sigmoid twin, per (data set, phase, depth, loss): how much
    closer to 1 the first-to-last ratio is, |log10 r_sigmoid| − |log10 r_relu| (> 0: relu's
    lower layers are less starved)."""
    pr = pr[plain(pr) & (pr["clip"] == "none") & (pr["depth"] >= 1)]
    pairs = _phase_rows_pairs(twins(pr, "activation", "relu", "sigmoid"))
    return _decide(
        pairs,
        ["dataset", "phase", "depth", "loss"],
        lambda g: closer_to_one(g["ratio_a"], g["ratio_b"]),
    )


def _phase_rows_pairs(p: pd.DataFrame) -> pd.DataFrame:
    if p.empty:
        return p.assign(phase=[], ratio_a=[], ratio_b=[])
    out = pd.concat(
        [
            p.assign(phase=ph, ratio_a=p[f"{col}_a"], ratio_b=p[f"{col}_b"])
            for ph, col in zip(PHASES, ("ratio_init", "ratio_end"))
        ],
        ignore_index=True,
    )
    return out[(out["ratio_a"] > 0) & (out["ratio_b"] > 0)]


def clip_effect(g: pd.DataFrame) -> np.ndarray:
    """Per pair (a: norm-clipped, b: unclipped): +1 when only the unclipped run diverged, −1
    when only the clipped one did, else log10 of final training loss unclipped / clipped (0
    when both diverged)."""
    da, db = g["diverged_a"].to_numpy(bool), g["diverged_b"].to_numpy(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        losses = np.log10(g["final_loss_b"].to_numpy(float) / g["final_loss_a"].to_numpy(float))
    return np.where(db & ~da, 1.0, np.where(da & ~db, -1.0, np.where(da & db, 0.0, losses)))


def clipping_cases(pr: pd.DataFrame) -> pd.DataFrame:
    """Claim 4b: in the settings with √χ1 > 1, norm clipping against its unclipped twin, per
    (data set, activation, σ_w, depth, loss)."""
    d = exploding_settings(pr)
    pairs = twins(d, "clip", "norm", "none") if not d.empty else pd.DataFrame()
    return _decide(pairs, ["dataset", "activation", "sigma_w", "depth", "loss"], clip_effect)


CASE_SUMMARY = ["n_cases", "n_holds", "n_fails", "n_undecided", "min_seeds", "effect_min", "effect_max"]


def case_summary(cases: pd.DataFrame) -> dict:
    """Counts and ranges over a claim's cases (the numeric columns of the blog table)."""
    if cases is None or cases.empty:
        return {
            "n_cases": 0,
            "n_holds": 0,
            "n_fails": 0,
            "n_undecided": 0,
            "min_seeds": 0,
            "effect_min": math.nan,
            "effect_max": math.nan,
        }
    h = cases["holds"]
    return {
        "n_cases": len(cases),
        "n_holds": int((h == True).sum()),  # noqa: E712 - a nullable column: True, False or NA
        "n_fails": int((h == False).sum()),  # noqa: E712
        "n_undecided": int(h.isna().sum()),
        "min_seeds": int(cases["n"].min()),
        "effect_min": float(cases["effect"].min()),
        "effect_max": float(cases["effect"].max()),
    }


def cases_of(pr: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The cases of every claim, by claim id, from the runs' ``per_run`` table."""
    return {
        "1a": convergence_cases(pr, "test_accuracy"),
        "1b": convergence_cases(pr, "train_accuracy"),
        "2": vanishing_cases(pr),
        "3": explode_cases(pr),
        "4a": relu_cases(pr),
        "4b": clipping_cases(pr),
    }

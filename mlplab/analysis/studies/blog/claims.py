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
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab.analysis import load, select
from mlplab.analysis.fmt import number
from mlplab.analysis.measures import (
    ACC_FRAC,
    PHASES,
    closer_to_one,
    gradient_ratios,
    log_ratio,
    predicted_ratio,
    steps_effect,
    with_factor,
)
from mlplab.analysis.prose import Prose
from mlplab.analysis.select import CONFIG, main_runs, plain, steps_to, twins
from mlplab.analysis.verdicts import cases_table, describe_level, evidence, verdict

PROSE = Prose.of("mlplab.analysis.studies.blog")
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
def _cases(pairs: pd.DataFrame, conds: list[str], effect) -> pd.DataFrame:
    """One case per value of ``conds`` and of any other config field that varies among the pairs
    (a case is one setting; its pairs differ only by seed): its effects' evidence. The case
    columns are in ``cases.attrs["conds"]``."""
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
    out = cases_table(rows, conds)
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
    return _cases(pairs, conds, lambda g: steps_effect(g, f"steps_{column}"))


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
    return _cases(d, ["dataset", "phase", "depth"], lambda g: log_ratio(VANISH_BELOW, g["ratio"]))


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
    return _cases(
        d, ["dataset", "activation", "sigma_w", "init", "depth"], lambda g: np.log10(g["ratio_init"].to_numpy(float))
    )


def relu_cases(pr: pd.DataFrame) -> pd.DataFrame:
    """Claim 4a: relu against its sigmoid twin, per (data set, phase, depth, loss): how much
    closer to 1 the first-to-last ratio is, |log10 r_sigmoid| − |log10 r_relu| (> 0: relu's
    lower layers are less starved)."""
    pr = pr[plain(pr) & (pr["clip"] == "none") & (pr["depth"] >= 1)]
    pairs = _phase_rows_pairs(twins(pr, "activation", "relu", "sigmoid"))
    return _cases(
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
    return _cases(pairs, ["dataset", "activation", "sigma_w", "depth", "loss"], clip_effect)


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


# Mutation testing (make mutation) covers the computations above: the effects, cases and their
# counts that decide each verdict. The text below is checked by the report's tests.
# pragma: no mutate block
# -- evidence text -----------------------------------------------------------------------------------
MAX_LISTED = 6  # cases named one by one in a verdict's evidence; beyond that, a summary


def _case_name(r, conds: list[str]) -> str:
    return ", ".join(f"{c} {number(getattr(r, c))}" for c in conds)


def _effects_text(cases: pd.DataFrame, conds: list[str], unit: str) -> str:
    """The evidence of a verdict: each case's median effect [interval] (n), or, with many cases,
    how many hold, fail and are undecided and the range of their medians."""
    if cases.empty:
        return "no case"
    conds = [c for c in conds if c in cases and cases[c].nunique(dropna=False) > 1]
    if len(cases) <= MAX_LISTED:
        parts = [
            f"{_case_name(r, conds) or 'one case'}: {number(r.effect)} [{number(r.low)}, {number(r.high)}] (n={r.n})"
            for r in cases.itertuples(index=False)
        ]
        return f"median {unit} [interval] per case — " + "; ".join(parts)
    s = case_summary(cases)
    seeds = f"{s['min_seeds']}" if s["min_seeds"] == cases["n"].max() else f"{s['min_seeds']}–{cases['n'].max()}"
    return (
        f"{len(cases)} cases ({seeds} seeds each): {s['n_holds']} hold, {s['n_fails']} fail, {s['n_undecided']} "
        f"undecided; median {unit} from {number(s['effect_min'])} to {number(s['effect_max'])} "
        "(every case: the claim-cases table)"
    )


def case_table(source) -> pd.DataFrame:
    """Every case of every claim, one row each: claim, data set, a description of the case (its
    other conditions), the statistics of ``mlplab.analysis.verdicts`` and the decision."""
    rows = []
    for cid, c in all_cases(load(source)).items():
        conds = [x for x in c.attrs.get("conds", CONDS[cid]) if x != "dataset"]
        for r in c.itertuples(index=False):
            rows.append(
                {
                    "claim": cid,
                    "dataset": getattr(r, "dataset", ""),
                    "case": _case_name(r, conds),
                    "n": r.n,
                    "effect": r.effect,
                    "low": r.low,
                    "high": r.high,
                    "coverage": r.coverage,
                    "p": r.p,
                    "decision": {True: "holds", False: "fails"}.get(r.holds, "undecided"),
                    "unit": UNITS[cid],
                }
            )
    return pd.DataFrame(
        rows, columns=["claim", "dataset", "case", "n", "effect", "low", "high", "coverage", "p", "decision", "unit"]
    )


def divergence_text(pr: pd.DataFrame) -> str:
    """How the runs of the exploding settings ended: divergence counts and where."""
    d = exploding_settings(pr)
    if d.empty:
        return ""
    out = []
    for clip, g in d.groupby("clip"):
        div = g[g["diverged"]]
        where = ""
        if len(div):
            where = f", non-finite at step {number(div['diverged_step'].median())} (median)"
        out.append(
            f"clip={clip}: {len(div)}/{len(g)} runs diverged{where}; largest finite gradient norm "
            f"{number(g['max_grad_norm'].median())} (median)"
        )
    return "; ".join(out)


# -- all claims ---------------------------------------------------------------------------------------
VERDICT_COLUMNS = ["claim", "post_claim", "check", "verdict", "evidence"]
CONDS = {
    "1a": ["dataset", "depth", "loss"],
    "1b": ["dataset", "depth", "loss"],
    "2": ["dataset", "phase", "depth"],
    "3": ["dataset", "activation", "sigma_w", "init", "depth"],
    "4a": ["dataset", "phase", "depth", "loss"],
    "4b": ["dataset", "activation", "sigma_w", "depth", "loss"],
}
POST = {
    "1a": "cross-entropy converges faster than MSE (δ^L has no σ' factor)",
    "1b": "cross-entropy converges faster than MSE (δ^L has no σ' factor)",
    "2": "gradients vanish toward the lower layers of a sigmoid network (σ' ≤ 1/4)",
    "3": "gradients explode when the per-layer factor exceeds 1",
    "4a": "ReLU (derivative 1) is a remedy for vanishing gradients",
    "4b": "gradient clipping is a remedy for exploding gradients",
}
CHECK = {
    "1a": f"plain sigmoid nets, no clipping: steps until the test accuracy reaches {ACC_FRAC:g} × the best median "
    "final test accuracy of the compared losses; MSE over each cross-entropy twin, log10 per seed (> 0: "
    "cross-entropy faster)",
    "1b": f"the same with the training accuracy (target {ACC_FRAC:g} × the best median final training accuracy)",
    "2": f"plain sigmoid nets, no clipping: log10({VANISH_BELOW:g} / ‖∂C/∂b^1‖/‖∂C/∂b^L‖) per seed "
    f"(> 0: the first layer learns ≥ {1 / VANISH_BELOW:g}× slower), at step 0 and after training",
    "3": "settings with mean-field factor √χ1 > 1: log10 of the step-0 first-to-last ratio per seed (> 0: the "
    "gradient grows toward the input)",
    "4a": "relu against its sigmoid twin: |log10 r_sigmoid| − |log10 r_relu| per seed (> 0: relu's ratio closer to 1)",
    "4b": "settings with √χ1 > 1: norm clipping against its unclipped twin, per seed +1 if only the unclipped run "
    "diverges (−1 the other way), else log10 of the final training losses unclipped / clipped",
}
UNTESTED = {
    "1a": "no pair of plain, unclipped sigmoid runs that differ only in loss (mse against bce or softmax_ce) "
    "where either run reaches a test-accuracy target",
    "1b": "no pair of plain, unclipped sigmoid runs that differ only in loss (mse against bce or softmax_ce) "
    "where either run reaches a training-accuracy target",
    "2": "no plain, unclipped sigmoid network with a hidden layer",
    "3": "no setting has a per-layer factor above 1: √χ1 ≤ 1 everywhere (e.g. relu needs σ_w > √2)",
    "4a": "no relu run with a sigmoid twin",
    "4b": "no setting with √χ1 > 1 has runs with and without norm clipping",
}
UNITS = {
    "1a": "log10 steps ratio",
    "1b": "log10 steps ratio",
    "2": "effect",
    "3": "log10 ratio",
    "4a": "effect",
    "4b": "score",
}


def all_cases(source) -> dict[str, pd.DataFrame]:
    """The cases of every claim, by claim id."""
    return cases_of(per_run(load(source)))


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


def verdicts(source, by_dataset: bool = False) -> pd.DataFrame:
    """One row per checked claim: claim id, what the post says, how it is checked (with the
    decision rule), the computed verdict, the numbers behind it as text and as columns
    (``CASE_SUMMARY``). With ``by_dataset``, one row per claim and data set (``dataset``
    column; "all" for the overall verdict)."""
    pr = per_run(load(source))
    cases = cases_of(pr)
    rows = []
    datasets = sorted(pr["dataset"].unique()) if by_dataset else []
    for cid, c in cases.items():
        conds = c.attrs.get("conds", CONDS[cid])
        evidence_text = _effects_text(c, conds, UNITS[cid])
        if cid in ("3", "4b"):
            div = divergence_text(pr)
            evidence_text = (div + "; " if div else "") + evidence_text
        base = {"claim": cid, "post_claim": POST[cid], "check": CHECK[cid] + "; " + describe_level()}
        rows.append(
            {
                **base,
                "dataset": "all",
                "verdict": verdict(c, conds, UNTESTED[cid]),
                "evidence": evidence_text,
                **case_summary(c),
            }
        )
        for d in datasets:
            sub = c[c["dataset"] == d] if not c.empty else c
            inner = [x for x in conds if x != "dataset"]
            rows.append(
                {
                    **base,
                    "dataset": d,
                    "verdict": verdict(sub, inner, UNTESTED[cid]),
                    "evidence": _effects_text(sub, inner, UNITS[cid]),
                    **case_summary(sub),
                }
            )
    cols = VERDICT_COLUMNS + (["dataset"] if by_dataset else []) + CASE_SUMMARY
    out = pd.DataFrame(rows)
    if not by_dataset:
        out = out[out["dataset"] == "all"]
    return out[cols].reset_index(drop=True)


# -- for the report: how claims are decided, where data sets disagree --------------------------------
def method_notes() -> list[str]:
    """How the claims are measured and decided, for the report (one item per point; the text is
    the piece ``method`` of ``prose.md``)."""
    return PROSE.items(
        "method", level=describe_level(), acc_frac=ACC_FRAC, vanish_below=VANISH_BELOW, slower=1 / VANISH_BELOW
    )


def disagreements(source, by_dataset: pd.DataFrame | None = None) -> list[str]:
    """Where data sets disagree on a claim, one line each: the cases (the same conditions but
    the data set) decided one way on some data sets and the other way on others, with each data
    set's median effect and the measured numbers behind it (``_case_numbers``)."""
    pr = per_run(load(source))
    cases = cases_of(pr)
    out = []
    for cid, c in cases.items():
        if c.empty or c["dataset"].nunique() < 2:
            continue
        conds = [x for x in c.attrs.get("conds", CONDS[cid]) if x != "dataset"]
        decided = c[c["holds"].notna()]
        split, split_effects = [], []
        for key, g in decided.groupby(conds, dropna=False, sort=True) if conds else [((), decided)]:
            holds = set(g.loc[g["holds"].astype(bool), "dataset"])
            fails = set(g.loc[~g["holds"].astype(bool), "dataset"])
            if holds and fails:
                key = dict(zip(conds, key if isinstance(key, tuple) else (key,)))
                name = ", ".join(f"{k} {number(v)}" for k, v in key.items()) or "every case"
                effects = ", ".join(f"{d} {number(e)}" for d, e in zip(g["dataset"], g["effect"]))
                numbers = _case_numbers(cid, pr, key, sorted(holds | fails))
                split_effects += list(g["effect"])
                split.append(
                    f"{name}: holds on {', '.join(sorted(holds))}, fails on {', '.join(sorted(fails))} "
                    f"(median {UNITS[cid]}: {effects}" + (f"; {numbers}" if numbers else "") + ")"
                )
        if split:
            shown = split[:4] + ([f"and {len(split) - 4} more"] if len(split) > 4 else [])
            why = (
                f" Those cases are marginal: their median |effect| is {number(np.median(np.abs(split_effects)))} "
                f"against {number(decided['effect'].abs().median())} over all {len(decided)} decided cases of the "
                "claim, so a different data set tips them across no effect."
                if np.median(np.abs(split_effects)) < decided["effect"].abs().median()
                else " Those cases are not marginal (their |effect| is as large as the claim's typical one): the "
                "data set changes the outcome itself."
            )
            out.append(
                f"**Claim {cid}**: the data sets disagree in {len(split)} case(s) — " + "; ".join(shown) + "." + why
            )
    return out


def _case_numbers(cid: str, pr: pd.DataFrame, key: dict, datasets: list) -> str:
    """The measured numbers of one case on each data set: what the claim's effect is made of
    (median first-to-last ratio for claims 2, 3, 4a; the accuracy target and median steps per
    loss for claim 1; divergence counts for claim 4b)."""
    d = pr[pr["dataset"].isin(datasets) & plain(pr)]
    for k, v in key.items():
        if k in d and k != "phase":
            d = d[d[k] == v]
    col = "ratio_end" if key.get("phase") == PHASES[1] else "ratio_init"
    parts = []
    for ds, g in d.groupby("dataset"):
        if cid in ("2", "3"):
            g = g[g["activation"] == "sigmoid"] if cid == "2" else g
            parts.append(f"{ds} {number(g[col].median())}")
        elif cid == "4a":
            m = g.groupby("activation")[col].median()
            parts.append(f"{ds} " + " vs ".join(f"{a} {number(x)}" for a, x in m.items()))
        elif cid in ("1a", "1b"):
            column = "test_accuracy" if cid == "1a" else "train_accuracy"
            g = pr[
                (pr["dataset"] == ds)
                & plain(pr)
                & (pr["activation"] == "sigmoid")
                & (pr["clip"] == "none")
                & (pr["depth"] == key.get("depth"))
            ]
            steps = g.groupby("loss")[f"steps_{column}"].median()
            parts.append(
                f"{ds} target {number(g[f'target_{column}'].median())}, steps "
                + ", ".join(f"{k} {number(x)}" for k, x in steps.items())
            )
        elif cid == "4b":
            parts.append(
                f"{ds} diverged " + ", ".join(f"{k} {int(x.sum())}/{len(x)}" for k, x in g.groupby("clip")["diverged"])
            )
    what = {
        "2": "median first/last ratio",
        "3": "median step-0 first/last ratio",
        "4a": "median first/last ratio",
        "1a": "",
        "1b": "",
        "4b": "",
    }[cid]
    return (f"{what} " if what else "") + "; ".join(parts) if parts else ""


# -- tables for the report and figures ------------------------------------------------------------------
def claim_convergence(source) -> pd.DataFrame:
    """Steps to the accuracy targets per data set, activation, depth and loss, over the plain
    unclipped runs (claim 1's): median and quartiles over seeds, how many runs reach it, the
    target."""
    pr = per_run(load(source))
    pr = pr[plain(pr) & (pr["clip"] == "none")]  # the runs claim 1 compares
    rows = []
    for target, column in (("test accuracy", "test_accuracy"), ("train accuracy", "train_accuracy")):
        g = pr.groupby(["dataset", "activation", "depth", "loss"])
        for key, d in g:
            v = d[f"steps_{column}"].to_numpy(float)
            reached = v < d["beyond"].to_numpy(float)
            rows.append(
                {
                    "target": target,
                    "dataset": key[0],
                    "activation": key[1],
                    "depth": key[2],
                    "loss": key[3],
                    "target_value": float(d[f"target_{column}"].median()),
                    "n": len(v),
                    "n_reached": int(reached.sum()),
                    "median": float(np.median(np.where(reached, v, np.inf))),
                    "q25": float(np.quantile(np.where(reached, v, np.inf), 0.25, method="nearest")),
                    "q75": float(np.quantile(np.where(reached, v, np.inf), 0.75, method="nearest")),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "target",
            "dataset",
            "activation",
            "depth",
            "loss",
            "target_value",
            "n",
            "n_reached",
            "median",
            "q25",
            "q75",
        ],
    )


def claim_vanishing(source) -> pd.DataFrame:
    """First-to-last gradient ratio by setting, depth and phase over the unclipped runs:
    median, quartiles, per-layer factor (median^(1/depth)) and the mean-field prediction."""
    res = load(source)
    setting = ["dataset", "activation", "residual", "norm", "init", "sigma_w", "sigma_b", "lr"]
    stats = ["n", "median", "q25", "q75", "per_layer", "predicted", "predicted_per_layer", "main"]
    cols = setting + ["depth", "phase"] + stats
    runs = res.runs[res.runs["clip"] == "none"]
    ratios = gradient_ratios(res.layers[res.layers["run_id"].isin(runs["run_id"])])
    if ratios.empty:
        return pd.DataFrame(columns=cols)
    keys = setting + ["width", "depth"]
    d = ratios.merge(runs[["run_id"] + keys], on="run_id")
    g = d.groupby(keys + ["phase"])["ratio"]
    out = pd.DataFrame(
        {"n": g.size(), "median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75)}
    ).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["per_layer"] = out["median"] ** (1.0 / out["depth"])
    pred = {
        k: predicted_ratio(k.activation, k.init, k.sigma_w, k.sigma_b, k.width, k.depth, k.residual, k.norm)
        for k in out[keys].drop_duplicates().itertuples(index=False)
    }
    out["predicted"] = [pred[k] for k in out[keys].itertuples(index=False)]
    out["predicted_per_layer"] = out["predicted"] ** (1.0 / out["depth"])
    out["main"] = _is_main(out, main_runs(res.runs))
    out["phase"] = pd.Categorical(out["phase"], PHASES, ordered=True)
    return out.sort_values(
        ["main", "dataset", "activation", "residual", "norm", "init", "sigma_w", "phase", "depth"],
        ascending=[False] + [True] * 8,
    )[cols].reset_index(drop=True)


def _is_main(table: pd.DataFrame, main: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` whose setting is in the main grid."""
    keys = ["dataset", "residual", "norm", "init", "sigma_w", "sigma_b", "lr"]
    if main.empty:
        return pd.Series(False, index=table.index)
    ref = main[keys].drop_duplicates().astype(str).agg("|".join, axis=1)
    return table[keys].astype(str).agg("|".join, axis=1).isin(set(ref))


def claim_exploding(source) -> pd.DataFrame:
    """Per plain setting and clip rule: divergence, the largest finite gradient norm (every step,
    from the runs table), the median step-0 first-to-last ratio, and the mean-field factor √χ1
    (``exploding``: √χ1 > 1)."""
    pr = per_run(load(source))
    d = pr[plain(pr) & (pr["depth"] >= 1)].copy()
    keys = ["dataset", "activation", "init", "sigma_w", "sigma_b", "width", "depth", "loss"]
    cols = keys + [
        "clip",
        "n",
        "n_diverged",
        "diverged_step",
        "max_grad_norm",
        "final_loss",
        "ratio_step0",
        "factor",
        "exploding",
    ]
    if d.empty:
        return pd.DataFrame(columns=cols)
    g = with_factor(d).groupby(keys + ["clip"], dropna=False)
    out = pd.DataFrame(
        {
            "n": g.size(),
            "n_diverged": g["diverged"].sum(),
            "diverged_step": g["diverged_step"].median(),
            "max_grad_norm": g["max_grad_norm"].median(),
            "final_loss": g["final_loss"].median(),
            "ratio_step0": g["ratio_init"].median(),
            "factor": g["factor"].first(),
        }
    ).reset_index()
    out["exploding"] = out["factor"] > 1
    return out.sort_values(["exploding"] + keys + ["clip"], ascending=[False] + [True] * (len(keys) + 1))[
        cols
    ].reset_index(drop=True)

"""The blog claims' verdicts in words: what the post says, how each claim is checked, the
verdict over its cases with the numbers behind it (``verdicts``), every case as a row
(``claim_cases``), how the claims are decided and where the data sets disagree (for the report).
The computations that decide them are ``claims``; this module writes them out."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.fmt import number
from mlplab.analysis.measures import ACC_FRAC, PHASES
from mlplab.analysis.prose import Prose
from mlplab.analysis.select import plain
from mlplab.analysis.studies.blog.claims import (
    CASE_SUMMARY,
    VANISH_BELOW,
    case_summary,
    cases_of,
    exploding_settings,
    per_run,
)
from mlplab.analysis.verdictmap import COLUMNS, cells_from_cases
from mlplab.analysis.verdicts import describe_level, verdict

PROSE = Prose.of("mlplab.analysis.studies.blog")
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


def claim_cases(source) -> pd.DataFrame:
    """Every case of every claim, one row each: claim, data set, a description of the case (its
    other conditions), the statistics of ``mlplab.analysis.verdicts`` and the decision."""
    rows = []
    for cid, c in cases_of(per_run(load(source))).items():
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


VERDICT_COLUMNS = ["claim", "post_claim", "check", "verdict", "evidence"]
CONDS = {
    "1a": ["dataset", "depth", "loss"],
    "1b": ["dataset", "depth", "loss"],
    "2": ["dataset", "phase", "depth"],
    "3": ["dataset", "activation", "sigma_w", "init", "depth"],
    "4a": ["dataset", "phase", "depth", "loss"],
    "4b": ["dataset", "activation", "sigma_w", "depth", "loss"],
}
# what the post says, how each claim is checked, what a sweep lacks when it cannot test it
NUMBERS = {"acc_frac": ACC_FRAC, "vanish_below": VANISH_BELOW, "slower": 1 / VANISH_BELOW}
POST = PROSE.mapping("post_says")
CHECK = PROSE.mapping("check", **NUMBERS)
UNTESTED = PROSE.mapping("untested_claim")
UNITS = {
    "1a": "log10 steps ratio",
    "1b": "log10 steps ratio",
    "2": "effect",
    "3": "log10 ratio",
    "4a": "effect",
    "4b": "score",
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


def verdict_cells(source) -> pd.DataFrame:
    """The verdict map's cells (``mlplab.analysis.verdictmap.COLUMNS``): each claim over all data
    sets and on each one (one data set: that one only)."""
    res = load(source)
    v = verdicts(res, by_dataset=True)
    cases = claim_cases(res).assign(holds=lambda c: c["decision"].map({"holds": True, "fails": False}))
    if v["dataset"].nunique() == 2:  # 'all' and the one data set say the same
        v = v[v["dataset"] != "all"]
    rows = []
    for r in v.itertuples(index=False):
        sub = cases[(cases["claim"] == r.claim) & ((r.dataset == "all") | (cases["dataset"] == r.dataset))]
        rows.append(
            {
                "row": f"{r.claim}: {re.sub(r' [(][^)]*[)]', '', r.post_claim)}",
                "column": r.dataset,
                "verdict": r.verdict,
                "unit": UNITS[r.claim],
                **cells_from_cases(sub),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


# -- for the report: how claims are decided, where data sets disagree --------------------------------
def method_notes() -> list[str]:
    """How the claims are measured and decided, for the report (one item per point; the text is
    the piece ``method`` of ``prose.md``)."""
    return PROSE.items("method", level=describe_level(), **NUMBERS)


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

"""The remedies study: each of the post's cures on its own against its plain twin.

A *remedy* is a change of one config field away from the plain network (``arms.REMEDIES``,
read from ``conf/remedy/``). Its
twin is the run with the same config but that field at its plain value (residual off, no
norm, normal init, no clipping, no decay, SGD, a saturating activation), paired by seed; the
fields a remedy brings along differ too (``remedy=adam`` runs at Adam's own lr, the twin at
SGD's). Two
claims per remedy, each on the twins' per-seed effects (``mlplab.analysis.verdicts``):

* **toward 1**: the remedy brings the first-to-last gradient ratio ‖∂C/∂W^1‖/‖∂C/∂W^L‖ closer
  to 1: |log10 r_twin| − |log10 r_remedy| > 0, at initialisation and after training. The
  weight gradients are used for every arm (under batch norm ∂C/∂b = 0, so the bias gradients
  cannot compare the arms).
* **faster**: it reaches the test-accuracy target in fewer steps: log10(steps_twin /
  steps_remedy) > 0. The target is ``ACC_FRAC`` × the best median final test accuracy of any
  arm at that depth and activation, the same for all; a run that never reaches it counts as
  one logged step past its end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplab.analysis import load, select
from mlplab.analysis.fmt import number
from mlplab.analysis.measures import ACC_FRAC, PHASES, closer_to_one, gradient_ratios, steps_effect
from mlplab.analysis.prose import Prose
from mlplab.analysis.select import steps_to, twins
from mlplab.analysis.studies.remedies.arms import REMEDIES
from mlplab.analysis.verdictmap import COLUMNS, cells_from_cases
from mlplab.analysis.verdicts import case_frame, evidence, verdict

TRAINING_ONLY = {"norm clipping", "weight decay", "adam"}  # the same network as the twin until the first update
PROSE = Prose.of("mlplab.analysis.studies.remedies")
CLAIMS = PROSE.mapping("claims", acc_frac=ACC_FRAC)  # claim -> what it says
UNTESTED = PROSE.mapping("untested")  # claim -> what a folder lacks, for a {remedy}


def weight_ratios(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run: ‖∂C/∂W^1‖/‖∂C/∂W^L‖ at step 0 (``w_init``) and at the last logged step of an
    ok run (``w_end``)."""
    r = gradient_ratios(layers, column="grad_w_norm")
    return (
        r.pivot(index="run_id", columns="phase", values="ratio")
        .reindex(columns=list(PHASES))
        .set_axis(["w_init", "w_end"], axis=1)
    )


def per_run(res) -> pd.DataFrame:
    """Runs with their remedy label, weight-gradient ratios and steps to the shared target."""
    runs = select.per_run(res).join(weight_ratios(res.layers))
    runs["remedy"] = [label(r) for r in runs.itertuples(index=False)]
    ok = runs[runs["status"] == "ok"]
    best = (
        ok.groupby(["dataset", "depth", "remedy", "activation"])["final_test_accuracy"]
        .median()
        .groupby(level=["dataset", "depth"])
        .max()
    )
    runs["target"] = np.round(ACC_FRAC * runs.set_index(["dataset", "depth"]).index.map(best).to_numpy(float), 4)
    runs["steps"] = steps_to(res.steps, "test_accuracy", runs["target"], runs["beyond"])
    return runs.reset_index(drop=True)


def label(r) -> str:
    """The remedy a run carries ('plain' for none, 'several' for a mix)."""
    found = [name for name, remedy in REMEDIES.items() if remedy.carried_by(getattr(r, remedy.field))]
    return found[0] if len(found) == 1 else "plain" if not found else "several"


def pairs(pr: pd.DataFrame, remedy: str) -> pd.DataFrame:
    """The runs of ``remedy`` against their plain twins (a: remedy, b: twin), by seed; for relu
    ``activation`` is the twin's. The fields the remedy brings along (adam: ``lr``) are not
    matched but held at the remedy's value and the plain config's (adam 0.001, twin 0.5): each
    arm's value is in ``<field>_a`` and ``<field>_b``."""
    arm = REMEDIES[remedy]
    field = arm.field
    arms = pr[pr["remedy"].isin([remedy, "plain"])]
    for f, (v, pv) in zip(arm.along, arm.along_at):  # adam at its own lr, the twin at plain's
        arms = arms[np.where(arms["remedy"] == remedy, arms[f] == v, arms[f] == pv)]
    values = sorted(arms.loc[arms["remedy"] == remedy, field].unique()) if arm.any_value else [arm.value]
    frames = []
    for v in values:
        for pv in arm.twin:
            p = twins(arms[(arms[field] == v) | (arms[field] == pv)], field, v, pv, ignore=arm.along)
            frames.append(p.assign(activation=pv) if field == "activation" else p)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out.assign(remedy=remedy) if not out.empty else out


def remedy_cases(source) -> pd.DataFrame:
    """One row per (remedy, claim, activation of the twin, depth): the evidence."""
    pr = per_run(load(source))
    rows = []
    for remedy in REMEDIES:
        p = pairs(pr, remedy)
        if p.empty:
            continue
        for (act, depth), g in p.groupby(["activation", "depth"]):
            effects = {
                "toward 1 at initialisation": closer_to_one(g["w_init_a"], g["w_init_b"]),
                "toward 1 after training": closer_to_one(g["w_end_a"], g["w_end_b"]),
                "faster": -steps_effect(g, "steps"),  # > 0: the remedy (a) is faster; NaN: neither arm reaches it
            }
            for claim, e in effects.items():
                if claim == "toward 1 at initialisation" and remedy in TRAINING_ONLY:
                    continue  # identical to the twin at step 0: nothing to compare
                ev = evidence([x for x in e if np.isfinite(x)])
                if ev.n:
                    rows.append({"remedy": remedy, "claim": claim, "activation": act, "depth": depth, **ev.row()})
    return case_frame(rows, ["remedy", "claim", "activation", "depth"])


def verdicts(source) -> pd.DataFrame:
    """remedy × claim: the verdict over its cases (activation of the twin × depth)."""
    c = remedy_cases(source)
    rows = []
    for remedy in REMEDIES:
        for claim in CLAIMS:
            sub = c[(c["remedy"] == remedy) & (c["claim"] == claim)] if not c.empty else c
            rows.append(
                {
                    "remedy": remedy,
                    "claim": claim,
                    "verdict": verdict(
                        sub,
                        ["activation", "depth"],
                        (
                            PROSE("training_only")
                            if claim == "toward 1 at initialisation" and remedy in TRAINING_ONLY
                            else UNTESTED[claim].format(remedy=remedy)
                        ),
                    ),
                    "median effect": ", ".join(
                        f"{a} {d}: {number(e)}"
                        for a, d, e in zip(sub.get("activation", []), sub.get("depth", []), sub.get("effect", []))
                    ),
                }
            )
    return pd.DataFrame(rows)


def verdict_cells(source) -> pd.DataFrame:
    """The verdict map's cells: each remedy (rows) × what it should do (columns), over its cases."""
    c = remedy_cases(source)
    v = verdicts(source)
    rows = []
    for r in v.itertuples(index=False):
        sub = c[(c["remedy"] == r.remedy) & (c["claim"] == r.claim)] if not c.empty else c
        unit = "log10 steps ratio" if r.claim == "faster" else "|log10 r_twin| − |log10 r_remedy|"
        rows.append({"row": r.remedy, "column": r.claim, "verdict": r.verdict, "unit": unit, **cells_from_cases(sub)})
    return pd.DataFrame(rows, columns=COLUMNS)


def steps_table(source) -> pd.DataFrame:
    """Median steps to the target per remedy, activation and depth (never reached: inf)."""
    pr = per_run(load(source))
    rows = []
    for (remedy, act, depth), g in pr.groupby(["remedy", "activation", "depth"]):
        v = np.where(g["steps"] < g["beyond"], g["steps"], np.inf)
        rows.append(
            {
                "remedy": remedy,
                "activation": act,
                "depth": depth,
                "n": len(v),
                "n_reached": int(np.isfinite(v).sum()),
                "median": float(np.median(v)),
                "target": float(g["target"].median()),
            }
        )
    return pd.DataFrame(rows)

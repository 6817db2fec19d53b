"""The remedies section of the report: what ran, how it is decided, the verdicts with their
numbers, both figures (its prose: ``prose.md``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import effects_grid, number, span
from mlplab.analysis.studies.remedies.arms import REMEDIES
from mlplab.analysis.studies.remedies.compare import CLAIMS, PROSE, pairs, per_run, remedy_cases, verdicts
from mlplab.analysis.studies.remedies.figures import TITLES
from mlplab.analysis.verdicts import describe_level

SECTION = PROSE("section")


def _effects_grid(c: pd.DataFrame) -> pd.DataFrame:
    """Cases as one row per (remedy, claim), one column per (twin activation, depth)."""
    return effects_grid(c, ["remedy", "claim"])


def highlights(v: pd.DataFrame) -> list[str]:
    """One computed sentence per claim: which remedies reproduce it, which only sometimes,
    which not, which are undecided."""
    out = []
    for claim, g in v.groupby("claim", sort=False):
        groups = {}
        for r, text in zip(g["remedy"], g["verdict"]):
            kind = (
                "reproduced"
                if text == "reproduced"
                else "only in some cases"
                if text.startswith("reproduced")
                else "not reproduced"
                if text == "not reproduced"
                else "not tested"
                if text.startswith("not tested")
                else "undecided"
            )
            groups.setdefault(kind, []).append(r)
        out.append(f"**{claim}**: " + "; ".join(f"{k} — {', '.join(rs)}" for k, rs in groups.items()) + ".")
    return out


def along(pr: pd.DataFrame) -> str:
    """'adam: lr 0.001 (twin 0.5)': each field a remedy brings along, its values in the remedy's
    pairs and in their twins'; '' when no remedy in ``pr`` brings any."""
    parts = []
    for remedy, arm in REMEDIES.items():
        p = pairs(pr, remedy) if arm.along else pd.DataFrame()
        for f in arm.along if not p.empty else ():
            a, b = (", ".join(number(v) for v in sorted(p[f"{f}_{s}"].unique())) for s in "ab")
            parts.append(f"{remedy}: {f} {a} (twin {b})")
    return "; ".join(parts)


def sections(res, made: dict[str, list[Path]]) -> list[Block]:
    """The remedies section of the report, with the figures ``made`` (name -> [png, svg])."""
    c = remedy_cases(res)
    pr = per_run(res)
    v = verdicts(res)
    ran = {
        "n": len(pr),
        "activations": ", ".join(sorted(set(c["activation"]))),
        "depths": ", ".join(map(str, sorted(pr["depth"].unique()))),
        "remedies": ", ".join(r for r in REMEDIES if r in set(pr["remedy"])),
        "seeds": span(pr.groupby(["remedy", "activation", "depth"]).size()),
        "datasets": ", ".join(sorted(pr["dataset"].unique())),
    }
    held = [r for r in REMEDIES if r in set(c["remedy"])]
    absent = [r for r in REMEDIES if r not in held]
    v = v[v["remedy"].isin(held)]
    grid = v.pivot(index="remedy", columns="claim", values="verdict").reindex(index=held, columns=list(CLAIMS))
    grid = grid.reset_index().rename_axis(columns=None)
    brought = along(pr)
    out = [
        Block("h2", SECTION),
        Block("p", PROSE("intro", **ran)),
        *([Block("p", PROSE("along", along=brought))] if brought else []),
        Block(
            "list",
            [f"**{k}**: {t}." for k, t in CLAIMS.items()] + [PROSE("effects", decision=describe_level())],
        ),
        Block("h3", PROSE("verdicts")),
        Block("table", grid),
        Block("list", highlights(v) + ([PROSE("absent", remedies=", ".join(absent))] if absent else [])),
        Block("h3", PROSE("cases")),
        Block("table", _effects_grid(c)),
    ]
    for name, paths in made.items():
        out.append(Block("figure", paths[0], f"**{TITLES[name]}.** {PROSE(name)}"))
    return out

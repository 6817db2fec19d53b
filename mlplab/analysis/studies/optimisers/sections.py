"""The optimisers section of the report: the answer in one paragraph with its evidence, what ran,
how rates were chosen and claims decided, the verdicts per data set, the rates, the steps to the
target, every case, both figures (its prose: ``prose.md``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import number
from mlplab.analysis.studies.optimisers.compare import (
    CLAIMS,
    PROSE,
    all_runs,
    arm_order,
    best_rates,
    cases,
    per_run,
    steps_table,
    verdicts,
)
from mlplab.analysis.studies.optimisers.figures import TITLES
from mlplab.analysis.verdicts import category, describe_level

SECTION = PROSE("section")


def _span(x: pd.Series) -> str:
    return f"{x.min()}" if x.min() == x.max() else f"{x.min()}–{x.max()}"


def _overall(v: pd.DataFrame, claim: str) -> str:
    """A claim's verdicts over the data sets in a few words: 'reproduced on blobs and mnist',
    'reproduced on blobs, in some cases on mnist'."""
    g = v[v["claim"] == claim]
    by_kind: dict[str, list[str]] = {}
    for ds, text in zip(g["dataset"], g["verdict"]):
        by_kind.setdefault(category(text), []).append(ds)
    return ", ".join(f"{kind} on {' and '.join(dss)}" for kind, dss in by_kind.items())


def _median(pr: pd.DataFrame, arm: str, col: str, log: bool = False) -> str:
    x = pr.loc[pr["optimiser"] == arm, col].to_numpy(float)
    x = x[np.isfinite(x) & (x > 0)]
    if not len(x):
        return "–"
    return number(float(np.median(np.abs(np.log10(x))))) if log else f"{float(np.median(x)):.2g}"


def answer(res) -> str:
    """The study's answer in one paragraph, from its verdicts and medians."""
    v, pr = verdicts(res), per_run(res)
    arms = set(pr["optimiser"])
    eps_arm = next((a for a in arm_order(arms) if a.startswith("adam ε=")), None)
    eps = PROSE("answer_eps", u_eps=f"{_median(pr, eps_arm, 'u_end', log=True)} decades ({eps_arm})") if eps_arm else ""
    texts = {
        "b_text": PROSE(
            "answer_b", b=_overall(v, "b"), g_adam=_median(pr, "adam", "g_end"), g_sgd=_median(pr, "sgd", "g_end")
        ),
        "a_text": PROSE(
            "answer_a",
            a=_overall(v, "a"),
            u_adam=_median(pr, "adam", "u_end", log=True),
            u_sgd=_median(pr, "sgd", "u_end", log=True),
            eps=eps,
        ),
        "c_text": PROSE("answer_c", c=_overall(v, "c")),
    }
    b = v.loc[v["claim"] == "b", "verdict"]
    b_holds = any(category(text) in ("reproduced", "in some cases") for text in b)
    return PROSE("answer_hides" if b_holds else "answer_cures", **texts)


def _effects_grid(c: pd.DataFrame) -> pd.DataFrame:
    """Cases as rows (claim, data set, optimiser, versus, phase) × columns (activation depth):
    'median [low, high]' with a mark for the decision."""
    mark = {True: " ✔", False: " ✘"}
    d = c.assign(
        case=[f"{a} {d}" for a, d in zip(c["activation"], c["depth"])],
        cell=[
            f"{number(e)} [{number(lo)}, {number(hi)}]{mark.get(h, '')}"
            for e, lo, hi, h in zip(c["effect"], c["low"], c["high"], c["holds"])
        ],
    ).fillna({"versus": "", "phase": ""})
    index = ["claim", "dataset", "optimiser", "versus", "phase"]
    g = d.pivot_table(index=index, columns="case", values="cell", aggfunc="first", sort=False)
    cols = sorted(g.columns, key=lambda s: (s.split()[0], int(s.split()[1])))
    return g[cols].reset_index().rename_axis(columns=None)


def _reach(t: pd.DataFrame) -> pd.DataFrame:
    """Median steps (k/n) per data set, activation and optimiser (rows) × depth (columns)."""
    t = t.assign(
        cell=[
            "never" if k == 0 else f"{'never' if np.isinf(m) else f'{m:.0f}'} ({k}/{n})"
            for m, k, n in zip(t["median"], t["n_reached"], t["n"])
        ]
    )
    g = t.pivot_table(index=["dataset", "activation", "optimiser"], columns="depth", values="cell", aggfunc="first")
    g.columns = [f"depth {c}" for c in g.columns]
    return g.reset_index()


def _rates(b: pd.DataFrame) -> pd.DataFrame:
    g = b.assign(cell=[f"{number(r)}{' (edge)' if e else ''}" for r, e in zip(b["lr"], b["at grid edge"])])
    t = g.pivot_table(index=["dataset", "activation", "optimiser"], columns="depth", values="cell", aggfunc="first")
    t.columns = [f"depth {c}" for c in t.columns]
    return t.reset_index()


def sections(res, made: dict[str, list[Path] | str]) -> list[Block]:
    """The optimisers section, with the figures ``made`` (name -> [png, svg], or a note)."""
    pr, c, v, b = per_run(res), cases(res), verdicts(res), best_rates(res)
    arms = arm_order(pr["optimiser"])
    grids = "; ".join(f"{a} {b.loc[b['optimiser'] == a, 'rates tried'].iloc[0]}" for a in arms)
    edge = int(b["at grid edge"].sum())
    ran = {
        "n": len(all_runs(res)),
        "chosen": len(pr),
        "optimisers": ", ".join(arms),
        "activations": ", ".join(sorted(pr["activation"].unique())),
        "depths": ", ".join(map(str, sorted(pr["depth"].unique()))),
        "width": ", ".join(map(str, sorted(pr["width"].unique()))),
        "datasets": ", ".join(sorted(pr["dataset"].unique())),
        "seeds": _span(pr.groupby(["dataset", "activation", "depth", "optimiser"]).size()),
    }
    grid = v.pivot(index="claim", columns="dataset", values="verdict").reindex(list(CLAIMS))
    grid.index = [f"({k}) {CLAIMS[k]}" for k in grid.index]
    grid = grid.reset_index(names="claim").rename_axis(columns=None)
    out = [
        Block("h2", SECTION),
        Block("p", PROSE("intro", **ran)),
        Block(
            "p",
            PROSE(
                "rule",
                grids=grids,
                edge=PROSE("edge", k=edge, n=len(b)) if edge else PROSE("no_edge"),
            ),
        ),
        Block("list", [f"**({k})** {t}." for k, t in CLAIMS.items()] + [PROSE("effects", decision=describe_level())]),
        Block("h3", PROSE("verdicts")),
        Block("table", grid),
        Block("h3", PROSE("reach")),
        Block("table", _reach(steps_table(res))),
        Block("h3", PROSE("rates")),
        Block("table", _rates(b)),
        Block("h3", PROSE("cases")),
        Block("table", _effects_grid(c) if not c.empty else c),
    ]
    for name, paths in made.items():
        if isinstance(paths, str):
            out.append(Block("p", f"**{TITLES[name]}**: {paths}"))
        else:
            out.append(Block("figure", paths[0], f"**{TITLES[name]}.** {PROSE(name)}"))
    return out

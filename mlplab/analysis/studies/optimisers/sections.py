"""The optimisers section of the report: the answer in one paragraph with its evidence, what ran,
how rates were chosen and claims decided, the verdicts per data set, the rates, the steps to the
target, every case, both figures (its prose: ``prose.md``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import effects_grid, number, reached, span
from mlplab.analysis.plots import ACT_ORDER, ordered
from mlplab.analysis.studies.optimisers.compare import (
    CLAIMS,
    KEYS,
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


def _overall(v: pd.DataFrame, claim: str) -> str:
    """A claim's verdicts over the data sets in a few words: 'reproduced on blobs and mnist',
    'reproduced on blobs, in some cases on mnist'."""
    g = v[v["claim"] == claim]
    by_kind: dict[str, list[str]] = {}
    for ds, text in zip(g["dataset"], g["verdict"]):
        by_kind.setdefault(category(text), []).append(ds)
    return ", ".join(f"{kind} on {' and '.join(dss)}" for kind, dss in by_kind.items())


def ratio_text(log10_values) -> str:
    """The median of log10 ratios as a ratio: '3e-06', '0.8'."""
    x = np.asarray(log10_values, float)
    x = x[np.isfinite(x)]
    return "–" if not len(x) else f"{10 ** float(np.median(x)):.1g}"


def decades(log10_values) -> str:
    """The median distance from 1 of ratios given as log10: '14.8 decades'."""
    x = np.abs(np.asarray(log10_values, float))
    x = x[np.isfinite(x)]
    return "–" if not len(x) else f"{float(np.median(x)):.1f} decades"


def describe_cells(cells: pd.DataFrame) -> str:
    """Cells (dataset, activation, depth) in words: 'sigmoid at depth 8, 16, 32; tanh at depth 32',
    per data set where they differ ('blobs: …; mnist: …')."""

    def one(d: pd.DataFrame) -> str:
        acts = ordered(d["activation"], ACT_ORDER)
        return "; ".join(
            f"{a} at depth {', '.join(str(x) for x in sorted(d.loc[d['activation'] == a, 'depth']))}" for a in acts
        )

    per = {ds: one(g) for ds, g in cells.groupby("dataset")}
    if len(set(per.values())) == 1:
        return next(iter(per.values())) + ("" if len(per) == 1 else f", on {' and '.join(per)}")
    return "; ".join(f"{ds}: {text}" for ds, text in per.items())


def answer(res) -> str:
    """The study's answer in one paragraph, over the cells (data set, activation, depth): where
    adam's steps are level (its median first-to-last update ratio after training within ×10 of 1,
    claim a's bound) and its median run reaches the target; where they are level but it does not
    reach it; where they are not; each group with its numbers, then the claims' verdicts."""
    pr, v, t = per_run(res), verdicts(res), steps_table(res)
    lg = pd.DataFrame({c: np.log10(pr[c].astype(float).where(pr[c] > 0)) for c in ("g_init", "g_end", "u_end")})
    lg = lg.join(pr[[*KEYS, "optimiser", "final_test_accuracy"]])
    adam = t[t["optimiser"] == "adam"].set_index(KEYS)
    level = lg[lg["optimiser"] == "adam"].groupby(KEYS)["u_end"].apply(lambda x: np.nanmedian(np.abs(x)) <= 1.0)
    adam = adam.assign(level=level.reindex(adam.index).fillna(False).astype(bool))
    adam = adam.assign(reached=np.isfinite(adam["median"].to_numpy(float))).reset_index()
    groups = {
        "cured": adam[adam["level"] & adam["reached"]],
        "partial": adam[adam["level"] & ~adam["reached"]],
        "hidden": adam[~adam["level"]],
    }

    def runs(cells: pd.DataFrame, arm: str) -> pd.DataFrame:
        on = lg.merge(cells[KEYS], on=KEYS)
        return on[on["optimiser"] == arm]

    def reach(cells: pd.DataFrame, arm: str) -> str:
        s = t[t["optimiser"] == arm].merge(cells[KEYS], on=KEYS)
        return f"{int(np.isfinite(s['median']).sum())} of {len(s)}"

    def init(cells: pd.DataFrame) -> pd.Series:
        return runs(cells, "adam").groupby(KEYS)["g_init"].median()

    parts = dict.fromkeys(groups, "")
    headline = "headline_cures"
    cells = groups["cured"]
    if len(cells):
        parts["cured"] = PROSE(
            "answer_cured",
            n=len(cells),
            cells=len(adam),
            where=describe_cells(cells),
            g_init=f"{10 ** init(cells).min():.1g}",
            sgd_reach=reach(cells, "sgd"),
            g_adam=ratio_text(runs(cells, "adam")["g_end"]),
            g_sgd=ratio_text(runs(cells, "sgd")["g_end"]),
        )
    cells = groups["partial"]
    if len(cells):
        parts["partial"] = PROSE(
            "answer_partial",
            n=len(cells),
            where=describe_cells(cells),
            g_adam=ratio_text(runs(cells, "adam")["g_end"]),
            g_sgd=ratio_text(runs(cells, "sgd")["g_end"]),
            acc_adam=f"{runs(cells, 'adam')['final_test_accuracy'].median():.2f}",
            acc_sgd=f"{runs(cells, 'sgd')['final_test_accuracy'].median():.2f}",
        )
    cells = groups["hidden"]
    if len(cells):
        eps_arm = next((a for a in arm_order(pr["optimiser"]) if a.startswith("adam ε=")), None)
        eps, headline = "", "headline_hidden"
        if eps_arm:
            eps_steps = t[t["optimiser"] == eps_arm].merge(cells[KEYS], on=KEYS)
            if len(eps_steps) == len(cells) and np.isfinite(eps_steps["median"]).all():
                headline = "headline_eps_cures"
            eps = PROSE(
                "answer_eps",
                eps_value=eps_arm.split("ε=", 1)[1],
                u_eps=decades(runs(cells, eps_arm)["u_end"]),
                g_eps=ratio_text(runs(cells, eps_arm)["g_end"]),
                eps_reach=reach(cells, eps_arm),
            )
        parts["hidden"] = PROSE(
            "answer_hidden",
            n=len(cells),
            where=describe_cells(cells),
            g_lo=f"{10 ** init(cells).max():.1g}",
            g_hi=f"{10 ** init(cells).min():.1g}",
            u_adam=decades(runs(cells, "adam")["u_end"]),
            u_sgd=decades(runs(cells, "sgd")["u_end"]),
            eps=eps,
        )
    return PROSE("answer", headline=PROSE(headline), **parts, **{k: _overall(v, k) for k in CLAIMS})


def _effects_grid(c: pd.DataFrame) -> pd.DataFrame:
    """Cases as rows (claim, data set, optimiser, versus, phase) × columns (activation depth)."""
    return effects_grid(c.fillna({"versus": "", "phase": ""}), ["claim", "dataset", "optimiser", "versus", "phase"])


def _by_depth(t: pd.DataFrame, cells: list[str]) -> pd.DataFrame:
    """``cells`` (one per row of ``t``) in a grid: data set, activation, optimiser × 'depth N'."""
    g = t.assign(cell=cells).pivot_table(
        index=["dataset", "activation", "optimiser"], columns="depth", values="cell", aggfunc="first"
    )
    g.columns = [f"depth {c}" for c in g.columns]
    return g.reset_index()


def _reach(t: pd.DataFrame) -> pd.DataFrame:
    """Median steps (k/n) per data set, activation and optimiser (rows) × depth (columns)."""
    return _by_depth(t, [reached(m, k, n) for m, k, n in zip(t["median"], t["n_reached"], t["n"])])


def _rates(b: pd.DataFrame) -> pd.DataFrame:
    """The chosen rate per data set, activation and optimiser × depth, '(edge)' at an end of its grid."""
    return _by_depth(b, [f"{number(r)}{' (edge)' if e else ''}" for r, e in zip(b["lr"], b["at grid edge"])])


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
        "seeds": span(pr.groupby(["dataset", "activation", "depth", "optimiser"]).size()),
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

"""The isometry section of the report: the answer with its evidence, what ran, how the claims are
decided, the verdicts, the moments against theory, the finite-width gap, the steps to the target,
every case, and the four figures (its prose: ``prose.md``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import number
from mlplab.analysis.prose import Prose
from mlplab.analysis.studies.isometry.figures import TITLES, point_order
from mlplab.analysis.studies.isometry.measures import (
    TARGET,
    TOL_M1,
    TOL_SPREAD,
    ZERO_SPREAD,
    all_cases,
    claim_cases,
    depth_runs,
    moments_table,
    steps_table,
    trained_runs,
    verdicts,
    width_runs,
    width_table,
)
from mlplab.analysis.verdicts import category, describe_level

PROSE = Prose.of(__package__)
SECTION = PROSE("section")


def _values(x) -> str:
    return ", ".join(number(v) for v in sorted(set(x)))


def what_ran(res) -> list[str]:
    """One line per part of the study that the folder holds."""
    out = []
    d = depth_runs(res)
    if not d.empty:
        samples = int((d["n_values"] / d[["width", "n_features"]].min(axis=1)).median())
        out.append(
            PROSE(
                "run.depth",
                runs=len(d),
                widths=_values(d["width"]),
                depths=_values(d["depth"]),
                points="; ".join(point_order(d["point"])),
                seeds=d["seed"].nunique(),
                samples=samples,
            )
        )
    w = width_runs(res)
    if not w.empty:
        out.append(
            PROSE(
                "run.width",
                runs=len(w),
                depth=int(w["depth"].iloc[0]),
                widths=_values(w["width"]),
                points="; ".join(point_order(w["point"])),
                seeds=w["seed"].nunique(),
            )
        )
    t = trained_runs(res)
    if not t.empty:
        out.append(
            PROSE(
                "run.train",
                runs=len(t),
                widths=_values(t["width"]),
                depths=_values(t["depth"]),
                dataset=t["dataset"].iloc[0],
                n_train=int(t["n_samples"].iloc[0] * (1 - t["test_fraction"].iloc[0])),
                batch=int(t["batch_size"].iloc[0]),
                n_steps=int(t["n_steps"].iloc[0]),
                rates=_values(t["lr"]),
                seeds=t["seed"].nunique(),
                eval_every=int(t["eval_every"].iloc[0]),
            )
        )
    return out


def _median_at(d: pd.DataFrame, point: str, init: str, depth: int, col: str) -> float:
    g = d[(d["point"] == point) & (d["init"] == init) & (d["depth"] == depth)]
    return float(g[col].median()) if len(g) else math.nan


def _short(verdict: str) -> str:
    """A verdict in a few words for the answer: its kind, with the conditions when partial."""
    kind = category(verdict)
    return verdict if kind == "in some cases" else kind


def answer(res) -> str | None:
    """The study's answer in one paragraph, its numbers computed from the folder."""
    d, v = depth_runs(res), verdicts(res)
    if d.empty:
        return None
    deep = int(d["depth"].max())
    tanh = next((p for p in point_order(d["point"]) if p.startswith("tanh, q* = 1/")), None)
    relu = "relu" if "relu" in set(d["point"]) else None
    cases = claim_cases(res)["a"]
    verdict_of = dict(zip([c[1] for c in v["claim"]], v["verdict"]))
    t = steps_table(res)

    def steps(init: str) -> str:
        """Median steps at each depth, at the better of the learning rates."""
        if t.empty:
            return "–"
        per_depth = t[t["init"] == init].groupby("depth")["median steps"].min()
        if not np.isfinite(per_depth).any():
            return f"none within {int(t['n_steps'].max())} steps at depth " + " or ".join(
                str(x) for x in per_depth.index
            )
        return " and ".join(
            f"{number(x)} steps at depth {depth}"
            if np.isfinite(x)
            else f"none within {int(t['n_steps'].max())} at depth {depth}"
            for depth, x in per_depth.items()
        )

    def cond(init: str) -> str:
        x = _median_at(d, tanh, init, deep, "log10_cond") if tanh else math.nan
        if not math.isfinite(x):
            return "–"
        resolved = -math.log10(np.finfo(float).eps)  # an SVD resolves s down to ε × the largest
        return f"{10**x:.3g}" if x < resolved else f"more than 10^{resolved:.0f} (beyond the SVD's resolution)"

    vd = _short(verdict_of.get("d", "not tested"))
    headline = (
        PROSE("headline.yes") if category(verdict_of.get("d", "")) == "reproduced" else PROSE("headline.partly", vd=vd)
    )
    return PROSE(
        "answer",
        headline=headline,
        a_holds=int((cases["holds"] == True).sum()),  # noqa: E712
        a_cases=len(cases),
        tol_m1=number(TOL_M1),
        deep=deep,
        gauss_spread=number(_median_at(d, tanh, "normal", deep, "spread")) if tanh else "–",
        orth_spread=number(_median_at(d, tanh, "orthogonal", deep, "spread")) if tanh else "–",
        orth_theory=number(_median_at(d, tanh, "orthogonal", deep, "theory_spread")) if tanh else "–",
        orth_cond=cond("orthogonal"),
        gauss_cond=cond("normal"),
        relu_gauss=number(_median_at(d, relu, "normal", deep, "spread")) if relu else "–",
        relu_orth=number(_median_at(d, relu, "orthogonal", deep, "spread")) if relu else "–",
        train_depths=" and ".join(str(int(x)) for x in sorted(t["depth"].unique())) if not t.empty else "–",
        target=number(TARGET),
        orth_steps=steps("orthogonal"),
        gauss_steps=steps("normal"),
        va=_short(verdict_of.get("a", "not tested")),
        vb=_short(verdict_of.get("b", "not tested")),
        vc=_short(verdict_of.get("c", "not tested")),
        vd=vd,
    )


def short_moments(res) -> pd.DataFrame:
    """The moments table at three depths (shallowest, 16 or the middle, deepest) for the report."""
    m = moments_table(res)
    if m.empty:
        return m
    depths = sorted(m["depth"].unique())
    keep = {depths[0], min(depths, key=lambda x: abs(x - 16)), depths[-1]}
    m = m[m["depth"].isin(keep)].copy()
    m["point"] = pd.Categorical(m["point"], point_order(m["point"]))
    return m.sort_values(["point", "init", "depth"]).drop(columns=["spread min", "spread max"])


def sections(res, figures: dict) -> list[Block]:
    if depth_runs(res).empty and trained_runs(res).empty:
        return [Block("h2", SECTION), Block("p", PROSE("no_runs", folder=res.path))]
    out = [Block("h2", SECTION), Block("p", PROSE("intro")), Block("list", what_ran(res))]
    out.append(
        Block(
            "p",
            PROSE(
                "how",
                level=describe_level(),
                tol_m1=number(TOL_M1),
                tol_spread=number(TOL_SPREAD),
                zero=f"{ZERO_SPREAD:g}",
                target=number(TARGET),
            ),
        )
    )
    out.append(Block("table", verdicts(res)))
    for name in ("iso_density", "iso_spread"):
        made = figures.get(name)
        if isinstance(made, list):
            out.append(Block("figure", made[0], f"**{TITLES[name]}.** {PROSE(name)}"))
    m = short_moments(res)
    if not m.empty:
        out += [Block("p", PROSE("moments.caption")), Block("table", m.reset_index(drop=True))]
    w = width_table(res)
    if not w.empty:
        out += [Block("p", PROSE("width.caption")), Block("table", w)]
        made = figures.get("iso_width")
        if isinstance(made, list):
            out.append(Block("figure", made[0], f"**{TITLES['iso_width']}.** {PROSE('iso_width')}"))
    t = steps_table(res)
    if not t.empty:
        out += [Block("p", PROSE("steps.caption", target=number(TARGET))), Block("table", t)]
        made = figures.get("iso_steps")
        if isinstance(made, list):
            out.append(Block("figure", made[0], f"**{TITLES['iso_steps']}.** {PROSE('iso_steps')}"))
    cases = all_cases(res)
    if not cases.empty:
        out.append(Block("details", [Block("table", cases)], f"Every case behind the verdicts ({len(cases)})"))
    return out

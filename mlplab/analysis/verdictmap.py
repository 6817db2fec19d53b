"""The verdict map: a study's claims (rows) × data sets or conditions (columns), each cell coloured
by its verdict's kind, labelled with its effect and interval; as a static figure and as a chart.

A study gives its cells (``verdict_cells``) as a table with ``COLUMNS``: ``row`` and ``column``
name the cell; ``verdict`` is the text ``mlplab.analysis.verdicts.verdict`` wrote; ``effect`` is
the median over the cell's cases of their median effects, ``low`` and ``high`` the smallest and
largest of those (one case: its own interval), in ``unit``; ``cases``, ``holds``, ``fails``,
``undecided`` count the cases. ``category`` is added here from the verdict's text.
"""

from __future__ import annotations

import math
from pathlib import Path

import altair as alt
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch, Rectangle

from mlplab.analysis.charts import Chart
from mlplab.analysis.fmt import number
from mlplab.analysis.plots import save, style
from mlplab.analysis.verdicts import CATEGORIES, category

COLUMNS = ["row", "column", "verdict", "effect", "low", "high", "unit", "cases", "holds", "fails", "undecided"]


def cells_from_cases(cases: pd.DataFrame, effect: str = "effect") -> dict:
    """The numbers of one cell from its cases (``effect``, ``low``, ``high``, ``holds``: True,
    False or missing per case): median effect, its range or the one case's interval, counts."""
    e = cases[effect].to_numpy(float)
    e = e[~np.isnan(e)]
    holds = cases["holds"] if "holds" in cases else pd.Series(dtype=object)
    decided = holds.dropna().astype(bool)
    one = len(cases) == 1
    return {
        "effect": float(np.median(e)) if len(e) else math.nan,
        "low": float(cases["low"].iloc[0]) if one else (float(e.min()) if len(e) else math.nan),
        "high": float(cases["high"].iloc[0]) if one else (float(e.max()) if len(e) else math.nan),
        "cases": len(cases),
        "holds": int(decided.sum()),
        "fails": int((~decided).sum()),
        "undecided": len(cases) - len(decided),
    }


def with_categories(cells: pd.DataFrame) -> pd.DataFrame:
    out = cells[COLUMNS].copy()
    out["category"] = out["verdict"].map(category)
    out["label"] = [label(r) for r in out.itertuples()]
    return out


def label(r) -> str:
    """A cell's text: its kind, then 'effect [low, high]' and 'k/n hold' when it has cases."""
    lines = [r.category]
    if r.cases and not math.isnan(r.effect):
        lines.append(f"{number(r.effect)} [{number(r.low)}, {number(r.high)}]")
        lines.append(f"{r.holds}/{r.cases} hold" + (f", {r.fails} fail" if r.fails else ""))
    return "\n".join(lines)


def _order(values) -> list:
    return list(pd.unique(pd.Series(values)))


def figure(cells: pd.DataFrame, title: str):
    """The static map (matplotlib): one coloured, labelled square per cell, the legend below."""
    cells = with_categories(cells)
    rows, cols = _order(cells["row"]), _order(cells["column"])
    fig, ax = plt.subplots(figsize=(min(1.1 + 1.35 * len(cols), 8.0), 0.5 + 0.62 * len(rows)))
    for r in cells.itertuples():
        i, j = rows.index(r.row), cols.index(r.column)
        ax.add_patch(Rectangle((j, i), 1, 1, facecolor=CATEGORIES[r.category], edgecolor="#888", lw=0.6))
        dark = r.category in ("reproduced",)
        ax.text(j + 0.5, i + 0.5, r.label, ha="center", va="center", fontsize=7, color="white" if dark else "#222")
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(len(cols)) + 0.5, [str(c) for c in cols])
    ax.set_yticks(np.arange(len(rows)) + 0.5, [str(r) for r in rows])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(title, fontsize=10, loc="left", pad=26)  # above the column labels (ticks on top)
    handles = [Patch(facecolor=c, edgecolor="#888", label=k) for k, c in CATEGORIES.items()]
    ax.legend(handles=handles, loc="upper center", ncol=6, fontsize=7.5, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.subplots_adjust(left=0.02, right=0.98, top=0.86, bottom=0.16)  # saved with a tight box
    return fig


def save_figure(cells: pd.DataFrame, title: str, folder: Path, name: str) -> list[Path]:
    with style():
        return save(figure(cells, title), folder, name)


def draw(cells: pd.DataFrame, title: str = "") -> alt.TopLevelMixin:
    """The interactive map: hover a cell for its verdict in words, effect, interval and counts."""
    rows, cols = _order(cells["row"]), _order(cells["column"])
    base = alt.Chart(cells).encode(
        x=alt.X("column:N", sort=cols, title=None, axis=alt.Axis(orient="top", labelAngle=0, labelLimit=160)),
        y=alt.Y("row:N", sort=rows, title=None, axis=alt.Axis(labelLimit=320)),
    )
    scale = alt.Scale(domain=list(CATEGORIES), range=list(CATEGORIES.values()))
    rect = base.mark_rect(stroke="#888", strokeWidth=0.6).encode(
        color=alt.Color("category:N", scale=scale, title="verdict", legend=alt.Legend(orient="bottom")),
        tooltip=[
            alt.Tooltip("row:N", title="claim"),
            alt.Tooltip("column:N", title="where"),
            alt.Tooltip("verdict:N"),
            alt.Tooltip("effect:Q", format=".3g"),
            alt.Tooltip("low:Q", format=".3g", title="low (interval or case range)"),
            alt.Tooltip("high:Q", format=".3g", title="high"),
            alt.Tooltip("unit:N"),
            alt.Tooltip("cases:Q"),
            alt.Tooltip("holds:Q"),
            alt.Tooltip("fails:Q"),
            alt.Tooltip("undecided:Q"),
        ],
    )
    text = base.mark_text(fontSize=9.5, lineBreak="\n", lineHeight=12).encode(
        text="label:N",
        color=alt.condition("datum.category === 'reproduced'", alt.value("white"), alt.value("#222")),
    )
    size = {"width": min(max(150 * len(cols), 220), 900), "height": 60 * len(rows)}
    return (rect + text).properties(**size, title=alt.Title(title, anchor="start") if title else "")


def chart(cells: pd.DataFrame, name: str = "verdict_map", title: str = "") -> Chart:
    return Chart(name, with_categories(cells), lambda d: draw(d, title))

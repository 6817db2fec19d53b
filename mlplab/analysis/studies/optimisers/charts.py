"""The optimisers study's interactive figures, twins of ``figures``: O1 per layer, in every cell
of the sweep (the filter bar picks data set, activation and depth), and O2 per depth."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.charts import Chart, facet, legend_toggle, log_axis, log_scale, panel_width
from mlplab.analysis.studies.optimisers.compare import PHASES, arm_order, profiles, steps_table
from mlplab.analysis.studies.optimisers.figures import profile_setting

PALETTE = ["#1a1a1a", "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#949494"]
MEASURES = {"grad_w_norm": "‖∂C/∂Wˡ‖", "update_ratio": "‖ΔWˡ‖ / ‖Wˡ‖"}


def optimiser_scale(names) -> alt.Scale:
    shown = arm_order(names)
    return alt.Scale(domain=shown, range=[PALETTE[i % len(PALETTE)] for i in range(len(shown))])


def profile_rows(res) -> pd.DataFrame:
    """O1's rows: the median over seeds per cell, optimiser, phase, measure and layer (``value``),
    with the seeds' quartiles; values a log axis cannot show are left out."""
    p = profiles(load(res))
    if p.empty:
        return pd.DataFrame()
    long = p.melt(
        id_vars=["dataset", "activation", "depth", "optimiser", "lr", "phase", "layer"],
        value_vars=list(MEASURES),
        var_name="measure",
        value_name="v",
    )
    long = long[np.isfinite(long["v"]) & (long["v"] > 0)]
    keys = ["dataset", "activation", "depth", "optimiser", "lr", "phase", "measure", "layer"]
    q = long.groupby(keys)["v"].quantile([0.25, 0.5, 0.75]).unstack().reset_index()
    q = q.rename(columns={0.25: "q1", 0.5: "value", 0.75: "q3"})
    q["measure"] = q["measure"].map(MEASURES)
    q["cell"] = [f"{d} {a} {n}" for d, a, n in zip(q["dataset"], q["activation"], q["depth"])]
    return q


def draw_profiles(d: pd.DataFrame) -> alt.TopLevelMixin:
    """A line per optimiser and cell (the filter bar narrows the cells), log y; rows: the two
    measures, columns: the phases; hover for the quartiles."""
    sel, opacity = legend_toggle("optimiser")
    color = alt.Color("optimiser:N", scale=optimiser_scale(d["optimiser"]), title="optimiser")
    tips = [
        "optimiser:N",
        "dataset:N",
        "activation:N",
        "depth:Q",
        alt.Tooltip("lr:Q", format=".3g", title="learning rate"),
        "phase:N",
        "layer:Q",
        alt.Tooltip("value:Q", format=".3g", title="median"),
        alt.Tooltip("q1:Q", format=".3g", title="lower quartile"),
        alt.Tooltip("q3:Q", format=".3g", title="upper quartile"),
    ]
    line = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(size=14), strokeWidth=1.5)
        .encode(
            x=alt.X("layer:Q", title="layer l"),
            y=alt.Y("value:Q", scale=log_scale(), axis=log_axis("median over seeds")),
            color=color,
            detail="cell:N",
            opacity=opacity,
            tooltip=tips,
        )
        .add_params(sel)
        .properties(width=panel_width(d, "phase"), height=200)
    )
    cells = sorted(d["cell"].unique(), key=lambda c: (c.split()[0], c.split()[1], int(c.split()[2])))
    first = default_cell(d)
    pick = alt.param(
        name="cell_pick", value=first, bind=alt.binding_select(options=cells, name="cell (data, activation, depth) ")
    )
    chart = alt.layer(line.transform_filter("datum.cell == cell_pick"), data=d)
    return facet(
        chart, d, row="measure", column="phase", row_sort=list(MEASURES.values()), column_sort=list(PHASES.values())
    ).add_params(pick)


def default_cell(d: pd.DataFrame) -> str:
    """The cell the chart opens on: the static figure's (``figures.profile_setting``)."""
    at = profile_setting(d)
    return f"{at['dataset']} {at['activation']} {at['depth']}"


def steps_rows(res) -> pd.DataFrame:
    """O2's rows: per data set, activation, depth and optimiser the median steps to the target
    (missing when the median run never reaches it) and k/n runs reaching it."""
    t = steps_table(load(res))
    if t.empty:
        return t
    t = t.assign(median=t["median"].replace(np.inf, np.nan))
    t["reached"] = [f"{k}/{n}" for k, n in zip(t["n_reached"], t["n"])]
    return t


def draw_steps(d: pd.DataFrame) -> alt.TopLevelMixin:
    """Median steps against depth, a line per optimiser; rows: data sets, columns: activations."""
    sel, opacity = legend_toggle("optimiser")
    depths = sorted(int(v) for v in d["depth"].unique())
    tips = [
        "optimiser:N",
        "dataset:N",
        "activation:N",
        "depth:Q",
        alt.Tooltip("lr:Q", format=".3g", title="learning rate"),
        alt.Tooltip("median:Q", format=".0f", title="median steps"),
        alt.Tooltip("reached:N", title="runs reaching it"),
        alt.Tooltip("target:Q", format=".3f", title="target accuracy"),
    ]
    line = (
        alt.Chart()
        .mark_line(point=True, strokeWidth=1.8)
        .encode(
            x=alt.X(
                "depth:Q",
                scale=alt.Scale(type="log", base=2),
                axis=alt.Axis(values=depths),
                title="depth (hidden layers)",
            ),
            y=alt.Y("median:Q", scale=log_scale(), axis=log_axis("median steps to the target")),
            color=alt.Color("optimiser:N", scale=optimiser_scale(d["optimiser"]), title="optimiser"),
            opacity=opacity,
            tooltip=tips,
        )
        .add_params(sel)
        .properties(width=panel_width(d, "activation"), height=180)
    )
    return facet(alt.layer(line, data=d), d, row="dataset", column="activation")


def charts(res) -> dict[str, Chart]:
    """O1 and O2 as charts, those the folder has runs for."""
    out = {}
    prof = profile_rows(res)
    if not prof.empty:
        out["opt_profiles"] = Chart(
            "opt_profiles", prof, draw_profiles, "Pick a cell (data set, activation, depth) under the chart."
        )
    steps = steps_rows(res)
    if not steps.empty:
        note = "A median run that never reaches the target is left out."
        out["opt_steps"] = Chart("opt_steps", steps, draw_steps, note)
    return out

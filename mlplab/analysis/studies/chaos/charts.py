"""The edge-of-chaos study's interactive figures, twins of ``figures``: each run's per-layer
rate of ln ‖∂C/∂b^l‖² over σ_w² × σ_b² against the critical line (``chaos_heatmap``), and each
trained run over σ_w² × depth against multiples of ξ_c (``chaos_trainability``)."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.charts import Chart, facet, legend_toggle
from mlplab.analysis.plots import cell_edges
from mlplab.analysis.studies.chaos.figures import critical_line, heatmap_data, trainability_data, xi_c_curve
from mlplab.analysis.studies.chaos.measures import (
    ACC_TARGET,
    RATE_TOL,
    TRAIN_MULTIPLE,
    decay_table,
    run_rates,
    trainability_table,
)
from mlplab.analysis.studies.chaos.select import train_runs

CRIMSON = "#dc143c"


def finite(d: pd.DataFrame) -> pd.DataFrame:
    """``d`` with ±inf as missing and its text columns as strings, whose missing values the
    page's JSON writes as null (it has no NaN or infinity: ξ_c on the critical line, the run id
    of a theory row)."""
    d = d.replace([np.inf, -np.inf], np.nan)
    text = [c for c in d if d[c].dtype == object and d[c].dropna().map(type).eq(str).all()]
    return d.astype(dict.fromkeys(text, "string"))


def _edges(values, log: bool = False) -> dict:
    """Each cell centre's (low, high) edges (``cell_edges``; on a log scale when ``log``)."""
    v = np.asarray(sorted(set(values)), float)
    e = np.exp(cell_edges(np.log(v))) if log else cell_edges(v)
    return {c: (e[i], e[i + 1]) for i, c in enumerate(v)}


def heatmap_rows(res, table: pd.DataFrame | None = None, rates: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of ``chaos_heatmap``: one per single-input run of the figure's setting (its first
    activation, width, depth), with its measured ``rate``, ln χ1 of its cell, ``diff`` = rate −
    ln χ1, ``path_diff`` = its mean-field rate − ln χ1 and its cell's edges; then the theory's
    critical line χ1 = 1 (rows without run_id)."""
    t = heatmap_data(decay_table(res) if table is None else table)
    rates = run_rates(load(res)) if rates is None else rates
    keys = ["activation", "width", "depth", "sigma_w", "sigma_b"]
    runs = rates.merge(t[[*keys, "sigma_w2", "sigma_b2", "log_chi1"]], on=keys)
    runs = runs.assign(diff=runs["rate"] - runs["log_chi1"], path_diff=runs["rate_path"] - runs["log_chi1"])
    xs, ys = _edges(t["sigma_w2"]), _edges(t["sigma_b2"])
    runs["x_lo"], runs["x_hi"] = zip(*(xs[x] for x in runs["sigma_w2"]))
    runs["y_lo"], runs["y_hi"] = zip(*(ys[y] for y in runs["sigma_b2"]))
    cols = ["run_id", "seed", "activation", "depth", "width", "sigma_w", "sigma_w2", "sigma_b2", "rate", "log_chi1"]
    cols += ["diff", "path_diff", "x_lo", "x_hi", "y_lo", "y_hi"]
    crit = critical_line(t["activation"].iloc[0], np.linspace(min(ys), max(ys), 13))
    crit = crit.assign(activation=t["activation"].iloc[0], depth=t["depth"].iloc[0])
    return finite(pd.concat([runs[cols], crit], ignore_index=True))


def draw_heatmap(d: pd.DataFrame) -> alt.TopLevelMixin:
    """Left: the median rate over seeds per (σ_w², σ_b²) cell (colour centred on 0) with the
    critical line; hover for the seeds' range. Right: each run's rate − ln χ1 against ln χ1 (dots;
    median and range over seeds, × the mean field along the same layers), one colour per σ_b²."""
    runs = alt.Chart().transform_filter("isValid(datum.run_id)")
    cells = runs.mark_rect(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("x_lo:Q", title="weight variance σ_w²", scale=alt.Scale(nice=False, zero=False)),
        x2="x_hi:Q",
        y=alt.Y("y_lo:Q", title="bias variance σ_b²", scale=alt.Scale(nice=False, zero=False)),
        y2="y_hi:Q",
        color=alt.Color(
            "median(rate):Q",
            scale=alt.Scale(scheme="viridis", domainMid=0),
            title=["measured rate of", "ln ‖∂C/∂bˡ‖² per layer"],
        ),
        tooltip=[
            alt.Tooltip("sigma_w2:Q", title="σ_w²"),
            alt.Tooltip("sigma_b2:Q", title="σ_b²"),
            alt.Tooltip("median(rate):Q", format=".4f", title="median rate"),
            alt.Tooltip("min(rate):Q", format=".4f", title="lowest seed"),
            alt.Tooltip("max(rate):Q", format=".4f", title="highest seed"),
            alt.Tooltip("count(rate):Q", title="seeds"),
            alt.Tooltip("mean(log_chi1):Q", format=".4f", title="ln χ1"),
        ],
    )
    line = (
        alt.Chart()
        .transform_filter("!isValid(datum.run_id)")
        .mark_line(color="black", strokeDash=[6, 3], strokeWidth=1.8)
        .encode(x="sigma_w2:Q", y="sigma_b2:Q", order="sigma_b2:Q", tooltip=["sigma_w2:Q", "sigma_b2:Q"])
    )
    left = alt.layer(cells, line, data=d).properties(width=300, height=260, title="measured rate; dashed: χ1 = 1")

    sel, opacity = legend_toggle("sigma_b2")
    color = alt.Color("sigma_b2:O", scale=alt.Scale(scheme="viridis"), title="σ_b²")
    x = alt.X("log_chi1:Q", title="theory: ln χ1 per layer")
    band = alt.Chart().mark_rect(color="#ebebeb").encode(y=alt.datum(-RATE_TOL), y2=alt.datum(RATE_TOL))
    dots = runs.mark_circle(size=18).encode(
        x=x,
        y=alt.Y("diff:Q", title="measured rate − ln χ1"),
        color=color,
        opacity=alt.condition(sel, alt.value(0.5), alt.value(0.05)),
        tooltip=["run_id:N", "seed:Q", "sigma_w2:Q", "sigma_b2:Q"]
        + [alt.Tooltip(f"{c}:Q", format=".4f") for c in ("rate", "log_chi1", "diff", "path_diff")],
    )
    spread = runs.mark_rule().encode(x=x, y="min(diff):Q", y2="max(diff):Q", color=color, opacity=opacity)
    median = runs.mark_point(filled=True, size=45).encode(x=x, y="median(diff):Q", color=color, opacity=opacity)
    field = runs.mark_point(shape="cross", size=40, angle=45).encode(
        x=x, y="median(path_diff):Q", color=color, opacity=opacity
    )
    right = alt.layer(band, dots, spread, median, field, data=d).add_params(sel)
    right = right.properties(width=300, height=260, title=f"measured − predicted (grey: ±{RATE_TOL:g}; ×: mean field)")
    return alt.hconcat(facet(left, d), facet(right, d)).resolve_scale(color="independent")


def trainability_rows(res, table: pd.DataFrame | None = None, multiple: float = TRAIN_MULTIPLE) -> pd.DataFrame:
    """Rows of ``chaos_trainability``: one per trained run of the figure's setting (its first
    activation, σ_b, width): ``trainable`` (1: finished with final training accuracy ≥
    ``ACC_TARGET``), its cell's edges (depth on a log scale) and a place for its dot in the cell;
    then the theory's curves ξ_c and multiple × ξ_c (``curve``, ``xi``) and the critical σ_w²."""
    t = trainability_data(trainability_table(res, multiple) if table is None else table)
    first = t.iloc[0]
    runs = train_runs(load(res))
    runs = runs[
        (runs["activation"] == first["activation"])
        & (runs["sigma_b"] == first["sigma_b"])
        & (runs["width"] == first["width"])
    ]
    runs = runs.assign(
        sigma_w2=np.round(runs["sigma_w"].astype(float) ** 2, 6),
        trainable=((runs["status"] == "ok") & (runs["final_accuracy"].astype(float) >= ACC_TARGET)).astype(int),
    ).sort_values(["depth", "sigma_w", "seed", "run_id"])
    xs, ys = _edges(t["sigma_w2"]), _edges(t["depth"], log=True)
    runs["x_lo"], runs["x_hi"] = zip(*(xs[x] for x in runs["sigma_w2"]))
    runs["y_lo"], runs["y_hi"] = zip(*(ys[y] for y in runs["depth"]))
    place = runs.groupby(["depth", "sigma_w2"]).cumcount() + 0.5
    size = runs.groupby(["depth", "sigma_w2"])["run_id"].transform("size")
    runs["dot_x"] = runs["x_lo"] + (runs["x_hi"] - runs["x_lo"]) * place / size
    runs["dot_y"] = runs["y_lo"] * (runs["y_hi"] / runs["y_lo"]) ** 0.2
    cols = ["run_id", "seed", "activation", "depth", "sigma_w", "sigma_w2", "status", "final_accuracy", "trainable"]
    cols += ["x_lo", "x_hi", "y_lo", "y_hi", "dot_x", "dot_y"]
    lo, hi = min(v[0] for v in xs.values()), max(v[1] for v in xs.values())
    curve = xi_c_curve(first["activation"], float(first["sigma_b"]), lo, hi)
    theory = pd.concat(
        [
            curve.assign(curve="ξ_c", xi=curve["xi_c"]),
            curve.assign(curve=f"{multiple:g} ξ_c", xi=multiple * curve["xi_c"]),
        ]
    )[["sigma_w2", "curve", "xi", "critical_sigma_w2"]]
    return finite(pd.concat([runs[cols], theory.assign(activation=first["activation"])], ignore_index=True))


def draw_trainability(d: pd.DataFrame) -> alt.TopLevelMixin:
    """Cells over σ_w² × depth (log) coloured by the fraction of seeds trainable, labelled k/n,
    one dot per run (filled: trainable; hover for its final accuracy); the theory's ξ_c curves
    (click the legend) and the critical σ_w² (χ1 = 1)."""
    runs = d[d["run_id"].notna()]
    ylo, yhi = float(runs["y_lo"].min()), float(runs["y_hi"].max())
    x = alt.X("x_lo:Q", title="weight variance σ_w²", scale=alt.Scale(nice=False, zero=False))
    y = alt.Y(
        "y_lo:Q",
        title="depth L (hidden layers, log scale)",
        scale=alt.Scale(type="log", domain=[ylo, yhi], nice=False),
        axis=alt.Axis(values=sorted(int(v) for v in runs["depth"].unique())),
    )
    keys = ["sigma_w2", "depth", "x_lo", "x_hi", "y_lo", "y_hi"]
    cell = (
        alt.Chart()
        .transform_filter("isValid(datum.run_id)")
        .transform_aggregate(k="sum(trainable)", n="count()", accuracy="median(final_accuracy)", groupby=keys)
        .transform_calculate(fraction="datum.k / datum.n", label="datum.k + '/' + datum.n")
    )
    tips = [
        alt.Tooltip("sigma_w2:Q", title="σ_w²"),
        "depth:Q",
        alt.Tooltip("k:Q", title="seeds trainable"),
        alt.Tooltip("n:Q", title="seeds"),
        alt.Tooltip("accuracy:Q", format=".3f", title="median final accuracy"),
    ]
    rect = cell.mark_rect(stroke="white", strokeWidth=0.5).encode(
        x=x,
        x2="x_hi:Q",
        y=y,
        y2="y_hi:Q",
        color=alt.Color(
            "fraction:Q",
            scale=alt.Scale(scheme="viridis", domain=[0, 1]),
            title=f"fraction trainable (accuracy ≥ {ACC_TARGET:g})",
        ),
        tooltip=tips,
    )
    text = cell.transform_calculate(x="(datum.x_lo + datum.x_hi) / 2", y="sqrt(datum.y_lo * datum.y_hi)")
    text = text.mark_text(fontSize=10).encode(
        x="x:Q",
        y="y:Q",
        text="label:N",
        color=alt.condition("datum.fraction > 0.6", alt.value("black"), alt.value("white")),
        tooltip=tips,
    )
    dots = (
        alt.Chart()
        .transform_filter("isValid(datum.run_id)")
        .transform_joinaggregate(k="sum(trainable)", n="count()", groupby=["sigma_w2", "depth"])
        .transform_calculate(ink="datum.k / datum.n > 0.6 ? 'black' : 'white'")
        .mark_point(size=14, strokeWidth=1)
        .encode(
            x="dot_x:Q",
            y="dot_y:Q",
            fill=alt.condition("datum.trainable == 1", alt.Fill("ink:N", scale=None), alt.value("transparent")),
            color=alt.Color("ink:N", scale=None),
            tooltip=["run_id:N", "seed:Q", "depth:Q", "sigma_w2:Q", "status:N"]
            + [alt.Tooltip("final_accuracy:Q", format=".3f"), "trainable:Q"],
        )
    )
    sel, opacity = legend_toggle("curve")
    curves = (
        alt.Chart()
        .transform_filter("isValid(datum.curve)")
        .mark_line(clip=True, strokeWidth=1.8)
        .encode(
            x="sigma_w2:Q",
            y="xi:Q",
            color=alt.Color("curve:N", scale=alt.Scale(range=[CRIMSON, "#ff9f40"]), title="theory"),
            opacity=opacity,
            tooltip=["curve:N", alt.Tooltip("sigma_w2:Q", format=".3f"), alt.Tooltip("xi:Q", format=".3g")],
        )
        .add_params(sel)
    )
    crit = d["critical_sigma_w2"].dropna()
    layers = [rect, text, dots, curves]
    if len(crit) and math.isfinite(crit.iloc[0]):
        layers.append(
            alt.Chart()
            .mark_rule(color="black", strokeDash=[6, 3], strokeWidth=1.4)
            .encode(x=alt.datum(float(crit.iloc[0])), tooltip=alt.value(f"critical σ_w² = {crit.iloc[0]:.3g} (χ1 = 1)"))
        )
    chart = alt.layer(*layers, data=d).properties(width=460, height=280)
    return facet(chart, d)


def charts(results, decay: pd.DataFrame | None = None, train: pd.DataFrame | None = None) -> dict[str, Chart]:
    """Both charts, those the folder has runs for (``decay``, ``train``: its tables, if made)."""
    res = load(results)
    decay = decay_table(res) if decay is None else decay
    train = trainability_table(res) if train is None else train
    out = {}
    if not decay.empty:
        note = "Right: small dots are single runs. The measured-rate-0 contour is drawn in the static figure only."
        out["chaos_heatmap"] = Chart("chaos_heatmap", heatmap_rows(res, decay), draw_heatmap, note)
    if not train.empty:
        out["chaos_trainability"] = Chart("chaos_trainability", trainability_rows(res, train), draw_trainability)
    return out

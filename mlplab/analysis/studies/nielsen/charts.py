"""The Nielsen study's interactive figures, twins of ``figures``: each network's ‖∂C/∂b^l‖ at
initialisation against his (``<folder>_init``), and each run's during training against his
curves (``<folder>_training``), for every Nielsen folder the study's part of the report shows."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from mlplab.analysis.charts import Chart, facet, legend_toggle, log_axis, log_scale, sample_steps
from mlplab.analysis.fmt import ordinal
from mlplab.analysis.studies.nielsen.measures import percentile_table
from mlplab.analysis.studies.nielsen.published import (
    NIELSEN_EPOCHS,
    NIELSEN_TRAINING,
    dataset_name,
    is_his_protocol,
)
from mlplab.analysis.studies.nielsen.sections import compared
from mlplab.analysis.studies.nielsen.select import protocols, speeds_at_init, training_speeds

SPEED = "‖∂C/∂bˡ‖"
HIS = "#d55e00"  # his network, the colour-blind palette's fourth as in the static figures
CURVE_STEPS = 40  # logged steps kept per curve: the digits folder's 90 curves stay under the page's 5,000 rows
THINNED = f"Curves show at most {CURVE_STEPS} logged steps each; the parquet holds every point."


def layer_color(depths) -> alt.Color:
    """One viridis colour per hidden layer 1..the deepest network's depth."""
    layers = list(range(1, int(max(depths)) + 1))
    return alt.Color("layer:O", scale=alt.Scale(scheme="viridis", domain=layers), title="hidden layer")


def init_rows(res) -> pd.DataFrame:
    """Rows of ``<folder>_init``: our networks at initialisation (``kind`` 'ours': run_id,
    seed, ``speed``), and per data set, depth and layer a 'summary' row with our quartiles
    (``q1``, ``median``, ``q3``), 5 % and 95 % (``p5``, ``p95``), his value (``nielsen``) and
    its percentile in ours."""
    speeds = speeds_at_init(res)
    ours = speeds[["run_id", "seed", "dataset", "depth", "layer", "speed"]].assign(kind="ours")
    pct = percentile_table(speeds)
    quartiles = speeds.groupby(["dataset", "depth", "layer"]).speed.quantile([0.25, 0.75]).unstack()
    summary = pct.join(quartiles.set_axis(["q1", "q3"], axis=1), on=["dataset", "depth", "layer"])
    summary = summary[["dataset", "depth", "layer", "n", "p5", "q1", "median", "q3", "p95", "nielsen", "percentile"]]
    summary = summary.assign(kind="summary", label=[ordinal(p) if np.isfinite(p) else "" for p in summary.percentile])
    return pd.concat([ours, summary], ignore_index=True)


def draw_init(d: pd.DataFrame) -> alt.TopLevelMixin:
    """Each network a dot, our box (quartiles) and whiskers (5 % to 95 %) per hidden layer, his
    value a diamond labelled with its percentile in ours; log y; rows: data sets, columns: depths."""
    sel, opacity = legend_toggle("layer")
    x = alt.X("x:Q", title="hidden layer l", scale=alt.Scale(domain=[0.4, d.layer.max() + 0.9], nice=False))
    x = x.axis(values=list(range(1, int(d.layer.max()) + 1)), format="d")
    y = alt.Y("speed:Q", scale=log_scale(), axis=log_axis(f"{SPEED} at initialisation"))
    ours = alt.Chart().transform_filter("datum.kind === 'ours'")
    dots = (
        ours.transform_calculate(x="datum.layer + (random() - 0.5) * 0.36")
        .mark_circle(size=14)
        .encode(
            x=x,
            y=y,
            color=layer_color(d.depth),
            opacity=alt.condition(sel, alt.value(0.45), alt.value(0.05)),
            tooltip=["run_id:N", "seed:Q", "dataset:N", "depth:Q", "layer:Q", alt.Tooltip("speed:Q", format=".4g")],
        )
        .add_params(sel)
    )
    summary = alt.Chart().transform_filter("datum.kind === 'summary'").transform_calculate(x="datum.layer")
    tips = ["dataset:N", "depth:Q", "layer:Q", "n:Q"] + [
        alt.Tooltip(f"{c}:Q", format=".4g") for c in ("p5", "q1", "median", "q3", "p95", "nielsen")
    ]
    tips.append(alt.Tooltip("percentile:Q", format=".1f", title="his percentile in ours"))
    whisker = summary.mark_rule(color="#595959").encode(x=x, y=alt.Y("p5:Q"), y2="p95:Q", tooltip=tips)
    box = summary.mark_bar(size=14, fill=None, stroke="#595959").encode(x=x, y=alt.Y("q1:Q"), y2="q3:Q", tooltip=tips)
    median = summary.mark_tick(color="#262626", thickness=2, size=14).encode(x=x, y=alt.Y("median:Q"), tooltip=tips)
    his = summary.transform_filter("isValid(datum.nielsen)").transform_calculate(x="datum.layer + 0.36")
    diamond = his.mark_point(shape="diamond", filled=True, size=50, color=HIS, stroke="black", strokeWidth=0.6)
    diamond = diamond.encode(x=x, y=alt.Y("nielsen:Q"), tooltip=tips)
    text = his.mark_text(align="left", dx=6, fontSize=10, color="#333").encode(x=x, y="nielsen:Q", text="label:N")
    chart = alt.layer(dots, whisker, box, median, diamond, text, data=d).properties(width=230, height=200)
    return facet(chart, d, row="dataset", column="depth")


def _protocol(dataset, lr, weight_decay) -> str:
    return f"{dataset_name(dataset)}, η = {lr:g}, weight decay {weight_decay:g}"


def training_rows(res) -> tuple[pd.DataFrame, bool]:
    """Rows of ``<folder>_training``: each training run's ‖∂C/∂b^l‖ per hidden layer at its
    logged epochs (at most ``CURVE_STEPS`` a curve), and his curves (no run_id) beside the
    protocols that are his; (rows, whether curves were thinned)."""
    s = training_speeds(res)
    if s.empty:
        return pd.DataFrame(), False
    cols = ["run_id", "seed", "dataset", "lr", "weight_decay", "depth", "layer", "step", "epoch", "speed"]
    ours, thinned = sample_steps(s[cols], ["run_id", "layer"], at_most=CURVE_STEPS)
    his = []
    for proto in protocols(s):
        if not is_his_protocol(proto):
            continue
        dataset, lr, wd, bs = proto
        for depth in sorted(set(s.depth[(s.dataset == dataset) & (s.lr == lr)]) & set(NIELSEN_TRAINING)):
            for layer, curve in enumerate(NIELSEN_TRAINING[depth], start=1):
                his += [
                    {"dataset": dataset, "lr": lr, "weight_decay": wd, "depth": depth}
                    | {"layer": layer, "epoch": float(e), "speed": v}
                    for e, v in zip(NIELSEN_EPOCHS, curve)
                ]
    return pd.concat([ours, pd.DataFrame(his)], ignore_index=True), thinned


def draw_training(d: pd.DataFrame) -> alt.TopLevelMixin:
    """Each run's curve (thin), the median over seeds (thick) and his curves (dashed), one colour
    per hidden layer; log y; columns: depths (rows: training protocols, when several)."""
    names = sorted({_protocol(*k) for k in zip(d.dataset, d.lr, d.weight_decay)})
    if len(names) > 1:
        d = d.assign(protocol=[_protocol(*k) for k in zip(d.dataset, d.lr, d.weight_decay)])
    sel, opacity = legend_toggle("layer")
    color = layer_color(d.depth)
    x = alt.X("epoch:Q", title="epochs of training")
    y = alt.Y("speed:Q", scale=log_scale(), axis=log_axis(SPEED))
    ours = alt.Chart().transform_filter("isValid(datum.run_id)")
    runs = ours.mark_line(strokeWidth=0.8, point=alt.OverlayMarkDef(size=8)).encode(
        x=x,
        y=y,
        color=color,
        detail="run_id:N",
        opacity=alt.condition(sel, alt.value(0.35), alt.value(0.04)),
        tooltip=["run_id:N", "seed:Q", "layer:Q", "step:Q", alt.Tooltip("epoch:Q", format=".3g")]
        + [alt.Tooltip("speed:Q", format=".4g")],
    )
    median = ours.mark_line(strokeWidth=2.2).encode(
        x=x,
        y=alt.Y("median(speed):Q"),
        color=color,
        opacity=opacity,
        tooltip=["layer:Q", alt.Tooltip("epoch:Q", format=".3g"), alt.Tooltip("median(speed):Q", format=".4g")],
    )
    his = (
        alt.Chart()
        .transform_filter("!isValid(datum.run_id)")
        .mark_line(strokeDash=[5, 3], strokeWidth=1.2, point=alt.OverlayMarkDef(size=14))
        .encode(
            x=x,
            y=y,
            color=color,
            opacity=opacity,
            tooltip=[
                "layer:Q",
                "epoch:Q",
                alt.Tooltip("speed:Q", format=".4g", title=f"Nielsen's {SPEED}"),
            ],
        )
        .add_params(sel)
    )
    layers = [runs, median, his] if d["run_id"].isna().any() else [runs, median.add_params(sel)]
    chart = alt.layer(*layers, data=d).properties(width=260, height=200)
    if len(names) == 1:
        chart = chart.properties(title=names[0])
    return facet(chart, d, row="protocol" if len(names) > 1 else None, column="depth")


def folder_charts(res) -> dict[str, Chart]:
    """``<folder>_init`` and ``<folder>_training`` of one Nielsen folder, those it has runs for."""
    name = Path(res.path).name
    out = {f"{name}_init": Chart(f"{name}_init", init_rows(res), draw_init)}
    try:
        rows, thinned = training_rows(res)
    except ValueError:
        rows, thinned = pd.DataFrame(), False
    if not rows.empty:
        note = "Thin lines: one run each (their spread is the static figure's band)." + (
            f" {THINNED}" if thinned else ""
        )
        out[f"{name}_training"] = Chart(f"{name}_training", rows, draw_training, note)
    return out


def charts(results) -> dict[str, Chart]:
    """The charts of every Nielsen folder the study's part of the report shows, by figure name."""
    found, _ = compared(results.path, results)
    return {k: c for res in found for k, c in folder_charts(res).items()}

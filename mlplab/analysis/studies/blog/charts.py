"""The blog study's figures as interactive charts (``mlplab.analysis.charts``): the same rows as
the static figures (``figures.profile_rows`` and the like), per run, to hover, filter and toggle."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from mlplab.analysis.charts import (
    HEIGHT,
    WIDTH,
    Chart,
    facet,
    legend_toggle,
    log_axis,
    log_scale,
    panel_width,
    sample_steps,
)
from mlplab.analysis.measures import PHASES
from mlplab.analysis.plots import FigureSkipped
from mlplab.analysis.studies.blog import figures

RUN = ["run_id", "seed", "dataset", "activation", "loss", "depth"]
GRAD_B = "‖∂C/∂b^l‖"


def _log_positive(d: pd.DataFrame, col: str) -> pd.DataFrame:
    """Rows whose value can sit on a log axis (zeros and non-finite values are left out, as in
    the static figures)."""
    v = d[col].to_numpy(float)
    return d[np.isfinite(v) & (v > 0)]


def _tooltip(*extra) -> list:
    fields = ("run_id:N", "seed:Q", "dataset:N", "depth:Q", "loss:N", *extra)
    return [alt.Tooltip(f) if isinstance(f, str) else f for f in fields]


def gradient_profile(res) -> Chart:
    d = figures.profile_rows(res)
    d = _log_positive(d[[*RUN, "phase", "step", "layer", "grad_b_norm"]], "grad_b_norm")

    def draw(d):
        sel, opacity = legend_toggle("depth")
        line = (
            alt.Chart(d)
            .mark_line(point=alt.OverlayMarkDef(size=12), strokeWidth=1)
            .encode(
                x=alt.X("layer:Q", title="layer l (1 = first hidden, L = output)"),
                y=alt.Y("grad_b_norm:Q", scale=log_scale(), axis=log_axis(GRAD_B)),
                color=alt.Color("depth:O", scale=alt.Scale(scheme="viridis")),
                strokeDash=alt.StrokeDash("phase:N", scale=alt.Scale(domain=list(PHASES), range=[[1, 0], [5, 3]])),
                detail=["run_id:N", "phase:N"],
                opacity=opacity,
                tooltip=_tooltip("phase:N", "step:Q", "layer:Q", alt.Tooltip("grad_b_norm:Q", format=".3g")),
            )
            .add_params(sel)
            .properties(width=panel_width(d, "loss"), height=HEIGHT)
        )
        return facet(line, d, row="activation", column="loss").interactive()

    return Chart("gradient_profile", d, draw, "One line per run (the static figure: medians over seeds).")


def ratio_vs_depth(res) -> Chart:
    d = figures.ratio_rows(res)
    cols = ["run_id", "phase", "ratio", "depth", "lr", "setting", *figures.RATIO_KEYS]
    runs = res.runs.set_index("run_id")
    d = _log_positive(d[cols], "ratio").assign(
        seed=lambda x: x["run_id"].map(runs["seed"]),
        dataset=lambda x: x["run_id"].map(runs["dataset"]),
        loss=lambda x: x["run_id"].map(runs["loss"]),
    )

    def draw(d):
        sel, opacity = legend_toggle("setting")
        dots = (
            alt.Chart(d)
            .mark_circle(size=22)
            .encode(
                x=alt.X("depth:Q", scale=alt.Scale(type="log", base=2), title="depth (hidden layers)"),
                xOffset=alt.XOffset("seed:N"),
                y=alt.Y("ratio:Q", scale=log_scale(), axis=log_axis("‖∂C/∂b^1‖ / ‖∂C/∂b^L‖")),
                color=alt.Color("setting:N", legend=alt.Legend(orient="bottom", columns=2, labelLimit=320)),
                opacity=opacity,
                tooltip=_tooltip("setting:N", "phase:N", alt.Tooltip("ratio:Q", format=".3g")),
            )
            .add_params(sel)
            .properties(width=WIDTH, height=HEIGHT)
        )
        return facet(dots, d, column="phase", column_sort=list(PHASES)).interactive()

    return Chart("ratio_vs_depth", d, draw, "One dot per run; zero ratios are left out.")


def curves(res) -> Chart:
    st = figures.curve_rows(res)
    cols = [*RUN, "step", "rel_loss", "test_accuracy"]
    st, thinned = sample_steps(st[cols], ["run_id"], at_most=40)

    sel, opacity = legend_toggle("loss")

    def panel(d, y: alt.Y, title: str, first: bool):
        width = panel_width(d, "depth")
        line = (
            alt.Chart(d)
            .mark_line(strokeWidth=1)
            .encode(
                x=alt.X("step:Q", title="step (SGD updates)"),
                y=y,
                color=alt.Color("loss:N"),
                strokeDash=alt.StrokeDash("activation:N"),
                detail="run_id:N",
                opacity=opacity,
                tooltip=_tooltip("activation:N", "step:Q", alt.Tooltip(f"{y.shorthand}", format=".3g")),
            )
            .properties(width=width, height=HEIGHT - 40)
        )
        zoom = alt.selection_interval(bind="scales", name="zoom_loss" if first else "zoom_accuracy")
        line = (line.add_params(sel) if first else line).add_params(zoom)
        if y.shorthand.startswith("rel_loss"):
            line = line.transform_filter("isFinite(datum.rel_loss) && datum.rel_loss > 0")  # a log axis
        return facet(line, d, column="depth", column_prefix="depth").properties(title=title)

    def draw(d):
        loss = panel(
            d,
            alt.Y("rel_loss:Q", scale=log_scale(), axis=log_axis("training loss / its step-0 value")),
            "training loss / its step-0 value",
            True,
        )
        acc = panel(d, alt.Y("test_accuracy:Q", title="test accuracy"), "test accuracy", False)
        return alt.vconcat(loss, acc)

    note = "One line per run" + (", at most 40 logged steps each (the parquet holds every point)." if thinned else ".")
    return Chart("curves", st, draw, note)


def exploding(res) -> Chart:
    ex = figures.exploding_examples(res)
    lay = res.layers[res.layers["run_id"].isin(ex["run_id"])]
    d = lay[["run_id", "step", "layer", "grad_b_norm"]].merge(ex[[*RUN, "clip", "sigma_w", "status"]], on="run_id")
    d = _log_positive(d, "grad_b_norm")
    d = d.assign(setting=d["dataset"] + ", depth " + d["depth"].astype(str) + ", " + d["loss"])

    def draw(d):
        sel, opacity = legend_toggle("layer")
        line = (
            alt.Chart(d)
            .mark_line(point=alt.OverlayMarkDef(size=10), strokeWidth=1.1)
            .encode(
                x=alt.X("step:Q", scale=alt.Scale(type="symlog"), title="step (symmetric log scale)"),
                y=alt.Y("grad_b_norm:Q", scale=log_scale(), axis=log_axis(f"{GRAD_B} (before clipping)")),
                color=alt.Color("layer:O", scale=alt.Scale(scheme="viridis")),
                opacity=opacity,
                tooltip=_tooltip("clip:N", "status:N", "step:Q", "layer:Q", alt.Tooltip("grad_b_norm:Q", format=".3g")),
            )
            .add_params(sel)
            .properties(width=WIDTH, height=HEIGHT)
        )
        return facet(line, d, row="setting", column="clip").interactive()

    return Chart("exploding", d, draw, "One seed per setting, as in the static figure.")


def steps_heatmap(res) -> Chart:
    conv = figures.steps_rows(res)
    conv = conv.groupby(["target", "dataset", "depth", "loss"], as_index=False).first()
    conv["label"] = [
        figures.cell_text(r.median, r.n_reached, r.n, r.target_value) for r in conv.itertuples(index=False)
    ]
    conv["median"] = conv["median"].where(np.isfinite(conv["median"].to_numpy(float)))  # never: no colour

    def draw(d):
        base = alt.Chart(d).encode(x=alt.X("loss:N", title="loss"), y=alt.Y("depth:O", title="depth (hidden layers)"))
        rect = base.mark_rect().encode(
            color=alt.Color(
                "median:Q", scale=alt.Scale(type="log", scheme="viridis", reverse=True), title="median steps"
            ),
            tooltip=[
                "dataset:N",
                "target:N",
                "depth:Q",
                "loss:N",
                alt.Tooltip("target_value:Q", format=".3g", title="target"),
                alt.Tooltip("median:Q", title="median steps"),
                alt.Tooltip("q25:Q", title="25 %"),
                alt.Tooltip("q75:Q", title="75 %"),
                alt.Tooltip("n_reached:Q", title="runs that reach it"),
                alt.Tooltip("n:Q", title="runs"),
            ],
        )
        text = base.mark_text(fontSize=9.5, lineBreak="\n").encode(text="label:N")
        return facet((rect + text).properties(width=180, height=150), d, row="dataset", column="target")

    return Chart("steps_heatmap", conv, draw, "Empty cells: the median run never reaches the target.")


CHARTS = {
    "gradient_profile": gradient_profile,
    "ratio_vs_depth": ratio_vs_depth,
    "curves": curves,
    "exploding": exploding,
    "steps_heatmap": steps_heatmap,
}


def charts(res) -> dict[str, Chart]:
    """Every chart the folder has the runs for (a figure it cannot draw is left out)."""
    out = {}
    for name, make in CHARTS.items():
        try:
            out[name] = make(res)
        except FigureSkipped:
            continue
    return out

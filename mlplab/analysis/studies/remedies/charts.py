"""The remedies study's interactive figures, twins of ``figures``: R1, each run's first-to-last
gradient ratio against depth, and R2, the median steps to the target per remedy and depth."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.charts import Chart, facet, legend_toggle, log_axis, log_scale
from mlplab.analysis.fmt import reached
from mlplab.analysis.studies.remedies.compare import per_run
from mlplab.analysis.studies.remedies.figures import (
    ORDER,
    in_panel,
    in_steps_panel,
    ratios_data,
    steps_data,
    twin_activations,
)

AXES = ["depth", "activation", "init", "norm", "residual", "clip", "optim", "dataset", "lr"]
PANELS = ("initialisation", "trained")  # the phases' panels, in alphabetical order as the facets sort them
BLACK = "#1a1a1a"  # the plain twin, as in the static figure
PALETTE = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9"]


def remedy_scale(remedies) -> alt.Scale:
    """Plain in near-black, the remedies in the colour-blind palette, in ``ORDER``."""
    shown = [r for r in ORDER if r in set(remedies)]
    colors = [BLACK if r == "plain" else PALETTE[(ORDER.index(r) - 1) % len(PALETTE)] for r in shown]
    return alt.Scale(domain=shown, range=colors)


def _varying(d: pd.DataFrame, extra: list[str]) -> list[str]:
    """The filterable axes that vary among ``d``'s rows (and the remedy's field), then ``extra``."""
    return [a for a in AXES if a in d and d[a].nunique(dropna=False) > 1] + extra


def ratios_rows(res) -> pd.DataFrame:
    """R1's rows: one per run, panel (``twins``: the twin's activation) and phase, with the
    run's ‖∂C/∂W^1‖/‖∂C/∂W^L‖ (``ratio``); ratios that a log axis cannot show (0, inf, NaN) are
    left out."""
    pr = ratios_data(res)
    frames = []
    for act in twin_activations(pr):
        for r in [r for r in ORDER if r in set(pr["remedy"])]:
            g = pr[in_panel(pr, r, act)]
            for phase, col in zip(PANELS, ("w_init", "w_end")):
                frames.append(g.assign(twins=act, phase=phase, ratio=g[col].astype(float)))
    if not frames:
        return pd.DataFrame()
    d = pd.concat(frames, ignore_index=True)
    d = d[np.isfinite(d["ratio"]) & (d["ratio"] > 0)]
    cols = ["run_id", "seed", "remedy", "twins", "phase", "ratio", *_varying(pr, [])]
    return d[list(dict.fromkeys([*cols, "depth"]))].reset_index(drop=True)


def draw_ratios(d: pd.DataFrame) -> alt.TopLevelMixin:
    """Each run a dot, the median over seeds a line, per remedy (click the legend to show one);
    rows: the twins' activation, columns: at initialisation, after training; log axes."""
    sel, opacity = legend_toggle("remedy")
    color = alt.Color("remedy:N", scale=remedy_scale(d["remedy"]), title="remedy")
    depths = sorted(int(v) for v in d["depth"].unique())
    x = alt.X(
        "depth:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(values=depths), title="depth (hidden layers)"
    )
    y = alt.Y("ratio:Q", scale=log_scale(), axis=log_axis("‖∂C/∂W¹‖ / ‖∂C/∂Wᴸ‖"))
    tips = ["run_id:N", "seed:Q", "remedy:N", "twins:N", "phase:N", "depth:Q", alt.Tooltip("ratio:Q", format=".3g")]
    tips += [f"{a}:N" for a in AXES if a in d and a != "depth"]
    base = alt.Chart().encode(x=x, color=color)
    dots = base.mark_circle(size=22).encode(
        y=y, opacity=alt.condition(sel, alt.value(0.55), alt.value(0.05)), tooltip=tips
    )
    line = (
        base.mark_line(point=True, strokeWidth=2)
        .encode(y=alt.Y("median(ratio):Q", scale=alt.Scale(type="log")), opacity=opacity)
        .add_params(sel)
    )
    one = alt.Chart().mark_rule(strokeDash=[4, 3], color="#666").encode(y=alt.datum(1))
    chart = alt.layer(dots, line, one, data=d).properties(width=260, height=200)
    return facet(chart, d, row="twins", column="phase")


def steps_rows(res) -> pd.DataFrame:
    """R2's rows: one per remedy, twins' activation and depth, with the median steps to the
    target over seeds (``median``, missing when the median run never reaches it), k/n runs
    that reach it, and each seed's steps in words (``per_seed``)."""
    t = steps_data(res)
    if t.empty:
        return pd.DataFrame()
    pr = per_run(load(res))
    words = {}
    for key, g in pr.groupby(["remedy", "activation", "depth"]):
        words[key] = ", ".join(
            f"{s}: {int(n) if n < b else 'never'}" for s, n, b in sorted(zip(g["seed"], g["steps"], g["beyond"]))
        )
    frames = [t[in_steps_panel(t, act)].assign(twins=act) for act in twin_activations(t)]
    d = pd.concat(frames, ignore_index=True)
    d["per_seed"] = [words.get(k, "") for k in zip(d["remedy"], d["activation"], d["depth"])]
    d["median"] = d["median"].replace(np.inf, np.nan)
    d["label"] = [reached(m, k, n) for m, k, n in zip(d["median"], d["n_reached"], d["n"])]
    cols = ["remedy", "twins", "activation", "depth", "n", "n_reached", "median", "target", "label", "per_seed"]
    return d[cols]


def draw_steps(d: pd.DataFrame) -> alt.TopLevelMixin:
    """Remedies × depth, coloured by the median steps to the target (log scale; grey: the
    median run never reaches it), labelled with k/n runs reaching it; hover for every seed's
    steps. Its remedies are its rows: no legend to toggle."""
    rows = [r for r in ORDER if r in set(d["remedy"])]
    base = alt.Chart().encode(
        x=alt.X("depth:O", title="depth (hidden layers)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("remedy:N", sort=rows, title="remedy"),
    )
    tips = [
        "remedy:N",
        "twins:N",
        "depth:Q",
        alt.Tooltip("median:Q", format=".0f", title="median steps"),
        alt.Tooltip("n_reached:Q", title="runs reaching it"),
        alt.Tooltip("n:Q", title="runs"),
        alt.Tooltip("target:Q", format=".3f", title="target accuracy"),
        alt.Tooltip("per_seed:N", title="steps by seed"),
    ]
    cells = base.mark_rect(stroke="white").encode(
        color=alt.condition(
            "isValid(datum.median)",
            alt.Color("median:Q", scale=alt.Scale(type="log", scheme="viridis", reverse=True), title="median steps"),
            alt.value("#e0e0e0"),
        ),
        tooltip=tips,
    )
    finite = d["median"].dropna()
    dark = float(np.sqrt(finite.min() * finite.max())) if len(finite) else 0.0  # the dark half of the scale
    text = base.mark_text(fontSize=10).encode(
        text="label:N",
        color=alt.condition(f"isValid(datum.median) && datum.median > {dark:g}", alt.value("white"), alt.value("#333")),
        tooltip=tips,
    )
    chart = alt.layer(cells, text, data=d).properties(width=60 * d["depth"].nunique(), height=24 * len(rows))
    return facet(chart, d, column="twins")


def charts(res) -> dict[str, Chart]:
    """R1 and R2 as charts, those the folder has runs for."""
    out = {}
    ratios = ratios_rows(res)
    if not ratios.empty:
        out["remedy_ratios"] = Chart("remedy_ratios", ratios, draw_ratios, "Dots: one run each; lines: their median.")
    steps = steps_rows(res)
    if not steps.empty:
        out["remedy_steps"] = Chart("remedy_steps", steps, draw_steps)
    return out

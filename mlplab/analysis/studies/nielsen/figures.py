"""The Nielsen study's figures: our speeds of learning at initialisation against his value
(``fig_init``) and during training against his curves (``fig_training``), saved by
``make_figures`` as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from mlplab.analysis.fmt import ordinal
from mlplab.analysis.plots import FigureSkipped, ordered_colors, save, style
from mlplab.analysis.studies.nielsen.measures import percentile_table, training_curves
from mlplab.analysis.studies.nielsen.published import (
    NIELSEN_EPOCHS,
    NIELSEN_TRAINING,
    dataset_name,
    is_his_protocol,
)
from mlplab.analysis.studies.nielsen.select import of_protocol, protocols, speeds_at_init

NIELSEN_COLOR = sns.color_palette("colorblind")[3]


def _layer_colors(depths) -> dict:
    """One viridis colour per hidden layer 1..max depth, as in mlplab.analysis.figures."""
    return ordered_colors(range(1, int(max(depths)) + 1))


def fig_init(res) -> plt.Figure:
    """Our ‖∂C/∂b^l‖ at initialisation, one dot per network and a box (quartiles, whiskers at
    5 % and 95 %) per hidden layer, one panel per depth (rows: data sets), his value marked with
    its percentile in ours."""
    speeds = speeds_at_init(res)
    pct = percentile_table(speeds)
    datasets, depths = sorted(speeds.dataset.unique()), sorted(speeds.depth.unique())
    colors = _layer_colors(depths)
    rng = np.random.default_rng(0)
    with style():
        ncol = 3 if len(depths) >= 3 else 1  # the legend: one line, or one entry per line
        legend_h = 0.4 if ncol == 3 else 0.8  # inches
        height = 3.3 * len(datasets) + 0.5 + legend_h
        fig, axes = plt.subplots(
            len(datasets), len(depths), figsize=(min(3.1 * len(depths) + 0.6, 10), height), squeeze=False, sharey=True
        )
        for i, dataset in enumerate(datasets):
            for j, depth in enumerate(depths):
                ax = axes[i, j]
                g = speeds[(speeds.dataset == dataset) & (speeds.depth == depth)]
                layers = sorted(g.layer.unique())
                values = [g[g.layer == l].speed.to_numpy() for l in layers]
                ax.boxplot(
                    values,
                    positions=layers,
                    widths=0.5,
                    whis=(5, 95),
                    showfliers=False,
                    medianprops={"color": "0.15", "lw": 1.5},
                    boxprops={"color": "0.35"},
                    whiskerprops={"color": "0.35"},
                    capprops={"color": "0.35"},
                )
                for l, v in zip(layers, values):
                    ax.scatter(
                        l + rng.uniform(-0.18, 0.18, len(v)), v, s=9, alpha=0.45, lw=0, color=colors[l], zorder=1
                    )
                p = pct[(pct.dataset == dataset) & (pct.depth == depth)].dropna(subset=["nielsen"])
                ax.scatter(
                    p.layer + 0.36, p.nielsen, marker="D", s=34, color=NIELSEN_COLOR, edgecolor="k", lw=0.6, zorder=3
                )
                for r in p.itertuples():
                    ax.annotate(
                        ordinal(r.percentile),
                        (r.layer + 0.36, r.nielsen),
                        xytext=(5, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=9,
                        color="0.2",
                    )
                ax.set_yscale("log")
                ax.set_xticks(layers)
                ax.set_xlim(0.4, max(layers) + 0.9)
                ax.set_title(f"{depth} hidden layers, {dataset_name(dataset)}\n{g.network.iloc[0]}")
                if i == len(datasets) - 1:
                    ax.set_xlabel("hidden layer l")
            axes[i, 0].set_ylabel(r"$\|\partial C/\partial b^l\|$ at initialisation")
        n = int(speeds.groupby(["dataset", "depth"]).run_id.nunique().min())
        handles = [
            plt.Line2D(
                [],
                [],
                ls="",
                marker="o",
                ms=4,
                color=colors[1],
                alpha=0.6,
                label=f"ours: one network (≥ {n} per depth)",
            ),
            plt.Line2D([], [], color="0.35", label="ours: box = quartiles, whiskers = 5–95 %"),
            plt.Line2D(
                [],
                [],
                ls="",
                marker="D",
                ms=6,
                color=NIELSEN_COLOR,
                mec="k",
                label="Nielsen's network (MNIST), with its percentile in ours",
            ),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("Speed of learning of each hidden layer at initialisation: our seeds vs Nielsen's single network")
        fig.tight_layout(rect=(0, legend_h / height, 1, 1))
    return fig


def fig_training(res) -> plt.Figure:
    """‖∂C/∂b^l‖ of each hidden layer over the epochs of training (log y), one panel per depth
    (rows: training protocols): median over seeds, band from the lowest to the highest seed;
    his curves (dashed) where the protocol is his. ``figures.Skip`` without training runs."""
    try:
        curves = training_curves(res)
    except ValueError as e:
        raise FigureSkipped(str(e)) from None
    if curves.empty:
        raise FigureSkipped("no run trains (logs a step after step 0)")
    shown = protocols(curves)
    depths = sorted(curves.depth.unique())
    colors = _layer_colors(depths)
    with style():
        height = 3.1 * len(shown) + 1.2  # 0.65 inch for the legend (two lines)
        fig, axes = plt.subplots(
            len(shown), len(depths), figsize=(min(3.1 * len(depths) + 0.6, 10), height), squeeze=False, sharey=True
        )
        for i, proto in enumerate(shown):
            dataset, lr, wd, bs = proto
            mine = curves[of_protocol(curves, proto)]
            his = is_his_protocol(proto)
            for j, depth in enumerate(depths):
                ax = axes[i, j]
                g = mine[mine.depth == depth]
                for layer, h in g.groupby("layer"):
                    ax.plot(h.epoch, h["median"], color=colors[layer], lw=1.6, label=f"hidden layer {layer}")
                    ax.fill_between(h.epoch, h.lo, h.hi, color=colors[layer], alpha=0.2, lw=0)
                    if his and depth in NIELSEN_TRAINING:
                        ax.plot(
                            NIELSEN_EPOCHS,
                            NIELSEN_TRAINING[depth][layer - 1],
                            "--",
                            marker=".",
                            ms=4,
                            lw=1.1,
                            color=colors[layer],
                            alpha=0.9,
                        )
                ax.set_yscale("log")
                ax.set_xlim(0, max(g.epoch.max(), 1) if len(g) else 1)
                n = int(g.n.min()) if len(g) else 0
                ax.set_title(
                    f"{depth} hidden layers, {dataset_name(dataset)}\nη = {lr:g}, weight decay {wd:g}, {n} seeds"
                )
                if i == len(shown) - 1:
                    ax.set_xlabel("epochs of training")
            axes[i, 0].set_ylabel(r"$\|\partial C/\partial b^l\|$")
        handles = [plt.Line2D([], [], color=c, lw=2, label=f"hidden layer {l}") for l, c in colors.items()]
        handles += [
            plt.Line2D([], [], color="0.3", lw=1.6, label="ours: median over seeds"),
            plt.Rectangle((0, 0), 1, 1, color="0.3", alpha=0.2, lw=0, label="ours: lowest to highest seed"),
        ]
        if any(is_his_protocol(p) for p in shown):
            handles.append(plt.Line2D([], [], color="0.3", ls="--", marker=".", label="Nielsen's network"))
        fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("Speed of learning during training (full-batch gradient descent, one step per epoch)")
        fig.tight_layout(rect=(0, 0.65 / height, 1, 1))
    return fig


def make_figures(res, outdir: Path, prefix: str) -> dict[str, list[Path] | str]:
    """``fig_init`` and ``fig_training`` as ``<prefix>_init`` and ``<prefix>_training`` (PNG and
    SVG) in ``outdir``: name -> the files written, or a note saying why the figure was skipped."""
    out: dict[str, list[Path] | str] = {}
    for name, draw in (("init", fig_init), ("training", fig_training)):
        try:
            out[name] = save(draw(res), Path(outdir), f"{prefix}_{name}")
        except FigureSkipped as e:
            out[name] = f"skipped: {e}"
    return out

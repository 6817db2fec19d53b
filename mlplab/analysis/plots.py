"""How every figure looks and is saved: the style, the palettes, the grid of panels, the files.

One palette throughout: seaborn's "colorblind" for categories (loss, activation, setting,
remedy, clip rule), "viridis" for ordered values (depth, layer). ``save`` writes a figure as
PNG and SVG; a figure the folder has no runs for raises ``FigureSkipped`` with what is missing.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

CATEGORICAL = "colorblind"
ORDERED = "viridis"
LOSS_ORDER = ["mse", "bce", "softmax_ce"]
ACT_ORDER = ["sigmoid", "tanh", "relu", "leaky_relu"]
DPI = 110
REPORT_WIDTH_PX = 1040  # the widest an image is shown in the HTML report (its CSS)
MIN_TEXT_PX = 9  # the smallest text a figure may show at that width
MAX_WIDTH_IN = 8.8  # panels; a legend outside adds about an inch: the PNG stays ≤ ~10 in


class FigureSkipped(Exception):
    """A figure that the folder has no runs for; the message says what is missing."""


def ordered(values, preferred) -> list:
    """The distinct values, those of ``preferred`` first in its order, then the others sorted."""
    vals = list(pd.unique(pd.Series(values).dropna()))
    return [v for v in preferred if v in vals] + sorted(v for v in vals if v not in preferred)


def loss_colors(losses) -> dict:
    pal = sns.color_palette(CATEGORICAL)
    return {
        l: pal[LOSS_ORDER.index(l) if l in LOSS_ORDER else 3 + i] for i, l in enumerate(ordered(losses, LOSS_ORDER))
    }


def ordered_colors(values) -> dict:
    vals = sorted(pd.unique(pd.Series(values).dropna()))
    return dict(zip(vals, sns.color_palette(ORDERED, max(len(vals), 1))))


def category_colors(names, order: list) -> dict:
    """A colour per name of ``order`` present in ``names``, the first name of ``order`` (the
    reference arm) in near-black."""
    pal = sns.color_palette(CATEGORICAL, 10)
    out = {r: pal[(i - 1) % 10] for i, r in enumerate(order) if r in set(names)}
    out[order[0]] = (0.1, 0.1, 0.1)
    return out


@contextlib.contextmanager
def style():
    """The look of every mlplab figure: white grid, text ≥ 8.5 pt (≥ 9 px at the report's width
    for figures up to 10 in wide at ``DPI``)."""
    rc = {
        "font.size": 9.5,
        "axes.titlesize": 10,
        "axes.labelsize": 9.5,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 9,
        "legend.title_fontsize": 9.5,
        "figure.titlesize": 10.5,
    }
    with (
        sns.axes_style("whitegrid"),
        sns.plotting_context("paper", rc=rc),
        np.errstate(divide="ignore", invalid="ignore"),
    ):
        yield


def panels(nrows: int, ncols: int, w: float = 3.6, h: float = 3.0, **kw):
    """A figure of ``nrows`` × ``ncols`` panels of about ``w`` × ``h`` inches, ≤ ``MAX_WIDTH_IN`` wide."""
    width = min(w * ncols + 1.2, MAX_WIDTH_IN)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, h * nrows + 0.6), squeeze=False, **kw)
    return fig, axes


def smallest_text_pt(fig) -> float:
    """The smallest font size (pt) of any visible, non-empty text of ``fig``."""
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes) if sizes else math.inf


def text_px_in_report(png: Path) -> float:
    """The smallest text of a figure saved by ``save``, in pixels as the HTML report shows it
    (scaled down to ``REPORT_WIDTH_PX`` when wider)."""
    with Image.open(png) as im:
        width, pt = im.width, float(im.text["smallest text pt"])
    return pt / 72 * DPI * min(1.0, REPORT_WIDTH_PX / width)


def save(fig, outdir: Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name``.png and ``name``.svg in ``outdir``; close it. The PNG records
    its smallest font size (``text_px_in_report`` reads it back)."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.png", outdir / f"{name}.svg"]
    fig.savefig(paths[0], dpi=DPI, bbox_inches="tight", metadata={"smallest text pt": f"{smallest_text_pt(fig):g}"})
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def draw_all(res, figures: dict, outdir: Path, names: dict[str, str]) -> dict[str, list[Path] | str]:
    """Draw each ``figures[name](res)`` in the style and save it as ``names[name]`` in ``outdir``:
    name -> [png, svg], or name -> 'skipped: <what is missing>'."""
    out: dict[str, list[Path] | str] = {}
    with style():
        for name, draw in figures.items():
            try:
                fig = draw(res)
            except FigureSkipped as e:
                out[name] = f"skipped: {e}"
                continue
            out[name] = save(fig, outdir, names[name])
    return out


def make_figures(source, figures: dict, files: dict, outdir=None) -> dict[str, list[Path] | str]:
    """A study's ``figures`` (name -> draw(results)) of a results folder (a path or ``Results``),
    saved as ``files[name]`` into ``outdir`` (default ``<folder>/figures``): ``draw_all``."""
    from mlplab.analysis import load

    res = load(source)
    outdir = Path(outdir) if outdir is not None else Path(res.path) / "figures"
    return draw_all(res, figures, outdir, files)


def steps_heatmap(ax, values: pd.DataFrame, text, norm, cmap, colorbar: bool, grey: str, **kw) -> None:
    """Median steps to a target as a heatmap on ``ax``: ``values`` coloured on ``norm``, each
    cell labelled with ``text``; a cell without a finite value (its median run never reaches the
    target) gets the colour map's 'bad' colour and its label in ``grey``. ``kw``: more of
    ``seaborn.heatmap``."""
    # the colour range is the norm's: seaborn would take it from the data, and a panel may have no finite value
    kw = {"vmin": norm.vmin, "vmax": norm.vmax, **kw}
    sns.heatmap(
        values,
        ax=ax,
        annot=text,
        fmt="",
        cmap=cmap,
        norm=norm,
        cbar=colorbar,
        cbar_kws={"label": "median steps"},
        linewidths=0.5,
        linecolor="white",
        annot_kws={"fontsize": 8.5},
        **kw,
    )
    missing = ~np.isfinite(values.to_numpy(float))
    for (r, c), label in np.ndenumerate(text):
        if label and missing[r, c]:
            ax.text(c + 0.5, r + 0.5, label, ha="center", va="center", fontsize=8.5, color=grey)


def cell_edges(centres) -> np.ndarray:
    """The cell edges of a heatmap around sorted centres: midpoints, the ends mirrored."""
    v = np.asarray(sorted(centres), float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])

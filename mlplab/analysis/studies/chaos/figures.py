"""The edge-of-chaos study's figures: the measured decay per layer over σ_w² × σ_b² against the
critical line (``fig_chaos_heatmap``) and the trainable fraction over σ_w² × depth against
multiples of ξ_c (``fig_trainability``), saved by ``make_figures`` as PNG and SVG."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import TwoSlopeNorm

from mlplab import theory
from mlplab.analysis import load
from mlplab.analysis.plots import cell_edges, save, style
from mlplab.analysis.studies.chaos.measures import (
    ACC_TARGET,
    RATE_TOL,
    TRAIN_MULTIPLE,
    decay_table,
    trainability_table,
)

CURVE_POINTS = 41  # σ_w² values on which the 6 ξ_c curve is drawn


@functools.lru_cache(maxsize=256)
def _critical_sigma_w2(activation: str, sigma_b2: float) -> float:
    return theory.critical_sigma_w(activation, math.sqrt(sigma_b2), lo=0.3, hi=3.0, tol=1e-6) ** 2


def critical_line(activation: str, sigma_b2) -> pd.DataFrame:
    """σ_w² with χ1 = 1 for each σ_b² (``mlplab.theory.critical_sigma_w``; remembered)."""
    sb2 = [float(b) for b in np.asarray(sigma_b2, float)]
    return pd.DataFrame({"sigma_b2": sb2, "sigma_w2": [_critical_sigma_w2(activation, b) for b in sb2]})


def heatmap_data(t: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``decay_table`` the heatmap draws: those of its first (activation, width, depth)."""
    if t.empty:
        raise ValueError("no single-input runs at initialisation")
    first_row = t.iloc[0]
    return t[
        (t["activation"] == first_row["activation"])
        & (t["width"] == first_row["width"])
        & (t["depth"] == first_row["depth"])
    ]


def fig_chaos_heatmap(res, table: pd.DataFrame | None = None):
    """Left: the measured per-layer rate of ln ‖∂C/∂b^l‖² over σ_w² × σ_b² with the theory's
    critical line χ1 = 1. Right: measured against ln χ1, one point per (σ_w², σ_b²)."""
    t = heatmap_data(decay_table(res) if table is None else table)
    act, width, depth = t["activation"].iloc[0], int(t["width"].iloc[0]), int(t["depth"].iloc[0])
    grid = t.pivot_table(index="sigma_b2", columns="sigma_w2", values="rate", aggfunc="median")
    xs, ys = grid.columns.to_numpy(float), grid.index.to_numpy(float)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 5.0), gridspec_kw={"width_ratios": [1.25, 1]})
    vals = grid.to_numpy(float)
    finite = vals[np.isfinite(vals)]
    vmin = min(float(finite.min()) if finite.size else -1.0, -1e-3)
    vmax = max(float(finite.max()) if finite.size else 1.0, 1e-3)
    cmap = sns.color_palette("viridis", as_cmap=True).with_extremes(bad="0.85")
    mesh = ax.pcolormesh(
        cell_edges(xs),
        cell_edges(ys),
        np.ma.masked_invalid(vals),
        cmap=cmap,
        norm=TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax),
        shading="flat",
    )
    cb = fig.colorbar(mesh, ax=ax, pad=0.02)
    cb.set_label(r"measured rate of $\ln\|\partial C/\partial b^l\|^2$ per layer")
    sb_fine = np.linspace(ys.min(), ys.max(), 13)
    crit = critical_line(act, sb_fine)
    ax.plot(crit["sigma_w2"], crit["sigma_b2"], color="white", lw=3.2)
    ax.plot(crit["sigma_w2"], crit["sigma_b2"], color="black", lw=1.6, ls="--", label=r"theory: $\chi_1 = 1$")
    if len(xs) > 1 and len(ys) > 1 and np.isfinite(vals).all() and vals.min() < 0 < vals.max():
        ax.contour(xs, ys, vals, levels=[0.0], colors="crimson", linewidths=1.6)
        ax.plot([], [], color="crimson", lw=1.6, label="measured rate = 0")
    ax.set_xlim(cell_edges(xs)[0], cell_edges(xs)[-1])
    ax.set_ylim(cell_edges(ys)[0], cell_edges(ys)[-1])
    ax.set_xlabel(r"weight variance $\sigma_w^2$ (W ~ N(0, $\sigma_w^2/n_{in}$))")
    ax.set_ylabel(r"bias variance $\sigma_b^2$")
    ax.text(0.03, 0.95, "ordered:\nvanishing", transform=ax.transAxes, va="top", color="white", fontsize=9)
    ax.text(0.97, 0.95, "chaotic:\nexploding", transform=ax.transAxes, va="top", ha="right", color="black", fontsize=9)
    ax.legend(loc="lower right", frameon=True, framealpha=0.85)
    ax.set_title(f"{act}, {depth} hidden layers of {width}: median over seeds")

    colors = dict(zip(ys, sns.color_palette("viridis", len(ys))))
    bx.axhspan(-RATE_TOL, RATE_TOL, color="0.92", lw=0)
    bx.axhline(0, color="0.4", lw=1, ls=":")
    for sb2, g in t.groupby("sigma_b2"):
        err = np.vstack([g["rate"] - g["rate_min"], g["rate_max"] - g["rate"]])
        bx.errorbar(
            g["log_chi1"],
            g["diff"],
            yerr=np.where(np.isfinite(err), err, 0),
            fmt="o",
            ms=4,
            lw=0.8,
            elinewidth=0.8,
            alpha=0.85,
            color=colors[sb2],
            label=f"{sb2:g}",
        )
        bx.plot(g["log_chi1"], g["rate_path"] - g["log_chi1"], "x", ms=5, color=colors[sb2])
    bx.plot([], [], "x", color="0.3", label="mean field")
    bx.axvline(0, color="0.6", lw=0.8)
    bx.set_xlabel(r"theory: $\ln\chi_1$ per layer")
    bx.set_ylabel(r"measured rate $-\ln\chi_1$ (bars: seeds' min–max)")
    handles, labels = bx.get_legend_handles_labels()
    order = [i for i, l in enumerate(labels) if l != "mean field"] + [labels.index("mean field")]
    bx.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        title=r"$\sigma_b^2$ (dots: measured, median over seeds; ×: mean field along the same layers)",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
        ncol=4,
        frameon=False,
    )
    first, last = int(t["first"].iloc[0]), int(t["last"].iloc[0])
    inside = int((np.abs(t["diff"]) <= RATE_TOL).sum())
    bx.set_title(
        f"measured − predicted, layers {first}–{last}\n(grey band: ±{RATE_TOL:g}; {inside} of {len(t)} cells inside)"
    )
    fig.suptitle(
        r"Per-layer decay of the squared gradient at initialisation, one input: "
        r"$\ln\|\delta^l\|^2 - \ln\|\delta^{l+1}\|^2 \to \ln\chi_1$",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


@functools.lru_cache(maxsize=4096)
def _xi_c(activation: str, sigma_w2: float, sigma_b: float) -> float:
    return theory.xi_c(activation, math.sqrt(sigma_w2), sigma_b)


def xi_c_curve(
    activation: str, sigma_b: float, sigma_w2_lo: float, sigma_w2_hi: float, points: int = CURVE_POINTS
) -> pd.DataFrame:
    """ξ_c on an even grid of σ_w² in [lo, hi] (lo > 0; for drawing multiples of it), with two
    points 0.001 either side of the critical σ_w², which is in every row (remembered)."""
    sw2 = np.linspace(max(sigma_w2_lo, 1e-3), sigma_w2_hi, points)
    crit = _critical_sigma_w2(activation, float(sigma_b) ** 2)
    if sw2[0] < crit < sw2[-1]:
        sw2 = np.sort(np.concatenate([sw2, [crit - 1e-3, crit + 1e-3]]))
    xi = [_xi_c(activation, round(float(s), 12), float(sigma_b)) for s in sw2]
    return pd.DataFrame({"sigma_w2": sw2, "xi_c": xi}).assign(critical_sigma_w2=crit)


def trainability_data(t: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``trainability_table`` the figure draws: those of its first (activation, σ_b, width)."""
    if t.empty:
        raise ValueError("no trained runs")
    return t[
        (t["activation"] == t["activation"].iloc[0])
        & (t["sigma_b"] == t["sigma_b"].iloc[0])
        & (t["width"] == t["width"].iloc[0])
    ]


def fig_trainability(res, table: pd.DataFrame | None = None, multiple: float = TRAIN_MULTIPLE):
    """The fraction of trainable runs over σ_w² × depth, with the multiple × ξ_c curve and the
    critical σ_w² (χ1 = 1) at the runs' σ_b."""
    t = trainability_data(trainability_table(res, multiple) if table is None else table)
    act, sb, width = t["activation"].iloc[0], float(t["sigma_b"].iloc[0]), int(t["width"].iloc[0])
    frac = t.pivot_table(index="depth", columns="sigma_w2", values="fraction")
    n = t.pivot_table(index="depth", columns="sigma_w2", values="n")
    k = t.pivot_table(index="depth", columns="sigma_w2", values="n_trainable")
    xs, ys = frac.columns.to_numpy(float), frac.index.to_numpy(float)
    xe = cell_edges(xs)
    ye = np.exp(cell_edges(np.log(ys)))
    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = sns.color_palette("viridis", as_cmap=True).with_extremes(bad="0.85")
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(frac.to_numpy(float)), cmap=cmap, vmin=0, vmax=1, shading="flat")
    cb = fig.colorbar(mesh, ax=ax, pad=0.02)
    cb.set_label(f"fraction of seeds trainable (train accuracy ≥ {ACC_TARGET:g})")
    for i in range(len(ys)):
        for j, x in enumerate(xs):
            if np.isfinite(frac.iloc[i, j]):
                f = frac.iloc[i, j]
                ax.text(
                    x,
                    math.sqrt(ye[i] * ye[i + 1]),
                    f"{k.iloc[i, j]:.0f}/{n.iloc[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="black" if f > 0.6 else "white",
                )
    curve = xi_c_curve(act, sb, xe[0], xe[-1])
    crit = float(curve["critical_sigma_w2"].iloc[0])
    ax.plot(curve["sigma_w2"], multiple * curve["xi_c"], color="white", lw=3.4)
    ax.plot(
        curve["sigma_w2"], multiple * curve["xi_c"], color="crimson", lw=1.8, label=rf"theory: ${multiple:g}\,\xi_c$"
    )
    ax.plot(curve["sigma_w2"], curve["xi_c"], color="crimson", lw=1.2, ls=":", label=r"$\xi_c$")
    if math.isfinite(crit):
        ax.axvline(crit, color="black", lw=1.4, ls="--", label=rf"critical $\sigma_w^2$ = {crit:.3g} ($\chi_1 = 1$)")
    ax.set_yscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{y:g}" for y in ys])
    ax.minorticks_off()
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(r"weight variance $\sigma_w^2$")
    ax.set_ylabel("depth L (hidden layers, log scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=3, frameon=False)
    steps = int(t["steps"].median())
    ax.set_title(
        f"Trainability of {act} nets ({width} units, $\\sigma_b^2$ = {sb * sb:.3g}) after {steps} SGD steps;"
        f"\ncell: seeds reaching the target / seeds run",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def make_figures(source, outdir=None, decay: pd.DataFrame | None = None, train: pd.DataFrame | None = None) -> dict:
    """Both figures as PNG and SVG in ``outdir`` (default ``<folder>/figures``): name -> [png,
    svg], or name -> a note when the folder lacks the runs a figure needs."""

    res = load(source)
    outdir = Path(outdir) if outdir is not None else Path(res.path) / "figures"
    decay = decay_table(res) if decay is None else decay
    train = trainability_table(res) if train is None else train
    out = {}
    with style():
        for name, draw, table in (
            ("chaos_heatmap", fig_chaos_heatmap, decay),
            ("chaos_trainability", fig_trainability, train),
        ):
            if table.empty:
                out[name] = "skipped: no runs for it"
                continue
            out[name] = save(draw(res, table), outdir, name)
    return out

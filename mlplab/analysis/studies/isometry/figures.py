"""The isometry study's figures: I1 the spectral density of JJᵀ per depth (the papers' Fig. 1
analogue), I2 the spread against depth with the theory's lines, I3 the finite-width gap, I4 the
steps to the target against depth per init."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mlplab import theory
from mlplab.analysis import load, plots
from mlplab.analysis.plots import FigureSkipped, category_colors
from mlplab.analysis.studies.isometry.measures import (
    INITS,
    TARGET,
    TOL_SPREAD,
    depth_runs,
    trained_runs,
    width_runs,
)

TITLES = {
    "iso_density": "I1. The spectrum of JJᵀ at initialisation, per depth: Gaussian vs orthogonal weights",
    "iso_spread": "I2. The spread of JJᵀ's spectrum (variance / mean²) against depth, measured and theory",
    "iso_width": "I3. The finite-width gap: measured spread / theory against width",
    "iso_steps": "I4. Steps to the training-accuracy target against depth, per init",
}
FILES = {name: name.replace("iso_", "I_") for name in TITLES}
LABELS = {"normal": "Gaussian", "orthogonal": "orthogonal"}
POINT_ORDER = ["linear", "tanh, q* = 1/64", "tanh, q* = 1", "relu", "sigmoid"]


def point_order(points) -> list:
    """The critical points in the study's order (linear first, then tanh at small q*)."""
    pts = list(dict.fromkeys(points))
    return sorted(pts, key=lambda p: next((i for i, o in enumerate(POINT_ORDER) if p.startswith(o)), len(POINT_ORDER)))


def init_colors() -> dict:
    return category_colors(list(INITS), list(INITS))


def shown_depths(depths) -> list[int]:
    """Three depths of the sweep for I1: the shallowest, one in the middle (log scale), the deepest."""
    d = sorted(set(int(x) for x in depths))
    if len(d) <= 3:
        return d
    mid = min(d, key=lambda x: abs(np.log(x) - 0.5 * (np.log(d[0]) + np.log(d[-1]))))
    return [d[0], mid, d[-1]]


def median_bars(ax, g, x: str, y: str, shift: float = 0.0, **kw) -> None:
    """The median of ``y`` over seeds at each ``x`` with bars from the smallest to the largest
    (x moved by the factor 1 + ``shift``, to set two series apart on a log axis)."""
    q = g.groupby(x)[y].agg(["median", "min", "max"])
    xs = q.index.to_numpy(float) * (1.0 + shift)
    ax.errorbar(xs, q["median"], yerr=[q["median"] - q["min"], q["max"] - q["median"]], ms=4, **kw)


def theory_density(ax, run, init: str, bins, color) -> bool:
    """The free-probability density of log10 λ (``theory.jjt_density``, every layer at q*: the
    runs' inputs start there) over ``bins`` on ``ax``, where its Newton continuation converges
    and holds most of the mass (here: shallow nets; a spectrum over many decades, or a single
    atom, it does not resolve). Returns whether it was drawn."""
    x = np.linspace(bins[0], bins[-1], 240)
    lam = 10.0**x
    with np.errstate(all="ignore"):
        rho = theory.jjt_density(
            run["activation"], run["sigma_w"], run["sigma_b"], int(run["depth"]), init, x=lam, n=64
        )
    p = rho * lam * np.log(10.0)  # density of log10 λ
    if not np.isfinite(p).all() or np.trapezoid(p, x) < 0.3:
        return False
    # below ~1e3 × the Cauchy kernel's half-width (eps × the scale) the smoothing, not the spectrum, shapes ρ
    scale = run["theory_m1"] * (1.0 + run["theory_spread"])
    keep = lam > 1e-4 * scale
    ax.plot(x[keep], p[keep], color=color, lw=1.1)
    return True


def fig_density(source):
    """Rows: critical points; columns: three depths; per init the histogram of log10 λ (λ = s²,
    every seed's samples pooled) with the theory's mean m1 (dashed) and the measured one (dotted)."""
    res = load(source)
    d = depth_runs(res)
    if d.empty:
        raise FigureSkipped("no spectra at initialisation")
    sp = res.spectra[res.spectra["step"] == 0]
    sp = sp.assign(run_id=sp["run_id"].astype(str))
    points, depths = point_order(d["point"]), shown_depths(d["depth"])
    colors = init_colors()
    fig, axes = plt.subplots(len(points), len(depths), figsize=(8.6, 1.75 * len(points) + 0.9), squeeze=False)
    for i, point in enumerate(points):
        rows = d[d["point"] == point]
        ids = set(rows.index)
        lam_all = sp.loc[sp["run_id"].isin(ids), "singular_value"].to_numpy() ** 2
        with np.errstate(divide="ignore"):
            logs = np.log10(lam_all[lam_all > 0])
        lo, hi = np.quantile(logs, [0.002, 0.998]) if len(logs) else (-1.0, 1.0)
        # below ε² of the largest λ an SVD does not resolve λ (rank-deficient J, dead ReLUs): one bin
        floor = (logs.max() if len(logs) else 0.0) + 2 * np.log10(np.finfo(float).eps)
        lo, hi = min(max(lo, floor), -0.5), max(hi, 0.5)
        bins = np.linspace(lo, hi, 60)
        for j, depth in enumerate(depths):
            ax = axes[i, j]
            for init in INITS:
                runs = rows[(rows["depth"] == depth) & (rows["init"] == init)]
                if runs.empty:
                    continue
                lam = sp.loc[sp["run_id"].isin(set(runs.index)), "singular_value"].to_numpy() ** 2
                with np.errstate(divide="ignore"):
                    x = np.log10(np.maximum(lam, 1e-300))
                zero = x < lo
                n_all = len(x)
                x = np.minimum(x[~zero], hi)
                # a density over all of λ: the zeros' share is missing from its area, as from the theory's curve
                ax.hist(
                    x,
                    bins=bins,
                    weights=np.full(len(x), 1.0 / (n_all * (bins[1] - bins[0]))),
                    histtype="stepfilled",
                    alpha=0.35,
                    color=colors[init],
                    label=LABELS[init],
                )
                if zero.any():  # unresolved (zero to rounding): a count, not a bar that would flatten the rest
                    ax.text(
                        0.02,
                        0.92 - 0.14 * INITS.index(init),
                        f"{zero.mean():.0%} ≈ 0" if zero.mean() >= 0.005 else "< 1 % ≈ 0",
                        transform=ax.transAxes,
                        fontsize=8,
                        color=colors[init],
                        va="top",
                    )
                if j == 0:
                    theory_density(ax, runs.iloc[0], init, bins, colors[init])
                ax.axvline(np.log10(runs["theory_m1"].iloc[0]), color=colors[init], ls="--", lw=1.2)
                ax.axvline(np.log10(runs["m1"].median()), color=colors[init], ls=":", lw=1.2)
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"depth {depth}", fontsize=10)
            if j == 0:
                ax.set_ylabel(point, fontsize=9)
            if i == len(points) - 1:
                ax.set_xlabel("log10 λ  (λ = s², JJᵀ's eigenvalues)")
    h, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, labels, loc="upper right", ncol=2, frameon=False, bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(
        TITLES["iso_density"] + f"\nwidth {int(d['width'].iloc[0])}, each activation at the edge of chaos; line"
        f" (depth {depths[0]}): the theory's density where it converges;\ndashed: the theory's mean λ; dotted: the"
        " measured mean; “x % ≈ 0”: λ below ε² × the largest (zero to rounding; not drawn)",
        fontsize=10,
        x=0.02,
        ha="left",
    )
    fig.tight_layout()
    return fig


def fig_spread(source):
    """A panel per critical point: the spread var(λ)/m1² against depth per init (median over
    seeds, bars min–max) and the theory's line; log–log, orthogonal linear nets (spread 0) left out."""
    d = depth_runs(load(source))
    if d.empty:
        raise FigureSkipped("no spectra at initialisation")
    points = point_order(d["point"])
    colors = init_colors()
    ncols = min(3, len(points))
    nrows = -(-len(points) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(8.6, 2.9 * nrows + 0.6), squeeze=False)
    for k, point in enumerate(points):
        ax = axes.flat[k]
        for init in INITS:
            g = d[(d["point"] == point) & (d["init"] == init)]
            if g.empty or (g["theory_spread"] == 0).all():
                continue
            th = g.groupby("depth")["theory_spread"].first()
            median_bars(ax, g, "depth", "spread", fmt="o", color=colors[init], label=f"{LABELS[init]}, measured")
            ax.plot(th.index, th.to_numpy(), "--", color=colors[init], lw=1.3, label=f"{LABELS[init]}, theory")
            ax.fill_between(th.index, th / TOL_SPREAD, th * TOL_SPREAD, color=colors[init], alpha=0.08, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(point, fontsize=10)
        ax.set_xlabel("depth L")
        if k % ncols == 0:
            ax.set_ylabel("var(λ) / mean(λ)²")
    for ax in list(axes.flat)[len(points) :]:
        ax.axis("off")
    h, labels = max((ax.get_legend_handles_labels() for ax in axes.flat), key=lambda hl: len(hl[0]))
    spare = len(points) % ncols
    if spare:  # in the empty panels' place
        fig.legend(h, labels, loc="center", frameon=False, bbox_to_anchor=(0.84, 0.25))
    else:
        fig.legend(h, labels, loc="upper center", frameon=False, bbox_to_anchor=(0.5, 0.0), ncol=4)
    fig.suptitle(
        TITLES["iso_spread"]
        + f"\nmedian over seeds (bars: min–max); band: theory × / ÷ {TOL_SPREAD:g} (the claims' tolerance)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def fig_width(source):
    """Per critical point and init, measured spread / theory (median over seeds, bars min–max)
    against width at one depth; 1 is the wide limit."""
    w = width_runs(load(source))
    w = w[w["theory_spread"] > 0] if not w.empty else w
    if w.empty:
        raise FigureSkipped("no width sweep (one depth at several widths)")
    w = w.assign(ratio=w["spread"] / w["theory_spread"])
    points = point_order(w["point"])
    colors = init_colors()
    fig, axes = plt.subplots(1, len(points), figsize=(8.6, 3.2), squeeze=False, sharey=True)
    for k, point in enumerate(points):
        ax = axes[0, k]
        for init in INITS:
            g = w[(w["point"] == point) & (w["init"] == init)]
            if g.empty:
                continue
            median_bars(ax, g, "width", "ratio", fmt="o-", color=colors[init], label=LABELS[init])
        ax.axhline(1.0, color="0.3", lw=0.8)
        ax.axhspan(1 / TOL_SPREAD, TOL_SPREAD, color="0.5", alpha=0.08, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(point, fontsize=10)
        ax.set_xlabel("width n")
    axes[0, 0].set_ylabel("measured spread / theory")
    h, labels = max((ax.get_legend_handles_labels() for ax in axes.flat), key=lambda hl: len(hl[0]))
    fig.legend(h, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(
        TITLES["iso_width"] + f"\ndepth {int(w['depth'].iloc[0])}; grey band: the claims' tolerance", fontsize=10
    )
    fig.tight_layout()
    return fig


def fig_steps(source):
    """A panel per learning rate: median steps to TARGET against depth per init (bars: min–max
    over seeds of the runs that reached it); a median run that never reaches it sits on 'never'."""
    t = trained_runs(load(source))
    if t.empty:
        raise FigureSkipped("no trained runs")
    rates = sorted(t["lr"].unique())
    colors = init_colors()
    never = float(t["beyond"].max())
    fig, axes = plt.subplots(1, len(rates), figsize=(3.4 * len(rates) + 1.6, 3.3), squeeze=False, sharey=True)
    for k, lr in enumerate(rates):
        ax = axes[0, k]
        for n, init in enumerate(INITS):
            g = t[(t["lr"] == lr) & (t["init"] == init)]
            if g.empty:
                continue
            g = g.assign(steps=np.minimum(g["steps"], never))
            median_bars(
                ax, g, "depth", "steps", fmt="o-", color=colors[init], label=LABELS[init], shift=0.04 * (n - 0.5)
            )
        ax.axhline(never, color="0.5", ls=":", lw=1)
        ax.text(
            0.5, never, "never", transform=ax.get_yaxis_transform(), ha="center", va="bottom", fontsize=8, color="0.4"
        )
        ax.set_xscale("log", base=2)
        depths = sorted(t["depth"].unique())
        ax.set_xticks(depths, [str(x) for x in depths])
        ax.minorticks_off()
        ax.set_title(f"learning rate {lr:g}", fontsize=10)
        ax.set_xlabel("depth L")
    axes[0, 0].set_ylabel(f"steps to training accuracy {TARGET:g}")
    h, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(
        TITLES["iso_steps"] + f"\ntanh at the edge of chaos (q* = 1/64), {int(t['width'].iloc[0])} units per layer,"
        f" {t['dataset'].iloc[0]}; median over {t['seed'].nunique()} seeds (bars: min–max)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


FIGURES = {"iso_density": fig_density, "iso_spread": fig_spread, "iso_width": fig_width, "iso_steps": fig_steps}


def make_figures(source, outdir=None) -> dict:
    return plots.make_figures(source, FIGURES, FILES, outdir)

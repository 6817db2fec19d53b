"""The optimisers study's two figures: O1, per layer, the gradient norm and the update ratio of
each optimiser at initialisation and after training; O2, the steps to the target against depth."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mlplab.analysis import load, plots
from mlplab.analysis.measures import ACC_FRAC
from mlplab.analysis.plots import ACT_ORDER, FigureSkipped, category_colors, ordered
from mlplab.analysis.studies.optimisers.compare import PHASES, arm_order, profiles, steps_table

TITLES = {
    "opt_profiles": "O1. Gradient norm and update ratio per layer, per optimiser",
    "opt_steps": "O2. Steps to the test-accuracy target vs depth, per optimiser",
}
MEASURES = {"grad_w_norm": r"$\|\partial C/\partial W^l\|$", "update_ratio": r"$\|\Delta W^l\| / \|W^l\|$"}


def profile_setting(p: pd.DataFrame) -> dict:
    """The cell O1 shows: the deepest depth ≤ 16, mnist when there, sigmoid when there (the post's network)."""
    depths = sorted(p["depth"].unique())
    depth = max([d for d in depths if d <= 16] or depths)
    datasets = sorted(p["dataset"].unique())
    acts = ordered(p["activation"], ACT_ORDER)
    return {
        "dataset": "mnist" if "mnist" in datasets else datasets[0],
        "activation": acts[0],
        "depth": depth,
    }


def fig_profiles(source):
    """Rows: the two measures; columns: initialisation, after training; a line per optimiser
    (median over seeds of each layer, a band for the quartiles), log y."""
    p = profiles(load(source))
    if p.empty:
        raise FigureSkipped("no runs of two optimisers")
    at = profile_setting(p)
    d = p[(p["dataset"] == at["dataset"]) & (p["activation"] == at["activation"]) & (p["depth"] == at["depth"])]
    arms = arm_order(d["optimiser"])
    colors = category_colors(arms, arms)
    fig, axes = plt.subplots(2, 2, figsize=(8.4, 6.4), squeeze=False, sharex=True, sharey="row")
    for i, (col, label) in enumerate(MEASURES.items()):
        for j, phase in enumerate(PHASES.values()):
            ax = axes[i, j]
            for arm in arms:
                g = d[(d["optimiser"] == arm) & (d["phase"] == phase)]
                g = g[np.isfinite(g[col]) & (g[col] > 0)]
                if g.empty:
                    continue
                q = g.groupby("layer")[col].quantile([0.25, 0.5, 0.75]).unstack()
                ax.plot(q.index, q[0.5], "o-", ms=3, lw=1.6, color=colors[arm], label=arm)
                ax.fill_between(q.index, q[0.25], q[0.75], color=colors[arm], alpha=0.12, lw=0)
            ax.set_yscale("log")
            ax.set_title(f"{phase}", fontsize=10)
            if i == 1:
                ax.set_xlabel("layer l (1: first hidden, L: output)")
        axes[i, 0].set_ylabel(label)
    h, l = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, l, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="optimiser")
    fig.suptitle(
        TITLES["opt_profiles"] + f"\n{at['activation']}, depth {at['depth']}, {at['dataset']}; each optimiser at "
        "its best learning rate; median over seeds (band: quartiles)",
        fontsize=10.5,
    )
    fig.tight_layout()
    return fig


def fig_steps(source):
    """Rows: data sets; columns: activations; a line per optimiser of the median steps to the
    target against depth; a median run that never reaches it sits on the 'never' line."""
    t = steps_table(load(source))
    if t.empty:
        raise FigureSkipped("no runs of two optimisers")
    datasets, acts = sorted(t["dataset"].unique()), ordered(t["activation"], ACT_ORDER)
    arms = arm_order(t["optimiser"])
    colors = category_colors(arms, arms)

    def never_at(ds: str) -> float:
        """Where a data set's 'never' line sits: twice its slowest median that reaches the target."""
        d = t[t["dataset"] == ds]
        finite = d.loc[np.isfinite(d["median"]) & (d["median"] > 0), "median"]
        return 2 * (finite.max() if len(finite) else 10)

    fig, axes = plt.subplots(
        len(datasets),
        len(acts),
        figsize=(2.8 * len(acts) + 1.2, 2.6 * len(datasets) + 1.0),
        squeeze=False,
        sharey="row",
    )
    depths = sorted(t["depth"].unique())
    for i, ds in enumerate(datasets):
        top = never_at(ds)
        for j, act in enumerate(acts):
            ax = axes[i, j]
            for k, arm in enumerate(arms):
                g = t[(t["dataset"] == ds) & (t["activation"] == act) & (t["optimiser"] == arm)].sort_values("depth")
                y = np.where(np.isfinite(g["median"]), g["median"], top)
                jitter = 1 + 0.03 * (k - (len(arms) - 1) / 2)  # arms that never reach it stay apart
                ax.plot(g["depth"] * jitter, np.maximum(y, 1), "o-", ms=3.5, lw=1.5, color=colors[arm], label=arm)
            ax.axhline(top, color="0.5", lw=0.8, ls=":")
            ax.text(depths[0], top, " never", va="bottom", fontsize=8.5, color="0.3")
            ax.set_xscale("log", base=2)
            ax.set_xticks(depths, [str(x) for x in depths])
            ax.set_yscale("log")
            ax.set_title(f"{act}, {ds}", fontsize=10)
            if i == len(datasets) - 1:
                ax.set_xlabel("depth (hidden layers)")
            ax.set_ylabel("median steps to target" if j == 0 else "")
    h, l = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, l, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="optimiser")
    targets = ", ".join(f"{ds} {t.loc[t['dataset'] == ds, 'target'].iloc[0]:.3g}" for ds in datasets)
    fig.suptitle(
        TITLES["opt_steps"] + f"\nfirst logged step with test accuracy ≥ {ACC_FRAC:g} × the best median final one "
        f"({targets}); each optimiser at its best rate",
        fontsize=10.5,
    )
    fig.tight_layout()
    return fig


def make_figures(source, outdir=None) -> dict[str, list]:
    """Both figures into ``outdir`` (default ``<folder>/figures``): name -> [png, svg], or a note."""
    return plots.make_figures(source, FIGURES, FILES, outdir)


FIGURES = {"opt_profiles": fig_profiles, "opt_steps": fig_steps}
FILES = {"opt_profiles": "O1_optimiser_profiles", "opt_steps": "O2_optimiser_steps"}

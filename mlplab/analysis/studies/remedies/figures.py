"""The remedies study's two figures: each remedy's first-to-last gradient ratio and its steps
to the target, against the plain twin's (in black)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mlplab.analysis import load, plots
from mlplab.analysis.fmt import number, reached
from mlplab.analysis.measures import ACC_FRAC, PHASES
from mlplab.analysis.plots import category_colors, steps_heatmap
from mlplab.analysis.studies.remedies.arms import REMEDIES
from mlplab.analysis.studies.remedies.compare import TRAINING_ONLY, per_run, steps_table

ORDER = ["plain", *REMEDIES]
TITLES = {
    "remedy_ratios": "R1. First-to-last gradient ratio vs depth, per remedy",
    "remedy_steps": "R2. Steps to the test-accuracy target, per remedy",
}


def _training_only() -> str:
    """'norm clipping, weight decay and adam': the remedies that equal their twins at step 0."""
    *rest, last = [r for r in REMEDIES if r in TRAINING_ONLY]
    return f"{', '.join(rest)} and {last}" if rest else last


def twin_activations(d: pd.DataFrame) -> list[str]:
    """The twins' activations, one row of panels each: sigmoid and tanh where present."""
    return [a for a in ("sigmoid", "tanh") if a in set(d["activation"])] or sorted(d["activation"].unique())


def ratios_data(source) -> pd.DataFrame:
    """``per_run`` without the runs that carry several remedies: what R1 draws (``w_init``, ``w_end``)."""
    pr = per_run(load(source))
    return pr[pr["remedy"] != "several"]


def in_panel(pr: pd.DataFrame, remedy: str, activation: str) -> pd.Series:
    """The runs of ``remedy`` in the panel of the ``activation`` twins (relu, the remedy, in every panel)."""
    return (pr["remedy"] == remedy) & (
        (pr["activation"] == activation) | ((remedy == "relu") & (pr["activation"] == "relu"))
    )


def steps_data(source) -> pd.DataFrame:
    """``steps_table`` without the runs that carry several remedies: what R2 draws."""
    t = steps_table(source)
    return t[t["remedy"] != "several"]


def in_steps_panel(t: pd.DataFrame, activation: str) -> pd.Series:
    """The rows of R2's panel of the ``activation`` twins (relu, the remedy, in every panel)."""
    return (t["activation"] == activation) | (t["remedy"] == "relu")


def fig_ratios(source):
    """Median ‖∂C/∂W^1‖/‖∂C/∂W^L‖ against depth, one line per remedy (plain in black), per
    twin activation (rows) and phase (columns); a band for the quartiles."""
    pr = ratios_data(source)
    acts = twin_activations(pr)
    rem = [r for r in ORDER if r in set(pr["remedy"])]
    colors = category_colors(rem, ORDER)
    fig, axes = plt.subplots(
        len(acts), 2, figsize=(8.4, 3.0 * len(acts) + 0.8), squeeze=False, sharex=True, sharey="row"
    )
    for i, act in enumerate(acts):
        for j, (phase, col) in enumerate(zip(PHASES, ("w_init", "w_end"))):
            ax = axes[i, j]
            for r in rem:
                g = pr[in_panel(pr, r, act)]
                q = g.groupby("depth")[col].quantile([0.25, 0.5, 0.75]).unstack() if len(g) else None
                if q is None or q.empty:
                    continue
                lw, z = (2.4, 5) if r == "plain" else (1.3, 3)
                ax.plot(q.index, q[0.5], "o-", color=colors[r], lw=lw, ms=3.5, zorder=z, label=r)
                ax.fill_between(q.index, q[0.25], q[0.75], color=colors[r], alpha=0.12, lw=0)
            ax.axhline(1.0, color="0.4", lw=0.9, ls="--")
            ax.set_yscale("log")
            ax.set_xscale("log", base=2)
            depths = sorted(pr["depth"].unique())
            ax.set_xticks(depths, [str(d) for d in depths])
            ax.set_title(f"{act} twins, {phase}", fontsize=10)
            if i == len(acts) - 1:
                ax.set_xlabel("depth (hidden layers)")
        axes[i, 0].set_ylabel(r"$\|\partial C/\partial W^1\| / \|\partial C/\partial W^L\|$")
    h, l = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, l, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="remedy")
    fig.suptitle(
        TITLES["remedy_ratios"]
        + "\nmedian over seeds (band: quartiles); 1 (dashed) = every layer learns at the same speed; "
        f"relu is drawn in both rows;\n{_training_only()} act only during training: "
        "at step 0 they lie under plain",
        fontsize=10.5,
    )
    fig.tight_layout()
    return fig


def fig_steps(source):
    """Heatmap per twin activation: remedies (rows) × depth (columns), median steps to the shared
    target (colour, log scale; grey: the median run never reaches it), with k/n runs reaching it."""
    t = steps_data(source)
    acts = twin_activations(t)
    rows = [r for r in ORDER if r in set(t["remedy"])]
    depths = sorted(t["depth"].unique())
    finite = t.loc[np.isfinite(t["median"]) & (t["median"] > 0), "median"]
    lo, hi = (finite.min(), finite.max()) if len(finite) else (1, 10)
    norm = matplotlib.colors.LogNorm(vmin=max(lo, 1), vmax=max(hi, 2 * lo, 2))
    cmap = sns.color_palette("viridis_r", as_cmap=True).with_extremes(bad="0.88")
    fig, axes = plt.subplots(1, len(acts), figsize=(4.3 * len(acts) + 0.6, 0.42 * len(rows) + 1.6), squeeze=False)
    for j, act in enumerate(acts):
        d = t[in_steps_panel(t, act)]
        med = d.pivot_table(index="remedy", columns="depth", values="median", aggfunc="first").reindex(
            index=rows, columns=depths
        )
        reach = d.pivot_table(index="remedy", columns="depth", values="n_reached", aggfunc="first").reindex(
            index=rows, columns=depths
        )
        n = d.pivot_table(index="remedy", columns="depth", values="n", aggfunc="first").reindex(
            index=rows, columns=depths
        )
        text = np.empty(med.shape, dtype=object)
        for (a, b), m in np.ndenumerate(med.to_numpy()):
            k, m_n = reach.iloc[a, b], n.iloc[a, b]
            text[a, b] = "" if pd.isna(m_n) else reached(m, k, m_n)
        ax = axes[0, j]
        steps_heatmap(ax, med.replace([np.inf], np.nan).astype(float), text, norm, cmap, j == len(acts) - 1, "0.3")
        ax.set_title(f"{act} twins", fontsize=10)
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("" if j else "remedy")
    target = t["target"].dropna()
    fig.suptitle(
        TITLES["remedy_steps"] + "\nmedian over seeds of the first logged step with test accuracy ≥ the target, "
        f"{ACC_FRAC:g} × the best\nmedian final accuracy of any arm at that depth (here {number(target.min())}–"
        f"{number(target.max())}); (k/n): runs that reach it; grey: the median run never does",
        fontsize=10.5,
    )
    fig.tight_layout()
    return fig


def make_figures(source, outdir=None) -> dict[str, list]:
    """Both remedy figures into ``outdir`` (default ``<folder>/figures``): name -> [png, svg], or a note."""
    return plots.make_figures(source, FIGURES, FILES, outdir)


FIGURES = {"remedy_ratios": fig_ratios, "remedy_steps": fig_steps}
FILES = {"remedy_ratios": "R1_remedy_ratios", "remedy_steps": "R2_remedy_steps"}

"""The blog study's figures, each saved as PNG and SVG under ``<results>/<sweep>/figures/``.

``make_figures(folder)`` returns, for each figure, the list of files written or, when the sweep
lacks the runs a figure needs, a one-line note saying what is missing. The style, palettes and
saving are the shared ``mlplab.analysis.plots``.

Over 300 lines, on purpose: five figures of one study, one drawing function each (about 80
lines of matplotlib apiece), registered together in ``FIGURES`` with their ``TITLES``.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mlplab.analysis import load
from mlplab.analysis.measures import ACC_FRAC, PHASES, gradient_ratios, predicted_ratio
from mlplab.analysis.plots import (
    ACT_ORDER,
    CATEGORICAL,
    LOSS_ORDER,
    ORDERED,
    FigureSkipped,
    draw_all,
    loss_colors,
    ordered,
    ordered_colors,
    panels,
    steps_heatmap,
)
from mlplab.analysis.select import main_runs, setting_values
from mlplab.analysis.studies.blog import summaries

TITLES = {
    "gradient_profile": "1. Per-layer gradient norm at initialisation and after training",
    "ratio_vs_depth": "2. First-to-last layer gradient ratio vs depth, with the mean-field prediction",
    "curves": "3. Training loss and test accuracy at one learning rate, per loss",
    "exploding": "4. Per-layer gradient norm of exploding runs, unclipped vs norm-clipped",
    "steps_heatmap": "5. Steps to reach the accuracy targets, depth × loss, per data set",
}


def _setting_label(row) -> str:
    """'sigmoid, σ_w=1' (init instead of σ_w when it is not normal; residual, batch/layer norm
    when set)."""
    s = f"{row['activation']}, σ_w={row['sigma_w']:g}"
    if row.get("init", "normal") != "normal":
        s = f"{row['activation']}, init={row['init']}"
    if row.get("residual", False):
        s += ", residual"
    if row.get("norm", "none") not in ("none", None):
        s += f", {row['norm']} norm"
    if row.get("norm") == "batch":
        s += " (‖∂C/∂W‖)"  # ∂C/∂b = 0 under batch norm: the ratio of the weight gradients
    return s


def _main(res) -> pd.DataFrame:
    runs = main_runs(res.runs)
    if runs.empty:
        raise FigureSkipped("no unclipped runs")
    return runs


def _last_step_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["step"] == df.groupby("run_id")["step"].transform("max")]


# -- 1. per-layer gradient norms ----------------------------------------------------------------
def profile_rows(res) -> pd.DataFrame:
    """Figure 1's rows: every layer of the unclipped runs at step 0 and, for ok runs, at the last
    logged step (``phase``)."""
    runs = _main(res)
    lay = res.layers[res.layers["run_id"].isin(runs["run_id"])]
    ok = lay[lay["status"] == "ok"]
    phases = {PHASES[0]: lay[lay["step"] == 0], PHASES[1]: _last_step_rows(ok[ok["step"] > 0])}
    d = pd.concat([p.assign(phase=name) for name, p in phases.items()])
    if d.empty:
        raise FigureSkipped("no per-layer rows")
    return d


def fig_gradient_profile(res) -> plt.Figure:
    runs = _main(res)
    d = profile_rows(res)
    med = d.groupby(["activation", "loss", "depth", "phase", "layer"])["grad_b_norm"].median().reset_index()
    acts, losses = ordered(med["activation"], ACT_ORDER), ordered(med["loss"], LOSS_ORDER)
    colors = ordered_colors(med["depth"])
    styles = {PHASES[0]: "-", PHASES[1]: "--"}
    fig, axes = panels(len(acts), len(losses), sharex=True, sharey=True)
    zeros = False
    for i, act in enumerate(acts):
        for j, loss in enumerate(losses):
            ax = axes[i, j]
            for (depth, phase), g in med[(med["activation"] == act) & (med["loss"] == loss)].groupby(
                ["depth", "phase"]
            ):
                y = g["grad_b_norm"].to_numpy()
                zeros |= bool((y <= 0).any())
                ax.plot(
                    g["layer"],
                    np.where(y > 0, y, np.nan),
                    styles[phase],
                    color=colors[depth],
                    marker="o",
                    ms=2.5,
                    lw=1.3,
                )
            ax.set_yscale("log")
            ax.set_title(f"{act}, loss = {loss}", fontsize=10)
            if i == len(acts) - 1:
                ax.set_xlabel("layer l (1 = first hidden, L = output)")
            if j == 0:
                ax.set_ylabel(r"$\|\partial C/\partial b^l\|$ (median over seeds)")
    handles = [plt.Line2D([], [], color=c, marker="o", ms=3, label=f"depth {k}") for k, c in colors.items()]
    handles += [plt.Line2D([], [], color="0.3", ls=s, label=p) for p, s in styles.items()]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    note = " Layers whose gradient is exactly 0 (dead ReLU units) are left out." if zeros else ""
    fig.suptitle(TITLES["gradient_profile"] + f"\n{setting_values(runs)}, no clipping.{note}", fontsize=11)
    fig.tight_layout()
    return fig


# -- 2. first-to-last ratio vs depth --------------------------------------------------------------
def _predictions(settings: pd.DataFrame, depths) -> pd.DataFrame:
    rows = []
    for s in settings.itertuples(index=False):
        for k in depths:
            p = predicted_ratio(s.activation, s.init, s.sigma_w, s.sigma_b, s.width, k, s.residual, s.norm)
            rows.append({**s._asdict(), "depth": k, "predicted": p})
    return pd.DataFrame(rows)


RATIO_KEYS = ["activation", "residual", "norm", "init", "sigma_w", "sigma_b", "width"]


def ratio_rows(res) -> pd.DataFrame:
    """Figure 2's rows: the first-to-last gradient ratio of every unclipped run with hidden
    layers, per phase, with its setting's label."""
    runs = res.runs[(res.runs["clip"] == "none") & (res.runs["depth"] >= 1)]
    ratios = gradient_ratios(res.layers[res.layers["run_id"].isin(runs["run_id"])])
    if ratios.empty:
        raise FigureSkipped("no unclipped runs with hidden layers")
    d = ratios.merge(runs[["run_id", "depth", "lr"] + RATIO_KEYS], on="run_id")
    d["setting"] = d.apply(_setting_label, axis=1)
    return d


def fig_ratio_vs_depth(res) -> plt.Figure:
    runs = res.runs[(res.runs["clip"] == "none") & (res.runs["depth"] >= 1)]
    keys = RATIO_KEYS
    d = ratio_rows(res)
    pos = d.loc[d["ratio"] > 0, "ratio"]
    floor = pos.min() / 30 if len(pos) else 1e-3
    d["ratio_plot"] = d["ratio"].where(d["ratio"] > 0, floor)
    labels = sorted(
        d["setting"].unique(),
        key=lambda s: (ACT_ORDER.index(s.split(",")[0]) if s.split(",")[0] in ACT_ORDER else 9, s),
    )
    colors = dict(zip(labels, sns.color_palette(CATEGORICAL, len(labels))))
    depths = sorted(d["depth"].unique())
    pred = pd.concat(
        [_predictions(g[keys].drop_duplicates(), range(1, int(g["depth"].max()) + 1)) for _, g in d.groupby("setting")],
        ignore_index=True,
    )
    pred["setting"] = pred.apply(_setting_label, axis=1)
    have_theory = len(pred) and pred["predicted"].notna().any()
    fig, axes = panels(1, 2, w=4.8, h=3.8, sharey=True)
    rng = np.random.default_rng(0)
    for ax, phase in zip(axes[0], PHASES):
        p = d[d["phase"] == phase]
        for lab in labels:
            g = p[p["setting"] == lab]
            if g.empty:
                continue
            jitter = rng.uniform(-0.15, 0.15, len(g)) * np.maximum(g["depth"], 1) ** 0.5
            ax.scatter(g["depth"] + jitter, g["ratio_plot"], s=9, alpha=0.45, color=colors[lab], lw=0)
            m = g.groupby("depth")["ratio"].median()
            ax.plot(
                m.index,
                m.where(m > 0).to_numpy(),
                "o-",
                color=colors[lab],
                ms=4,
                lw=1.2,
                label=f"{lab}: measured median",
            )
            ax.plot(m.index[m <= 0], np.full((m <= 0).sum(), floor), "v", color=colors[lab], ms=6)
            q = pred[pred["setting"] == lab]
            if phase == PHASES[0] and q["predicted"].notna().any():
                ax.plot(q["depth"], q["predicted"], ":", color=colors[lab], lw=2, label=f"{lab}: mean-field")
        ax.axhline(1.0, color="0.5", lw=0.8)
        if (p["ratio"] <= 0).any():
            ax.axhline(floor, color="0.6", lw=0.6, ls="--")
            ax.annotate(
                "exactly 0 (dead first layer)",
                (0.02, floor),
                xycoords=("axes fraction", "data"),
                xytext=(0, 3),
                textcoords="offset points",
                fontsize=8,
                color="0.4",
            )
        ax.set_yscale("log")
        ax.set_xticks(depths)
        ax.set_xlabel("depth (hidden layers)")
        ax.set_title(
            "at initialisation (step 0)" if phase == PHASES[0] else "after training (last step, ok runs)",
            fontsize=10,
        )
    axes[0, 0].set_ylabel(r"$\|\partial C/\partial b^1\| \,/\, \|\partial C/\partial b^L\|$")
    h, l = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, l, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    theory = (
        r"dotted: mean-field $\prod_l \sqrt{\chi^l}$ (mlplab.theory)"
        if have_theory
        else "no mean-field prediction for these settings"
    )
    if have_theory and pred["predicted"].isna().any():
        theory += " (plain networks only)"
    data = sorted(runs["dataset"].unique())
    pooled = f" ({', '.join(data)} pooled)" if len(data) > 1 else f" ({data[0]})" if data else ""
    fig.suptitle(TITLES["ratio_vs_depth"] + f"\nUnclipped runs{pooled}, one dot per run; {theory}.", fontsize=11)
    fig.tight_layout()
    return fig


# -- 3. learning curves ---------------------------------------------------------------------------
def curve_rows(res) -> pd.DataFrame:
    """Figure 3's rows: the logged steps of the unclipped runs, the training loss also divided by
    its step-0 value (``rel_loss``)."""
    runs = _main(res)
    st = res.steps[res.steps["run_id"].isin(runs["run_id"])].copy()
    if st.empty:
        raise FigureSkipped("no steps")
    loss0 = st[st["step"] == 0].set_index("run_id")["train_loss"]
    st["rel_loss"] = st["train_loss"] / st["run_id"].map(loss0)
    return st


def fig_curves(res) -> plt.Figure:
    runs = _main(res)
    st = curve_rows(res)
    depths = sorted(st["depth"].unique())
    losses = ordered(st["loss"], LOSS_ORDER)
    acts = ordered(st["activation"], ACT_ORDER)
    colors = loss_colors(losses)
    dashes = dict(zip(acts, ["-", "--", ":", "-."]))
    fig, axes = panels(2, len(depths), w=3.2, h=2.9, sharex=True, sharey="row")
    for j, depth in enumerate(depths):
        for (loss, act), g in st[st["depth"] == depth].groupby(["loss", "activation"]):
            for i, col in enumerate(["rel_loss", "test_accuracy"]):
                q = g.groupby("step")[col].quantile([0.25, 0.5, 0.75]).unstack()
                ax = axes[i, j]
                ax.plot(q.index, q[0.5], dashes[act], color=colors[loss], lw=1.4, label=f"{loss}, {act}")
                ax.fill_between(q.index, q[0.25], q[0.75], color=colors[loss], alpha=0.12, lw=0)
        axes[0, j].set_title(f"depth {depth}", fontsize=10)
        axes[0, j].set_yscale("log")
        axes[1, j].set_xlabel("step (SGD updates)")
    axes[0, 0].set_ylabel("training loss / its step-0 value")
    axes[1, 0].set_ylabel("test accuracy")
    handles = [plt.Line2D([], [], color=colors[l], ls=dashes[a], label=f"{l}, {a}") for a in acts for l in losses]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(TITLES["curves"] + f"\n{setting_values(runs)}; median over seeds, band = quartiles", fontsize=11)
    fig.tight_layout()
    return fig


# -- 4. exploding runs, clipped vs not ---------------------------------------------------------------
def exploding_examples(res, n: int = 2) -> pd.DataFrame:
    """Up to ``n`` settings with a per-layer factor above 1 (√χ1 > 1) run with both clip rules
    (most often diverging, then deepest, first), with the lowest seed present in both."""
    exp = summaries.claim_exploding(res)
    e = exp[exp["exploding"] & (exp["clip"] == "none")]
    if e.empty:
        raise FigureSkipped("no setting has a per-layer factor above 1 (mean-field √χ1 > 1)")
    keys = ["dataset", "activation", "init", "sigma_w", "sigma_b", "width", "depth", "loss"]
    # densely logged runs first (the steps before a blow-up are drawn), then the most diverging
    log_every = res.runs.groupby(keys)["log_every"].min().rename("log_every")
    e = e.merge(log_every.reset_index(), on=keys, how="left")
    e = e.sort_values(["log_every", "n_diverged", "depth", "ratio_step0"], ascending=[True, False, False, False])
    picked = []
    for row in e.itertuples(index=False):
        sel = res.runs
        for k in keys:
            sel = sel[sel[k] == getattr(row, k)]
        none = sel[sel["clip"] == "none"]
        seeds = sorted(set(none["seed"]) & set(sel.loc[sel["clip"] == "norm", "seed"]))
        if not seeds:
            continue
        diverged = sorted(set(none.loc[none["status"] == "diverged", "seed"]) & set(seeds))
        seed = (diverged or seeds)[0]  # show an unclipped run that diverges when there is one
        rate = f"{int(row.n_diverged)}/{int(row.n)}"
        picked.append(sel[(sel["seed"] == seed) & sel["clip"].isin(["none", "norm"])].assign(unclipped_diverged=rate))
        if len(picked) == n:
            break
    if not picked:
        raise FigureSkipped("no setting with √χ1 > 1 has runs with both clip=none and clip=norm")
    return pd.concat(picked)


def fig_exploding(res) -> plt.Figure:
    ex = exploding_examples(res)
    settings = ex.groupby(["depth", "loss", "activation", "sigma_w", "init", "lr", "dataset"], sort=False)
    fig, axes = panels(settings.ngroups, 2, w=4.6, h=3.2)
    for i, (key, g) in enumerate(settings):
        depth, loss, act, sw, init, lr, dataset = key
        lay = res.layers[res.layers["run_id"].isin(g["run_id"])]
        colors = ordered_colors(lay["layer"])
        for j, clip in enumerate(["none", "norm"]):
            ax = axes[i, j]
            run = g[g["clip"] == clip].iloc[0]
            d = lay[lay["run_id"] == run["run_id"]]
            for layer, h in d.groupby("layer"):
                y = h["grad_b_norm"].to_numpy()
                ax.plot(
                    h["step"],
                    np.where((y > 0) & np.isfinite(y), y, np.nan),
                    color=colors[layer],
                    lw=1.1,
                    marker="o" if len(h) <= 12 else None,
                    ms=2.5,
                    label=f"layer {layer}",
                )
            if run["status"] == "diverged":
                last = d[d["step"] == d["step"].max()]
                finite = last["grad_b_norm"].replace([np.inf], np.nan).dropna()
                y = finite.max() if len(finite) else ax.get_ylim()[1]
                ax.plot([last["step"].iloc[0]], [y], "x", color="crimson", ms=9, mew=2)
                ax.annotate(
                    f"diverged at step {int(run['diverged_step'])}",
                    (last["step"].iloc[0], y),
                    textcoords="offset points",
                    xytext=(6, -12),
                    color="crimson",
                    fontsize=8,
                )
            else:
                ax.annotate(
                    f"ok, final loss {run['final_loss']:.3g}",
                    (0.97, 0.97),
                    xycoords="axes fraction",
                    ha="right",
                    va="top",
                    fontsize=8,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.85},
                )
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(0, max(int(run["n_steps"]), 10))
            ax.set_yscale("log")
            rule = "no clipping" if clip == "none" else f"norm clipping, threshold {run['clip_threshold']:g}"
            if clip == "none":
                rule += f" ({run['unclipped_diverged']} seeds diverge)"
            ax.set_title(
                f"{dataset}: {act}, σ_w={sw:g}, depth {depth}, {loss}, seed {run['seed']}\n{rule}", fontsize=8.5
            )
            if i == settings.ngroups - 1:
                ax.set_xlabel("step (symmetric log scale)")
        axes[i, 0].set_ylabel(r"$\|\partial C/\partial b^l\|$ (before clipping)")
        axes[i, 1].legend(
            loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8, ncol=1 + (len(colors) > 10)
        )
    fig.suptitle(
        TITLES["exploding"]
        + "\nnorms are measured before clipping; clipping rescales the whole update to norm ≤ threshold",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


# -- 5. steps-to-target heatmaps ------------------------------------------------------------------------
def cell_text(median: float, reached: float, n: float, target: float = 1.0) -> str:
    """'40', '480\n3/5 reach', 'never' (no run reaches it), 'median never\n2/5 reach', or
    'no target' (already met at step 0: nothing to learn)."""
    if pd.isna(n):
        return ""
    if pd.isna(target):
        return "no target"
    if reached == 0:
        return "never"
    head = "median never" if math.isinf(median) else f"{median:.0f}"
    return head if reached == n else f"{head}\n{reached:.0f}/{n:.0f} reach"


def steps_rows(res) -> pd.DataFrame:
    """Figure 5's rows: claim 1's steps to the accuracy targets per setting (sigmoid nets where
    there are any)."""
    conv = summaries.claim_convergence(res)
    conv = conv[conv["activation"] == "sigmoid"] if (conv["activation"] == "sigmoid").any() else conv
    if conv.empty:
        raise FigureSkipped("no runs")
    return conv


def fig_steps_heatmap(res) -> plt.Figure:
    conv = steps_rows(res)
    targets = list(pd.unique(conv["target"]))
    datasets = sorted(conv["dataset"].unique())
    losses = ordered(conv["loss"], LOSS_ORDER)
    fig, axes = panels(len(datasets), len(targets), w=3.6, h=2.9)
    finite = conv.loc[np.isfinite(conv["median"]) & (conv["median"] > 0), "median"]
    vmin, vmax = (finite.min(), finite.max()) if len(finite) else (1, 10)
    norm = matplotlib.colors.LogNorm(vmin=max(vmin, 1), vmax=max(vmax, vmin * 10, 2))
    cmap = sns.color_palette(ORDERED + "_r", as_cmap=True).with_extremes(bad="0.88")
    for i, dataset in enumerate(datasets):
        for j, target in enumerate(targets):
            d = conv[(conv["target"] == target) & (conv["dataset"] == dataset)]
            d = d.groupby(["depth", "loss"], as_index=False).first()
            grid = {
                c: d.pivot(index="depth", columns="loss", values=c).reindex(columns=losses)
                for c in ("median", "n_reached", "n", "target_value")
            }
            med = grid["median"]
            text = np.array(
                [
                    [
                        cell_text(
                            med.loc[r, c],
                            grid["n_reached"].loc[r, c],
                            grid["n"].loc[r, c],
                            grid["target_value"].loc[r, c],
                        )
                        for c in med.columns
                    ]
                    for r in med.index
                ],
                dtype=object,
            )
            val = med.where(grid["target_value"].notna()).replace([np.inf], np.nan).astype(float)
            ax = axes[i, j]
            steps_heatmap(ax, val, text, norm, cmap, j == len(targets) - 1, grey="0.35", vmin=norm.vmin, vmax=norm.vmax)
            ax.set_title(f"{dataset}: {target} ≥ {ACC_FRAC:g} × best", fontsize=10)
            ax.set_xlabel("loss" if i == len(datasets) - 1 else "")
            ax.set_ylabel("depth (hidden layers)" if j == 0 else "")
    fig.suptitle(
        TITLES["steps_heatmap"] + "\nsigmoid nets: median over seeds of the first logged step that reaches the "
        "target (the same\naccuracy target for every loss); grey: the median run never reaches it",
        fontsize=10.5,
    )
    fig.tight_layout()
    return fig


FIGURES = {
    "gradient_profile": fig_gradient_profile,
    "ratio_vs_depth": fig_ratio_vs_depth,
    "curves": fig_curves,
    "exploding": fig_exploding,
    "steps_heatmap": fig_steps_heatmap,
}


def make_figures(source, outdir=None) -> dict[str, list[Path] | str]:
    """Draw every figure of ``FIGURES`` into ``outdir`` (default ``<folder>/figures``).

    Returns name -> [png, svg] for the figures drawn, name -> note for those skipped.
    """
    res = load(source)
    outdir = Path(outdir) if outdir is not None else Path(res.path) / "figures"
    return draw_all(res, FIGURES, outdir, {name: f"{i}_{name}" for i, name in enumerate(FIGURES, start=1)})

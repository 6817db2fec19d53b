"""The remedies study: each of the post's cures on its own against its plain twin.

A *remedy* is a change of one config field away from the plain network (``REMEDIES``). Its
twin is the run with the same config but that field at its plain value (residual off, no
norm, normal init, no clipping, no decay, a saturating activation), paired by seed. Two
claims per remedy, each on the twins' per-seed effects (``mlplab.analysis.verdicts``):

* **toward 1**: the remedy brings the first-to-last gradient ratio ‖∂C/∂W^1‖/‖∂C/∂W^L‖ closer
  to 1: |log10 r_twin| − |log10 r_remedy| > 0, at initialisation and after training. The
  weight gradients are used for every arm (under batch norm ∂C/∂b = 0, so the bias gradients
  cannot compare the arms).
* **faster**: it reaches the test-accuracy target in fewer steps: log10(steps_twin /
  steps_remedy) > 0. The target is ``ACC_FRAC`` × the best median final test accuracy of any
  arm at that depth and activation, the same for all; a run that never reaches it counts as
  one logged step past its end.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.claims import ACC_FRAC, PHASES, gradient_ratios, steps_effect, steps_to, twins
from mlplab.analysis.verdicts import cases_table, describe_level, evidence, fmt, verdict

# remedy -> (field, its value, the plain value); relu's twins are the saturating activations
REMEDIES = {
    "relu": ("activation", "relu", ("sigmoid", "tanh")),
    "residual": ("residual", True, (False,)),
    "batch norm": ("norm", "batch", ("none",)),
    "layer norm": ("norm", "layer", ("none",)),
    "orthogonal init": ("init", "orthogonal", ("normal",)),
    "He init": ("init", "he_normal", ("normal",)),
    "Xavier init": ("init", "xavier_normal", ("normal",)),
    "norm clipping": ("clip", "norm", ("none",)),
    "weight decay": ("weight_decay", "positive", (0.0,)),
}
TRAINING_ONLY = {"norm clipping", "weight decay"}  # the same network as the twin until the first update
UNTESTED = {
    "toward 1 at initialisation": "no {remedy} run with a plain twin",
    "toward 1 after training": "no {remedy} run and plain twin that both finished",
    "faster": "no {remedy} run or plain twin that reaches the target",
}
PLAIN = {"residual": False, "norm": "none", "init": "normal", "clip": "none", "weight_decay": 0.0}
CLAIMS = {
    "toward 1 at initialisation": "the first-to-last ratio of ‖∂C/∂W‖ at step 0 is closer to 1 than the twin's",
    "toward 1 after training": "the same at the last logged step of runs that finished",
    "faster": f"fewer steps to a test accuracy of {ACC_FRAC:g} × the best median final one (any arm)",
}


def weight_ratios(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run: ‖∂C/∂W^1‖/‖∂C/∂W^L‖ at step 0 (``w_init``) and at the last logged step of an
    ok run (``w_end``)."""
    r = gradient_ratios(layers, column="grad_w_norm")
    return (
        r.pivot(index="run_id", columns="phase", values="ratio")
        .reindex(columns=list(PHASES))
        .set_axis(["w_init", "w_end"], axis=1)
    )


def per_run(res) -> pd.DataFrame:
    """Runs with their remedy label, weight-gradient ratios and steps to the shared target."""
    runs = res.runs.set_index("run_id", drop=False)
    runs = runs.join(weight_ratios(res.layers))
    runs["remedy"] = [label(r) for r in runs.itertuples(index=False)]
    runs["beyond"] = runs["n_steps"] + runs["eval_every"]
    ok = runs[runs["status"] == "ok"]
    best = (
        ok.groupby(["dataset", "depth", "remedy", "activation"])["final_test_accuracy"]
        .median()
        .groupby(level=["dataset", "depth"])
        .max()
    )
    runs["target"] = np.round(ACC_FRAC * runs.set_index(["dataset", "depth"]).index.map(best).to_numpy(float), 4)
    runs["steps"] = steps_to(res.steps, "test_accuracy", runs["target"], runs["beyond"])
    return runs.reset_index(drop=True)


def label(r) -> str:
    """The remedy a run carries ('plain' for none, 'several' for a mix)."""
    found = []
    for name, (field, value, _) in REMEDIES.items():
        v = getattr(r, field)
        if (value == "positive" and v > 0) or (value != "positive" and v == value):
            found.append(name)
    return found[0] if len(found) == 1 else "plain" if not found else "several"


def pairs(pr: pd.DataFrame, remedy: str) -> pd.DataFrame:
    """The runs of ``remedy`` against their plain twins (a: remedy, b: twin), by seed; for relu
    ``activation`` is the twin's."""
    field, value, plain_values = REMEDIES[remedy]
    arms = pr[pr["remedy"].isin([remedy, "plain"])]
    values = sorted(arms.loc[arms["remedy"] == remedy, field].unique()) if value == "positive" else [value]
    frames = []
    for v in values:
        for pv in plain_values:
            p = twins(arms[(arms[field] == v) | (arms[field] == pv)], field, v, pv)
            frames.append(p.assign(activation=pv) if field == "activation" else p)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out.assign(remedy=remedy) if not out.empty else out


def _closer(a, b) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log10(np.asarray(b, float))) - np.abs(np.log10(np.asarray(a, float)))


def cases(source) -> pd.DataFrame:
    """One row per (remedy, claim, activation of the twin, depth): the evidence."""
    pr = per_run(load(source))
    rows = []
    for remedy in REMEDIES:
        p = pairs(pr, remedy)
        if p.empty:
            continue
        for (act, depth), g in p.groupby(["activation", "depth"]):
            effects = {
                "toward 1 at initialisation": _closer(g["w_init_a"], g["w_init_b"]),
                "toward 1 after training": _closer(g["w_end_a"], g["w_end_b"]),
                "faster": -steps_effect(g, "steps"),  # > 0: the remedy (a) is faster; NaN: neither arm reaches it
            }
            for claim, e in effects.items():
                if claim == "toward 1 at initialisation" and remedy in TRAINING_ONLY:
                    continue  # identical to the twin at step 0: nothing to compare
                ev = evidence([x for x in e if np.isfinite(x)])
                if ev.n:
                    rows.append({"remedy": remedy, "claim": claim, "activation": act, "depth": depth, **ev.row()})
    return cases_table(rows, ["remedy", "claim", "activation", "depth"])


def verdicts(source) -> pd.DataFrame:
    """remedy × claim: the verdict over its cases (activation of the twin × depth)."""
    c = cases(source)
    rows = []
    for remedy in REMEDIES:
        for claim in CLAIMS:
            sub = c[(c["remedy"] == remedy) & (c["claim"] == claim)] if not c.empty else c
            rows.append(
                {
                    "remedy": remedy,
                    "claim": claim,
                    "verdict": verdict(
                        sub,
                        ["activation", "depth"],
                        (
                            "it acts only during training: at step 0 the run is its twin"
                            if claim == "toward 1 at initialisation" and remedy in TRAINING_ONLY
                            else UNTESTED[claim].format(remedy=remedy)
                        ),
                    ),
                    "median effect": ", ".join(
                        f"{a} {d}: {fmt(e)}"
                        for a, d, e in zip(sub.get("activation", []), sub.get("depth", []), sub.get("effect", []))
                    ),
                }
            )
    return pd.DataFrame(rows)


def steps_table(source) -> pd.DataFrame:
    """Median steps to the target per remedy, activation and depth (never reached: inf)."""
    pr = per_run(load(source))
    rows = []
    for (remedy, act, depth), g in pr.groupby(["remedy", "activation", "depth"]):
        v = np.where(g["steps"] < g["beyond"], g["steps"], np.inf)
        rows.append(
            {
                "remedy": remedy,
                "activation": act,
                "depth": depth,
                "n": len(v),
                "n_reached": int(np.isfinite(v).sum()),
                "median": float(np.median(v)),
                "target": float(g["target"].median()),
            }
        )
    return pd.DataFrame(rows)


LEVEL_TEXT = describe_level()


# -- figures ------------------------------------------------------------------------------------------
ORDER = ["plain", *REMEDIES]
TITLES = {
    "remedy_ratios": "R1. First-to-last gradient ratio vs depth, per remedy",
    "remedy_steps": "R2. Steps to the test-accuracy target, per remedy",
}


def _colors(remedies) -> dict:
    import seaborn as sns

    pal = sns.color_palette("colorblind", 10)
    out = {r: pal[(i - 1) % 10] for i, r in enumerate(ORDER) if r in set(remedies)}
    out["plain"] = (0.1, 0.1, 0.1)
    return out


def fig_ratios(source):
    """Median ‖∂C/∂W^1‖/‖∂C/∂W^L‖ against depth, one line per remedy (plain in black), per
    twin activation (rows) and phase (columns); a band for the quartiles."""
    import matplotlib.pyplot as plt

    pr = per_run(load(source))
    pr = pr[pr["remedy"] != "several"]
    acts = [a for a in ("sigmoid", "tanh") if a in set(pr["activation"])] or sorted(pr["activation"].unique())
    rem = [r for r in ORDER if r in set(pr["remedy"])]
    colors = _colors(rem)
    fig, axes = plt.subplots(
        len(acts), 2, figsize=(8.4, 3.0 * len(acts) + 0.8), squeeze=False, sharex=True, sharey="row"
    )
    for i, act in enumerate(acts):
        for j, (phase, col) in enumerate(zip(PHASES, ("w_init", "w_end"))):
            ax = axes[i, j]
            for r in rem:
                g = pr[
                    (pr["remedy"] == r) & ((pr["activation"] == act) | ((r == "relu") & (pr["activation"] == "relu")))
                ]
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
        "relu is drawn in both rows;\nclipping and weight decay act only during training: at step 0 they lie under plain",
        fontsize=10.5,
    )
    fig.tight_layout()
    return fig


def fig_steps(source):
    """Heatmap per twin activation: remedies (rows) × depth (columns), median steps to the shared
    target (colour, log scale; grey: the median run never reaches it), with k/n runs reaching it."""
    import matplotlib
    import matplotlib.pyplot as plt
    import seaborn as sns

    t = steps_table(source)
    t = t[t["remedy"] != "several"]
    acts = [a for a in ("sigmoid", "tanh") if a in set(t["activation"])] or sorted(t["activation"].unique())
    rows = [r for r in ORDER if r in set(t["remedy"])]
    depths = sorted(t["depth"].unique())
    finite = t.loc[np.isfinite(t["median"]) & (t["median"] > 0), "median"]
    lo, hi = (finite.min(), finite.max()) if len(finite) else (1, 10)
    norm = matplotlib.colors.LogNorm(vmin=max(lo, 1), vmax=max(hi, 2 * lo, 2))
    cmap = sns.color_palette("viridis_r", as_cmap=True).with_extremes(bad="0.88")
    fig, axes = plt.subplots(1, len(acts), figsize=(4.3 * len(acts) + 0.6, 0.42 * len(rows) + 1.6), squeeze=False)
    for j, act in enumerate(acts):
        d = t[(t["activation"] == act) | (t["remedy"] == "relu")]  # relu, the remedy, in every panel
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
            text[a, b] = (
                ""
                if pd.isna(m_n)
                else ("never" if k == 0 else f"{'never' if math.isinf(m) else f'{m:.0f}'} ({k:.0f}/{m_n:.0f})")
            )
        ax = axes[0, j]
        sns.heatmap(
            med.replace([np.inf], np.nan).astype(float),
            ax=ax,
            annot=text,
            fmt="",
            cmap=cmap,
            norm=norm,
            cbar=j == len(acts) - 1,
            cbar_kws={"label": "median steps"},
            linewidths=0.5,
            linecolor="white",
            annot_kws={"fontsize": 8.5},
        )
        for (a, b), s in np.ndenumerate(text):
            if s and not np.isfinite(med.iloc[a, b]):
                ax.text(b + 0.5, a + 0.5, s, ha="center", va="center", fontsize=8.5, color="0.3")
        ax.set_title(f"{act} twins", fontsize=10)
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("" if j else "remedy")
    target = t["target"].dropna()
    fig.suptitle(
        TITLES["remedy_steps"] + "\nmedian over seeds of the first logged step with test accuracy ≥ the target, "
        f"{ACC_FRAC:g} × the best\nmedian final accuracy of any arm at that depth (here {fmt(target.min())}–"
        f"{fmt(target.max())}); (k/n): runs that reach it; grey: the median run never does",
        fontsize=10.5,
    )
    fig.tight_layout()
    return fig


def make_figures(source, outdir=None) -> dict[str, list]:
    """Both remedy figures into ``outdir`` (default ``<folder>/figures``): name -> [png, svg]."""
    from mlplab.analysis.figures import save, style

    res = load(source)
    outdir = Path(outdir) if outdir is not None else Path(res.path) / "figures"
    with style():
        return {
            "remedy_ratios": save(fig_ratios(res), outdir, "R1_remedy_ratios"),
            "remedy_steps": save(fig_steps(res), outdir, "R2_remedy_steps"),
        }


# -- the report section --------------------------------------------------------------------------------
SECTION = "The remedies, each against its plain twin"
NOTES = {
    "remedy_ratios": "Each remedy's first-to-last weight-gradient ratio (median over seeds) against its plain twin's "
    "(black). Closer to the dashed line at 1 means the first layer learns at a speed nearer the last "
    "one's; the claim *toward 1* compares each seed with its twin.",
    "remedy_steps": "Steps each remedy needs to reach the shared test-accuracy target, per depth. The claim *faster* "
    "compares each seed with its plain twin; a run that never reaches the target counts one logged "
    "step past its end.",
}


def _effects_grid(c: pd.DataFrame) -> pd.DataFrame:
    """Cases as one row per (remedy, claim), one column per (twin activation, depth):
    'median [low, high]' of the per-seed effects, with a mark for the decision."""
    mark = {True: " ✔", False: " ✘"}
    d = c.assign(
        case=[f"{a} {d}" for a, d in zip(c["activation"], c["depth"])],
        cell=[
            f"{fmt(e)} [{fmt(lo)}, {fmt(hi)}]{mark.get(h, '')}"
            for e, lo, hi, h in zip(c["effect"], c["low"], c["high"], c["holds"])
        ],
    )
    g = d.pivot_table(index=["remedy", "claim"], columns="case", values="cell", aggfunc="first", sort=False)
    cols = sorted(g.columns, key=lambda s: (s.split()[0], int(s.split()[1])))
    return g[cols].reset_index().rename_axis(columns=None)


def highlights(v: pd.DataFrame) -> list[str]:
    """One computed sentence per claim: which remedies reproduce it, which only sometimes,
    which not, which are undecided."""
    out = []
    for claim, g in v.groupby("claim", sort=False):
        groups = {}
        for r, text in zip(g["remedy"], g["verdict"]):
            kind = (
                "reproduced"
                if text == "reproduced"
                else "only in some cases"
                if text.startswith("reproduced")
                else "not reproduced"
                if text == "not reproduced"
                else "not tested"
                if text.startswith("not tested")
                else "undecided"
            )
            groups.setdefault(kind, []).append(r)
        out.append(f"**{claim}**: " + "; ".join(f"{k} — {', '.join(rs)}" for k, rs in groups.items()) + ".")
    return out


def _span(x: pd.Series) -> str:
    return f"{x.min()}" if x.min() == x.max() else f"{x.min()}–{x.max()}"


BLOG_REMEDIES = {"relu", "norm clipping"}  # the blog claims 4a and 4b check these already


def report_blocks(source) -> list:
    """The remedies section of the report: what ran, how it is decided, the verdicts with their
    numbers, both figures. [] when the folder has no remedy run with a plain twin besides relu
    and norm clipping (claims 4a and 4b of the blog study)."""
    from mlplab.analysis.blocks import Block

    res = load(source)
    c = cases(res)
    if c.empty or not set(c["remedy"]) - BLOG_REMEDIES:
        return []
    pr = per_run(res)
    v = verdicts(res)
    made = make_figures(res)
    ran = (
        f"{len(pr)} runs: twin activations {', '.join(sorted(set(c['activation'])))}; depths "
        f"{', '.join(map(str, sorted(pr['depth'].unique())))}; remedies "
        f"{', '.join(r for r in REMEDIES if r in set(pr['remedy']))}; "
        f"{_span(pr.groupby(['remedy', 'activation', 'depth']).size())} seeds per cell; data {', '.join(sorted(pr['dataset'].unique()))}."
    )
    held = [r for r in REMEDIES if r in set(c["remedy"])]
    absent = [r for r in REMEDIES if r not in held]
    v = v[v["remedy"].isin(held)]
    grid = v.pivot(index="remedy", columns="claim", values="verdict").reindex(index=held, columns=list(CLAIMS))
    grid = grid.reset_index().rename_axis(columns=None)
    out = [
        Block("h2", SECTION),
        Block(
            "p",
            "Each of the post's remedies (and the usual modern ones) is switched on alone in a deep network whose "
            "plain version barely trains, and compared with its *plain twin*: the same config, data, seed and "
            "initial draw but for the remedy. " + ran,
        ),
        Block(
            "list",
            [f"**{k}**: {t}." for k, t in CLAIMS.items()]
            + [
                "Effects per seed: toward 1 = |log10 r_twin| − |log10 r_remedy| with r = ‖∂C/∂W^1‖/‖∂C/∂W^L‖ (weight "
                "gradients for every arm: under batch norm ∂C/∂b = 0); faster = log10(steps_twin / steps_remedy). "
                f"Positive favours the remedy. Decision: {LEVEL_TEXT}."
            ],
        ),
        Block("h3", "Verdicts"),
        Block("table", grid),
        Block("list", highlights(v) + ([f"Not in this folder: {', '.join(absent)}."] if absent else [])),
        Block("h3", "Per case: median effect [interval] over seeds (✔ holds, ✘ fails, unmarked: undecided)"),
        Block("table", _effects_grid(c)),
    ]
    for name, paths in made.items():
        out.append(Block("figure", paths[0], f"**{TITLES[name]}.** {NOTES[name]}"))
    return out

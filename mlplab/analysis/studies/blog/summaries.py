"""The blog claims' measures as tables, for the report and the figures: steps to the accuracy
targets (claim 1), the first-to-last ratio against its mean-field prediction (claim 2), the
exploding settings with and without clipping (claims 3 and 4b)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.measures import PHASES, gradient_ratios, predicted_ratio, with_factor
from mlplab.analysis.select import main_runs, plain
from mlplab.analysis.studies.blog.claims import per_run


def claim_convergence(source) -> pd.DataFrame:
    """Steps to the accuracy targets per data set, activation, depth and loss, over the plain
    unclipped runs (claim 1's): median and quartiles over seeds, how many runs reach it, the
    target."""
    pr = per_run(load(source))
    pr = pr[plain(pr) & (pr["clip"] == "none")]  # the runs claim 1 compares
    rows = []
    for target, column in (("test accuracy", "test_accuracy"), ("train accuracy", "train_accuracy")):
        g = pr.groupby(["dataset", "activation", "depth", "loss"])
        for key, d in g:
            v = d[f"steps_{column}"].to_numpy(float)
            reached = v < d["beyond"].to_numpy(float)
            rows.append(
                {
                    "target": target,
                    "dataset": key[0],
                    "activation": key[1],
                    "depth": key[2],
                    "loss": key[3],
                    "target_value": float(d[f"target_{column}"].median()),
                    "n": len(v),
                    "n_reached": int(reached.sum()),
                    "median": float(np.median(np.where(reached, v, np.inf))),
                    "q25": float(np.quantile(np.where(reached, v, np.inf), 0.25, method="nearest")),
                    "q75": float(np.quantile(np.where(reached, v, np.inf), 0.75, method="nearest")),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "target",
            "dataset",
            "activation",
            "depth",
            "loss",
            "target_value",
            "n",
            "n_reached",
            "median",
            "q25",
            "q75",
        ],
    )


def claim_vanishing(source) -> pd.DataFrame:
    """First-to-last gradient ratio by setting, depth and phase over the unclipped runs:
    median, quartiles, per-layer factor (median^(1/depth)) and the mean-field prediction."""
    res = load(source)
    setting = ["dataset", "activation", "residual", "norm", "init", "sigma_w", "sigma_b", "lr"]
    stats = ["n", "median", "q25", "q75", "per_layer", "predicted", "predicted_per_layer", "main"]
    cols = setting + ["depth", "phase"] + stats
    runs = res.runs[res.runs["clip"] == "none"]
    ratios = gradient_ratios(res.layers[res.layers["run_id"].isin(runs["run_id"])])
    if ratios.empty:
        return pd.DataFrame(columns=cols)
    keys = setting + ["width", "depth"]
    d = ratios.merge(runs[["run_id"] + keys], on="run_id")
    g = d.groupby(keys + ["phase"])["ratio"]
    out = pd.DataFrame(
        {"n": g.size(), "median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75)}
    ).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["per_layer"] = out["median"] ** (1.0 / out["depth"])
    pred = {
        k: predicted_ratio(k.activation, k.init, k.sigma_w, k.sigma_b, k.width, k.depth, k.residual, k.norm)
        for k in out[keys].drop_duplicates().itertuples(index=False)
    }
    out["predicted"] = [pred[k] for k in out[keys].itertuples(index=False)]
    out["predicted_per_layer"] = out["predicted"] ** (1.0 / out["depth"])
    out["main"] = _is_main(out, main_runs(res.runs))
    out["phase"] = pd.Categorical(out["phase"], PHASES, ordered=True)
    return out.sort_values(
        ["main", "dataset", "activation", "residual", "norm", "init", "sigma_w", "phase", "depth"],
        ascending=[False] + [True] * 8,
    )[cols].reset_index(drop=True)


def _is_main(table: pd.DataFrame, main: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` whose setting is in the main grid."""
    keys = ["dataset", "residual", "norm", "init", "sigma_w", "sigma_b", "lr"]
    if main.empty:
        return pd.Series(False, index=table.index)
    ref = main[keys].drop_duplicates().astype(str).agg("|".join, axis=1)
    return table[keys].astype(str).agg("|".join, axis=1).isin(set(ref))


def claim_exploding(source) -> pd.DataFrame:
    """Per plain setting and clip rule: divergence, the largest finite gradient norm (every step,
    from the runs table), the median step-0 first-to-last ratio, and the mean-field factor √χ1
    (``exploding``: √χ1 > 1)."""
    pr = per_run(load(source))
    d = pr[plain(pr) & (pr["depth"] >= 1)].copy()
    keys = ["dataset", "activation", "init", "sigma_w", "sigma_b", "width", "depth", "loss"]
    cols = keys + [
        "clip",
        "n",
        "n_diverged",
        "diverged_step",
        "max_grad_norm",
        "final_loss",
        "ratio_step0",
        "factor",
        "exploding",
    ]
    if d.empty:
        return pd.DataFrame(columns=cols)
    g = with_factor(d).groupby(keys + ["clip"], dropna=False)
    out = pd.DataFrame(
        {
            "n": g.size(),
            "n_diverged": g["diverged"].sum(),
            "diverged_step": g["diverged_step"].median(),
            "max_grad_norm": g["max_grad_norm"].median(),
            "final_loss": g["final_loss"].median(),
            "ratio_step0": g["ratio_init"].median(),
            "factor": g["factor"].first(),
        }
    ).reset_index()
    out["exploding"] = out["factor"] > 1
    return out.sort_values(["exploding"] + keys + ["clip"], ascending=[False] + [True] * (len(keys) + 1))[
        cols
    ].reset_index(drop=True)

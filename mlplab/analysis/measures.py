"""What is measured on the runs: gradient ratios between layers, their mean-field predictions,
and the per-pair effects the verdicts are made of (log ratios, closer to 1, fewer steps).

Nielsen's *speed of learning* of layer l is ‖∂C/∂b^l‖; the *first-to-last ratio* is the first
hidden layer's over the output layer's, at step 0 (``PHASES[0]``) and at the last logged step
of a run that finished (``PHASES[1]``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab import theory

PHASES = ("initialisation", "after training")
ACC_FRAC = 0.9  # an accuracy target = this fraction of the best median final accuracy


def gradient_ratios(layers: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
    """Per run and phase: ‖∂C/∂b^1‖/‖∂C/∂b^L‖ at step 0 ('initialisation') and at the last
    logged step of an ok run ('after training'). Networks without hidden layers are skipped.

    Under batch norm ∂C/∂b^l = 1ᵀ δ^l = 0 in every hidden layer (the bias is redundant), so
    for those runs the ratio is ‖∂C/∂W^1‖/‖∂C/∂W^L‖ instead; ``measure`` names the column used.
    ``column`` ("grad_w_norm" or "grad_b_norm") imposes one column on every run."""
    lay = layers[layers["depth"] >= 1]
    if lay.empty:
        return pd.DataFrame(columns=["run_id", "phase", "step", "ratio", "measure"])
    last_step = lay.groupby("run_id")["step"].transform("max")
    picks = {
        PHASES[0]: lay[lay["step"] == 0],
        PHASES[1]: lay[(lay["step"] == last_step) & (lay["status"] == "ok") & (lay["step"] > 0)],
    }
    frames = []
    for phase, d in picks.items():
        first = d[d["layer"] == 1].set_index("run_id")
        last = d[d["layer"] == d["depth"] + 1].set_index("run_id").reindex(first.index)
        if column is not None:
            use_w = pd.Series(column == "grad_w_norm", index=first.index)
        else:
            use_w = (first["norm"] == "batch") if "norm" in first else pd.Series(False, index=first.index)
        measure = np.where(use_w, "grad_w_norm", "grad_b_norm")
        # pandas arithmetic: a zero norm gives inf or NaN, with no floating-point warning
        ratio = (first["grad_b_norm"] / last["grad_b_norm"]).where(~use_w, first["grad_w_norm"] / last["grad_w_norm"])
        frames.append(
            pd.DataFrame(
                {
                    "run_id": first.index,
                    "phase": phase,
                    "step": first["step"].to_numpy(),
                    "ratio": ratio.to_numpy(),
                    "measure": measure,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def first_to_last(layers: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per run (index ``run_id``): ``column`` of layer 1 over that of the output layer L, at step 0
    (``init``) and at the last logged step of a run that finished (``end``; NaN otherwise), e.g.
    the update ratio (``update_ratio``) or the weight gradient (``grad_w_norm``). Networks
    without hidden layers are left out."""
    lay = layers[layers["depth"] >= 1]
    last_step = lay.groupby("run_id")["step"].transform("max")
    picks = {
        "init": lay[lay["step"] == 0],
        "end": lay[(lay["step"] == last_step) & (lay["status"] == "ok") & (lay["step"] > 0)],
    }
    out = {}
    for phase, d in picks.items():
        first = d[d["layer"] == 1].set_index("run_id")[column]
        last = d[d["layer"] == d["depth"] + 1].set_index("run_id")[column]
        out[phase] = first / last  # aligned by run; pandas: a zero gives inf or NaN, without a warning
    return pd.DataFrame(out, index=pd.Index(lay["run_id"].unique(), name="run_id"))


def predicted_ratio(
    activation: str,
    init: str,
    sigma_w: float,
    sigma_b: float,
    width: int,
    depth: int,
    residual: bool = False,
    norm: str = "none",
) -> float:
    """Mean-field prediction of ‖δ^1‖/‖δ^L‖ = ∏_(l=1..depth) √χ^l (``mlplab.theory.profile``),
    with each initialiser's effective (σ_w, σ_b); NaN where the theory has no answer — and for
    residual or normalised networks, which ``mlplab.theory`` does not model."""
    if residual or norm != "none":
        return math.nan
    sigma_w, sigma_b = theory.effective_sigmas(init, width, sigma_w=sigma_w, sigma_b=sigma_b)  # normal: as given
    try:
        return float(theory.profile(activation, sigma_w, sigma_b, int(depth))["ratio"].prod())
    except (ValueError, RuntimeError):
        return math.nan


def predicted_factor(activation: str, init: str, sigma_w: float, sigma_b: float, width: int) -> float:
    """The mean-field per-layer factor √χ1 of a plain network's hidden layers (NaN without one)."""
    try:
        sw, sb = theory.effective_sigmas(init, width, width, sigma_w, sigma_b)
        return math.sqrt(theory.chi1(activation, sw, sb))
    except (ValueError, RuntimeError):
        return math.nan


def with_factor(d: pd.DataFrame) -> pd.DataFrame:
    """``d`` with ``factor``, the ``predicted_factor`` of each row's setting (computed once per
    setting)."""
    keys = ["activation", "init", "sigma_w", "sigma_b", "width"]
    factors = {k: predicted_factor(*k) for k in d[keys].drop_duplicates().itertuples(index=False, name=None)}
    return d.assign(factor=[factors[k] for k in d[keys].itertuples(index=False, name=None)])


def log_ratio(a, b) -> np.ndarray:
    """log10(a / b), elementwise (inf or NaN where b or a is 0, without a warning)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(a, float) / np.asarray(b, float))


def closer_to_one(a, b) -> np.ndarray:
    """|log10 b| − |log10 a|: > 0 when ratio ``a`` is closer to 1 than ratio ``b``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log10(np.asarray(b, float))) - np.abs(np.log10(np.asarray(a, float)))


def steps_effect(g: pd.DataFrame, column: str) -> np.ndarray:
    """Per pair (a against b): log10(steps_a / steps_b), > 0 when b is faster; NaN when neither
    run reaches the target (the pair says nothing about speed)."""
    a, b = g[f"{column}_a"].to_numpy(float), g[f"{column}_b"].to_numpy(float)
    neither = (a >= g["beyond_a"].to_numpy(float)) & (b >= g["beyond_b"].to_numpy(float))
    return np.where(neither, np.nan, log_ratio(a, b))


def rate_of(layers, log_sq_norm) -> float:
    """−(least-squares slope of ln ‖δ^l‖² against l): the per-layer change of ln ‖δ‖²
    going one layer toward the input (ln χ1 in the theory). NaN if any value is not finite."""
    y = np.asarray(log_sq_norm, float)
    if len(y) < 2 or not np.isfinite(y).all():
        return math.nan
    return -float(np.polyfit(np.asarray(layers, float), y, 1)[0])


def percentile_rank(value: float, sample) -> float:
    """The percentile of ``value`` in ``sample``: 100 × (#{x < value} + ½ #{x = value}) / n.

    The share of the sample below the value, ties counting half ("mid-rank"): 50 when it is
    the sample's median, 0 below every draw, 100 above every draw, 50 when every draw equals it.
    Below 5 or above 95 means fewer than 1 in 20 of the draws are that far out. NaN for an
    empty sample or a NaN value."""
    x = np.asarray(sample, float)
    x = x[~np.isnan(x)]
    if len(x) == 0 or np.isnan(value):
        return np.nan
    return 100.0 * (np.sum(x < value) + 0.5 * np.sum(x == value)) / len(x)

"""Which runs the edge-of-chaos study reads: plain networks the mean-field theory describes,
single-input runs at initialisation deep enough for a fit, and trained runs."""

from __future__ import annotations

import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.select import matching, plain

SKIP_INPUT = 5  # hidden layers next to the input left out of the fit (q^l has not settled there)
SKIP_OUTPUT = 2  # hidden layers next to the output layer left out of the fit
MIN_FIT_LAYERS = 3
BOUNDED = ["sigmoid", "tanh"]  # the activations whose mean-field maps mlplab.theory computes
# what the theory assumes beyond a plain network: normal initialisation, no clipping, no weight decay
THEORY = {"init": "normal", "clip": "none", "weight_decay": 0.0}


def described(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs the mean-field theory describes: init=normal, no residual, no normalisation, no
    clipping or weight decay, a bounded activation (sigmoid, tanh)."""
    keep = plain(runs).to_numpy() & matching(runs, THEORY) & runs["activation"].isin(BOUNDED).to_numpy()
    return runs[keep]


def init_runs(res) -> pd.DataFrame:
    """The single-input runs at initialisation: described by the theory, batch size 1, deep enough for a fit."""
    runs = described(res.runs)
    return runs[(runs["batch_size"] == 1) & (runs["depth"] >= SKIP_INPUT + SKIP_OUTPUT + MIN_FIT_LAYERS)]


def train_runs(res) -> pd.DataFrame:
    """The trained runs described by the theory, more than one step."""
    runs = described(res.runs)
    return runs[(runs["n_steps"] > 1) & (runs["depth"] >= 1)]


def present(source) -> bool:
    """Whether the folder holds the study: single-input runs at initialisation deep enough for
    a fit, or trained runs over a grid of ≥ 3 depths × ≥ 3 σ_w (not just any trained runs)."""
    res = load(source)
    train = train_runs(res)
    grid = train["depth"].nunique() >= 3 and train["sigma_w"].nunique() >= 3
    return not init_runs(res).empty or grid


def fit_layers(depth: int) -> tuple[int, int]:
    """The first and last hidden layer of the fit: SKIP_INPUT and SKIP_OUTPUT left out."""
    return SKIP_INPUT + 1, int(depth) - SKIP_OUTPUT

"""Which runs: the selections every study makes, each written once.

A *plain* run has no remedy of the network's shape (no skips, no normalisation); *twins* are
runs whose configs differ only in one factor (and the fields that come with it), paired on
every other field (the seed included); ``steps_to`` counts the logged steps until a measure reaches its run's target, a
run that never does counting one evaluation past its end (``beyond``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mlplab.analysis.fmt import number
from mlplab.results import CONFIG_TYPES

CONFIG = list(CONFIG_TYPES)  # every field of a run's config
# config values that define a "setting" besides the network shape, loss, clip rule and seed
SETTING = [
    "residual",
    "norm",
    "init",
    "sigma_w",
    "sigma_b",
    "lr",
    "width",
    "batch_size",
    "epochs",
    "weight_decay",
    "dataset",
    "n_samples",
    "n_features",
    "n_classes",
    "noise",
    "dtype",
]


def columns_in(df: pd.DataFrame, cols) -> list[str]:
    """The columns of ``cols`` that ``df`` has, in that order."""
    return [c for c in cols if c in df.columns]


def varying(df: pd.DataFrame, cols) -> list[str]:
    """The columns of ``cols`` that take more than one value in ``df``."""
    return [c for c in cols if c in df and df[c].nunique(dropna=False) > 1]


def plain(runs: pd.DataFrame) -> pd.Series:
    """Runs of plain networks: no skips, no normalisation (``norm`` is "none")."""
    return ~runs["residual"].astype(bool) & (runs["norm"] == "none")


def main_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Unclipped runs in the most common setting (for the figures that show one setting)."""
    r = runs[runs["clip"] == "none"]
    if r.empty:
        return r
    key = r[columns_in(r, SETTING)].astype(str).agg("|".join, axis=1)
    return r[key == key.value_counts().idxmax()]


def setting_values(runs: pd.DataFrame, cols=("dataset", "lr", "init", "sigma_w", "sigma_b")) -> str:
    """'lr=0.5, init=normal, ...' for the values shared by ``runs``."""
    parts = []
    for c in columns_in(runs, cols):
        vals = runs[c].dropna().unique()
        if len(vals) == 1:
            parts.append(f"{c}={number(vals[0])}")
    return ", ".join(parts)


def twins(per_run: pd.DataFrame, factor: str, a, b, ignore=()) -> pd.DataFrame:
    """Pairs of runs whose configs differ only in ``factor`` (``a`` against ``b``), matched on
    every other config field, the seed included: one row per pair, the shared config columns and
    the measures of each arm suffixed ``_a`` and ``_b``. The config fields ``ignore`` are left
    out of the match too (those that come with ``factor``: Adam's own learning rate); each
    arm's value of them is suffixed ``_a`` and ``_b``."""
    left_out = [c for c in ignore if c in per_run]
    keys = [c for c in CONFIG if c != factor and c not in left_out and c in per_run]
    A = per_run[per_run[factor] == a]
    B = per_run[per_run[factor] == b]
    measures = [c for c in per_run.columns if c not in CONFIG]
    return A.merge(B[keys + left_out + measures], on=keys, suffixes=("_a", "_b"))


def beyond(runs: pd.DataFrame) -> pd.Series:
    """Per run: one evaluation past its last logged step, what a run that never reaches a
    target counts as its steps to it."""
    return runs["n_steps"] + runs["eval_every"]


def steps_to(steps: pd.DataFrame, column: str, targets: pd.Series, beyond: pd.Series) -> pd.Series:
    """Per run: the first logged step whose ``column`` reaches its run's target (``targets``,
    by run_id); runs that never do get ``beyond`` (one evaluation past their end)."""
    s = steps[["run_id", "step", column]].copy()
    s["target"] = s["run_id"].map(targets)
    hit = s[s[column] >= s["target"]].groupby("run_id")["step"].min()
    return hit.reindex(targets.index).fillna(beyond).astype(float)


def per_run(res) -> pd.DataFrame:
    """The per-run table every study starts from: one row per run, indexed by run id, with its
    config, status and ``beyond``; a study adds its measures as columns."""
    runs = res.runs.set_index("run_id", drop=False)
    return runs.assign(beyond=beyond(runs))


def matching(runs: pd.DataFrame, config: dict) -> np.ndarray:
    """Which runs have every value of ``config`` (column -> value)."""
    keep = np.ones(len(runs), bool)
    for k, v in config.items():
        keep &= (runs[k] == v).to_numpy()
    return keep


def one_at_a_time(compute: Callable) -> Callable:
    """``compute(results)`` remembered for the last ``results`` object it was given (the
    same object, not an equal one), so that a study's ``tables``, ``figures`` and ``sections``
    called in turn on one folder compute its per-run tables once."""
    last: list = []

    def remembered(results):
        if not last or last[0] is not results:
            last[:] = [results, compute(results)]
        return last[1]

    remembered.__doc__, remembered.__wrapped__ = compute.__doc__, compute
    return remembered

"""Synthetic results tables with known answers, for the verdict, claim and remedy tests.

``make_results(runs, curves, profiles)`` builds a ``Results`` as ``mlplab.analysis.load`` gives
it: ``runs`` are dicts over ``BASE`` (every config field, status, final values), ``curves`` maps
a run id to its logged accuracy curve (steps 0, 10, 20, ...), ``profiles`` maps a run id to
{step: per-layer gradient norms for layers 1..L}."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlplab.results import CONFIG_TYPES, Results
from mlplab.spec import BEFORE

LOG_EVERY = 10
BASE = {
    "depth": 2,
    "width": 32,
    "activation": "sigmoid",
    "alpha": 0.01,
    "loss": "bce",
    "init": "normal",
    "sigma_w": 1.0,
    "sigma_b": 1.0,
    "residual": False,
    "norm": "none",
    "lr": 0.5,
    "batch_size": 32,
    "epochs": 10,
    "weight_decay": 0.0,
    "clip": "none",
    "clip_threshold": 1.0,
    "log_every": LOG_EVERY,
    "eval_every": LOG_EVERY,
    "dataset": "blobs",
    "n_samples": 1000,
    "n_features": 2,
    "n_classes": 3,
    "noise": 0.1,
    "test_fraction": 0.2,
    "standardise": True,
    "data_path": "none",
    "data_digest": "none",
    "seed": 0,
    "dtype": "float64",
    **BEFORE,  # optim, lr_schedule, ...: every run's values before those fields existed
}
assert set(BASE) == set(CONFIG_TYPES)


def make_results(runs: list[dict], curves: dict, profiles: dict | None = None) -> Results:
    """Runs with accuracy ``curves[run_id]`` (test and training accuracy alike) and per-layer
    gradient ``profiles`` (the same norms for ∂C/∂b and ∂C/∂W)."""
    r = pd.DataFrame(
        [
            {
                **BASE,
                "status": "ok",
                "diverged_step": np.nan,
                "final_loss": 0.1,
                "max_grad_norm": 1.0,
                "run_id": f"r{i}",
                **x,
            }
            for i, x in enumerate(runs)
        ]
    )
    rid = {i: x.get("run_id", f"r{i}") for i, x in enumerate(runs)}
    r["run_id"] = [rid[i] for i in range(len(runs))]
    acc_end = {k: float(np.asarray(v)[-1]) for k, v in curves.items()}
    r["final_test_accuracy"] = r["run_id"].map(acc_end)
    r["final_accuracy"] = r["final_test_accuracy"]
    r["n_steps"] = [LOG_EVERY * (len(curves[k]) - 1) for k in r["run_id"]]
    cfg = r[["run_id", "status"] + list(CONFIG_TYPES)]
    steps = pd.concat(
        [
            pd.DataFrame(
                {
                    "run_id": k,
                    "step": LOG_EVERY * np.arange(len(a)),
                    "test_accuracy": a,
                    "train_accuracy": a,
                    "train_loss": 1 - np.asarray(a),
                }
            )
            for k, a in curves.items()
        ],
        ignore_index=True,
    ).merge(cfg, on="run_id")
    frames = [
        pd.DataFrame({"run_id": k, "step": s, "layer": np.arange(1, len(g) + 1), "grad_b_norm": g, "grad_w_norm": g})
        for k, prof in (profiles or {}).items()
        for s, g in prof.items()
    ]
    layers = (
        pd.concat(frames, ignore_index=True).merge(cfg, on="run_id")
        if frames
        else pd.DataFrame(columns=["run_id", "step", "layer", "grad_b_norm", "grad_w_norm"] + list(cfg.columns[1:]))
    )
    return Results(r, steps, layers, Path("synthetic"), for_analysis=True)


def accuracy_curve(speed: float, n: int = 30, start: float = 0.2, end: float = 0.95) -> np.ndarray:
    """An accuracy that rises by 0.1 every ``speed`` logged steps from ``start`` up to ``end``."""
    return np.minimum(start + np.arange(n) / speed * 0.1, end)

"""Write ``plain_reference.parquet``: every metric of a small set of plain-network runs.

The file in the repository was written by the core *before* it was rebuilt as a stack of
layers (residual and normalised blocks), on one machine; ``tests/test_reference.py`` checks that
today's code still gives the same numbers for plain networks, to within what rounding can move
them on any machine (its docstrings derive the bounds). Rerun this only to record a deliberate
change of the numbers:

    .venv/bin/python tests/data/make_reference.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mlplab import MLP, RunSpec, load_results, run

HERE = Path(__file__).resolve().parent
# eval_every=1: the whole sets evaluated at every logged step, as every run was then
BASE = dict(depth=2, width=8, n_samples=120, epochs=2, batch_size=16, log_every=1, eval_every=1)

# (label, RunSpec overrides): every activation x loss, and each training option on its own
CASES = [
    (f"{a}-{l}", dict(activation=a, loss=l))
    for a in ("sigmoid", "tanh", "relu", "leaky_relu")
    for l in ("mse", "bce", "softmax_ce")
]
CASES += [
    ("depth0", dict(depth=0)),
    ("deep", dict(depth=6, activation="tanh")),
    ("clip-norm", dict(clip="norm", clip_threshold=0.05)),
    ("clip-value", dict(clip="value", clip_threshold=0.01)),
    ("decay", dict(weight_decay=0.05)),
    ("decay-clip", dict(weight_decay=0.05, clip="norm", clip_threshold=0.05)),
    ("full-batch", dict(batch_size="full", epochs=8)),
    ("float32", dict(dtype="float32")),
    ("xavier", dict(init="xavier_uniform", activation="tanh")),
    ("he", dict(init="he_normal", activation="relu")),
    ("spirals", dict(dataset="spirals", n_classes=4, width=16)),
    ("diverges", dict(depth=8, width=32, activation="relu", init="large", lr=1.0)),
    ("auto-log", dict(log_every=None, epochs=3)),
]

# columns renamed since the reference was written (schema 3): today's name -> the reference's
RENAMED = {"train_loss": "loss", "train_accuracy": "accuracy"}
METRIC_COLUMNS = {
    "runs": [
        "status",
        "diverged_step",
        "reason",
        "n_steps",
        "steps_done",
        "final_loss",
        "final_accuracy",
        "final_test_loss",
        "final_test_accuracy",
    ],
    "steps": ["step", "epoch", "loss", "accuracy", "test_loss", "test_accuracy", "batch_loss", "grad_norm", "clipped"],
    "layers": [
        "step",
        "epoch",
        "layer",
        "fan_in",
        "fan_out",
        "grad_w_norm",
        "grad_b_norm",
        "weight_norm",
        "update_ratio",
        "act_mean",
        "act_std",
        "sat_frac",
    ],
}


def case_metrics(label: str, over: dict) -> dict[str, pd.DataFrame]:
    """The three tables of one case, as the reference holds them."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / label
        run(RunSpec(**{**BASE, **over}), root)
        r = load_results(root, join=False)
        for t in METRIC_COLUMNS:
            df = getattr(r, t).rename(columns=RENAMED)[METRIC_COLUMNS[t]].copy()
            df.insert(0, "case", label)
            for c in ("status", "reason"):
                if c in df:
                    df[c] = df[c].astype(str)
            out[t] = df
    return out


def sweep_metrics() -> dict[str, pd.DataFrame]:
    cases = [case_metrics(label, over) for label, over in CASES]
    return {t: pd.concat([c[t] for c in cases], ignore_index=True) for t in METRIC_COLUMNS}


def gradient_cases():
    """(label, net, X, Y): one deeper network per activation x loss, with a width change."""
    for a in ("sigmoid", "tanh", "relu", "leaky_relu"):
        for l in ("mse", "bce", "softmax_ce"):
            rng = np.random.default_rng(7)
            net = MLP([5, 7, 7, 6, 4], a, l, "normal", seed=3, sigma_w=1.5, sigma_b=0.5)
            X = rng.standard_normal((9, 5))
            Y = np.eye(4)[rng.integers(0, 4, 9)]
            yield f"{a}-{l}", net, X, Y


def gradient_table() -> pd.DataFrame:
    rows = []
    for label, net, X, Y in gradient_cases():
        g = net.gradients(X, Y)
        for kind, arrays in (("dW", g.dW), ("db", g.db), ("delta", g.delta)):
            for l, arr in enumerate(arrays, start=1):
                rows.append(dict(case=label, kind=kind, layer=l, values=arr.ravel().tolist()))
        rows.append(dict(case=label, kind="loss", layer=0, values=[g.loss]))
    return pd.DataFrame(rows)


def main() -> None:
    tables = sweep_metrics()
    tables["gradients"] = gradient_table()
    for name, df in tables.items():
        df.to_parquet(HERE / f"plain_reference_{name}.parquet", index=False, compression="zstd")
        print(f"{name}: {len(df)} rows")


if __name__ == "__main__":
    main()

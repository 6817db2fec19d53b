"""Which runs the Nielsen study reads: those with his configuration, their speeds of learning
‖∂C/∂b^l‖ per hidden layer (at initialisation, each network once, or at every logged step), the
training protocols they follow, and the Nielsen results folders a report shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlplab.analysis.select import matching, one_at_a_time, plain
from mlplab.analysis.studies.nielsen.published import NIELSEN_CONFIG, network_text

# results folders of the two studies, his data set first
FOLDERS = ("nielsen_mnist", "nielsen")

# what decides the network and the batch whose gradient is logged at step 0; runs that share
# these (and Nielsen's configuration) differ only in how they would go on training
STEP0_KEYS = (
    "dataset",
    "n_samples",
    "test_fraction",
    "standardise",
    "data_path",
    "data_digest",
    "batch_size",
    "dtype",
    "seed",
    "depth",
)

# the columns of the runs table the study reads
RUN_COLUMNS = (*NIELSEN_CONFIG, *STEP0_KEYS, "run_id", "n_steps", "epochs", "lr", "weight_decay")
PROTOCOL_KEYS = ["dataset", "lr", "weight_decay", "batch_size"]


def is_nielsens(runs: pd.DataFrame) -> np.ndarray:
    """Which runs have Nielsen's configuration (``NIELSEN_CONFIG``, no residual, no normalisation)."""
    return matching(runs, NIELSEN_CONFIG) & plain(runs)


def has_nielsens(results) -> bool:
    """Whether ``results`` hold a run with Nielsen's configuration and the columns the study reads."""
    runs = results.runs
    return all(c in runs for c in RUN_COLUMNS) and bool(is_nielsens(runs).any())


def hidden_speeds(results, step: int | None = 0) -> pd.DataFrame:
    """‖∂C/∂b^l‖ of every hidden layer at ``step`` (0 = initialisation; None = every logged step),
    one row per run, step and layer, for the runs whose config is Nielsen's (``NIELSEN_CONFIG``);
    columns run_id, seed, depth, dataset, n_steps, step, epoch (step / steps per epoch), layer,
    speed, network. ValueError when no run matches."""
    runs = results.runs
    keep = is_nielsens(runs)
    if not keep.any():
        want = ", ".join(f"{k}={v}" for k, v in NIELSEN_CONFIG.items())
        raise ValueError(f"no run with Nielsen's configuration ({want}) in these results")
    # the config is taken from ``runs`` (not the joined columns of ``layers``)
    cfg = runs.loc[keep, ["run_id", "depth", "seed", "dataset", "n_steps", "epochs"]].astype(
        {"run_id": str, "dataset": str}
    )
    cols = ["run_id", "step", "layer", "fan_in", "fan_out", "grad_b_norm"]
    lay = results.layers[cols].astype({"run_id": str}).merge(cfg, on="run_id", how="inner")
    # the network's sizes from the logged fans: n_0 = fan_in of layer 1, n_L = fan_out of layer L
    first = lay[lay.layer == 1].groupby("run_id", observed=True).fan_in.first()
    last = lay[lay.layer == lay.depth + 1].groupby("run_id", observed=True).fan_out.first()
    lay = lay[(lay.layer <= lay.depth) & ((lay.step == step) if step is not None else True)]
    out = pd.DataFrame(
        {
            "run_id": lay.run_id.astype(str).to_numpy(),
            "seed": lay.seed.to_numpy(),
            "depth": lay.depth.astype(int).to_numpy(),
            "dataset": lay.dataset.to_numpy(),
            "n_steps": lay.n_steps.astype(int).to_numpy(),
            "step": lay.step.astype(int).to_numpy(),
            "epoch": (lay.step * lay.epochs / lay.n_steps).to_numpy(float),
            "layer": lay.layer.astype(int).to_numpy(),
            "speed": lay.grad_b_norm.to_numpy(),
        }
    )
    out["network"] = [network_text([first[r]] + [30] * d + [last[r]]) for r, d in zip(out.run_id, out.depth)]
    return out.sort_values(["dataset", "depth", "seed", "run_id", "step", "layer"], ignore_index=True)


@one_at_a_time  # the section, its figures and tables read it in turn
def speeds_at_init(results) -> pd.DataFrame:
    """``hidden_speeds`` at step 0, each network counted once.

    A run's step-0 gradient depends only on its network and first batch (``STEP0_KEYS``): the
    training runs of ``nielsen_mnist_training.yaml`` start from the very networks of the same
    seeds in ``nielsen_mnist.yaml`` and log the same numbers; of such runs the first (by run id)
    is kept."""
    s = hidden_speeds(results, 0)
    keys = results.runs.astype({"run_id": str}).set_index("run_id").loc[s.run_id.unique(), list(STEP0_KEYS)]
    keys = keys.astype(str).sort_index()
    kept = keys.index[~keys.duplicated()]
    return s[s.run_id.isin(kept)].reset_index(drop=True)


def training_speeds(results) -> pd.DataFrame:
    """``hidden_speeds`` at every logged step of the runs that train (log more than step 0),
    with their protocol: dataset, lr, weight_decay, batch_size (columns added)."""
    s = hidden_speeds(results, step=None)
    s = s[s.groupby("run_id").step.transform("max") > 0]
    proto = results.runs.astype({"run_id": str}).set_index("run_id")[["lr", "weight_decay", "batch_size"]]
    return s.join(proto, on="run_id").reset_index(drop=True)


def protocols(speeds: pd.DataFrame) -> list[tuple]:
    """The distinct training protocols (dataset, lr, weight_decay, batch_size) of ``speeds``."""
    return [tuple(k) for k in speeds[PROTOCOL_KEYS].drop_duplicates().itertuples(index=False)]


def of_protocol(df: pd.DataFrame, protocol: tuple) -> np.ndarray:
    """Which rows of ``df`` follow ``protocol`` (dataset, lr, weight_decay, batch_size)."""
    dataset, lr, wd, bs = protocol
    return ((df.dataset == dataset) & (df.lr == lr) & (df.weight_decay == wd) & (df.batch_size == bs)).to_numpy()


def nielsen_folders(folder) -> list[Path]:
    """The Nielsen results folders to report next to ``folder``: ``FOLDERS`` in its parent (or
    the folder itself when it is one of them), MNIST first, those that exist as folders."""
    folder = Path(folder)
    found = []
    for name in FOLDERS:
        path = folder if folder.name == name else folder.parent / name
        if path.is_dir():
            found.append(path)
    return found

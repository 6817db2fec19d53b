"""The Nielsen study's measures: our speeds of learning against his, as means over seeds, as
distributions with his value's percentile in them, as slowdown factors from layer to layer, and
during training at the epochs his curves are kept at."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplab.analysis.measures import percentile_rank
from mlplab.analysis.select import one_at_a_time
from mlplab.analysis.studies.nielsen.published import (
    NIELSEN,
    NIELSEN_CONFIG,
    NIELSEN_EPOCHS,
    NIELSEN_TRAINING,
    his_speed,
    is_his_protocol,
    nielsen_network,
)
from mlplab.analysis.studies.nielsen.select import PROTOCOL_KEYS, hidden_speeds, speeds_at_init, training_speeds
from mlplab.theory import profile


def _with_ratio_next(speeds: pd.DataFrame) -> pd.DataFrame:
    """Adds ratio_next = ‖∂C/∂b^l‖/‖∂C/∂b^(l+1)‖ per run and step (NaN for the last hidden layer)."""
    s = speeds.copy()
    nxt = s.groupby(["run_id", "step"]).speed.shift(-1)
    s["ratio_next"] = s.speed / nxt
    return s


def nielsen_table(results, step: int = 0, q0: float | None = None) -> pd.DataFrame:
    """Nielsen's speeds of learning next to ours (mean ± std over seeds), one row per network and
    hidden layer, at initialisation (``step`` 0, each network once: ``speeds_at_init``) or at a
    later logged ``step``.

    Columns: depth, layer, nielsen_network, network (ours), nielsen, ours_mean, ours_std,
    n_seeds, ours_over_nielsen, nielsen_ratio_next and ours_ratio_next (± ours_ratio_next_std):
    the layer's speed over the next layer's, per seed then averaged (NaN for the last hidden
    layer, whose next layer is the output). ``nielsen`` is NaN for depths he did not publish.
    Given the input's q^0 = mean ‖x‖²/n_0 (``mlplab.theory.input_q0``), a column
    ``theory_ratio_next`` adds the mean-field prediction √χ^l (``mlplab.theory.profile``).
    """
    speeds = speeds_at_init(results) if step == 0 else hidden_speeds(results, step)
    s = _with_ratio_next(speeds)
    g = s.groupby(["depth", "layer"])
    t = g.agg(
        network=("network", "first"),
        ours_mean=("speed", "mean"),
        ours_std=("speed", "std"),
        n_seeds=("speed", "size"),
        ours_ratio_next=("ratio_next", "mean"),
        ours_ratio_next_std=("ratio_next", "std"),
    ).reset_index()
    t["nielsen"] = [his_speed(d, l) for d, l in zip(t.depth, t.layer)]
    t["nielsen_ratio_next"] = [his_speed(d, l) / his_speed(d, l + 1) for d, l in zip(t.depth, t.layer)]
    t["nielsen_network"] = [nielsen_network(d) for d in t.depth]
    t["ours_over_nielsen"] = t.ours_mean / t.nielsen
    extra = []
    if q0 is not None:
        sw, sb = NIELSEN_CONFIG["sigma_w"], NIELSEN_CONFIG["sigma_b"]
        pred = {d: profile("sigmoid", sw, sb, d, q0).ratio.to_numpy() for d in t.depth.unique()}
        t["theory_ratio_next"] = [pred[d][l - 1] if l < d else np.nan for d, l in zip(t.depth, t.layer)]
        extra = ["theory_ratio_next"]
    cols = [
        "depth",
        "layer",
        "nielsen_network",
        "network",
        "nielsen",
        "ours_mean",
        "ours_std",
        "n_seeds",
        "ours_over_nielsen",
        "nielsen_ratio_next",
        "ours_ratio_next",
        "ours_ratio_next_std",
    ] + extra
    return t[cols]


def nielsen_first_last(results, step: int = 0) -> pd.DataFrame:
    """The first over the last hidden layer's speed, ‖∂C/∂b^1‖/‖∂C/∂b^depth‖, per network:
    Nielsen's and ours (mean ± std over seeds of the per-seed ratio)."""
    s = speeds_at_init(results) if step == 0 else hidden_speeds(results, step)
    per_run = s.groupby("run_id").agg(
        depth=("depth", "first"), network=("network", "first"), first=("speed", "first"), last=("speed", "last")
    )
    per_run["ratio"] = per_run["first"] / per_run["last"]
    t = (
        per_run.groupby("depth")
        .agg(
            network=("network", "first"),
            ours_mean=("ratio", "mean"),
            ours_std=("ratio", "std"),
            n_seeds=("ratio", "size"),
        )
        .reset_index()
    )
    t["nielsen_network"] = [nielsen_network(d) for d in t.depth]
    t["nielsen"] = [NIELSEN[d][0] / NIELSEN[d][-1] if d in NIELSEN else np.nan for d in t.depth]
    return t[["depth", "nielsen_network", "network", "nielsen", "ours_mean", "ours_std", "n_seeds"]]


def nielsen_training(results) -> pd.DataFrame:
    """The speed of learning during training: per protocol (dataset, lr, weight_decay), depth,
    logged step and hidden layer, the mean and std over seeds of ‖∂C/∂b^l‖, and of the per-seed
    ratio to the last hidden layer (``rel_to_last``; 1 for the last hidden layer)."""
    s = training_speeds(results)
    last = s.groupby(["run_id", "step"]).speed.transform("last")
    s["rel_to_last"] = s.speed / last
    t = s.groupby(["dataset", "lr", "weight_decay", "depth", "step", "layer"]).agg(
        epoch=("epoch", "first"),
        speed_mean=("speed", "mean"),
        speed_std=("speed", "std"),
        rel_to_last_mean=("rel_to_last", "mean"),
        rel_to_last_std=("rel_to_last", "std"),
        n_seeds=("speed", "size"),
    )
    return t.reset_index()


def _distribution(values: np.ndarray, his: float) -> dict:
    """n, median, 5 % and 95 % quantiles (linear interpolation), his value's percentile and
    whether it lies within [5 %, 95 %]."""
    p5, med, p95 = np.quantile(values, [0.05, 0.5, 0.95])
    pct = percentile_rank(his, values)
    return {
        "n": len(values),
        "median": med,
        "p5": p5,
        "p95": p95,
        "percentile": pct,
        "inside": bool(p5 <= his <= p95) if not np.isnan(his) else np.nan,
    }


def percentile_table(speeds: pd.DataFrame) -> pd.DataFrame:
    """Per data set, depth and hidden layer of ``speeds`` (columns dataset, depth, layer,
    network, speed; one row per network): his single-draw value ``nielsen``, our distribution
    over seeds (n, median, p5, p95) and the ``percentile`` of his value in it (``percentile_rank``);
    ``inside``: p5 ≤ his ≤ p95."""
    rows = []
    for (dataset, depth, layer), g in speeds.groupby(["dataset", "depth", "layer"], sort=True):
        his = his_speed(depth, layer)
        rows.append(
            {
                "dataset": dataset,
                "depth": depth,
                "layer": layer,
                "network": g.network.iloc[0],
                "nielsen": his,
                **_distribution(g.speed.to_numpy(float), his),
            }
        )
    return pd.DataFrame(rows)


def percentiles(results) -> pd.DataFrame:
    """``percentile_table`` of our networks at initialisation (``speeds_at_init``)."""
    return percentile_table(speeds_at_init(results))


def slowdown_table(speeds: pd.DataFrame) -> pd.DataFrame:
    """How many times slower each hidden layer learns than the next one,
    ‖∂C/∂b^(l+1)‖/‖∂C/∂b^l‖ for l = 1..depth−1, per data set, depth and layer l: his factor,
    our distribution over networks (n, median, p5, p95) and the percentile of his in it."""
    s = _with_ratio_next(speeds).dropna(subset=["ratio_next"])
    rows = []
    for (dataset, depth, layer), g in s.groupby(["dataset", "depth", "layer"], sort=True):
        his = his_speed(depth, layer + 1) / his_speed(depth, layer)
        rows.append(
            {
                "dataset": dataset,
                "depth": depth,
                "layer": layer,
                "nielsen": his,
                **_distribution(1.0 / g.ratio_next.to_numpy(float), his),
            }
        )
    return pd.DataFrame(rows)


@one_at_a_time  # the training figure, checkpoints and sentences read it in turn
def training_curves(results) -> pd.DataFrame:
    """Per protocol, depth, logged epoch and hidden layer: median, min and max over seeds of
    ‖∂C/∂b^l‖ (columns dataset, lr, weight_decay, batch_size, depth, epoch, layer, n, median,
    lo, hi)."""
    s = training_speeds(results)
    keys = ["dataset", "lr", "weight_decay", "batch_size", "depth", "epoch", "layer"]
    return s.groupby(keys).speed.agg(n="size", median="median", lo="min", hi="max").reset_index()


def training_checkpoints(results, epochs: tuple = (0, 50)) -> pd.DataFrame:
    """For his protocol: at each of ``epochs`` (that both he and we logged) and at our last
    logged epoch, per depth and hidden layer, his ‖∂C/∂b^l‖, ours (median, min, max over seeds)
    and whether his lies within our seeds' range. Empty when no run follows his protocol."""
    c = training_curves(results)
    c = c[[is_his_protocol(p) for p in c[PROTOCOL_KEYS].itertuples(index=False)]]
    if c.empty:
        return pd.DataFrame()
    last = c.epoch.max()
    wanted = [e for e in dict.fromkeys((*epochs, last)) if e in NIELSEN_EPOCHS and e in set(c.epoch)]
    c = c[c.epoch.isin(wanted)].copy()
    c["nielsen"] = [
        NIELSEN_TRAINING[d][l - 1][NIELSEN_EPOCHS.index(int(e))] if d in NIELSEN_TRAINING else np.nan
        for d, l, e in zip(c.depth, c.layer, c.epoch)
    ]
    c["inside"] = (c.lo <= c.nielsen) & (c.nielsen <= c.hi)
    c["epoch"] = c.epoch.astype(int)
    return c[["depth", "epoch", "layer", "nielsen", "n", "median", "lo", "hi", "inside"]].reset_index(drop=True)

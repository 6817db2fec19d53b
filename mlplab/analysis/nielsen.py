"""Nielsen's "speed of learning" per hidden layer, side by side with ours.

    python -m mlplab.analysis.nielsen results/nielsen_mnist

Michael Nielsen, *Neural Networks and Deep Learning*, ch. 5 ("The vanishing gradient problem"):
the speed of learning of hidden layer l is ‖∂C/∂b^l‖, the gradient averaged over 1,000
training images, for sigmoid nets with 30-unit hidden layers, cross-entropy cost (sigmoid
output: mlplab's ``bce``), W ~ N(0, 1/n_in), b ~ N(0, 1) (``init=normal``, σ_w = σ_b = 1), on
MNIST (784 inputs): at initialisation, and after each epoch of full-batch training (η = 0.1,
L2 with λ = 5.0 over n = 1,000 images). Each layer learns ≈ 4–5× slower than the next.

He measured one network per depth. Two studies repeat it with many seeds and read it back from
the ``layers`` table (hidden layers are l = 1..depth; layer depth+1 is the output layer):

* ``results/nielsen_mnist`` (``conf/sweep/nielsen_mnist.yaml`` at initialisation and
  ``nielsen_mnist_training.yaml`` during training): real MNIST digits, his protocol;
* ``results/nielsen`` (``conf/sweep/nielsen.yaml``): the same networks on the 8x8 digits.

``percentiles`` places each of his values in our distribution over seeds; ``fig_init`` and
``fig_training`` draw them; ``report_blocks`` is the report's section.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mlplab.analysis.blocks import Block

# depth (hidden layers) -> ‖∂C/∂b^l‖ for l = 1..depth of [784, 30, ..., 30, 10] at initialisation:
# epoch 0 of fig/norms_during_training_{2,3,4}_layers.json in his repository
# (mnielsen/neural-networks-and-deep-learning), every digit the files hold.
NIELSEN: dict[int, tuple[float, ...]] = {
    2: (0.06574134326503182, 0.3092184942703712),
    3: (0.011838212272121293, 0.05996519457449515, 0.28314239285488185),
    4: (0.0029752663545292526, 0.017076665445425132, 0.06953924167660484, 0.28513893545173896),
}

# His curves during training, from the same files (4 significant digits): ‖∂C/∂b^l‖ at the start
# of each of these epochs (before its update), per depth one tuple per hidden layer.
NIELSEN_EPOCHS: tuple[int, ...] = (0, 5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 300, 400, 495)
NIELSEN_TRAINING: dict[int, tuple[tuple[float, ...], ...]] = {
    2: (
        (
            0.06574,
            0.01899,
            0.00893,
            0.002505,
            0.001109,
            0.0009498,
            0.001017,
            0.001114,
            0.00131,
            0.001488,
            0.001835,
            0.00208,
            0.002489,
            0.003026,
            0.003429,
        ),
        (
            0.3092,
            0.09027,
            0.04038,
            0.0107,
            0.003533,
            0.001693,
            0.001342,
            0.001358,
            0.001582,
            0.001857,
            0.002593,
            0.003368,
            0.005167,
            0.00753,
            0.009575,
        ),
    ),
    3: (
        (
            0.01184,
            0.005163,
            0.002004,
            0.0004555,
            0.0001525,
            9.516e-05,
            8.504e-05,
            8.257e-05,
            8.107e-05,
            8.053e-05,
            8.078e-05,
            8.215e-05,
            8.506e-05,
            8.632e-05,
            8.563e-05,
        ),
        (
            0.05997,
            0.02653,
            0.01042,
            0.002437,
            0.000799,
            0.0004167,
            0.0003255,
            0.0003013,
            0.0002879,
            0.0002809,
            0.0002672,
            0.0002565,
            0.0002407,
            0.0002285,
            0.0002186,
        ),
        (
            0.2831,
            0.1488,
            0.05962,
            0.01391,
            0.004472,
            0.002178,
            0.001601,
            0.001452,
            0.001396,
            0.001385,
            0.001365,
            0.001347,
            0.001315,
            0.001287,
            0.001262,
        ),
    ),
    4: (
        (
            0.002975,
            0.0006996,
            0.0002659,
            6.369e-05,
            2.867e-05,
            2.223e-05,
            2.065e-05,
            1.998e-05,
            1.91e-05,
            1.834e-05,
            1.657e-05,
            1.498e-05,
            1.225e-05,
            1.002e-05,
            8.279e-06,
        ),
        (
            0.01708,
            0.003957,
            0.001475,
            0.0003198,
            0.0001043,
            5.841e-05,
            4.803e-05,
            4.525e-05,
            4.35e-05,
            4.24e-05,
            3.985e-05,
            3.747e-05,
            3.315e-05,
            2.939e-05,
            2.627e-05,
        ),
        (
            0.06954,
            0.02175,
            0.008404,
            0.001838,
            0.0005854,
            0.0003102,
            0.0002466,
            0.0002309,
            0.0002242,
            0.0002215,
            0.0002157,
            0.0002102,
            0.0002,
            0.0001908,
            0.0001828,
        ),
        (
            0.2851,
            0.09496,
            0.03657,
            0.007906,
            0.002493,
            0.001312,
            0.001045,
            0.0009827,
            0.000963,
            0.00096,
            0.000955,
            0.0009503,
            0.0009413,
            0.0009328,
            0.000925,
        ),
    ),
}

# the configuration his numbers belong to (columns of the runs table); plain networks only
NIELSEN_CONFIG = {"activation": "sigmoid", "loss": "bce", "init": "normal", "sigma_w": 1.0, "sigma_b": 1.0, "width": 30}

# his training protocol in mlplab's terms (fig/generate_gradient.py: net.SGD(td, 1, 1000, 0.1,
# lmbda=5.0) once per epoch on 1,000 MNIST images): W ← (1 − ηλ/n) W − η mean ∂C/∂W is
# mlplab's weight decay λ/n
NIELSEN_PROTOCOL = {"dataset": "mnist", "lr": 0.1, "weight_decay": 5.0 / 1000, "batch_size": 1000, "epochs": 500}

# results folders of the two studies, his data set first
FOLDERS = ("nielsen_mnist", "nielsen")
DATASET_NAMES = {"mnist": "MNIST", "digits": "the 8×8 digits"}

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

NIELSEN_COLOR = sns.color_palette("colorblind")[3]


def _network(sizes) -> str:
    return "[" + ", ".join(str(int(n)) for n in sizes) + "]"


def nielsen_network(depth: int) -> str:
    """His network for ``depth`` hidden layers, e.g. '[784, 30, 30, 10]'."""
    return _network([784] + [30] * depth + [10])


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def plural(n: int, word: str) -> str:
    """'1 seed', '5 seeds'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def ordinal(percentile: float) -> str:
    """A percentile rounded to a whole number, as '1st', '22nd', '43rd', '64th', '100th'."""
    n = int(round(percentile))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# -- our speeds ---------------------------------------------------------------------------------------
def _is_nielsens(runs: pd.DataFrame) -> np.ndarray:
    """Which runs have Nielsen's configuration (``NIELSEN_CONFIG``, no residual, no normalisation)."""
    keep = np.ones(len(runs), bool)
    for k, v in NIELSEN_CONFIG.items():
        keep &= (runs[k] == v).to_numpy()
    if "residual" in runs:
        keep &= ~runs["residual"].astype(bool).to_numpy()
    if "norm" in runs:
        norm = runs["norm"].astype(object)
        keep &= (norm.isna() | (norm == "none")).to_numpy()
    return keep


def hidden_speeds(results, step: int | None = 0) -> pd.DataFrame:
    """‖∂C/∂b^l‖ of every hidden layer at ``step`` (0 = initialisation; None = every logged step),
    one row per run, step and layer, for the runs whose config is Nielsen's (``NIELSEN_CONFIG``);
    columns run_id, seed, depth, dataset, n_steps, step, epoch (step / steps per epoch), layer,
    speed, network. ValueError when no run matches."""
    runs = results.runs
    keep = _is_nielsens(runs)
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
    out["network"] = [_network([first[r]] + [30] * d + [last[r]]) for r, d in zip(out.run_id, out.depth)]
    return out.sort_values(["dataset", "depth", "seed", "run_id", "step", "layer"], ignore_index=True)


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
    t["nielsen"] = [_his(d, l) for d, l in zip(t.depth, t.layer)]
    t["nielsen_ratio_next"] = [_his(d, l) / _his(d, l + 1) for d, l in zip(t.depth, t.layer)]
    t["nielsen_network"] = [nielsen_network(d) for d in t.depth]
    t["ours_over_nielsen"] = t.ours_mean / t.nielsen
    extra = []
    if q0 is not None:
        from mlplab.theory import profile

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


def _his(depth: int, layer: int) -> float:
    """His ‖∂C/∂b^layer‖ at initialisation; NaN where he published none (other depth, layer)."""
    vals = NIELSEN.get(int(depth), ())
    return vals[layer - 1] if 1 <= layer <= len(vals) else np.nan


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


def training_speeds(results) -> pd.DataFrame:
    """``hidden_speeds`` at every logged step of the runs that train (log more than step 0),
    with their protocol: dataset, lr, weight_decay, batch_size (columns added)."""
    s = hidden_speeds(results, step=None)
    s = s[s.groupby("run_id").step.transform("max") > 0]
    proto = results.runs.astype({"run_id": str}).set_index("run_id")[["lr", "weight_decay", "batch_size"]]
    return s.join(proto, on="run_id").reset_index(drop=True)


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


# -- where his value falls in our distribution ----------------------------------------------------
def percentile_rank(value: float, sample) -> float:
    """The percentile of ``value`` in ``sample``: 100 × (#{x < value} + ½ #{x = value}) / n.

    The share of the sample below the value, ties counting half ("mid-rank"): 50 when it is
    the sample's median, 0 below every draw, 100 above every draw, 50 when every draw equals it.
    Below 5 or above 95 means fewer than 1 in 20 of our networks are that far out. NaN for an
    empty sample or a NaN value."""
    x = np.asarray(sample, float)
    x = x[~np.isnan(x)]
    if len(x) == 0 or np.isnan(value):
        return np.nan
    return 100.0 * (np.sum(x < value) + 0.5 * np.sum(x == value)) / len(x)


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
        his = _his(depth, layer)
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
        his = _his(depth, layer + 1) / _his(depth, layer)
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


def init_sentences(pct: pd.DataFrame, slow: pd.DataFrame) -> list[str]:
    """What the tables at initialisation say, in words, computed from them (one data set)."""
    have = pct.dropna(subset=["nielsen"])
    n_in = int(have.inside.sum())
    out_rows = have[~have.inside.astype(bool)]
    outside = "; ".join(
        f"depth {r.depth}, layer {r.layer}: percentile {r.percentile:.0f}" for r in out_rows.itertuples()
    )
    n = int(have.n.min()) if len(have) else 0
    lines = [
        f"{n_in} of his {len(have)} values lie inside our 5–95 % range (at least {plural(n, 'network')} per depth)"
        + (f"; outside: {outside}." if len(out_rows) else "."),
        f"His values sit at percentiles {have.percentile.min():.0f} to {have.percentile.max():.0f} of ours "
        f"(median percentile {have.percentile.median():.0f}; 50 would be our median network).",
    ]
    sl = slow.dropna(subset=["nielsen"])
    if len(sl):
        in_range = sl["median"].between(3.5, 5.5)
        where = f"all {len(sl)}" if in_range.all() else f"{int(in_range.sum())} of {len(sl)}"
        lines.append(
            f"Each hidden layer learns {sl['median'].min():.2g}× to {sl['median'].max():.2g}× slower than the next "
            f"(our median per layer pair; his {len(sl)} factors: {sl.nielsen.min():.2g}× to {sl.nielsen.max():.2g}×); "
            f"{int(sl.inside.sum())} of his {len(sl)} factors lie inside our 5–95 % range. "
            f"Nielsen's “about 4–5× per layer” (read as: between 3.5× and 5.5×) holds for our median "
            f"in {where} layer pairs."
        )
    return lines


# -- during training ----------------------------------------------------------------------------------
def _protocols(speeds: pd.DataFrame) -> list[tuple]:
    """The distinct training protocols (dataset, lr, weight_decay, batch_size) of ``speeds``."""
    keys = ["dataset", "lr", "weight_decay", "batch_size"]
    return [tuple(k) for k in speeds[keys].drop_duplicates().itertuples(index=False)]


def _of_protocol(df: pd.DataFrame, protocol: tuple) -> np.ndarray:
    """Which rows of ``df`` follow ``protocol`` (dataset, lr, weight_decay, batch_size)."""
    dataset, lr, wd, bs = protocol
    return ((df.dataset == dataset) & (df.lr == lr) & (df.weight_decay == wd) & (df.batch_size == bs)).to_numpy()


def is_his_protocol(protocol: tuple) -> bool:
    """Whether (dataset, lr, weight_decay, batch_size) is his training protocol (``NIELSEN_PROTOCOL``)."""
    p = NIELSEN_PROTOCOL
    dataset, lr, wd, bs = protocol
    return (
        dataset == p["dataset"]
        and np.isclose(lr, p["lr"])
        and np.isclose(wd, p["weight_decay"])
        and bs == p["batch_size"]
    )


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
    c = c[[is_his_protocol(p) for p in c[["dataset", "lr", "weight_decay", "batch_size"]].itertuples(index=False)]]
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


def training_sentences(results) -> list[str]:
    """What the training curves say next to his, computed from them (his protocol only)."""
    cp = training_checkpoints(results)
    if cp.empty:
        return []
    curves = training_curves(results)
    curves = curves[
        [is_his_protocol(p) for p in curves[["dataset", "lr", "weight_decay", "batch_size"]].itertuples(index=False)]
    ]
    last = int(cp.epoch.max())
    at_last = cp[cp.epoch == last]
    n_seeds = int(cp.n.min())
    lines = []
    for e, g in cp.groupby("epoch"):
        lines.append(
            f"Epoch {e}: {int(g.inside.sum())} of his {len(g)} values lie within the range of our "
            f"{plural(n_seeds, 'seed')}."
        )
    drop = []
    on_his = curves[curves.epoch.isin(NIELSEN_EPOCHS)]  # both curves at the epochs his are kept at
    for d, g in on_his[on_his.depth.isin(list(NIELSEN_TRAINING))].groupby("depth"):
        first = g[g.layer == 1].sort_values("epoch")
        ours = first["median"]
        his = [NIELSEN_TRAINING[d][0][NIELSEN_EPOCHS.index(int(e))] for e in first.epoch]
        drop.append(f"{ours.iloc[0] / ours.min():.3g} with {d} hidden layers (his {his[0] / min(his):.3g})")
    lines.append(
        f"From epoch 0 to its lowest point (compared at the {len(NIELSEN_EPOCHS)} epochs his curves are kept at, "
        f"0 to {NIELSEN_EPOCHS[-1]}) the first hidden layer's speed falls by a factor of " + ", ".join(drop) + "."
    )
    ours, his = {}, {}
    for d, g in at_last.groupby("depth"):
        ours[d] = g[g.layer == 1]["median"].iloc[0] / g[g.layer == d]["median"].iloc[0]
        his[d] = g[g.layer == 1].nielsen.iloc[0] / g[g.layer == d].nielsen.iloc[0]
    both = "; ".join(f"depth {d}: ours {ours[d]:.2g}, his {his[d]:.2g}" for d in ours)
    still = max(*ours.values(), *his.values()) < 1
    lines.append(
        f"At epoch {last}, ‖∂C/∂b^1‖/‖∂C/∂b^depth‖ of the medians is {both}"
        + (": the first hidden layer still learns slower than the last." if still else ".")
    )
    return lines


# -- figures ------------------------------------------------------------------------------------------
def _layer_colors(depths) -> dict:
    """One viridis colour per hidden layer 1..max depth, as in mlplab.analysis.figures."""
    from mlplab.analysis.figures import ordered_colors

    return ordered_colors(range(1, int(max(depths)) + 1))


def fig_init(res) -> plt.Figure:
    """Our ‖∂C/∂b^l‖ at initialisation, one dot per network and a box (quartiles, whiskers at
    5 % and 95 %) per hidden layer, one panel per depth (rows: data sets), his value marked with
    its percentile in ours."""
    from mlplab.analysis.figures import style

    speeds = speeds_at_init(res)
    pct = percentile_table(speeds)
    datasets, depths = sorted(speeds.dataset.unique()), sorted(speeds.depth.unique())
    colors = _layer_colors(depths)
    rng = np.random.default_rng(0)
    with style():
        ncol = 3 if len(depths) >= 3 else 1  # the legend: one line, or one entry per line
        legend_h = 0.4 if ncol == 3 else 0.8  # inches
        height = 3.3 * len(datasets) + 0.5 + legend_h
        fig, axes = plt.subplots(
            len(datasets), len(depths), figsize=(min(3.1 * len(depths) + 0.6, 10), height), squeeze=False, sharey=True
        )
        for i, dataset in enumerate(datasets):
            for j, depth in enumerate(depths):
                ax = axes[i, j]
                g = speeds[(speeds.dataset == dataset) & (speeds.depth == depth)]
                layers = sorted(g.layer.unique())
                values = [g[g.layer == l].speed.to_numpy() for l in layers]
                ax.boxplot(
                    values,
                    positions=layers,
                    widths=0.5,
                    whis=(5, 95),
                    showfliers=False,
                    medianprops={"color": "0.15", "lw": 1.5},
                    boxprops={"color": "0.35"},
                    whiskerprops={"color": "0.35"},
                    capprops={"color": "0.35"},
                )
                for l, v in zip(layers, values):
                    ax.scatter(
                        l + rng.uniform(-0.18, 0.18, len(v)), v, s=9, alpha=0.45, lw=0, color=colors[l], zorder=1
                    )
                p = pct[(pct.dataset == dataset) & (pct.depth == depth)].dropna(subset=["nielsen"])
                ax.scatter(
                    p.layer + 0.36, p.nielsen, marker="D", s=34, color=NIELSEN_COLOR, edgecolor="k", lw=0.6, zorder=3
                )
                for r in p.itertuples():
                    ax.annotate(
                        ordinal(r.percentile),
                        (r.layer + 0.36, r.nielsen),
                        xytext=(5, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=9,
                        color="0.2",
                    )
                ax.set_yscale("log")
                ax.set_xticks(layers)
                ax.set_xlim(0.4, max(layers) + 0.9)
                ax.set_title(f"{depth} hidden layers, {dataset_name(dataset)}\n{g.network.iloc[0]}")
                if i == len(datasets) - 1:
                    ax.set_xlabel("hidden layer l")
            axes[i, 0].set_ylabel(r"$\|\partial C/\partial b^l\|$ at initialisation")
        n = int(speeds.groupby(["dataset", "depth"]).run_id.nunique().min())
        handles = [
            plt.Line2D(
                [],
                [],
                ls="",
                marker="o",
                ms=4,
                color=colors[1],
                alpha=0.6,
                label=f"ours: one network (≥ {n} per depth)",
            ),
            plt.Line2D([], [], color="0.35", label="ours: box = quartiles, whiskers = 5–95 %"),
            plt.Line2D(
                [],
                [],
                ls="",
                marker="D",
                ms=6,
                color=NIELSEN_COLOR,
                mec="k",
                label="Nielsen's network (MNIST), with its percentile in ours",
            ),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("Speed of learning of each hidden layer at initialisation: our seeds vs Nielsen's single network")
        fig.tight_layout(rect=(0, legend_h / height, 1, 1))
    return fig


def fig_training(res) -> plt.Figure:
    """‖∂C/∂b^l‖ of each hidden layer over the epochs of training (log y), one panel per depth
    (rows: training protocols): median over seeds, band from the lowest to the highest seed;
    his curves (dashed) where the protocol is his. ``figures.Skip`` without training runs."""
    from mlplab.analysis.figures import Skip, style

    try:
        curves = training_curves(res)
    except ValueError as e:
        raise Skip(str(e)) from None
    if curves.empty:
        raise Skip("no run trains (logs a step after step 0)")
    protocols = _protocols(curves)
    depths = sorted(curves.depth.unique())
    colors = _layer_colors(depths)
    with style():
        height = 3.1 * len(protocols) + 1.2  # 0.65 inch for the legend (two lines)
        fig, axes = plt.subplots(
            len(protocols), len(depths), figsize=(min(3.1 * len(depths) + 0.6, 10), height), squeeze=False, sharey=True
        )
        for i, proto in enumerate(protocols):
            dataset, lr, wd, bs = proto
            mine = curves[_of_protocol(curves, proto)]
            his = is_his_protocol(proto)
            for j, depth in enumerate(depths):
                ax = axes[i, j]
                g = mine[mine.depth == depth]
                for layer, h in g.groupby("layer"):
                    ax.plot(h.epoch, h["median"], color=colors[layer], lw=1.6, label=f"hidden layer {layer}")
                    ax.fill_between(h.epoch, h.lo, h.hi, color=colors[layer], alpha=0.2, lw=0)
                    if his and depth in NIELSEN_TRAINING:
                        ax.plot(
                            NIELSEN_EPOCHS,
                            NIELSEN_TRAINING[depth][layer - 1],
                            "--",
                            marker=".",
                            ms=4,
                            lw=1.1,
                            color=colors[layer],
                            alpha=0.9,
                        )
                ax.set_yscale("log")
                ax.set_xlim(0, max(g.epoch.max(), 1) if len(g) else 1)
                n = int(g.n.min()) if len(g) else 0
                ax.set_title(
                    f"{depth} hidden layers, {dataset_name(dataset)}\nη = {lr:g}, weight decay {wd:g}, {n} seeds"
                )
                if i == len(protocols) - 1:
                    ax.set_xlabel("epochs of training")
            axes[i, 0].set_ylabel(r"$\|\partial C/\partial b^l\|$")
        handles = [plt.Line2D([], [], color=c, lw=2, label=f"hidden layer {l}") for l, c in colors.items()]
        handles += [
            plt.Line2D([], [], color="0.3", lw=1.6, label="ours: median over seeds"),
            plt.Rectangle((0, 0), 1, 1, color="0.3", alpha=0.2, lw=0, label="ours: lowest to highest seed"),
        ]
        if any(is_his_protocol(p) for p in protocols):
            handles.append(plt.Line2D([], [], color="0.3", ls="--", marker=".", label="Nielsen's network"))
        fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("Speed of learning during training (full-batch gradient descent, one step per epoch)")
        fig.tight_layout(rect=(0, 0.65 / height, 1, 1))
    return fig


def make_figures(res, outdir: Path, prefix: str) -> dict[str, list[Path] | str]:
    """``fig_init`` and ``fig_training`` as ``<prefix>_init`` and ``<prefix>_training`` (PNG and
    SVG) in ``outdir``: name -> the files written, or a note saying why the figure was skipped."""
    from mlplab.analysis.figures import Skip, save

    out: dict[str, list[Path] | str] = {}
    for name, draw in (("init", fig_init), ("training", fig_training)):
        try:
            out[name] = save(draw(res), Path(outdir), f"{prefix}_{name}")
        except Skip as e:
            out[name] = f"skipped: {e}"
    return out


# -- the report's section -------------------------------------------------------------------------------
def how_to_make(results_dir: str) -> str:
    """The commands that make the Nielsen runs into ``results_dir``."""
    sweeps = " && ".join(
        f"python -m mlplab -m sweep={s} results_dir={results_dir}"
        for s in ("nielsen_mnist", "nielsen_mnist_training", "nielsen")
    )
    return f"Make them with `make nielsen` (or `{sweeps}`), then rebuild this report."


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


def _pct_display(pct: pd.DataFrame) -> pd.DataFrame:
    """The percentile table with the reader's column names."""
    d = pct.dropna(subset=["nielsen"])
    return pd.DataFrame(
        {
            "hidden layers": d.depth,
            "layer": d.layer,
            "network": d.network,
            "Nielsen (MNIST)": d.nielsen,
            "ours: median": d["median"],
            "ours: 5 %": d.p5,
            "ours: 95 %": d.p95,
            "networks": d.n,
            "percentile of his": d.percentile,
        }
    ).reset_index(drop=True)


def _slow_display(slow: pd.DataFrame) -> pd.DataFrame:
    d = slow.dropna(subset=["nielsen"])
    return pd.DataFrame(
        {
            "hidden layers": d.depth,
            "layer l": d.layer,
            "Nielsen": d.nielsen,
            "ours: median": d["median"],
            "ours: 5 %": d.p5,
            "ours: 95 %": d.p95,
            "percentile of his": d.percentile,
        }
    ).reset_index(drop=True)


def folder_blocks(res, outdir: Path) -> list[Block]:
    """The blocks of one Nielsen results folder: per data set the table at initialisation, the
    slowdown factors, the sentences and figures; then the training curves."""
    name = Path(res.path).name
    speeds = speeds_at_init(res)
    pct, slow = percentile_table(speeds), slowdown_table(speeds)
    made = make_figures(res, outdir, name)
    out = []
    for dataset in sorted(pct.dataset.unique()):
        p, s = pct[pct.dataset == dataset], slow[slow.dataset == dataset]
        out += [
            Block("h3", f"At initialisation, on {dataset_name(dataset)} (`{name}`)"),
            Block(
                "p",
                "His value for each hidden layer next to our distribution over networks (seeds), and the percentile "
                "of his value in ours: the share of our networks whose ‖∂C/∂b^l‖ is below his (ties count half), "
                "50 at our median."
                + ("" if dataset == "mnist" else f" His networks saw MNIST; ours here see {dataset_name(dataset)}."),
            ),
            Block("table", _pct_display(p)),
            Block("p", "How many times slower each hidden layer l learns than layer l+1, ‖∂C/∂b^(l+1)‖/‖∂C/∂b^l‖:"),
            Block("table", _slow_display(s)),
            Block("list", init_sentences(p, s)),
        ]
    if isinstance(made["init"], list):
        out.append(
            Block(
                "figure",
                made["init"][0],
                "Our ‖∂C/∂b^l‖ at initialisation, one dot per network; boxes span the quartiles, whiskers 5 % to 95 %. "
                "Diamonds: Nielsen's single network per depth (MNIST), labelled with its percentile in ours.",
            )
        )
    if isinstance(made["training"], list):
        cp = training_checkpoints(res)
        his = (
            "Dashed: Nielsen's network under the same protocol (from his fig/norms_during_training_*.json)."
            if len(cp)
            else (
                "These runs do not follow his training protocol (MNIST, η = 0.1, λ/n = 0.005, batches of 1,000), so his curves are not drawn."
            )
        )
        out += [
            Block("h3", f"During training (`{name}`)"),
            Block(
                "figure",
                made["training"][0],
                "‖∂C/∂b^l‖ of each hidden layer, measured before each epoch's update; median over seeds, band from the "
                f"lowest to the highest seed. {his}",
            ),
        ]
        if len(cp):
            out += [
                Block(
                    "table",
                    cp.rename(
                        columns={
                            "depth": "hidden layers",
                            "nielsen": "Nielsen",
                            "n": "seeds",
                            "median": "ours: median",
                            "lo": "ours: lowest",
                            "hi": "ours: highest",
                            "inside": "his within ours",
                        }
                    ),
                ),
                Block("list", training_sentences(res)),
            ]
    return out


def report_blocks(folder, outdir=None) -> list[Block]:
    """The report section "Nielsen's speeds of learning" for the results ``folder``: the MNIST and
    8×8-digits Nielsen studies found next to it (``nielsen_folders``), his values against our
    distributions, the figures (written to ``outdir``, default ``<folder>/figures``). A short
    paragraph saying how to make them when there are none."""
    from mlplab.analysis import load
    from mlplab.results import ResultsError

    folder = Path(folder)
    outdir = Path(outdir) if outdir is not None else folder / "figures"
    out = [Block("h2", "Nielsen's speeds of learning")]
    found = []
    for path in nielsen_folders(folder):
        try:
            res = load(path)
            speeds_at_init(res)
        except (ResultsError, ValueError, KeyError) as e:
            out.append(Block("p", f"`{path.name}` cannot be compared: {e}."))
            continue
        found.append(res)
    if not found:
        return out + [
            Block(
                "p",
                f"No Nielsen runs next to `{folder.name}` ({' or '.join(f'{n}/' for n in FOLDERS)} not found). {how_to_make(folder.parent.name)}",
            )
        ]
    out.append(
        Block(
            "p",
            "Nielsen (*Neural Networks and Deep Learning*, ch. 5) measured the speed of learning ‖∂C/∂b^l‖ of each hidden "
            "layer of sigmoid networks [784, 30, …, 30, 10] (cross-entropy cost, W ~ N(0, 1/n_in), b ~ N(0, 1)), the "
            "gradient averaged over 1,000 MNIST training images: one network per depth, at initialisation and during "
            "training. We repeat his measurement over many seeds and place his values in our distribution.",
        )
    )
    for res in found:
        out += folder_blocks(res, outdir)
    return out


# -- command line -------------------------------------------------------------------------------------
def _sig(df: pd.DataFrame) -> pd.DataFrame:
    """4 significant digits for reading."""
    return df.apply(lambda c: c.map(lambda x: float(f"{x:.4g}")) if c.dtype.kind == "f" else c)


def write_tables(folder) -> str:
    """The side-by-side tables as Markdown, also written to ``nielsen_table.md`` and ``.csv``
    (means), ``nielsen_percentiles.csv`` (his values in our distribution) in the results folder,
    and the figures to its ``figures/``. ResultsError for a folder without Nielsen's runs."""
    from mlplab.analysis.table import markdown_table
    from mlplab.results import ResultsError, load_results

    r = load_results(folder)
    try:
        speeds = speeds_at_init(r)
    except ValueError as e:  # a results folder without Nielsen's runs: one line, exit code 2
        raise ResultsError(f"{r.path}: {e}") from None
    table, first_last = _sig(nielsen_table(r)), _sig(nielsen_first_last(r))
    pct, slow = _sig(percentile_table(speeds)), _sig(slowdown_table(speeds))
    parts = [
        "# Nielsen's speed of learning, side by side",
        "## Where his values fall in our distribution at initialisation",
        "percentile: the share of our networks whose ‖∂C/∂b^l‖ is below his (ties count half).",
        markdown_table(pct),
        "## How many times slower each hidden layer l learns than layer l+1",
        markdown_table(slow),
        "\n".join(
            f"- {s}"
            for d in pct.dataset.unique()
            for s in init_sentences(pct[pct.dataset == d], slow[slow.dataset == d])
        ),
        "## Mean ± std over seeds",
        markdown_table(table),
        "## First over last hidden layer",
        markdown_table(first_last),
    ]
    cp = training_checkpoints(r)
    if len(cp):
        parts += [
            "## During training, against his curves",
            markdown_table(_sig(cp)),
            "\n".join(f"- {s}" for s in training_sentences(r)),
        ]
    made = make_figures(r, Path(r.path) / "figures", Path(r.path).name)
    parts += [
        "## Figures",
        "\n".join(f"- {n}: {w if isinstance(w, str) else ', '.join(p.name for p in w)}" for n, w in made.items()),
    ]
    md = "\n\n".join(parts) + "\n"
    (r.path / "nielsen_table.md").write_text(md, encoding="utf-8")
    table.to_csv(r.path / "nielsen_table.csv", index=False)
    pct.to_csv(r.path / "nielsen_percentiles.csv", index=False)
    return md


def main(argv: list[str] | None = None) -> int:
    """``python -m mlplab.analysis.nielsen [results/nielsen_mnist]``."""
    from mlplab.analysis import command

    return command(write_tables, argv, "results/nielsen_mnist")


if __name__ == "__main__":
    raise SystemExit(main())

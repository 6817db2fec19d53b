"""Nielsen's "speed of learning" per hidden layer, side by side with ours.

Michael Nielsen, *Neural Networks and Deep Learning*, ch. 5 ("The vanishing gradient problem"):
the speed of learning of hidden layer l is ‖∂C/∂b^l‖, the gradient averaged over 1,000
training images, at initialisation, for sigmoid nets with 30-unit hidden layers, cross-entropy
cost (sigmoid output: mlplab's ``bce``), W ~ N(0, 1/n_in), b ~ N(0, 1) (``init=normal``,
σ_w = σ_b = 1), on MNIST (784 inputs). Each layer learns ≈ 4–5× slower than the next.

We reproduce it on scikit-learn's 8x8 digits (64 inputs) with ``conf/sweep/nielsen.yaml``
(batch size = the 1,000 training images, so step 0's logged ``grad_b_norm`` is his quantity)
and read it back from the ``layers`` table (hidden layers are l = 1..depth; layer L = depth+1 is
the output layer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# depth (hidden layers) -> ‖∂C/∂b^l‖ for l = 1..depth, as published for [784, 30, ..., 30, 10]
NIELSEN: dict[int, tuple[float, ...]] = {
    2: (0.07, 0.31),
    3: (0.012, 0.060, 0.283),
    4: (0.003, 0.017, 0.070, 0.285),
}

# the configuration his numbers belong to (columns of the runs table)
NIELSEN_CONFIG = {"activation": "sigmoid", "loss": "bce", "init": "normal", "sigma_w": 1.0, "sigma_b": 1.0, "width": 30}


def _network(sizes) -> str:
    return "[" + ", ".join(str(int(n)) for n in sizes) + "]"


def nielsen_network(depth: int) -> str:
    """His network for ``depth`` hidden layers, e.g. '[784, 30, 30, 10]'."""
    return _network([784] + [30] * depth + [10])


def hidden_speeds(results, step: int | None = 0) -> pd.DataFrame:
    """‖∂C/∂b^l‖ of every hidden layer at ``step`` (0 = initialisation; None = every logged step),
    one row per run, step and layer, for the runs whose config is Nielsen's (``NIELSEN_CONFIG``);
    columns run_id, seed, depth, network, step, layer, speed. ValueError when no run matches."""
    runs = results.runs
    keep = np.ones(len(runs), bool)
    for k, v in NIELSEN_CONFIG.items():
        keep &= (runs[k] == v).to_numpy()
    if not keep.any():
        want = ", ".join(f"{k}={v}" for k, v in NIELSEN_CONFIG.items())
        raise ValueError(f"no run with Nielsen's configuration ({want}) in these results")
    # the config is taken from ``runs`` (not the joined columns of ``layers``)
    cfg = runs.loc[keep, ["run_id", "depth", "seed"]].astype({"run_id": str})
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
            "step": lay.step.astype(int).to_numpy(),
            "layer": lay.layer.astype(int).to_numpy(),
            "speed": lay.grad_b_norm.to_numpy(),
        }
    )
    out["network"] = [
        _network([first[r]] + [30] * d + [last[r]]) for r, d in zip(out.run_id, out.depth)
    ]
    return out.sort_values(["depth", "seed", "run_id", "step", "layer"], ignore_index=True)


def _with_ratio_next(speeds: pd.DataFrame) -> pd.DataFrame:
    """Adds ratio_next = ‖∂C/∂b^l‖/‖∂C/∂b^(l+1)‖ per run and step (NaN for the last hidden layer)."""
    s = speeds.copy()
    nxt = s.groupby(["run_id", "step"]).speed.shift(-1)
    s["ratio_next"] = s.speed / nxt
    return s


def nielsen_table(results, step: int = 0, q0: float | None = None) -> pd.DataFrame:
    """Nielsen's speeds of learning next to ours (mean ± std over seeds), one row per network and
    hidden layer.

    Columns: depth, layer, nielsen_network, network (ours), nielsen, ours_mean, ours_std,
    n_seeds, ours_over_nielsen, nielsen_ratio_next and ours_ratio_next (± ours_ratio_next_std):
    the layer's speed over the next layer's, per seed then averaged (NaN for the last hidden
    layer, whose next layer is the output). ``nielsen`` is NaN for depths he did not publish.
    Given the input's q^0 = mean ‖x‖²/n_0 (``mlplab.theory.input_q0``), a column
    ``theory_ratio_next`` adds the mean-field prediction √χ^l (``mlplab.theory.profile``).
    """
    s = _with_ratio_next(hidden_speeds(results, step))
    g = s.groupby(["depth", "layer"])
    t = g.agg(
        network=("network", "first"),
        ours_mean=("speed", "mean"),
        ours_std=("speed", "std"),
        n_seeds=("speed", "size"),
        ours_ratio_next=("ratio_next", "mean"),
        ours_ratio_next_std=("ratio_next", "std"),
    ).reset_index()
    pub = {(d, l + 1): v for d, vals in NIELSEN.items() for l, v in enumerate(vals)}
    t["nielsen"] = [pub.get((d, l), np.nan) for d, l in zip(t.depth, t.layer)]
    t["nielsen_ratio_next"] = [
        pub[(d, l)] / pub[(d, l + 1)] if (d, l + 1) in pub and (d, l) in pub else np.nan
        for d, l in zip(t.depth, t.layer)
    ]
    t["nielsen_network"] = [nielsen_network(d) for d in t.depth]
    t["ours_over_nielsen"] = t.ours_mean / t.nielsen
    extra = []
    if q0 is not None:
        from mlplab.theory import profile

        sw, sb = NIELSEN_CONFIG["sigma_w"], NIELSEN_CONFIG["sigma_b"]
        pred = {d: profile("sigmoid", sw, sb, d, q0).ratio.to_numpy() for d in t.depth.unique()}
        t["theory_ratio_next"] = [pred[d][l - 1] if l < d else np.nan for d, l in zip(t.depth, t.layer)]
        extra = ["theory_ratio_next"]
    cols = ["depth", "layer", "nielsen_network", "network", "nielsen", "ours_mean", "ours_std", "n_seeds",
            "ours_over_nielsen", "nielsen_ratio_next", "ours_ratio_next", "ours_ratio_next_std"] + extra
    return t[cols]


def nielsen_first_last(results, step: int = 0) -> pd.DataFrame:
    """The first over the last hidden layer's speed, ‖∂C/∂b^1‖/‖∂C/∂b^depth‖, per network:
    Nielsen's and ours (mean ± std over seeds of the per-seed ratio)."""
    s = hidden_speeds(results, step)
    per_run = s.groupby("run_id").agg(
        depth=("depth", "first"), network=("network", "first"), first=("speed", "first"), last=("speed", "last")
    )
    per_run["ratio"] = per_run["first"] / per_run["last"]
    t = per_run.groupby("depth").agg(
        network=("network", "first"), ours_mean=("ratio", "mean"), ours_std=("ratio", "std"), n_seeds=("ratio", "size")
    ).reset_index()
    t["nielsen_network"] = [nielsen_network(d) for d in t.depth]
    t["nielsen"] = [NIELSEN[d][0] / NIELSEN[d][-1] if d in NIELSEN else np.nan for d in t.depth]
    return t[["depth", "nielsen_network", "network", "nielsen", "ours_mean", "ours_std", "n_seeds"]]


def nielsen_training(results) -> pd.DataFrame:
    """The speed of learning during training: per depth, logged step and hidden layer, the mean
    and std over seeds of ‖∂C/∂b^l‖, and of the per-seed ratio to the last hidden layer
    (``rel_to_last``; 1 for the last hidden layer)."""
    s = hidden_speeds(results, step=None)
    last = s.groupby(["run_id", "step"]).speed.transform("last")
    s["rel_to_last"] = s.speed / last
    t = s.groupby(["depth", "step", "layer"]).agg(
        speed_mean=("speed", "mean"), speed_std=("speed", "std"), rel_to_last_mean=("rel_to_last", "mean"),
        rel_to_last_std=("rel_to_last", "std"), n_seeds=("speed", "size"),
    )
    return t.reset_index()


def write_tables(folder) -> str:
    """The side-by-side tables as Markdown, also written to ``nielsen_table.md`` and ``.csv`` in
    the results folder."""
    from mlplab.analysis.table import markdown_table
    from mlplab.results import load_results

    def sig(df: pd.DataFrame) -> pd.DataFrame:  # 4 significant digits for reading
        return df.apply(lambda c: c.map(lambda x: float(f"{x:.4g}")) if c.dtype.kind == "f" else c)

    r = load_results(folder)
    table, first_last = sig(nielsen_table(r)), sig(nielsen_first_last(r))
    md = (
        "# Nielsen's speed of learning, side by side\n\n" + markdown_table(table)
        + "\n\n## First over last hidden layer\n\n" + markdown_table(first_last) + "\n"
    )
    (r.path / "nielsen_table.md").write_text(md)
    table.to_csv(r.path / "nielsen_table.csv", index=False)
    return md


def main(argv: list[str] | None = None) -> int:
    """``python -m mlplab.analysis.nielsen [results/nielsen]``."""
    from mlplab.analysis import command

    return command(write_tables, argv, "results/nielsen")


if __name__ == "__main__":
    raise SystemExit(main())

"""The interactive charts of the remedies, Nielsen and edge-of-chaos studies: valid Vega-Lite,
one filter per sweep axis in their rows, no address to fetch, and rows that are the parquet
tables' numbers (recomputed here from ``layers``, ``steps`` and ``runs``), on the small real
sweeps of each study's own tests."""

import json
import math

import altair as alt
import numpy as np
import pandas as pd
import pytest
from test_chaos import SB, sweep  # noqa: F401  (fixture)
from test_nielsen import mnist, mnist_root  # noqa: F401  (fixtures)
from test_remedies import folder  # noqa: F401  (fixture)

from mlplab import theory
from mlplab.analysis import load
from mlplab.analysis.charts import AXES, SIGNIFICANT, embedded_rows, param, spec
from mlplab.analysis.studies import chaos, nielsen, remedies
from mlplab.analysis.studies.chaos import charts as chaos_charts
from mlplab.analysis.studies.nielsen.published import NIELSEN_EPOCHS, NIELSEN_TRAINING, his_speed
from mlplab.analysis.verdicts import MIN_SEEDS

PAGE = 10.0 ** (1 - SIGNIFICANT)  # the page keeps SIGNIFICANT digits of each number


def strings(obj):
    """Every string in a JSON value."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v)


def checked(chart) -> tuple[dict, pd.DataFrame]:
    """The chart's spec, checked (valid Vega-Lite, a filter per axis of its rows, nothing to
    fetch), and the rows it carries (as many as its ``data``)."""
    vl = spec(chart)
    alt.TopLevelSpec.validate(vl)
    names = {p["name"] for p in vl.get("params", [])}
    axes = [a for a in AXES if a in chart.data.columns]
    assert axes and {param(a) for a in axes} <= names
    assert all(param(a) in vl["transform"][0]["filter"] for a in axes)
    assert not [s for s in strings(vl) if s.startswith("http")]
    rows = embedded_rows(vl)
    assert len(rows) == len(chart.data)
    return vl, rows


def step0_ratio(layers: pd.DataFrame, column: str) -> pd.Series:
    """Per run: layer 1's ``column`` over the output layer's, at step 0."""
    lay = layers[layers.step == 0]
    first = lay[lay.layer == 1].set_index("run_id")[column]
    last = lay[lay.layer == lay.depth + 1].set_index("run_id")[column]
    return first / last.reindex(first.index)


# -- remedies ---------------------------------------------------------------------------------------
def test_remedy_charts_carry_each_runs_ratio_and_the_median_steps(folder):  # noqa: F811
    res = load(folder)
    made = remedies.STUDY.charts(res)
    assert set(made) == {"remedy_ratios", "remedy_steps"}

    vl, rows = checked(made["remedy_ratios"])
    assert {"f_remedy", "f_norm", "f_residual"} <= {p["name"] for p in vl["params"]}
    runs = res.runs.set_index("run_id")
    init = step0_ratio(res.layers, "grad_w_norm")
    lay = res.layers[res.layers.step == res.layers.groupby("run_id").step.transform("max")]
    end = (
        lay[lay.layer == 1].set_index("run_id").grad_w_norm
        / lay[lay.layer == lay.depth + 1].set_index("run_id").grad_w_norm
    )
    end = end[(runs.status.reindex(end.index) == "ok") & (lay[lay.layer == 1].set_index("run_id").step > 0)]
    expected = pd.concat([init.rename("initialisation"), end.rename("trained")], axis=1).stack()
    expected = expected[np.isfinite(expected) & (expected > 0)]
    assert len(rows) == len(expected) == 2 * len(res.runs)
    got = rows.set_index(["run_id", "phase"]).ratio
    assert np.allclose(got.loc[expected.index], expected, rtol=PAGE)
    arm = {
        rid: "residual" if r.residual else "batch norm" if r.norm == "batch" else "plain" for rid, r in runs.iterrows()
    }
    assert (rows.remedy == rows.run_id.map(arm)).all()
    assert (rows.seed.to_numpy() == runs.seed.reindex(rows.run_id).to_numpy()).all()

    _, cells = checked(made["remedy_steps"])
    assert sorted(cells.remedy) == ["batch norm", "plain", "residual"] and (cells.n == MIN_SEEDS).all()
    final = runs.assign(arm=runs.index.map(arm)).groupby("arm").final_test_accuracy.median()
    target = round(0.9 * final.max(), 4)
    acc = res.steps.dropna(subset=["test_accuracy"])
    first = acc[acc.test_accuracy >= target].groupby("run_id").step.min()
    for c in cells.itertuples():
        ids = [r for r in runs.index if arm[r] == c.remedy]
        steps = [first.get(r, math.inf) for r in ids]
        assert c.target == pytest.approx(target, rel=PAGE) and c.n_reached == sum(math.isfinite(s) for s in steps)
        median = float(np.median(steps))
        assert (c.median is None or np.isnan(c.median)) if math.isinf(median) else c.median == median


# -- edge of chaos ------------------------------------------------------------------------------------
def test_chaos_charts_carry_each_runs_rate_and_trainability(sweep):  # noqa: F811
    res = load(sweep)
    made = chaos.STUDY.charts(res)
    assert set(made) == {"chaos_heatmap", "chaos_trainability"}

    _, rows = checked(made["chaos_heatmap"])
    runs = rows[rows.run_id.notna()].set_index("run_id")
    init = res.runs[res.runs.batch_size == 1]
    assert sorted(runs.index) == sorted(init.run_id) and len(rows) - len(runs) == 13  # the critical line
    first, last = chaos.fit_layers(12)
    for rid, r in runs.iterrows():
        lay = res.layers[(res.layers.run_id == rid) & (res.layers.step == 0)]
        lay = lay[(lay.layer >= first) & (lay.layer <= last)].sort_values("layer")
        assert r.rate == pytest.approx(-np.polyfit(lay.layer, 2 * np.log(lay.grad_b_norm), 1)[0], rel=PAGE)
        sw, sb = init.set_index("run_id").loc[rid, ["sigma_w", "sigma_b"]]
        assert r.log_chi1 == pytest.approx(math.log(theory.chi1("tanh", sw, sb)), rel=PAGE)
        assert r.sigma_w2 == pytest.approx(sw**2, abs=1e-6)
        # each number rounded on its own: the difference is as exact as the larger of the two
        assert r["diff"] == pytest.approx(r.rate - r.log_chi1, abs=PAGE * max(abs(r.rate), abs(r.log_chi1)))

    _, rows = checked(made["chaos_trainability"])
    runs = rows[rows.run_id.notna()].set_index("run_id")
    trained = res.runs[res.runs.batch_size == 40].set_index("run_id")
    assert sorted(runs.index) == sorted(trained.index)
    trainable = (trained.status == "ok") & (trained.final_accuracy >= chaos.ACC_TARGET)
    assert (runs.trainable.to_numpy() == trainable.reindex(runs.index).astype(int).to_numpy()).all()
    assert (runs.seed.to_numpy() == trained.seed.reindex(runs.index).to_numpy()).all()
    assert ((runs.x_lo < runs.sigma_w2) & (runs.sigma_w2 < runs.x_hi)).all()
    assert ((runs.y_lo < runs.depth) & (runs.depth < runs.y_hi)).all()
    curves = rows[rows.run_id.isna()]
    assert set(curves.curve) == {"ξ_c", f"{chaos.TRAIN_MULTIPLE:g} ξ_c"}
    six = curves[curves.curve != "ξ_c"].dropna(subset=["xi"]).iloc[0]
    assert six.xi == pytest.approx(chaos.TRAIN_MULTIPLE * theory.xi_c("tanh", math.sqrt(six.sigma_w2), SB), rel=PAGE)


def test_missing_numbers_are_null_in_the_page(sweep):  # noqa: F811
    """Theory rows have no run id, ξ_c is infinite on the critical line: both are written as null."""
    made = chaos.STUDY.charts(load(sweep))
    for c in made.values():
        packed = list(spec(c)["datasets"].values())[0]
        json.dumps(packed, allow_nan=False)  # no NaN or infinity reaches the page: null instead
    inf = pd.DataFrame({"run_id": ["a", np.nan], "x": [1.0, np.inf]})
    assert chaos_charts.finite(inf).x.isna().tolist() == [False, True]


# -- Nielsen --------------------------------------------------------------------------------------------
def test_nielsen_charts_carry_each_network_and_his_values(mnist_root, mnist):  # noqa: F811
    made = nielsen.STUDY.charts(mnist)
    assert set(made) == {"nielsen_mnist_init", "nielsen_mnist_training"}

    _, rows = checked(made["nielsen_mnist_init"])
    ours, summary = rows[rows.kind == "ours"], rows[rows.kind == "summary"]
    # each network once (the trained runs start from the networks of seeds 0, 1): 6 seeds per depth
    per_depth = ours.drop_duplicates("run_id").groupby("depth").seed.apply(sorted)
    assert per_depth.to_dict() == {2: list(range(6)), 3: list(range(6))}
    assert len(ours) == 6 * (2 + 3) and len(summary) == 2 + 3
    lay = mnist.layers[mnist.layers.step == 0].set_index(["run_id", "layer"]).grad_b_norm
    assert np.allclose(ours.speed, lay.loc[list(zip(ours.run_id, ours.layer))], rtol=PAGE)
    for s in summary.itertuples():
        mine = ours[(ours.depth == s.depth) & (ours.layer == s.layer)].speed.to_numpy()
        his = his_speed(s.depth, s.layer)
        assert s.nielsen == pytest.approx(his, rel=PAGE) and s.n == len(mine) == 6
        assert s.median == pytest.approx(np.median(mine), rel=PAGE) and s.q1 == pytest.approx(
            np.quantile(mine, 0.25), rel=PAGE
        )
        assert s.percentile == pytest.approx(
            100 * (np.sum(mine < his) + 0.5 * np.sum(mine == his)) / len(mine), rel=PAGE
        )

    vl, rows = checked(made["nielsen_mnist_training"])
    assert "f_lr" in {p["name"] for p in vl["params"]}
    runs = mnist.runs[mnist.runs.n_steps > 1]
    lay = mnist.layers[mnist.layers.run_id.isin(runs.run_id) & (mnist.layers.layer <= mnist.layers.depth)]
    ours, his = rows[rows.run_id.notna()], rows[rows.run_id.isna()]
    assert len(ours) == len(lay) and set(ours.run_id) == set(runs.run_id)
    assert np.allclose(
        ours.speed,
        lay.set_index(["run_id", "step", "layer"]).grad_b_norm.loc[list(zip(ours.run_id, ours.step, ours.layer))],
        rtol=PAGE,
    )
    assert len(his) == sum(d * len(NIELSEN_EPOCHS) for d in (2, 3) if d in NIELSEN_TRAINING)
    h = his[(his.depth == 2) & (his.layer == 1)].sort_values("epoch")
    assert h.speed.tolist() == pytest.approx(list(NIELSEN_TRAINING[2][0]), rel=PAGE)


def test_a_folder_without_a_studys_runs_has_no_charts(folder, tmp_path):  # noqa: F811
    """No Nielsen folder beside a remedies folder: no chart, no exception; every chart the
    remedies and chaos studies make has a static figure of the same name."""
    res = load(folder)
    assert nielsen.STUDY.charts(res) == {}
    for study in (remedies.STUDY, chaos.STUDY):
        figures = {k for k, v in study.figures(res, tmp_path).items() if isinstance(v, list)}
        assert set(study.charts(res)) <= figures

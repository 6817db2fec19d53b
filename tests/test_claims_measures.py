"""The small pieces of the blog claims (mlplab.analysis.select, measures, studies.blog.claims)
that select runs and compute one number each, on hand-made tables whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from mlplab import theory
from mlplab.analysis import measures, select
from mlplab.analysis.studies.blog import claims
from mlplab.spec import BEFORE


def test_present_keeps_the_asked_order_of_the_columns_that_exist():
    df = pd.DataFrame({"b": [1], "a": [2]})
    assert select.columns_in(df, ["a", "x", "b"]) == ["a", "b"]


def test_varying_counts_a_missing_value_as_a_value():
    df = pd.DataFrame({"one": [1, 1, 1], "two": [1, 2, 2], "gap": [1.0, np.nan, 1.0]})
    assert select.varying(df, ["absent", "one", "two", "gap"]) == ["two", "gap"]
    assert select.varying(df.iloc[:1], ["two"]) == []


def runs_table():
    base = {s: 0 for s in select.SETTING}
    rows = []
    for i, (lr, clip, n) in enumerate([(0.5, "none", 3), (0.1, "none", 2), (0.1, "norm", 4)]):
        rows += [{**base, "lr": lr, "clip": clip, "dataset": "blobs", "seed": k, "tag": i} for k in range(n)]
    return pd.DataFrame(rows)


def test_main_runs_are_the_unclipped_runs_of_the_most_common_setting():
    got = select.main_runs(runs_table())
    assert list(got["tag"]) == [0, 0, 0] and (got["clip"] == "none").all()
    assert select.main_runs(runs_table().query("clip == 'norm'")).empty


def test_setting_values_names_the_values_every_run_shares():
    runs = pd.DataFrame(
        {"dataset": ["blobs", "blobs"], "lr": [0.5, 0.5], "init": ["normal", "he_normal"], "sigma_w": [np.nan, 2.0]}
    )
    assert select.setting_values(runs) == "dataset=blobs, lr=0.5, sigma_w=2"
    assert select.setting_values(runs, cols=("init",)) == ""


@pytest.mark.parametrize(
    "activation,init,sigma_w",
    [("tanh", "normal", 1.5), ("sigmoid", "normal", 3.0), ("tanh", "xavier_normal", 1.0), ("relu", "he_normal", 1.0)],
)
def test_predicted_ratio_is_the_product_of_the_layer_factors(activation, init, sigma_w):
    width, depth, sigma_b = 64, 6, 0.1
    sw, sb = theory.effective_sigmas(init, width, width, sigma_w, sigma_b)
    want = float(theory.profile(activation, sw, sb, depth)["ratio"].prod())
    assert measures.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth) == pytest.approx(want, rel=1e-12)
    assert measures.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth, False, "none") == pytest.approx(
        want, rel=1e-12
    )
    if init == "normal":
        assert want == pytest.approx(float(theory.profile(activation, sigma_w, sigma_b, depth)["ratio"].prod()))
    assert math.isnan(measures.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth, True, "none"))
    assert math.isnan(measures.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth, False, "batch"))


def test_predicted_ratio_is_nan_where_the_theory_has_no_answer():
    assert math.isnan(measures.predicted_ratio("swish", "normal", 1.0, 0.0, 8, 3))  # not a registered activation


def test_clip_effect_scores_each_pair():
    """a: norm-clipped, b: unclipped. +1 when only b diverged, −1 when only a did, 0 when both,
    else log10(final loss of b / final loss of a)."""
    g = pd.DataFrame(
        {
            "diverged_a": [False, True, True, False, False],
            "diverged_b": [True, False, True, False, False],
            "final_loss_a": [np.nan, 1.0, np.nan, 0.1, 2.0],
            "final_loss_b": [np.nan, 0.5, np.nan, 1.0, 0.2],
        }
    )
    np.testing.assert_array_equal(claims.clip_effect(g), [1.0, -1.0, 0.0, 1.0, -1.0])
    g2 = g.assign(final_loss_a=[3.0, 3.0, 3.0, 0.5, 4.0], final_loss_b=[6.0, 6.0, 6.0, 2.0, 1.0])
    np.testing.assert_allclose(claims.clip_effect(g2), [1.0, -1.0, 0.0, math.log10(4.0), math.log10(0.25)], rtol=1e-15)


def test_log_ratio_takes_zeros_and_object_columns_quietly():
    """Steps and losses may be 0 (a target met at step 0) and arrive as object columns after a
    merge: log10(a/b) is then ±inf or NaN, with no warning (the suite turns warnings into errors)."""
    a, b = np.array([10, 0, 1, 0], dtype=object), np.array([1, 1, 0, 0], dtype=object)
    got = measures.log_ratio(a, b)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [1.0, -np.inf, np.inf, np.nan])


def test_steps_effect_is_nan_only_when_neither_run_reaches_its_target():
    """A run that never reaches the target is given ``beyond`` steps exactly."""
    g = pd.DataFrame(
        {
            "steps_x_a": [100.0, 100.0, 40.0, 10.0],
            "beyond_a": [100.0, 100.0, 100.0, 100.0],
            "steps_x_b": [50.0, 50.0, 50.0, 100.0],
            "beyond_b": [50.0, 60.0, 60.0, 100.0],
        }
    )
    got = measures.steps_effect(g.astype(object), "steps_x")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [np.nan, math.log10(2.0), math.log10(0.8), -1.0], rtol=1e-15)


def test_clip_effect_on_object_columns_with_zero_losses():
    g = pd.DataFrame(
        {
            "diverged_a": [False, True, True, False],
            "diverged_b": [True, False, True, False],
            "final_loss_a": [0.0, 1.0, 0.0, 0.0],
            "final_loss_b": [0.0, 0.0, 0.0, 2.0],
        }
    ).astype(object)
    np.testing.assert_array_equal(claims.clip_effect(g), [1.0, -1.0, 0.0, np.inf])


# --- which runs each claim compares ------------------------------------------------------------------


def per_run(rows):
    """A per-run table: every config column at a plain default, then ``rows``' values."""
    base = {
        "depth": 2,
        "width": 8,
        "activation": "sigmoid",
        "alpha": 0.01,
        "loss": "mse",
        "init": "normal",
        "sigma_w": 1.0,
        "sigma_b": 0.0,
        "residual": False,
        "norm": "none",
        "lr": 0.5,
        "batch_size": 10,
        "epochs": 1,
        "weight_decay": 0.0,
        "clip": "none",
        "clip_threshold": 1.0,
        "log_every": 1,
        "eval_every": 1,
        "dataset": "blobs",
        "n_samples": 100,
        "n_features": 2,
        "n_classes": 2,
        "noise": 1.0,
        "test_fraction": 0.2,
        "standardise": True,
        "data_path": None,
        "data_digest": None,
        "seed": 0,
        "dtype": "float64",
        **BEFORE,
    }
    assert set(base) == set(select.CONFIG)
    return pd.DataFrame([{**base, **r} for r in rows])


def test_phase_rows_repeat_each_run_once_per_phase():
    pr = pd.DataFrame({"run_id": ["a", "b"], "ratio_init": [0.1, 0.2], "ratio_end": [0.3, 0.4]})
    out = claims._phase_rows(pr)
    assert list(out["phase"]) == [measures.PHASES[0]] * 2 + [measures.PHASES[1]] * 2
    assert list(out["ratio"]) == [0.1, 0.2, 0.3, 0.4] and list(out["run_id"]) == ["a", "b", "a", "b"]


def test_phase_pairs_keep_only_positive_ratios_on_both_sides():
    p = pd.DataFrame(
        {
            "ratio_init_a": [0.5, 0.0, 0.5, -1.0],
            "ratio_init_b": [0.2, 0.2, 0.0, 0.2],
            "ratio_end_a": [0.5, 0.5, 0.5, 0.5],
            "ratio_end_b": [0.2, 0.2, 0.2, 0.2],
        }
    )
    out = claims._phase_rows_pairs(p)
    assert list(out["phase"]) == [measures.PHASES[0]] + [measures.PHASES[1]] * 4
    assert list(out["ratio_a"]) == [0.5, 0.5, 0.5, 0.5, 0.5]
    empty = claims._phase_rows_pairs(p.iloc[:0])
    assert empty.empty and {"phase", "ratio_a", "ratio_b"} <= set(empty.columns)


def test_exploding_settings_are_plain_networks_with_a_factor_above_one(monkeypatch):
    factor = {"tanh": 1.5, "relu": 1.0, "sigmoid": 0.5}
    monkeypatch.setattr(measures, "predicted_factor", lambda activation, *rest: factor[activation])
    pr = per_run(
        [
            {"activation": "tanh", "depth": 1},
            {"activation": "tanh", "depth": 0},
            {"activation": "relu"},
            {"activation": "sigmoid"},
            {"activation": "tanh", "residual": True},
            {"activation": "tanh", "norm": "batch"},
        ]
    )
    got = claims.exploding_settings(pr)
    assert list(got.index) == [0] and list(got["factor"]) == [1.5]
    assert claims.exploding_settings(pr.iloc[:0]).empty


def test_claim_3_takes_unclipped_runs_with_a_measured_ratio(monkeypatch):
    monkeypatch.setattr(measures, "predicted_factor", lambda *a: 2.0)
    rows = [{"seed": s, "ratio_init": 10.0 ** (1 + s)} for s in range(5)]
    rows += [{"seed": 9, "clip": "norm", "ratio_init": 1e-9}, {"seed": 8, "ratio_init": np.nan}]
    cases = claims.explode_cases(per_run(rows))
    assert len(cases) == 1 and cases["n"].iloc[0] == 5 and cases["effect"].iloc[0] == 3.0


def test_claim_1_compares_plain_unclipped_sigmoid_twins():
    rows = []
    for seed in range(5):
        for loss, steps in (("mse", 100.0), ("bce", 10.0)):
            rows.append({"seed": seed, "loss": loss, "steps_test_accuracy": steps, "beyond": 1000.0})
            for other in ({"activation": "relu"}, {"clip": "norm"}, {"residual": True}):
                rows.append(
                    {
                        "seed": seed,
                        "loss": loss,
                        **other,
                        "steps_test_accuracy": 10.0 if loss == "mse" else 100.0,
                        "beyond": 1000.0,
                    }
                )
    cases = claims.convergence_cases(per_run(rows), "test_accuracy")
    assert len(cases) == 1 and cases["n"].iloc[0] == 5 and cases["effect"].iloc[0] == 1.0
    assert cases["loss"].iloc[0] == "bce"


def test_claim_4a_pairs_relu_with_its_sigmoid_twin_at_every_depth_from_one():
    rows = []
    for seed in range(5):
        for depth in (1, 3):
            rows.append({"seed": seed, "depth": depth, "activation": "relu", "ratio_init": 0.5, "ratio_end": 0.5})
            rows.append({"seed": seed, "depth": depth, "activation": "sigmoid", "ratio_init": 1e-3, "ratio_end": 1e-3})
        rows.append(
            {"seed": seed, "depth": 3, "residual": True, "activation": "relu", "ratio_init": 1.0, "ratio_end": 1.0}
        )
        rows.append(
            {"seed": seed, "depth": 3, "residual": True, "activation": "sigmoid", "ratio_init": 1.0, "ratio_end": 1.0}
        )
    cases = claims.relu_cases(per_run(rows))
    assert sorted(set(cases["depth"])) == [1, 3] and (cases["n"] == 5).all()
    np.testing.assert_allclose(cases["effect"], 3 - math.log10(2), rtol=1e-12)


def test_a_config_field_that_varies_within_a_condition_makes_cases_too():
    """lr varies among the pairs of one dataset: a case per lr. n_features differs between the data
    sets but is fixed within each: no case of its own. data_path None is a value like any other."""
    rows = []
    for seed in range(5):
        for lr in (0.1, 0.5):
            rows.append({"seed": seed, "dataset": "blobs", "lr": lr, "n_features": 2, "e": 1.0 + lr})
        rows.append({"seed": seed, "dataset": "file", "data_path": "d.npz", "n_features": 7, "e": -1.0})
        rows.append({"seed": seed, "dataset": "file", "data_path": None, "n_features": 7, "e": 2.0})
    cases = claims._decide(per_run(rows), ["dataset"], lambda g: g["e"].to_numpy())
    assert cases.attrs["conds"] == ["dataset", "lr", "data_path"]
    paths = [p if isinstance(p, str) else None for p in cases["data_path"]]
    assert list(zip(cases["dataset"], cases["lr"], paths, cases["effect"])) == [
        ("blobs", 0.1, None, 1.1),
        ("blobs", 0.5, None, 1.5),
        ("file", 0.5, "d.npz", -1.0),
        ("file", 0.5, None, 2.0),
    ]


# --- claim 2's measure: first-to-last gradient ratios -------------------------------------------------


def layers_table():
    """Three runs: 'p' plain depth 2 (ok, steps 0 and 10), 'bn' batch norm depth 1 (ok, 0 and 5),
    'bad' plain depth 1 diverged (0 and 3), 'lin' depth 0 (no hidden layer). ‖∂C/∂b^l‖ = l·(step+1),
    ‖∂C/∂W^l‖ = 10·l·(step+1) except the last layer's, 2·(step+1)."""
    rows = []
    for rid, depth, norm, status, steps in (
        ("p", 2, "none", "ok", (0, 10)),
        ("bn", 1, "batch", "ok", (0, 5)),
        ("bad", 1, "none", "diverged", (0, 3)),
        ("lin", 0, "none", "ok", (0, 2)),
    ):
        for step in steps:
            for layer in range(1, depth + 2):
                last = layer == depth + 1
                rows.append(
                    {
                        "run_id": rid,
                        "depth": depth,
                        "norm": norm,
                        "status": status,
                        "step": step,
                        "layer": layer,
                        "grad_b_norm": layer * (step + 1.0),
                        "grad_w_norm": (2.0 if last else 10.0 * layer) * (step + 1),
                    }
                )
    return pd.DataFrame(rows)


def test_gradient_ratios_per_phase_with_the_measure_each_run_needs():
    got = measures.gradient_ratios(layers_table()).set_index(["run_id", "phase"])
    init, end = measures.PHASES
    assert sorted(got.index) == sorted([("p", init), ("bn", init), ("bad", init), ("p", end), ("bn", end)])
    assert got.loc[("p", init)].tolist() == [0, 1 / 3, "grad_b_norm"]  # b^1 / b^3
    assert got.loc[("p", end)].tolist() == [10, 1 / 3, "grad_b_norm"]
    assert got.loc[("bn", init)].tolist() == [0, 5.0, "grad_w_norm"]  # batch norm: W^1 / W^2 = 10 / 2
    assert got.loc[("bn", end)].tolist() == [5, 5.0, "grad_w_norm"]
    assert got.loc[("bad", init)].tolist() == [0, 0.5, "grad_b_norm"]  # a diverged run has no "after training"


@pytest.mark.parametrize(
    "column,ratios", [("grad_w_norm", {"p": 5.0, "bn": 5.0}), ("grad_b_norm", {"p": 1 / 3, "bn": 0.5})]
)
def test_gradient_ratios_can_impose_one_measure(column, ratios):
    got = measures.gradient_ratios(layers_table(), column).set_index(["run_id", "phase"])
    for rid, r in ratios.items():
        assert (
            got.loc[(rid, measures.PHASES[0]), "ratio"] == pytest.approx(r)
            and got.loc[(rid, measures.PHASES[0]), "measure"] == column
        )


def test_gradient_ratios_without_a_hidden_layer_are_an_empty_table():
    got = measures.gradient_ratios(layers_table().query("run_id == 'lin'"))
    assert got.empty and list(got.columns) == ["run_id", "phase", "step", "ratio", "measure"]


def test_plain_means_no_skips_and_no_normalisation():
    runs = pd.DataFrame({"residual": [False, True, False, True], "norm": ["none", "none", "layer", "batch"]})
    assert select.plain(runs).tolist() == [True, False, False, False]


def test_case_summary_counts_and_ranges():
    empty = claims.case_summary(pd.DataFrame())
    assert {k: v for k, v in empty.items() if not k.startswith("effect")} == {
        "n_cases": 0,
        "n_holds": 0,
        "n_fails": 0,
        "n_undecided": 0,
        "min_seeds": 0,
    }
    assert (
        math.isnan(empty["effect_min"])
        and math.isnan(empty["effect_max"])
        and claims.case_summary(None) == empty | {"effect_min": empty["effect_min"], "effect_max": empty["effect_max"]}
    )
    cases = pd.DataFrame({"holds": [True, True, False, None], "n": [5, 7, 6, 9], "effect": [0.5, 2.0, -1.0, 0.0]})
    assert claims.case_summary(cases) == {
        "n_cases": 4,
        "n_holds": 2,
        "n_fails": 1,
        "n_undecided": 1,
        "min_seeds": 5,
        "effect_min": -1.0,
        "effect_max": 2.0,
    }


def test_a_run_reaches_its_target_at_the_first_step_at_or_above_it():
    steps = pd.DataFrame(
        {"run_id": ["a"] * 4 + ["b"] * 2, "step": [0, 10, 20, 30, 0, 10], "acc": [0.1, 0.5, 0.8, 0.9, 0.1, 0.2]}
    )
    targets = pd.Series({"a": 0.8, "b": 0.8})
    got = select.steps_to(steps, "acc", targets, pd.Series({"a": 40, "b": 20}))
    assert got.to_dict() == {"a": 20.0, "b": 20.0} and got.dtype == np.float64


# --- the ratios' rows, columns and measure -------------------------------------------------------------


def test_gradient_ratios_have_the_same_columns_with_rows_as_without():
    full = measures.gradient_ratios(layers_table())
    empty = measures.gradient_ratios(layers_table().query("run_id == 'lin'"))
    assert list(full.columns) == list(empty.columns) == ["run_id", "phase", "step", "ratio", "measure"]


def test_after_training_needs_a_logged_step_after_step_0():
    """A run logged at step 0 only has not trained: no 'after training' ratio; a run whose last
    logged step is 1 has one, at step 1."""
    p = layers_table().query("run_id == 'p'")
    short = pd.concat([p[p["step"] == 0].assign(run_id="p0"), p.assign(run_id="p1", step=p["step"].clip(upper=1))])
    got = measures.gradient_ratios(short)
    init, end = measures.PHASES
    assert sorted(zip(got["run_id"], got["phase"], got["step"])) == [("p0", init, 0), ("p1", end, 1), ("p1", init, 0)]
    np.testing.assert_allclose(got["ratio"], 1 / 3, rtol=1e-15)


@pytest.mark.parametrize("order", ["reversed runs", "shuffled"])
def test_gradient_ratios_do_not_depend_on_the_order_of_the_rows(order):
    """Each run's ratio is its own whatever the order of the layers table (results files are
    read in any order): here the last layers come in another run order than the first layers."""
    t = layers_table()
    if order == "reversed runs":
        t = t.sort_values(["step", "layer", "run_id"], ascending=[True, True, False])
    else:
        t = t.iloc[np.random.default_rng(3).permutation(len(t))]
    got = measures.gradient_ratios(t).set_index(["run_id", "phase"])["ratio"]
    init, end = measures.PHASES
    want = {("p", init): 1 / 3, ("p", end): 1 / 3, ("bn", init): 5.0, ("bn", end): 5.0, ("bad", init): 0.5}
    assert got.sort_index().to_dict() == pytest.approx(dict(sorted(want.items())), rel=1e-15)


def test_gradient_ratios_without_a_norm_column_read_the_bias_gradients():
    """No norm column: no run is batch-normalised, every ratio is ‖∂C/∂b^1‖/‖∂C/∂b^L‖."""
    got = measures.gradient_ratios(layers_table().drop(columns="norm")).set_index(["run_id", "phase"])
    assert (got["measure"] == "grad_b_norm").all()
    init, end = measures.PHASES
    assert got.loc[("bn", init), "ratio"] == 0.5 and got.loc[("bn", end), "ratio"] == 0.5  # b^1 / b^2
    assert got.loc[("p", init), "ratio"] == pytest.approx(1 / 3) and got.loc[("bad", init), "ratio"] == 0.5


@pytest.mark.parametrize(
    "activation,init,sigma_w,sigma_b,want",
    [
        ("relu", "he_normal", 1.0, 0.0, 1.0),  # He: χ1 = σ_w² E[φ'²] = 2 · ½, the edge of chaos
        ("relu", "normal", 3.0, 0.5, 3 / math.sqrt(2)),  # χ1 = σ_w² / 2 whatever σ_b
        ("tanh", "normal", 0.5, 0.0, 0.5),  # σ_b = 0, σ_w < 1: q* = 0 and χ1 = σ_w² tanh'(0)²
        ("tanh", "xavier_normal", 1.0, 0.3, 1.0),  # Xavier at constant width: σ_w = 1, σ_b = 0
    ],
)
def test_predicted_factor_is_the_mean_field_per_layer_factor(activation, init, sigma_w, sigma_b, want):
    assert measures.predicted_factor(activation, init, sigma_w, sigma_b, 64) == pytest.approx(want, rel=1e-9)


def test_predicted_factor_is_nan_without_a_theory():
    assert math.isnan(measures.predicted_factor("swish", "normal", 1.0, 0.0, 8))
    assert math.isnan(measures.predicted_factor("tanh", "no_such_init", 1.0, 0.0, 8))


# --- claim 1's targets ---------------------------------------------------------------------------------


def target_results(ends: dict, start: float = 0.1, **config):
    """Three seeds per loss (mse, bce) whose accuracy rises from ``start`` to ``ends[loss][seed]``
    over three logged steps; ``config`` over every run."""
    from synthetic import make_results

    runs, curves = [], {}
    for loss, finals in ends.items():
        for seed, end in enumerate(finals):
            rid = f"{loss}-{seed}"
            runs.append({"run_id": rid, "loss": loss, "seed": seed, **config})
            curves[rid] = np.array([start, (start + end) / 2, end, end])
    return make_results(runs, curves)


def test_the_accuracy_target_is_the_best_median_over_seeds_of_the_losses():
    """Medians over seeds: mse 0.6, bce 6/7 (a 7-sample test set); the target, 0.9 × 6/7 to 4
    decimals, is the same for every run, seeds included. A config value that is missing (σ_w,
    which He initialisation ignores) is a value like any other."""
    res = target_results({"mse": [0.5, 0.6, 0.7], "bce": [0.8, 6 / 7, 0.95]}, init="he_normal", sigma_w=np.nan)
    pr = claims.per_run(res).set_index("run_id")
    for column in ("test_accuracy", "train_accuracy"):
        assert pr[f"target_{column}"].tolist() == [0.7714] * 6
    # reached at the third logged step (step 20) by the runs that end at or above it
    assert pr["steps_test_accuracy"].to_dict() == {
        "mse-0": 40.0,
        "mse-1": 40.0,
        "mse-2": 40.0,
        "bce-0": 20.0,
        "bce-1": 20.0,
        "bce-2": 20.0,
    }


def test_a_target_equal_to_an_initial_accuracy_is_no_target():
    """Every final accuracy 0.9: target 0.81. One run already has 0.81 at step 0: the target is
    met before any learning, so the setting has none."""
    res = target_results({"mse": [0.9] * 3, "bce": [0.9] * 3})
    assert claims.per_run(res)["target_test_accuracy"].tolist() == [0.81] * 6
    res.steps.loc[(res.steps["run_id"] == "bce-1") & (res.steps["step"] == 0), "test_accuracy"] = 0.81
    pr = claims.per_run(res)
    assert pr["target_test_accuracy"].isna().all() and pr["steps_test_accuracy"].isna().all()
    assert pr["target_train_accuracy"].tolist() == [0.81] * 6


def test_targets_do_not_depend_on_the_order_of_the_tables():
    """Depth 1 starts at 0.85, above its target 0.81 (no target); depth 2 starts at 0.1 (target
    0.81). The same results with the steps' rows in another order than the runs' give the
    same table: each run's initial accuracy is its own."""
    from synthetic import make_results

    runs, curves = [], {}
    for depth, start in ((1, 0.85), (2, 0.1)):
        for loss in ("mse", "bce"):
            for seed in range(3):
                rid = f"{depth}-{loss}-{seed}"
                runs.append({"run_id": rid, "depth": depth, "loss": loss, "seed": seed})
                curves[rid] = np.array([start, 0.9, 0.9, 0.9])
    res = make_results(runs, curves)
    want = claims.per_run(res)
    assert want.query("depth == 1")["target_test_accuracy"].isna().all()
    assert (want.query("depth == 2")["target_test_accuracy"] == 0.81).all()
    res.steps = res.steps.iloc[::-1]
    pd.testing.assert_frame_equal(claims.per_run(res), want)


def test_targets_keep_the_accuracy_dtype_without_an_ok_run():
    """The targets are computed in the accuracies' own dtype (float32 in results files), also
    when no run is ok and every target is missing."""
    res = target_results({"mse": [0.5, 0.6, 0.7], "bce": [0.8, 0.9, 0.95]})
    res.runs = res.runs.astype({"final_test_accuracy": "float32", "final_accuracy": "float32"})
    assert claims.per_run(res)["target_test_accuracy"].dtype == np.float32
    res.runs["status"] = "failed"
    pr = claims.per_run(res)
    assert pr["target_test_accuracy"].isna().all() and pr["target_test_accuracy"].dtype == np.float32


# --- which fields make cases ---------------------------------------------------------------------------


def test_without_conditions_the_cases_are_the_values_of_the_fields_that_vary():
    rows = [{"seed": s, "lr": lr, "e": lr} for s in range(5) for lr in (0.1, 0.5)]
    cases = claims._decide(per_run(rows), [], lambda g: g["e"].to_numpy())
    assert cases.attrs["conds"] == ["lr"]
    assert list(zip(cases["lr"], cases["effect"], cases["n"])) == [(0.1, 0.1, 5), (0.5, 0.5, 5)]


def test_a_missing_condition_value_still_groups_the_pairs_that_share_it():
    """σ_w is missing in every pair (an initialiser that ignores it): lr still varies among the
    pairs of that one condition value, so it makes cases."""
    rows = [{"seed": s, "sigma_w": np.nan, "lr": lr, "e": lr} for s in range(5) for lr in (0.1, 0.5)]
    cases = claims._decide(per_run(rows), ["sigma_w"], lambda g: g["e"].to_numpy())
    assert cases.attrs["conds"] == ["sigma_w", "lr"]
    assert list(zip(cases["lr"], cases["effect"])) == [(0.1, 0.1), (0.5, 0.5)]


# --- ratios arriving as object columns -----------------------------------------------------------------


def test_claim_3_reads_ratios_from_an_object_column(monkeypatch):
    """As the effects of claims 1 and 4b: a column of floats held as objects gives the same numbers."""
    monkeypatch.setattr(measures, "predicted_factor", lambda *a: 2.0)
    pr = per_run([{"seed": s, "ratio_init": 10.0 ** (1 + s)} for s in range(5)]).astype({"ratio_init": object})
    cases = claims.explode_cases(pr)
    assert cases["n"].tolist() == [5] and cases["effect"].tolist() == [3.0]


def test_claim_4a_reads_ratios_from_object_columns():
    rows = []
    for seed in range(5):
        rows.append({"seed": seed, "activation": "relu", "ratio_init": 0.5, "ratio_end": 2.0})
        rows.append({"seed": seed, "activation": "sigmoid", "ratio_init": 1e-3, "ratio_end": 1e-2})
    cases = claims.relu_cases(per_run(rows).astype({"ratio_init": object, "ratio_end": object}))
    effects = dict(zip(cases["phase"], cases["effect"]))
    init, end = measures.PHASES
    assert effects == pytest.approx({init: 3 - math.log10(2), end: 2 - math.log10(2)}, rel=1e-12)


def test_gradient_ratios_of_zero_norms_are_inf_or_nan_quietly():
    """A last layer whose gradient is 0 (a dead or saturated output) gives an infinite ratio, 0/0
    gives NaN, with no warning (the suite turns warnings into errors)."""
    t = layers_table().query("run_id == 'p'")
    last = t["layer"] == 3
    t = pd.concat(
        [
            t.assign(run_id="inf", grad_b_norm=t["grad_b_norm"].where(~last, 0.0)),
            t.assign(run_id="nan", grad_b_norm=0.0),
        ]
    )
    got = measures.gradient_ratios(t).set_index(["run_id", "phase"])["ratio"]
    assert (got.loc["inf"] == np.inf).all() and got.loc["nan"].isna().all() and len(got) == 4


def test_phase_pairs_drop_missing_ratios_quietly():
    p = pd.DataFrame(
        {
            "ratio_init_a": [np.nan, 0.5],
            "ratio_init_b": [0.2, np.inf],
            "ratio_end_a": [0.5, np.nan],
            "ratio_end_b": [np.nan, np.nan],
        }
    )
    out = claims._phase_rows_pairs(p)
    assert list(zip(out["phase"], out["ratio_a"], out["ratio_b"])) == [(measures.PHASES[0], 0.5, np.inf)]


# -- the pieces the Nielsen and chaos studies share with the others ------------------------------
def test_matching_keeps_the_runs_with_every_value():
    runs = pd.DataFrame({"a": [1, 1, 2, 1], "b": ["x", "y", "x", "x"]})
    assert select.matching(runs, {"a": 1, "b": "x"}).tolist() == [True, False, False, True]
    assert select.matching(runs, {}).tolist() == [True] * 4  # no condition: every run


def test_one_at_a_time_computes_once_per_results_object():
    calls = []

    def compute(results):
        """The docstring travels with it."""
        calls.append(results)
        return len(calls)

    remembered = select.one_at_a_time(compute)
    first, second = object(), object()
    assert remembered(first) == 1 and remembered(first) == 1  # the same object: not again
    assert remembered(second) == 2 and calls == [first, second]  # another object: computed
    assert remembered(first) == 3  # only the last one is kept
    assert remembered.__wrapped__ is compute and remembered.__doc__ == compute.__doc__


def test_rate_of_is_minus_the_slope_of_the_log_squared_norms():
    layers = np.array([1, 2, 3, 4])
    assert measures.rate_of(layers, 5.0 - 0.7 * layers) == pytest.approx(0.7)  # shrinking toward the input
    assert measures.rate_of([2, 5], [1.0, 7.0]) == pytest.approx(-2.0)  # two layers are a line
    assert math.isnan(measures.rate_of([1], [0.0]))  # one layer: no slope
    assert math.isnan(measures.rate_of([1, 2, 3], [0.0, np.inf, 1.0]))  # a norm that overflowed
    assert math.isnan(measures.rate_of([1, 2, 3], [0.0, np.nan, 1.0]))


def test_percentile_rank_counts_ties_half():
    sample = [1.0, 2.0, 2.0, 3.0, np.nan]  # the NaN is not a draw
    assert measures.percentile_rank(2.0, sample) == 50.0  # 1 below, 2 ties: (1 + 1) / 4
    assert measures.percentile_rank(0.5, sample) == 0.0
    assert measures.percentile_rank(9.0, sample) == 100.0
    assert measures.percentile_rank(1.0, sample) == 12.5  # (0 + 0.5) / 4
    assert math.isnan(measures.percentile_rank(np.nan, sample)) and math.isnan(measures.percentile_rank(1.0, []))


def test_closer_to_one_handles_zero_and_negative_ratios_without_a_warning():
    # the tests turn warnings into errors: log10 of 0 or of a negative ratio must stay quiet
    d = measures.closer_to_one([1.0, 0.0, 2.0], [10.0, 1.0, -1.0])
    assert d[0] == pytest.approx(1.0) and d[1] == -np.inf and np.isnan(d[2])
    assert measures.closer_to_one(0.5, 2.0) == pytest.approx(0.0, abs=1e-15)  # as far from 1 on a log scale


def test_rate_and_percentile_read_numbers_from_object_columns():
    # a column of Python floats (object dtype, as pandas keeps a column of mixed origins) is read
    # as numbers: the fit and the ranks convert it, rather than fail on it
    layers, norms = np.array([1, 2, 3], dtype=object), np.array([0.0, -0.7, -1.4], dtype=object)
    assert measures.rate_of(layers, norms) == pytest.approx(0.7)
    assert measures.percentile_rank(2.0, np.array([1.0, 2.0, 3.0, 4.0], dtype=object)) == 37.5


def test_first_to_last_is_layer_one_over_the_output_layer_at_step_zero_and_at_the_end():
    """Per run: layer 1's value over layer L's at step 0 and at the last logged step of an ok
    run (NaN for a run that did not finish); networks without hidden layers left out."""
    rows = []
    runs = (
        ("b", 1, "diverged", (0, 5)),
        ("a", 2, "ok", (0, 5, 10)),
        ("c", 0, "ok", (0,)),
        ("d", 1, "ok", (0,)),  # finished with step 0 its only logged step: no "end"
        ("e", 1, "ok", (0, 1)),  # its end is step 1
    )
    for run_id, depth, status, steps in runs:
        for step in steps:
            for layer in range(1, depth + 2):
                value = (layer + 1) * 10.0 ** (-step) * (2 if run_id == "b" else 1)
                rows.append(dict(run_id=run_id, depth=depth, status=status, step=step, layer=layer, v=value))
    lay = pd.DataFrame(rows)
    out = measures.first_to_last(lay, "v")
    assert list(out.index) == ["b", "a", "d", "e"] and out.index.name == "run_id"  # in the order they come
    assert list(out.columns) == ["init", "end"]
    assert math.isnan(out.loc["d", "end"]) and out.loc["e", "end"] == pytest.approx(2 / 3)
    assert out.loc["a", "init"] == pytest.approx(2 / 4) and out.loc["a", "end"] == pytest.approx(2 / 4)
    assert out.loc["b", "init"] == pytest.approx(2 / 3) and math.isnan(out.loc["b", "end"])
    lay.loc[(lay.run_id == "a") & (lay.step == 10) & (lay.layer == 3), "v"] = 0.0
    assert math.isinf(measures.first_to_last(lay, "v").loc["a", "end"])  # a zero: inf, not an error
    lay2 = lay[~((lay.run_id == "a") & (lay.step == 10))]
    assert measures.first_to_last(lay2, "v").loc["a", "end"] == pytest.approx(2 / 4)  # the last logged step: 5

"""The small pieces of mlplab.analysis.claims that select runs and compute one number each,
on hand-made tables whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from mlplab import theory
from mlplab.analysis import claims


def test_present_keeps_the_asked_order_of_the_columns_that_exist():
    df = pd.DataFrame({"b": [1], "a": [2]})
    assert claims.present(df, ["a", "x", "b"]) == ["a", "b"]


def test_varying_counts_a_missing_value_as_a_value():
    df = pd.DataFrame({"one": [1, 1, 1], "two": [1, 2, 2], "gap": [1.0, np.nan, 1.0]})
    assert claims.varying(df, ["absent", "one", "two", "gap"]) == ["two", "gap"]
    assert claims.varying(df.iloc[:1], ["two"]) == []


def runs_table():
    base = {s: 0 for s in claims.SETTING}
    rows = []
    for i, (lr, clip, n) in enumerate([(0.5, "none", 3), (0.1, "none", 2), (0.1, "norm", 4)]):
        rows += [{**base, "lr": lr, "clip": clip, "dataset": "blobs", "seed": k, "tag": i} for k in range(n)]
    return pd.DataFrame(rows)


def test_main_runs_are_the_unclipped_runs_of_the_most_common_setting():
    got = claims.main_runs(runs_table())
    assert list(got["tag"]) == [0, 0, 0] and (got["clip"] == "none").all()
    assert claims.main_runs(runs_table().query("clip == 'norm'")).empty


def test_setting_values_names_the_values_every_run_shares():
    runs = pd.DataFrame({"dataset": ["blobs", "blobs"], "lr": [0.5, 0.5], "init": ["normal", "he_normal"],
                         "sigma_w": [np.nan, 2.0]})
    assert claims.setting_values(runs) == "dataset=blobs, lr=0.5, sigma_w=2"
    assert claims.setting_values(runs, cols=("init",)) == ""


@pytest.mark.parametrize("activation,init,sigma_w", [("tanh", "normal", 1.5), ("sigmoid", "normal", 3.0),
                                                     ("tanh", "xavier_normal", 1.0), ("relu", "he_normal", 1.0)])
def test_predicted_ratio_is_the_product_of_the_layer_factors(activation, init, sigma_w):
    width, depth, sigma_b = 64, 6, 0.1
    sw, sb = theory.effective_sigmas(init, width, width, sigma_w, sigma_b)
    want = float(theory.profile(activation, sw, sb, depth)["ratio"].prod())
    assert claims.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth) == pytest.approx(want, rel=1e-12)
    assert claims.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth, False, None) == pytest.approx(want, rel=1e-12)
    if init == "normal":
        assert want == pytest.approx(float(theory.profile(activation, sigma_w, sigma_b, depth)["ratio"].prod()))
    assert math.isnan(claims.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth, True, "none"))
    assert math.isnan(claims.predicted_ratio(activation, init, sigma_w, sigma_b, width, depth, False, "batch"))


def test_predicted_ratio_is_nan_where_the_theory_has_no_answer():
    assert math.isnan(claims.predicted_ratio("swish", "normal", 1.0, 0.0, 8, 3))  # not a registered activation


def test_clip_effect_scores_each_pair():
    """a: norm-clipped, b: unclipped. +1 when only b diverged, −1 when only a did, 0 when both,
    else log10(final loss of b / final loss of a)."""
    g = pd.DataFrame({"diverged_a": [False, True, True, False, False],
                      "diverged_b": [True, False, True, False, False],
                      "final_loss_a": [np.nan, 1.0, np.nan, 0.1, 2.0],
                      "final_loss_b": [np.nan, 0.5, np.nan, 1.0, 0.2]})
    np.testing.assert_array_equal(claims.clip_effect(g), [1.0, -1.0, 0.0, 1.0, -1.0])
    g2 = g.assign(final_loss_a=[3.0, 3.0, 3.0, 0.5, 4.0], final_loss_b=[6.0, 6.0, 6.0, 2.0, 1.0])
    np.testing.assert_allclose(claims.clip_effect(g2), [1.0, -1.0, 0.0, math.log10(4.0), math.log10(0.25)], rtol=1e-15)


def test_log_ratio_takes_zeros_and_object_columns_quietly():
    """Steps and losses may be 0 (a target met at step 0) and arrive as object columns after a
    merge: log10(a/b) is then ±inf or NaN, with no warning (the suite turns warnings into errors)."""
    a, b = np.array([10, 0, 1, 0], dtype=object), np.array([1, 1, 0, 0], dtype=object)
    got = claims.log_ratio(a, b)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [1.0, -np.inf, np.inf, np.nan])


def test_steps_effect_is_nan_only_when_neither_run_reaches_its_target():
    """A run that never reaches the target is given ``beyond`` steps exactly."""
    g = pd.DataFrame({"steps_x_a": [100.0, 100.0, 40.0, 10.0], "beyond_a": [100.0, 100.0, 100.0, 100.0],
                      "steps_x_b": [50.0, 50.0, 50.0, 100.0], "beyond_b": [50.0, 60.0, 60.0, 100.0]})
    got = claims.steps_effect(g.astype(object), "steps_x")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [np.nan, math.log10(2.0), math.log10(0.8), -1.0], rtol=1e-15)


def test_clip_effect_on_object_columns_with_zero_losses():
    g = pd.DataFrame({"diverged_a": [False, True, True, False], "diverged_b": [True, False, True, False],
                      "final_loss_a": [0.0, 1.0, 0.0, 0.0], "final_loss_b": [0.0, 0.0, 0.0, 2.0]}).astype(object)
    np.testing.assert_array_equal(claims.clip_effect(g), [1.0, -1.0, 0.0, np.inf])

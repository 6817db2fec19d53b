"""The verdict machinery (mlplab.analysis.verdicts): intervals, the sign test, the words."""

import math

import numpy as np
import pandas as pd
import pytest

from mlplab.analysis import verdicts as v


@pytest.mark.parametrize("n", [5, 6, 9, 10, 20, 31])
def test_median_interval_covers_the_median_at_the_stated_level(n):
    """Its coverage formula is exact: checked by simulation for a skewed distribution."""
    rng = np.random.default_rng(n)
    x = rng.lognormal(size=(20000, n))
    true_median = 1.0  # of the standard log-normal
    low, high, cov = np.array([v.median_interval(row) for row in x]).T
    assert cov[0] >= v.LEVEL
    hit = ((low <= true_median) & (true_median <= high)).mean()
    assert hit == pytest.approx(cov[0], abs=0.01)
    assert np.all(low <= high)


def test_median_interval_with_five_seeds_is_the_range():
    x = [3.0, -1.0, 2.0, 0.5, 1.0]
    low, high, cov = v.median_interval(x)
    assert (low, high) == (-1.0, 3.0)
    assert cov == pytest.approx(1 - 2 / 32)  # every one of five falls on one side with prob. 2 · (1/2)^5


def test_binom_cdf():
    assert v.binom_cdf(-1, 5) == 0
    assert v.binom_cdf(5, 5) == 1
    assert v.binom_cdf(2, 4) == pytest.approx(11 / 16)


def test_evidence_decides_only_with_enough_seeds_and_a_clear_interval():
    assert v.evidence([1.0, 2.0, 3.0, 4.0, 5.0]).holds is True
    assert v.evidence([-1.0, -2.0, -3.0, -4.0, -5.0]).holds is False
    assert v.evidence([1.0, 2.0, 3.0, 4.0, -5.0]).holds is None  # one seed disagrees: the range includes 0
    assert v.evidence([1.0, 2.0, 3.0, 4.0]).holds is None  # four seeds cannot decide
    e = v.evidence([1.0, 2.0, math.nan, 3.0, 4.0, 5.0])
    assert (e.n, e.effect) == (5, 3.0)  # NaN pairs dropped
    assert e.p == pytest.approx(1 / 32)  # all five above: P = (1/2)^5
    assert v.evidence([0.5, 0.6, 0.7, 0.8, 0.9], zero=1.0).holds is False  # "no effect" elsewhere than 0
    empty = v.evidence([])
    assert empty.n == 0 and empty.holds is None and math.isnan(empty.effect)


def test_a_larger_sample_decides_despite_a_disagreeing_seed():
    x = [1.0] * 19 + [-1.0]
    assert v.evidence(x).holds is True
    assert v.evidence(x).p < 0.05


def cases(holds, n=5, **cols):
    return pd.DataFrame({**cols, "holds": holds, "n": n})


def test_verdict_words():
    depth = [1, 2, 4, 8]
    assert v.verdict(cases([True] * 4, depth=depth), ["depth"]) == "reproduced"
    assert v.verdict(cases([False] * 4, depth=depth), ["depth"]) == "not reproduced"
    assert v.verdict(cases([True, True, False, False], depth=depth), ["depth"]) == "reproduced only when depth ≤ 2"
    assert v.verdict(cases([False, False, True, True], depth=depth), ["depth"]) == "reproduced only when depth ≥ 4"
    assert v.verdict(cases([True, None, None, None], depth=depth), ["depth"]) == "reproduced (undecided when depth ≥ 2)"
    assert v.verdict(cases([None] * 4, depth=depth), ["depth"]) == "not enough data (no case's interval excludes no effect)"
    assert v.verdict(cases([None] * 4, n=[5, 5, 3, 5], depth=depth), ["depth"]) == (
        "not enough data (3 seeds in a case; a case needs ≥ 5)")
    assert v.verdict(pd.DataFrame(), [], "no relu run") == "not tested (no relu run)"
    assert v.verdict(None, []) == "not tested (the sweep has no case for it)"


def test_verdict_names_the_conditions_across_two_columns():
    c = cases([True, True, False, True], phase=["a", "a", "b", "b"], depth=[1, 8, 1, 8])
    assert v.verdict(c, ["phase", "depth"]) == "reproduced only when phase = a; or phase = b and depth = 8"
    # a column that does not vary is not a condition
    assert v.verdict(c.assign(loss="mse"), ["loss", "phase", "depth"]) == v.verdict(c, ["phase", "depth"])


@pytest.mark.parametrize("x, text", [(3, "3"), (0.12345, "0.123"), (1e-5, "1.0e-05"), (2e6, "2.0e+06"),
                                     (math.inf, "never"), (math.nan, "n/a"), ("relu", "relu"), (True, "True")])
def test_fmt(x, text):
    assert v.fmt(x) == text

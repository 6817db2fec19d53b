"""The verdict machinery (mlplab.analysis.verdicts): intervals, the sign test, the words."""

import math

import numpy as np
import pandas as pd
import pytest

from mlplab.analysis import fmt
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
    assert (
        v.verdict(cases([None] * 4, depth=depth), ["depth"])
        == "not enough data (no case's interval excludes no effect)"
    )
    assert v.verdict(cases([None] * 4, n=[5, 5, 3, 5], depth=depth), ["depth"]) == (
        "not enough data (3 seeds in a case; a case needs ≥ 5)"
    )
    assert v.verdict(pd.DataFrame(), [], "no relu run") == "not tested (no relu run)"
    assert v.verdict(None, []) == "not tested (the sweep has no case for it)"


def test_verdict_names_the_conditions_across_two_columns():
    c = cases([True, True, False, True], phase=["a", "a", "b", "b"], depth=[1, 8, 1, 8])
    assert v.verdict(c, ["phase", "depth"]) == "reproduced only when phase = a; or phase = b and depth = 8"
    # a column that does not vary is not a condition
    assert v.verdict(c.assign(loss="mse"), ["loss", "phase", "depth"]) == v.verdict(c, ["phase", "depth"])


@pytest.mark.parametrize(
    "x, text",
    [
        (3, "3"),
        (0.12345, "0.123"),
        (1e-5, "1.0e-05"),
        (2e6, "2.0e+06"),
        (math.inf, "never"),
        (math.nan, "n/a"),
        ("relu", "relu"),
        (True, "True"),
    ],
)
def test_fmt(x, text):
    assert fmt.number(x) == text


# --- how the conditions of a partial verdict read --------------------------------------------------


def table(rows, cols):
    return pd.DataFrame(rows, columns=[*cols, "holds"])


@pytest.mark.parametrize(
    "values,holding,text",
    [
        ([1, 2, 3], {1, 2}, "≤ 2"),
        ([3, 1, 2], {2, 3}, "≥ 2"),
        ([1, 2, 3], {1}, "= 1"),  # one value: named, not a bound
        ([1, 2, 3], {1, 3}, "∈ {1, 3}"),  # not one side of a threshold
        ([1, 2], {1, 2}, "∈ {1, 2}"),  # two values: a bound would say no more
        (["c", "a", "b"], {"a", "b"}, "∈ {a, b}"),  # words have no order to bound
        ([2, "x", 1], {"x", 1}, "∈ {1, x}"),  # mixed types: numbers first, each sorted
    ],
)
def test_describe_reads_the_holding_values_of_a_column(values, holding, text):
    assert v._describe(values, holding) == text


def test_a_column_that_separates_the_cases_alone_is_the_description():
    cases = table([("mse", 2, True), ("bce", 2, True), ("mse", 8, False), ("bce", 8, False)], ["loss", "depth"])
    assert v._where(cases, ["loss", "depth"]) == "depth = 2"


def test_nested_descriptions_are_grouped_sorted_and_bracketed():
    rows = [
        ("b", "mse", 2, True),
        ("b", "mse", 4, False),
        ("b", "mse", 8, False),
        ("b", "bce", 2, True),
        ("b", "bce", 4, True),
        ("b", "bce", 8, False),
        ("a", "mse", 2, True),
        ("a", "mse", 4, True),
        ("a", "mse", 8, False),
        ("a", "bce", 2, False),
        ("a", "bce", 8, False),
        ("c", "mse", 2, False),
        ("c", "bce", 2, False),
    ]
    cases = table(rows, ["dataset", "loss", "depth"])
    assert v._where(cases, ["dataset", "loss", "depth"]) == (
        "dataset = a and loss = mse and depth ≤ 4; "
        "or dataset = b and (loss = bce and depth ≤ 4; or loss = mse and depth = 2)"
    )
    assert v._where(cases[cases["dataset"] == "b"], []) == "in some cases"


def test_where_is_the_shortest_reading_over_the_orders_of_the_columns():
    cases = table([("mse", 2, True), ("bce", 2, True), ("mse", 8, False), ("bce", 4, True)], ["loss", "depth"])
    assert v.where(cases, ["loss", "depth"]) == "depth ≤ 4"
    assert v.where(cases.assign(holds=[True, False, False, True]), []) == "in some cases"


def test_evidence_of_no_pairs_is_all_nan():
    e = v.evidence([np.nan, float("nan")])
    assert e.n == 0 and e.holds is None
    assert all(math.isnan(getattr(e, k)) for k in ("effect", "low", "high", "coverage", "p"))


def test_evidence_counts_ties_with_no_effect_on_neither_side():
    e = v.evidence([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert (e.n, e.effect, e.low, e.high, e.p, e.holds) == (6, 0.0, 0.0, 0.0, 1.0, None)
    e = v.evidence([1, 1, 1, -1, -1, -1, 0])  # 3 above, 3 below, 1 tie: P(Bin(6, 1/2) ≥ 3) = 42/64
    assert e.p == 42 / 64 and e.n == 7 and e.holds is None
    e = v.evidence([2.0, 3.0, 4.0, 5.0, 6.0, 0.0])  # 5 above, 0 below: P(≥ 5 of 5) = 1/32
    assert e.p == 1 / 32
    low, high, cov = v.median_interval(np.array([2.0, 3.0, 4.0, 5.0, 6.0, 0.0]))
    assert (e.low, e.high, e.coverage) == (low, high, cov) and isinstance(e.low, float)


@pytest.mark.parametrize(
    "x,text",
    [
        (0.0, "0"),
        (1e-3, "0.001"),
        (9.99e-4, "1.0e-03"),
        (1e5, "1.0e+05"),
        (99999.0, "1e+05"),
        (-1e5, "-1.0e+05"),
        (float("-inf"), "-inf"),
        (float("inf"), "never"),
        (float("nan"), "n/a"),
    ],
)
def test_fmt_boundaries(x, text):
    assert fmt.number(x) == text


def test_the_decision_rule_is_described_with_its_numbers():
    assert v.describe_level() == (
        "a case decides when the 90 % distribution-free interval of the median effect over seeds "
        "(order statistics; a one-sided sign test at 5 %) excludes no effect, with ≥ 5 seeds"
    )


def test_an_empty_case_table_has_its_columns():
    t = v.case_frame([], ["dataset", "depth"])
    assert list(t.columns) == ["dataset", "depth", *v.STAT_COLUMNS] and t.empty
    t = v.case_frame([{"holds": True, "depth": 2, "n": 5, "dataset": "a"}], ["dataset", "depth"])
    assert list(t.columns) == ["dataset", "depth", *v.STAT_COLUMNS]


def test_a_verdict_names_only_the_conditions_that_tell_cases_apart():
    cases = pd.DataFrame(
        {
            "dataset": ["a"] * 4,
            "gap": [np.nan, np.nan, 1.0, 1.0],
            "depth": [2, 4, 8, 16],
            "holds": [True, True, False, False],
            "n": [5] * 4,
        }
    )
    assert v.verdict(cases, ["dataset", "depth", "gap", "absent"]) == "reproduced only when depth ≤ 4"
    assert (
        v.verdict(cases.assign(holds=[True, True, None, None]), ["dataset", "depth"])
        == "reproduced (undecided when depth ≥ 8)"
    )


def test_an_undecided_part_too_long_to_name_is_counted(monkeypatch):
    n = 40
    cases = pd.DataFrame({"depth": range(n), "holds": [None if d % 2 else True for d in range(n)], "n": [5] * n})
    where = "depth ∈ {" + ", ".join(str(d) for d in range(1, n, 2)) + "}"
    monkeypatch.setattr(v, "MAX_WHERE", len(where))
    assert v.verdict(cases, ["depth"]) == f"reproduced (undecided when {where})"
    monkeypatch.setattr(v, "MAX_WHERE", len(where) - 1)
    assert v.verdict(cases, ["depth"]) == f"reproduced (undecided in {n // 2} of {n} cases)"


@pytest.mark.parametrize("n_conds,tried", [(0, 1), (2, 2), (5, 120), (6, v.MAX_ORDERINGS)])
def test_where_tries_at_most_max_orderings(monkeypatch, n_conds, tried):
    """The orderings of the condition columns grow as n!; ``where`` reads at most
    ``MAX_ORDERINGS`` of them (120: every ordering of 5 columns)."""
    conds = [f"c{i}" for i in range(n_conds)]
    rows = [(*(k >> i & 1 for i in range(n_conds)), k % 2 == 0) for k in range(2**n_conds)]  # c0 decides
    cases = table(rows, conds)
    calls = []
    real = v._where
    monkeypatch.setattr(v, "_where", lambda c, order: calls.append(len(order)) or real(c, order))
    v.where(cases, conds)
    assert calls.count(n_conds) == tried


def test_evidence_drops_every_kind_of_missing_pair():
    """None, and NaN of any float type (a float32 NaN is not a Python float), are pairs that
    say nothing: dropped before counting."""
    want = v.evidence([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert v.evidence([1.0, None, 2.0, np.float32("nan"), 3.0, float("nan"), 4.0, 5.0, np.nan, 6.0]) == want
    assert v.evidence(np.array([1, 2, 3, 4, 5, 6], dtype=np.float32)) == want
    assert v.evidence([None, np.float32("nan")]).n == 0


@pytest.mark.parametrize("level,two_sided,one_sided", [(0.5, 50, 25), (0.8, 80, 10)])
def test_the_decision_rule_is_a_one_sided_test_at_half_the_miss_of_the_interval(
    monkeypatch, level, two_sided, one_sided
):
    """A two-sided interval at ``LEVEL`` misses the median on either side with (1 − LEVEL)/2."""
    monkeypatch.setattr(v, "LEVEL", level)
    assert (
        f"the {two_sided} % distribution-free interval of the median effect over seeds "
        f"(order statistics; a one-sided sign test at {one_sided} %)"
    ) in v.describe_level()


def test_median_interval_at_a_level_met_exactly_is_the_narrower_interval():
    """n = 4: [x(2), x(3)] covers the median with P(Bin(4, ½) = 2) = 6/16 = 0.375. At that level
    exactly it is the interval (its coverage reaches the level); just above, the range (14/16)."""
    x = [4.0, 1.0, 3.0, 2.0]
    assert v.median_interval(x, 0.375) == (2.0, 3.0, 0.375)
    assert v.median_interval(x, 0.376) == (1.0, 4.0, 0.875)


@pytest.mark.parametrize("level", [0.3, 0.6, 0.8, v.LEVEL, 0.95])
def test_median_interval_takes_the_largest_k_whose_coverage_reaches_the_level(level):
    """n = 1..40: [x(k), x(n−k+1)] with k the largest of 1..⌈n/2⌉ whose coverage
    1 − 2 P(Bin(n, ½) ≤ k − 1) is ≥ level (k = 1 when none is). The binomial distribution here is
    n coin flips convolved (exact in floats up to n = 40: its masses are multiples of 2^-n)."""
    pmf = np.array([1.0])
    for n in range(1, 41):
        pmf = np.convolve(pmf, [0.5, 0.5])
        ks = np.arange(1, (n + 1) // 2 + 1)
        cover = 1 - 2 * np.cumsum(pmf)[ks - 1]
        k = int(ks[cover >= level].max()) if (cover >= level).any() else 1
        x = np.arange(n, 0, -1, dtype=float)  # n, ..., 1: the k-th smallest is k
        low, high, cov = v.median_interval(x, level)
        assert (low, high) == (k, n - k + 1), n
        assert cov == pytest.approx(cover[k - 1], abs=1e-12)


def test_a_missing_value_is_a_condition_value_like_any_other():
    """A condition that is missing in some cases (no data file) tells them apart like any value."""
    cases = pd.DataFrame(
        {
            "data_path": [None, None, "d.npz", "d.npz"],
            "depth": [2, 4, 2, 4],
            "holds": [True, True, False, False],
            "n": [5] * 4,
        }
    )
    assert v.verdict(cases, ["data_path", "depth"]) == "reproduced only when data_path = n/a"


def test_a_column_that_does_not_vary_is_not_named_even_when_the_others_do_not_separate():
    """Depth 2 holds in one case and fails in another: the verdict can only say where it holds in
    some cases; the loss, the same in every case, is no condition of it."""
    c = cases([True, False, False], depth=[2, 2, 4])
    assert v.verdict(c, ["depth"]) == "reproduced only when depth = 2 and in some cases"
    assert v.verdict(c.assign(loss="mse"), ["loss", "depth"]) == v.verdict(c, ["depth"])


def test_a_partial_verdict_with_undecided_cases():
    """Holds as the case tables give it: True, False or None in one column."""
    c = cases([True, False, None, None], depth=[1, 2, 4, 8])
    assert c["holds"].dtype == object
    assert v.verdict(c, ["depth"]) == "reproduced only when depth = 1 (undecided when depth ≥ 4)"


# -- a verdict's kind (the report's verdict map) ---------------------------------------------------
@pytest.mark.parametrize(
    "text, kind",
    [
        ("reproduced", "reproduced"),
        ("reproduced (undecided when depth = 4)", "reproduced"),
        ("reproduced only when depth ≥ 4", "in some cases"),
        ("not reproduced", "not reproduced"),
        ("not enough data (no case's interval excludes no effect)", "undecided"),
        ("not enough data (3 seeds in a case; a case needs ≥ 5)", "not enough data"),
        ("not tested (the sweep has no case for it)", "not tested"),
    ],
)
def test_each_verdict_has_its_kind(text, kind):
    assert v.category(text) == kind


def test_a_verdict_of_no_known_form_is_an_error():
    with pytest.raises(ValueError, match="not one of"):
        v.category("maybe")

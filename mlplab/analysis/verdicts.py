"""Verdicts that state their evidence: per-case statistics and the words a claim gets.

A claim is checked on *cases* (one per depth, loss, data set...). Each case compares matched
runs — the arms differ only in the factor under test and are paired by seed — through one
number per pair, its *effect*, signed so that a positive effect is what the claim says (e.g.
log10 of MSE's steps over cross-entropy's). A case then

* **holds** when the interval of the median effect lies above the no-effect value,
* **fails** when it lies below,
* is **undecided** otherwise, or when it has fewer than ``MIN_SEEDS`` pairs.

The interval is distribution-free: order statistics of the per-seed effects that cover the
median with probability ≥ 90 % (two-sided; the binomial distribution of how many effects fall
below it), so "the interval excludes no effect" is a one-sided sign test at 5 %. With 5 seeds
the interval is [smallest, largest] (93.8 %): a case decides only when every seed agrees.

A claim's verdict over its cases: ``reproduced``, ``not reproduced``, ``reproduced only when
…`` (naming the conditions), ``not tested (…)`` when the sweep has no case that could decide
it (named), ``not enough data (…)`` when cases exist but none decides.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlplab.analysis.fmt import number

LEVEL = 0.90  # two-sided coverage of the median's interval: a one-sided test at 5 %
MIN_SEEDS = 5  # pairs a case needs before it can decide
NOT_ENOUGH = "not enough data"
NOT_TESTED = "not tested"
STAT_COLUMNS = ["n", "effect", "low", "high", "coverage", "p", "holds"]


def describe_level() -> str:
    return (
        f"a case decides when the {100 * LEVEL:.0f} % distribution-free interval of the median effect over seeds "
        f"(order statistics; a one-sided sign test at {50 * (1 - LEVEL):.0f} %) excludes no effect, "
        f"with ≥ {MIN_SEEDS} seeds"
    )


@dataclass
class Evidence:
    """One case's numbers: pairs, median effect, its interval (and coverage), the one-sided
    sign-test p-value for a positive effect, and the decision."""

    n: int
    effect: float
    low: float
    high: float
    coverage: float
    p: float
    holds: bool | None

    def row(self) -> dict:
        return {k: getattr(self, k) for k in STAT_COLUMNS}


def binom_cdf(k: int, n: int) -> float:
    """P(Binomial(n, 1/2) ≤ k) (0 for k < 0: the sum is empty)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def median_interval(x: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(low, high, coverage): order statistics x(k) ≤ median ≤ x(n−k+1) with the largest k
    whose coverage 1 − 2 P(Bin(n, ½) ≤ k − 1) is still ≥ ``level`` (k = 1, the range, when even
    that falls short: its coverage is returned)."""
    x = np.sort(np.asarray(x, float))
    n = len(x)
    k = 1
    while k + 1 <= (n + 1) // 2 and 1 - 2 * binom_cdf(k, n) >= level:
        k += 1
    return float(x[k - 1]), float(x[n - k]), 1 - 2 * binom_cdf(k - 1, n)


def evidence(effects, zero: float = 0.0, min_n: int = MIN_SEEDS) -> Evidence:
    """The statistics of one case from its per-pair effects (NaN pairs dropped): a positive
    effect is the claim's direction; ``zero`` is "no effect"."""
    x = np.asarray(effects, float).ravel()  # None and NaN of any float type become NaN, then dropped
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Evidence(0, math.nan, math.nan, math.nan, math.nan, math.nan, None)
    low, high, cov = median_interval(x)
    above, below = int((x > zero).sum()), int((x < zero).sum())
    p = 1 - binom_cdf(above - 1, above + below)  # P(≥ above | no effect); 1 when every pair is a tie
    holds = None
    if n >= min_n:
        holds = True if low > zero else False if high < zero else None
    return Evidence(n, float(np.median(x)), low, high, cov, p, holds)


# -- a claim's verdict over its cases ------------------------------------------------------------
def _describe(values: list, holding: set) -> str:
    """How the holding values of one column read: 'depth ≤ 4', 'loss ∈ {bce, softmax_ce}'."""
    vals = sorted(values, key=lambda v: (str(type(v)), v))
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in vals) and len(vals) > 2 and len(holding) > 1:
        flags = [v in holding for v in vals]
        if flags == sorted(flags, reverse=True):
            return f"≤ {number(max(holding))}"
        if flags == sorted(flags):
            return f"≥ {number(min(holding))}"
    inside = [number(v) for v in vals if v in holding]
    return f"= {inside[0]}" if len(inside) == 1 else "∈ {" + ", ".join(inside) + "}"


MAX_WHERE = 160  # longer descriptions of the undecided cases become a count
MAX_ORDERINGS = 120  # orderings of the condition columns tried for the shortest description


def where(cases: pd.DataFrame, conds: list[str]) -> str:
    """The conditions under which ``cases.holds`` is True, as short text: the shortest of the
    descriptions over the orderings of ``conds`` (``_where``)."""
    orders = itertools.islice(itertools.permutations(conds), MAX_ORDERINGS)  # one, () , when conds is empty
    return min((_where(cases, list(order)) for order in orders), key=len)


def _where(cases: pd.DataFrame, conds: list[str]) -> str:
    """One description: a single column that separates holding from failing cases if there is
    one; else split on the first column, grouping its values whose cases read the same
    ("dataset ∈ {blobs, mnist} and (…)")."""
    for c in conds:
        yes = set(cases.loc[cases["holds"], c])
        no = set(cases.loc[~cases["holds"], c])
        if yes and not yes & no:
            return f"{c} {_describe(list(yes | no), yes)}"
    if not conds:
        return "in some cases"
    c, rest = conds[0], conds[1:]
    groups: dict[str, list] = {}
    for v, g in cases.groupby(c):  # in sorted order of the values
        if g["holds"].all():
            groups.setdefault("", []).append(v)
        elif g["holds"].any():
            groups.setdefault(_where(g, rest), []).append(v)
    values = list(cases[c].unique())
    parts = []
    for sub, vals in groups.items():
        head = f"{c} {_describe(values, set(vals))}"
        parts.append(head + (f" and ({sub})" if "; or " in sub else f" and {sub}" if sub else ""))
    return "; or ".join(parts)


def verdict(cases: pd.DataFrame | None, conds: list[str], untested: str = "the sweep has no case for it") -> str:
    """The claim's verdict from its cases (a ``holds`` column: True, False, or None/NaN when the
    case cannot decide, and an ``n`` column of pairs). ``untested`` says what is missing when
    there is no case at all."""
    if cases is None or cases.empty or "holds" not in cases:
        return f"{NOT_TESTED} ({untested})"
    conds = [c for c in conds if c in cases and cases[c].nunique(dropna=False) > 1]  # what tells cases apart
    decided = cases[cases["holds"].notna()].copy()
    if decided.empty:
        if "n" in cases and (cases["n"] < MIN_SEEDS).any():
            return f"{NOT_ENOUGH} ({int(cases['n'].min())} seeds in a case; a case needs ≥ {MIN_SEEDS})"
        return f"{NOT_ENOUGH} (no case's interval excludes no effect)"
    decided["holds"] = decided["holds"].astype(bool)
    if decided["holds"].all():
        out = "reproduced"
    elif not decided["holds"].any():
        out = "not reproduced"
    else:
        out = "reproduced only when " + where(decided, conds)
    if len(decided) < len(cases):
        undecided = cases.assign(holds=cases["holds"].isna())
        text = where(undecided, conds)
        n = len(cases) - len(decided)
        out += f" (undecided when {text})" if len(text) <= MAX_WHERE else f" (undecided in {n} of {len(cases)} cases)"
    return out


def case_frame(rows: list[dict], conds: list[str]) -> pd.DataFrame:
    """Cases as a DataFrame: the condition columns, then the statistics."""
    return pd.DataFrame(rows, columns=conds + STAT_COLUMNS)


# -- a verdict's kind, for the verdict map ---------------------------------------------------------
# the kinds in the map's legend order, each with its colour (a colour-blind-safe diverging set:
# blue for reproduced, orange for not, greys for the verdicts that do not decide)
CATEGORIES = {
    "reproduced": "#2166ac",
    "in some cases": "#92c5de",
    "not reproduced": "#e08214",
    "undecided": "#bdbdbd",
    "not enough data": "#e0e0e0",
    "not tested": "#ffffff",
}


def category(text: str) -> str:
    """The kind of a verdict written by ``verdict``: reproduced ("reproduced", with or without
    undecided cases), in some cases ("reproduced only when …"), not reproduced, undecided
    (cases enough, but no interval excludes no effect), not enough data (too few seeds), not
    tested."""
    if text.startswith(NOT_TESTED):
        return "not tested"
    if text.startswith(NOT_ENOUGH):
        return "undecided" if "no case's interval" in text else "not enough data"
    if text.startswith("reproduced only when"):
        return "in some cases"
    if text.startswith("not reproduced"):
        return "not reproduced"
    if text.startswith("reproduced"):
        return "reproduced"
    raise ValueError(f"verdict {text!r}: not one of verdict()'s forms")

"""Numbers and tables as text: one number formatter and one Markdown table writer.

``number`` is the short human form of a value (3 significant digits; ``n/a`` for NaN, ``never``
for +inf); ``cell`` the same for a table cell (empty for a missing value); ``pretty`` a whole
table in cells; ``markdown_table`` a GitHub-flavoured Markdown table. Every study writes its
numbers through these, so that a number reads the same in every table and sentence.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def number(x, inf: str = "never") -> str:
    """Short human form of a number (or of any value: its ``str``): 3 significant digits,
    scientific below 1e-3 and from 1e5; NaN is ``n/a``, +inf is ``inf`` (default 'never':
    steps to a target that is never reached)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return inf if x > 0 else "-inf"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.1e}"
    return f"{x:.3g}"


def cell(v, inf: str = "never") -> str:
    """One table value as text: ``number`` for floats, empty for None and NaN."""
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else number(float(v), inf)
    return "" if v is None else str(v)


def pretty(df: pd.DataFrame) -> pd.DataFrame:
    """Every value of ``df`` as a ``cell`` (+inf as 'inf'), on a fresh index."""
    return df.apply(lambda col: col.map(lambda v: cell(v, "inf"))).reset_index(drop=True)


def scientific(x) -> str:
    """A relative error as text: 2 significant digits, always scientific (``1.2e-09``)."""
    return f"{float(x):.1e}"


def significant(df: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The float columns of ``df`` rounded to ``digits`` significant digits (inf and NaN kept):
    numbers for reading in a written table."""

    def rounded(x):
        return float(f"{x:.{digits}g}") if math.isfinite(x) else x

    return df.apply(lambda c: c.map(rounded) if c.dtype.kind == "f" else c)


def _escaped(value, code: bool = False) -> str:
    s = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    s = s.replace("\n", " ").replace("|", "\\|")
    if code and s and s != "same":
        return "`" + s.replace("`", "'") + "`"
    return s


def markdown_table(df: pd.DataFrame, code_columns=()) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (cells escaped, one line per row; the cells of
    ``code_columns`` as inline code, but for the word 'same')."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = [
        "| " + " | ".join(_escaped(v, c in code_columns) for c, v in zip(df.columns, row)) + " |"
        for row in df.itertuples(index=False)
    ]
    return "\n".join([head, rule] + body)


def values(s) -> str:
    """The distinct numbers of ``s``, sorted, as '0.5, 1, 2' (``:g``)."""
    return ", ".join(f"{v:g}" for v in sorted(pd.unique(s.astype(float))))


def strings(s) -> str:
    """The distinct values of ``s`` as text, sorted, as 'sigmoid, tanh'."""
    return ", ".join(sorted(map(str, pd.unique(s))))


def plural(n: int, word: str) -> str:
    """'1 seed', '5 seeds'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def ordinal(percentile: float) -> str:
    """A percentile rounded to a whole number, as '1st', '22nd', '43rd', '64th', '100th'."""
    n = int(round(percentile))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def span(x: pd.Series) -> str:
    """'5', or '3–5': the range of counts (e.g. seeds per cell)."""
    return f"{x.min()}" if x.min() == x.max() else f"{x.min()}–{x.max()}"


def reached(median: float, k: float, n: float) -> str:
    """Steps to a target in a cell's label: 'never' when no run reaches it, else the median
    steps ('never' for a median run that does not: inf or NaN) and k/n runs that do."""
    if k == 0:
        return "never"
    steps = f"{median:.0f}" if math.isfinite(median) else "never"
    return f"{steps} ({k:.0f}/{n:.0f})"


MARKS = {True: " ✔", False: " ✘"}  # a case's decision: holds, fails (undecided: no mark)


def effects_grid(cases: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Cases (``mlplab.analysis.verdicts``' columns, with ``activation`` and ``depth``) as a grid:
    a row per ``index``, a column per 'activation depth', each cell 'median [low, high]' of the
    per-seed effects with a mark for the decision."""
    d = cases.assign(
        case=[f"{a} {d}" for a, d in zip(cases["activation"], cases["depth"])],
        cell=[
            f"{number(e)} [{number(lo)}, {number(hi)}]{MARKS.get(h, '')}"
            for e, lo, hi, h in zip(cases["effect"], cases["low"], cases["high"], cases["holds"])
        ],
    )
    g = d.pivot_table(index=index, columns="case", values="cell", aggfunc="first", sort=False)
    cols = sorted(g.columns, key=lambda s: (s.split()[0], int(s.split()[1])))
    return g[cols].reset_index().rename_axis(columns=None)

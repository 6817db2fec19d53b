"""What the Nielsen and edge-of-chaos studies share with every study, until the shared layers hold it.

Each function here names the shared layer it belongs to (``fmt``: numbers and text; ``select``: which
runs; ``measures``: fits and statistics; ``plots``: style and saving), where it is to be folded
in. Every output is byte for byte what the studies wrote before they became packages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources

import numpy as np
import pandas as pd

# plots: the look of every figure, saving as PNG + SVG, a figure that cannot be drawn, one viridis
# colour per ordered value; the blog study's module holds them today
from mlplab.analysis.figures import Skip, ordered_colors, save, style

# fmt: the one Markdown table writer, today in the blog table's module
from mlplab.analysis.table import markdown_table

__all__ = [
    "Skip",
    "Text",
    "cell_edges",
    "four_significant",
    "markdown_table",
    "matching",
    "one_at_a_time",
    "ordered_colors",
    "ordinal",
    "percentile_rank",
    "plural",
    "rate_of",
    "save",
    "strings",
    "style",
    "unmodified",
    "values",
]


# -- fmt --------------------------------------------------------------------------------------------
def four_significant(df: pd.DataFrame) -> pd.DataFrame:
    """fmt: every float column rounded to 4 significant digits (NaN and ±inf stay), for the
    tables a study writes as Markdown and CSV."""

    def round4(x):
        return float(f"{x:.4g}") if math.isfinite(x) else x

    return df.apply(lambda c: c.map(round4) if c.dtype.kind == "f" else c)


def values(s) -> str:
    """fmt: the distinct numbers of ``s``, sorted, as '0.5, 1, 2' (``:g``)."""
    return ", ".join(f"{v:g}" for v in sorted(pd.unique(s.astype(float))))


def strings(s) -> str:
    """fmt: the distinct values of ``s`` as text, sorted, as 'sigmoid, tanh'."""
    return ", ".join(sorted(map(str, pd.unique(s))))


def plural(n: int, word: str) -> str:
    """fmt: '1 seed', '5 seeds'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def ordinal(percentile: float) -> str:
    """fmt: a percentile rounded to a whole number, as '1st', '22nd', '43rd', '64th', '100th'."""
    n = int(round(percentile))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Text:
    """fmt: a study's prose, kept as Markdown next to its code (``text.md`` in its package).

    The file is a list of templates, each under a heading ``## <key>``; what comes before the
    first heading is a note for the reader. A template's lines are joined by single spaces, so
    that a sentence may be wrapped in the file. Its placeholders are named (``{cells}``,
    ``{gap:.3g}``, ``{{`` for a brace) and filled by ``str.format_map`` from the numbers the
    study computes: ``text("key", cells=12, gap=0.01)``."""

    def __init__(self, package: str, name: str = "text.md"):
        self.templates: dict[str, str] = {}
        key = None
        for line in resources.files(package).joinpath(name).read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                key = line[3:].strip()
                self.templates[key] = ""
            elif key is not None and line.strip():
                self.templates[key] = f"{self.templates[key]} {line.strip()}".lstrip()

    def __call__(self, key: str, **numbers) -> str:
        return self.templates[key].format_map(numbers)


# -- select -----------------------------------------------------------------------------------------
def unmodified(runs: pd.DataFrame) -> np.ndarray:
    """select: which runs are plain networks: no residual connection, no normalisation (a null
    ``norm`` or "none": ``load`` writes "none" where ``load_results`` keeps the null)."""
    keep = np.ones(len(runs), bool)
    if "residual" in runs:
        keep &= ~runs["residual"].astype(bool).to_numpy()
    if "norm" in runs:
        norm = runs["norm"].astype(object)
        keep &= (norm.isna() | (norm == "none")).to_numpy()
    return keep


def matching(runs: pd.DataFrame, config: dict) -> np.ndarray:
    """select: which runs have every value of ``config`` (column -> value)."""
    keep = np.ones(len(runs), bool)
    for k, v in config.items():
        keep &= (runs[k] == v).to_numpy()
    return keep


def one_at_a_time(compute: Callable) -> Callable:
    """select: ``compute(results)`` remembered for the last ``results`` object it was given (the
    same object, not an equal one), so that a study's ``tables``, ``figures`` and ``sections``
    called in turn on one folder compute its per-run tables once."""
    last: list = []

    def remembered(results):
        if not last or last[0] is not results:
            last[:] = [results, compute(results)]
        return last[1]

    remembered.__doc__, remembered.__wrapped__ = compute.__doc__, compute
    return remembered


# -- measures ---------------------------------------------------------------------------------------
def rate_of(layers, log_sq_norm) -> float:
    """measures: −(least-squares slope of ln ‖δ^l‖² against l): the per-layer change of ln ‖δ‖²
    going one layer toward the input (ln χ1 in the theory). NaN if any value is not finite."""
    y = np.asarray(log_sq_norm, float)
    if len(y) < 2 or not np.isfinite(y).all():
        return math.nan
    return -float(np.polyfit(np.asarray(layers, float), y, 1)[0])


def percentile_rank(value: float, sample) -> float:
    """measures: the percentile of ``value`` in ``sample``: 100 × (#{x < value} + ½ #{x = value}) / n.

    The share of the sample below the value, ties counting half ("mid-rank"): 50 when it is
    the sample's median, 0 below every draw, 100 above every draw, 50 when every draw equals it.
    Below 5 or above 95 means fewer than 1 in 20 of the draws are that far out. NaN for an
    empty sample or a NaN value."""
    x = np.asarray(sample, float)
    x = x[~np.isnan(x)]
    if len(x) == 0 or np.isnan(value):
        return np.nan
    return 100.0 * (np.sum(x < value) + 0.5 * np.sum(x == value)) / len(x)


# -- plots ------------------------------------------------------------------------------------------
def cell_edges(centres) -> np.ndarray:
    """plots: the cell edges of a heatmap around sorted centres: midpoints, the ends mirrored."""
    v = np.asarray(sorted(centres), float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])

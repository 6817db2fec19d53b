"""Interactive figures: Vega-Lite specs, written with Altair, that the HTML report draws offline.

A study's ``charts(results)`` returns ``Chart`` values: the tidy rows a figure draws (``data``,
read from the parquet tables) and a function that turns such rows into an Altair chart
(``draw``). The report calls ``spec`` on each, which

* adds one *filter* per sweep axis the rows have (``AXES``: depth, loss, activation, ...): a
  Vega-Lite parameter ``f_<axis>`` (null: every value) and a filter on it, so that the page's
  filter bar acts on every figure at once;
* facets by results folder when the rows come from several folders (``facet``);
* leaves out the schema address (the page makes no request, not even a name lookup);
* packs its rows into columns (``pack``; numbers to 5 significant digits), which the page
  unpacks before drawing.

The static seaborn figures stay the reference (PNG and SVG in ``figures/``); a chart is the same
figure to hover, zoom, filter and toggle. ``sample_steps`` thins long curves for the page, and the
chart's ``note`` says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

# the sweep's axes the report can filter on, in the filter bar's order
AXES = (
    "folder",
    "dataset",
    "depth",
    "loss",
    "activation",
    "init",
    "remedy",
    "optimiser",
    "norm",
    "residual",
    "clip",
    "sigma_w",
    "lr",
)
FOLDER = "folder"  # the column that names a row's results folder in a report over several
WIDTH = 300  # one panel's width and height, in CSS pixels
HEIGHT = 220


@dataclass
class Chart:
    """One interactive figure: its rows, how they are drawn, and what the caption should add
    (e.g. that the curves are thinned). ``name`` is the key of the static figure it goes with."""

    name: str
    data: pd.DataFrame
    draw: Callable[[pd.DataFrame], alt.TopLevelMixin]
    note: str = ""


def axes_of(data: pd.DataFrame) -> list[str]:
    """The filterable axes among ``data``'s columns."""
    return [a for a in AXES if a in data.columns]


def param(axis: str) -> str:
    return f"f_{axis}"


def _json_value(v):
    """A value as the page's JSON has it (NumPy scalars to Python; NaN to None)."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def values_of(data: pd.DataFrame, axis: str) -> list:
    """The distinct values of one axis, sorted, as JSON values (no missing ones)."""
    vals = [_json_value(v) for v in pd.unique(data[axis].dropna())]
    return sorted((v for v in vals if v is not None), key=lambda v: (isinstance(v, str), v))


def _channel(cls, field: str, prefix: str | None, sort: list | None):
    header = alt.Header(labelExpr=f"'{prefix} ' + datum.value") if prefix else alt.Header()
    return cls(field if ":" in field else f"{field}:N", title=None, header=header, sort=sort or "ascending")


def facet(
    chart: alt.Chart,
    data: pd.DataFrame,
    row: str | None = None,
    column: str | None = None,
    row_prefix: str | None = None,
    column_prefix: str | None = None,
    row_sort: list | None = None,
    column_sort: list | None = None,
):
    """``chart`` in panels by ``row`` and ``column`` (headers 'depth 4' with a prefix; a given
    order with a sort), with the results folder as the rows when the data come from several
    folders (folder and ``row`` together when both are set)."""
    if FOLDER in data and data[FOLDER].nunique() > 1:
        if row is None:
            row, row_prefix, row_sort = FOLDER, None, None
        else:
            chart = chart.transform_calculate(_panel=f"datum.{FOLDER} + ' · ' + datum.{row}")
            row, row_prefix, row_sort = "_panel:N", None, None
    if row is None and column is None:
        return chart
    enc = {}
    if row is not None:
        enc["row"] = _channel(alt.Row, row, row_prefix, row_sort)
    if column is not None:
        enc["column"] = _channel(alt.Column, column, column_prefix, column_sort)
    return chart.facet(**enc)


PAGE_WIDTH = 720  # what a chart's panels share, besides axes and legend, in the report's column


def panel_width(data: pd.DataFrame, column: str | None) -> int:
    """One panel's width when ``column`` makes the panels of a row: they fit the page together."""
    n = data[column].nunique() if column and column in data else 1
    return max(140, min(WIDTH, PAGE_WIDTH // max(n, 1)))


def log_scale(**kw) -> alt.Scale:
    return alt.Scale(type="log", **kw)


def log_axis(title: str) -> alt.Axis:
    """A log axis labelled in powers of ten ('1e-6'), not in long decimals."""
    return alt.Axis(title=title, format="~e", tickCount=6)


def legend_toggle(field: str) -> tuple[alt.Parameter, alt.ValueChannelMixin]:
    """A selection bound to the legend of ``field`` (click an entry to show it alone, shift-click
    for several) and the opacity that dims the rest."""
    sel = alt.selection_point(name=f"legend_{field}", fields=[field], bind="legend")
    return sel, alt.condition(sel, alt.value(1.0), alt.value(0.08))


def sample_steps(data: pd.DataFrame, key: list[str], at_most: int = 60) -> tuple[pd.DataFrame, bool]:
    """Keep at most ``at_most`` logged steps per curve (``key``: the columns naming a curve),
    evenly spread and always the first and the last: (rows, whether any were left out)."""
    keep = []
    thinned = False
    for _, g in data.groupby(key, sort=False, dropna=False):
        steps = np.sort(g["step"].unique())
        if len(steps) > at_most:
            thinned = True
            steps = steps[np.unique(np.round(np.linspace(0, len(steps) - 1, at_most)).astype(int))]
        keep.append(g[g["step"].isin(steps)])
    return (pd.concat(keep) if keep else data.iloc[:0]), thinned


def spec(chart: Chart, data: pd.DataFrame | None = None) -> dict:
    """The Vega-Lite JSON of ``chart`` (over ``data``, default its own rows) with a filter
    parameter per axis: ``f_<axis>`` null shows every value."""
    data = chart.data if data is None else data
    with alt.data_transformers.disable_max_rows():  # the page's size is kept down by sample_steps
        out = chart.draw(data).to_dict()
    out.pop("$schema", None)
    _no_own_data(out)
    axes = axes_of(data)
    if axes:
        out["params"] = [*out.get("params", []), *({"name": param(a), "value": None} for a in axes)]
        # a row without a value on an axis (a theory curve, a reference line) stays under any filter
        test = " && ".join(
            f"({param(a)} === null || !isValid(datum[{json.dumps(a)}]) || datum[{json.dumps(a)}] === {param(a)})"
            for a in axes
        )
        out["transform"] = [{"filter": test}, *out.get("transform", [])]
    out["datasets"] = {k: pack(v) for k, v in out.get("datasets", {}).items()}
    return out


def _no_own_data(vl: dict, top: bool = True) -> None:
    """The filters sit at the top of the spec: a part with data of its own would escape them."""
    if not top and "data" in vl:
        raise ValueError("a chart's panels must share the top-level data (filter with transform_filter instead)")
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for part in vl.get(key, []):
            _no_own_data(part, top=False)
    if "spec" in vl:
        _no_own_data(vl["spec"], top=False)


SIGNIFICANT = 5  # digits a number keeps in the page (the parquet tables keep every digit)


def _round(x: float):
    return None if not math.isfinite(x) else float(f"{x:.{SIGNIFICANT}g}")


def pack(rows: list[dict]) -> dict:
    """A data set in columns, for a smaller page: ``{"n": rows, "columns": {name: {"values": [...]}
    or {"levels": [...], "codes": [...]}}}`` (text as codes into its distinct values; numbers to
    ``SIGNIFICANT`` digits). ``report.js`` unpacks it into rows before Vega-Lite sees it."""
    frame = pd.DataFrame(rows)
    cols = {}
    for c in frame.columns:
        v = frame[c]
        if v.map(lambda x: isinstance(x, str) or x is None).all() and v.notna().any():
            codes, levels = pd.factorize(v, use_na_sentinel=True)
            cols[c] = {"levels": list(levels), "codes": codes.tolist()}
        else:
            cols[c] = {"values": [_round(x) if isinstance(x, float) else x for x in v.tolist()]}
    return {"n": len(frame), "columns": cols}


def unpack(packed: dict) -> pd.DataFrame:
    """The rows of a packed data set (what the page draws from), as a table."""
    out = {}
    for c, col in packed["columns"].items():
        if "levels" in col:
            levels = col["levels"]
            out[c] = [levels[i] if i >= 0 else None for i in col["codes"]]
        else:
            out[c] = col["values"]
    return pd.DataFrame(out, index=range(packed["n"]))


def embedded_rows(vl: dict) -> pd.DataFrame:
    """The rows a spec carries (its inline data sets, in order): what the page draws from."""
    frames = [unpack(d) for d in vl.get("datasets", {}).values()]  # ``spec`` packs every data set
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

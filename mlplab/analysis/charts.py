"""Interactive figures: Vega-Lite specs, written with Altair, that the HTML report draws offline.

A study's ``charts(results)`` returns ``Chart`` values: the tidy rows a figure draws (``data``,
read from the parquet tables) and a function that turns such rows into an Altair chart
(``draw``). The report calls ``spec`` on each, which

* adds one *filter* per sweep axis the rows have (``AXES``: depth, loss, activation, ...): a
  Vega-Lite parameter ``f_<axis>`` (null: every value) and a filter on it, so that the page's
  filter bar acts on every figure at once;
* facets by results folder when the rows come from several folders (``facet``);
* leaves out the schema address (the page makes no request, not even a name lookup).

The static seaborn figures stay the reference (PNG and SVG in ``figures/``); a chart is the same
figure to hover, zoom, filter and toggle. ``sample_steps`` thins long curves for the page, and the
chart's ``note`` says so.
"""

from __future__ import annotations

import json
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


def facet(chart: alt.Chart, data: pd.DataFrame, row: str | None = None, column: str | None = None, **kw):
    """``chart`` in panels by ``row`` and ``column``, with the results folder as the rows when
    the data come from several folders (folder and ``row`` together when both are set)."""
    if FOLDER in data and data[FOLDER].nunique() > 1:
        if row is None:
            row = FOLDER
        else:
            chart = chart.transform_calculate(_panel=f"datum.{FOLDER} + ' · ' + datum.{row}")
            row = "_panel:N"
    if row is None and column is None:
        return chart
    enc = {}
    if row is not None:
        enc["row"] = alt.Row(row if ":" in row else f"{row}:N", title=None)
    if column is not None:
        enc["column"] = alt.Column(column if ":" in column else f"{column}:N", title=None)
    return chart.facet(**enc, **kw)


def legend_toggle(field: str) -> tuple[alt.Parameter, alt.ValueChannelMixin]:
    """A selection bound to the legend of ``field`` (click an entry to show it alone, shift-click
    for several) and the opacity that dims the rest."""
    sel = alt.selection_point(fields=[field], bind="legend")
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
    out = chart.draw(data).to_dict()
    out.pop("$schema", None)
    axes = axes_of(data)
    if axes:
        out["params"] = [*out.get("params", []), *({"name": param(a), "value": None} for a in axes)]
        test = " && ".join(f"({param(a)} === null || datum[{json.dumps(a)}] === {param(a)})" for a in axes)
        out["transform"] = [{"filter": test}, *out.get("transform", [])]
    return out


def embedded_rows(vl: dict) -> pd.DataFrame:
    """The rows a spec carries (its inline data sets, in order): what the page draws from."""
    frames = [pd.DataFrame(rows) for rows in vl.get("datasets", {}).values()]
    if "values" in vl.get("data", {}):
        frames.append(pd.DataFrame(vl["data"]["values"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

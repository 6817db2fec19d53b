"""Analysis of mlplab results folders: the report and the studies (``python -m mlplab.analysis``).

Everything here reads the parquet tables through ``mlplab.load_results`` and never touches
training objects. ``load`` gives the three tables with the run configuration joined onto
``steps`` and ``layers``. The package is in layers: ``select`` (which runs), ``measures`` (what is
measured), ``verdicts`` (the statistics of a claim), ``fmt`` (numbers and tables as text),
``plots`` (figures), ``report`` and ``render`` (the report); each study is a package of
``studies/`` registered in ``studies.STUDIES`` (``study.Study``, the protocol).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplab.results import CONFIG_TYPES, Results, load_results

__all__ = ["load", "Results"]


def _decat(df: pd.DataFrame) -> pd.DataFrame:
    """Plain string columns instead of categoricals: groupby and filters then behave simply."""
    df = df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object)
    return df


def load(source) -> Results:
    """A ``Results`` (runs, steps, layers; spectra) from a folder path or an already loaded ``Results``.

    The config columns are joined onto ``steps`` and ``layers`` (``load_results``), with
    "none" for a null ``data_path`` or ``data_digest`` (``norm`` says "none" already: ``load_results``).
    Idempotent: a result of ``load`` passes through.
    """
    if isinstance(source, Results) and source.for_analysis:
        return source
    raw = load_results(Path(source.path if isinstance(source, Results) else source))
    return Results(
        *(_plain_norm(_decat(t)) for t in (raw.runs, raw.steps, raw.layers)),
        Path(raw.path),
        for_analysis=True,
        spectra=_decat(raw.spectra),
    )


def _plain_norm(df: pd.DataFrame) -> pd.DataFrame:
    """A config value that is null (``data_path`` and ``data_digest`` without a data file) says
    "none" here, so that groupings keep those runs (a null ``norm`` of an old results folder
    reads "none" already: ``mlplab.results.load_results``)."""

    for c in ("data_path", "data_digest"):
        if c in df and c in CONFIG_TYPES:
            df[c] = df[c].where(df[c].notna(), "none")
    return df

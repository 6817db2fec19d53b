"""Analysis of mlplab results folders: claims, figures, the blog table and the report.

Everything here reads the parquet tables through ``mlplab.load_results`` and never touches
training objects. ``load`` gives the three tables with the run configuration joined onto
``steps`` and ``layers``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mlplab.results import Results, ResultsError, load_results

__all__ = ["load", "Results"]


def _decat(df: pd.DataFrame) -> pd.DataFrame:
    """Plain string columns instead of categoricals: groupby and filters then behave simply."""
    df = df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object)
    return df


def load(source) -> Results:
    """A ``Results`` (runs, steps, layers) from a folder path or an already loaded ``Results``.

    The config columns are joined onto ``steps`` and ``layers`` (``load_results``), with
    "none" for a null ``data_path`` or ``data_digest`` (``norm`` says "none" already: ``load_results``).
    Idempotent: a result of ``load`` passes through.
    """
    if isinstance(source, Results) and source.for_analysis:
        return source
    raw = load_results(Path(source.path if isinstance(source, Results) else source))
    return Results(
        *(_plain_norm(_decat(t)) for t in (raw.runs, raw.steps, raw.layers)), Path(raw.path), for_analysis=True
    )


def _plain_norm(df: pd.DataFrame) -> pd.DataFrame:
    """A config value that is null (``data_path`` and ``data_digest`` without a data file) says
    "none" here, so that groupings keep those runs (a null ``norm`` of an old results folder
    reads "none" already: ``mlplab.results.load_results``)."""
    from mlplab.results import CONFIG_TYPES

    for c in ("data_path", "data_digest"):
        if c in df and c in CONFIG_TYPES:
            df[c] = df[c].where(df[c].notna(), "none")
    return df


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit code 2
        self.exit(2, f"mlplab: {self.prog}: {message} (--help shows the usage)\n")


def command(action: Callable[[str], str], argv: list[str] | None, default: str) -> int:
    """The shared entry of the analysis commands: ``action(folder)`` on one results folder
    (``default`` when none is given), its text printed; ``--help`` prints the usage (the
    command module's docstring); bad arguments, or a folder that is missing or not mlplab's,
    give one line on stderr and exit code 2."""
    module = sys.modules[action.__module__]
    name = module.__spec__.name if module.__spec__ else action.__module__
    doc = (module.__doc__ or "").strip()
    parser = _Parser(
        prog=f"python -m {name}",
        description=doc.split("\n")[0],
        epilog="\n".join(doc.split("\n")[1:]).strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "results",
        nargs="?",
        default=default,
        help=f"an mlplab results folder, <results_dir>/<sweep_name> (default: {default})",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        # normalised ('results/x/runs/..' is 'results/x'): the files a command writes beside or
        # inside the folder are named after its real name, never '..'
        print(action(os.path.normpath(args.results)))
    except ResultsError as e:
        print(f"mlplab: {e}", file=sys.stderr)
        return 2
    return 0

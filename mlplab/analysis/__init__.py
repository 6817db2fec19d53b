"""Analysis of mlplab results folders: the report and the studies (``python -m mlplab.analysis``).

Everything here reads the parquet tables through ``mlplab.load_results`` and never touches
training objects. ``load`` gives the three tables with the run configuration joined onto
``steps`` and ``layers``. The package is in layers: ``select`` (which runs), ``measures`` (what is
measured), ``verdicts`` (the statistics of a claim), ``fmt`` (numbers and tables as text),
``plots`` (figures), ``report`` and ``render`` (the report); each study is a package of
``studies/`` registered in ``studies.STUDIES`` (``study.Study``, the protocol).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mlplab.results import CONFIG_TYPES, Results, ResultsError, load_results

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

    for c in ("data_path", "data_digest"):
        if c in df and c in CONFIG_TYPES:
            df[c] = df[c].where(df[c].notna(), "none")
    return df


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit code 2
        self.exit(2, f"mlplab: {self.prog}: {message} (--help shows the usage)\n")


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A command's parser: the first line of ``doc`` as its description, the rest as the epilog
    of ``--help``; an argument error is one line on stderr and exit code 2."""
    doc = (doc or "").strip()
    return _Parser(
        prog=prog,
        description=doc.split("\n")[0],
        epilog="\n".join(doc.split("\n")[1:]).strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_on(action: Callable[[str], str], folder: str) -> int:
    """``action(folder)``, its text printed (exit code 0); a folder that is missing or not
    mlplab's is one line on stderr and exit code 2."""
    try:
        # normalised ('results/x/runs/..' is 'results/x'): the files a command writes beside or
        # inside the folder are named after its real name, never '..'
        print(action(os.path.normpath(folder)))
    except ResultsError as e:
        print(f"mlplab: {e}", file=sys.stderr)
        return 2
    return 0


def command(action: Callable[[str], str], argv: list[str] | None, default: str) -> int:
    """A command on one results folder: ``action(folder)`` (``default`` when none is given), its
    text printed; ``--help`` prints the usage (the command module's docstring); bad arguments, or
    a folder that is missing or not mlplab's, give one line on stderr and exit code 2."""
    module = sys.modules[action.__module__]
    name = module.__spec__.name if module.__spec__ else action.__module__
    p = parser(f"python -m {name}", module.__doc__)
    p.add_argument(
        "results",
        nargs="?",
        default=default,
        help=f"an mlplab results folder, <results_dir>/<sweep_name> (default: {default})",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    return run_on(action, args.results)

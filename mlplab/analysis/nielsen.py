"""Nielsen's "speed of learning" per hidden layer, side by side with ours.

    python -m mlplab.analysis.nielsen results/nielsen_mnist

writes ``nielsen_table.md`` (his values in our distributions, in words and tables),
``nielsen_table.csv``, ``nielsen_percentiles.csv`` and the figures (``figures/``) of a Nielsen
results folder. The study is ``mlplab.analysis.studies.nielsen``; this module is its command
until the one command of the analysis takes its place.
"""

from __future__ import annotations

from mlplab.analysis import command
from mlplab.analysis.studies.nielsen import STUDY


def write_tables(folder) -> str:
    """The study's tables, sentences and figures for ``folder`` (``STUDY.write``)."""
    return STUDY.write(folder)


def main(argv: list[str] | None = None) -> int:
    """``python -m mlplab.analysis.nielsen [results/nielsen_mnist]``."""
    return command(write_tables, argv, "results/nielsen_mnist")


if __name__ == "__main__":
    raise SystemExit(main())

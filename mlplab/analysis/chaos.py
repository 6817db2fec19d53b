"""The edge-of-chaos study: Schoenholz et al. (2017), "Deep Information Propagation", measured.

    python -m mlplab.analysis.chaos results/chaos

writes ``chaos_table.md`` (what was run, short tables and the computed statements),
``chaos_table.csv`` (the decay per layer), ``chaos_train_table.csv`` (trainability) and the
figures (``figures/``) of a results folder. The study is ``mlplab.analysis.studies.chaos``; this
module is its command until the one command of the analysis takes its place.
"""

from __future__ import annotations

from mlplab.analysis import command
from mlplab.analysis.studies.chaos import STUDY


def write_outputs(folder) -> str:
    """The study's tables, sentences and figures for ``folder`` (``STUDY.write``)."""
    return STUDY.write(folder)


def main(argv: list[str] | None = None) -> int:
    """``python -m mlplab.analysis.chaos [results/chaos]``."""
    return command(write_outputs, argv, "results/chaos")


if __name__ == "__main__":
    raise SystemExit(main())

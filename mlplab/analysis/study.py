"""What a study is: one small protocol that the report and the command line loop over.

A study (the blog post's claims, the remedies, Nielsen's speeds of learning, the edge of chaos,
or one of your own) is a package ``mlplab/analysis/studies/<name>/`` whose ``STUDY`` object has
the methods below, and one line in ``mlplab.analysis.studies.STUDIES``. It reads a ``Results``
(``mlplab.analysis.load``: parquet, never training objects) and builds on the shared layers:
``select`` (which runs), ``measures`` (ratios, rates, decay per layer), ``fmt`` (numbers and
tables as text) and ``plots`` (style, palettes, saving). Its prose lives as Markdown next to it
(``<name>/prose.md``, read by ``mlplab.analysis.prose``), with named placeholders that its
Python fills with numbers. ``docs/write-a-study.md`` writes one from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import markdown_table, pretty
from mlplab.results import Results


class Study(Protocol):
    name: str  # the registry key and the command: python -m mlplab.analysis <name> <folder>
    title: str  # one line, the heading of its part of the report

    def applies(self, results: Results) -> bool:
        """Whether the folder holds runs this study can say something about: the report shows
        the study's sections only then."""

    def tables(self, results: Results) -> dict[str, pd.DataFrame]:
        """Its tables by name."""

    def figures(self, results: Results, folder: Path) -> dict[str, list[Path] | str]:
        """Its figures by name, saved into ``folder``: [png, svg] each, or a note saying why a
        figure was skipped."""

    def sections(self, results: Results, figures: dict[str, list[Path] | str]) -> list[Block]:
        """Its part of the report, with the figures made by ``figures``."""

    def write(self, results: Results) -> str:
        """What ``python -m mlplab.analysis <name> <folder>`` does: write its tables and figures
        (``write_files`` for the usual ones) and return the text the command prints."""

    # Optional, for the report's first screen (``optional`` returns None for a study without them):
    #
    # def verdict_cells(self, results) -> pd.DataFrame | None:
    #     """Its verdicts as the verdict map's cells (``mlplab.analysis.verdictmap.COLUMNS``)."""
    #
    # def charts(self, results) -> dict[str, Chart]:
    #     """Interactive versions of its figures (``mlplab.analysis.charts.Chart``), by the
    #     figure's name in ``figures``; a figure without one shows as a static image."""
    #
    # def headline(self, results) -> str | None:
    #     """The study's answer to its question in one paragraph, with its evidence: shown on the
    #     report's first screen, under its verdict map."""
    #
    # def cases(self, results) -> pd.DataFrame | None:
    #     """Every case behind its verdicts, one row each: the report's searchable table and CSV."""


def optional(study: Study, method: str, results: Results):
    """``study.<method>(results)``, or None when the study does not have that method."""
    f = getattr(study, method, None)
    return None if f is None else f(results)


def write_files(study: Study, results: Results) -> str:
    """The usual ``write``: each table as ``<folder>/<name>.md`` (numbers shortened) and
    ``.csv`` (every digit), the figures into ``<folder>/figures``; 'wrote <files>'."""
    folder = Path(results.path)
    written: list[Path] = []
    for name, table in study.tables(results).items():
        md, csv = folder / f"{name}.md", folder / f"{name}.csv"
        md.write_text(markdown_table(pretty(table)) + "\n", encoding="utf-8")
        table.to_csv(csv, index=False)
        written += [md, csv]
    for made in study.figures(results, folder / "figures").values():
        written += [] if isinstance(made, str) else made
    return "wrote " + ", ".join(map(str, written))

"""What a study is: one small protocol that the report and the command line loop over.

A study (the blog post's claims, the remedies, Nielsen's speeds of learning, the edge of chaos,
or one of your own) is a package ``mlplab/analysis/studies/<name>/`` whose ``STUDY`` object has
the methods below, and one line in ``mlplab.analysis.studies.STUDIES``. It reads a ``Results``
(``mlplab.analysis.load``: parquet, never training objects) and builds on the shared layers:
``select`` (which runs), ``measures`` (ratios, rates, decay per layer), ``fmt`` (numbers and
tables as text) and ``plots`` (style, palettes, saving). Its prose lives as Markdown templates
next to it, in ``experiments/<name>/``, with named placeholders that its Python fills with numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.results import Results


class Study(Protocol):
    name: str  # the registry key and the command: python -m mlplab.analysis <name> <folder>
    title: str  # one line, the heading of its part of the report

    def applies(self, results: Results) -> bool:
        """Whether the folder holds runs this study can say something about."""

    def tables(self, results: Results) -> dict[str, pd.DataFrame]:
        """Its tables by name (written as <folder>/<name>.{md,csv,parquet} by the command)."""

    def figures(self, results: Results, folder: Path) -> dict[str, list[Path]]:
        """Its figures by name, saved into ``folder`` (PNG and SVG each)."""

    def sections(self, results: Results, figures: dict[str, list[Path]]) -> list[Block]:
        """Its part of the report, with the figures made by ``figures``."""

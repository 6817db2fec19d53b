"""The pieces a report is built from: each study returns a list of blocks, which
``mlplab.analysis.report`` orders and ``mlplab.analysis.render`` renders twice, to Markdown and to
one self-contained HTML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Block:
    """One piece of a report. ``kind`` and ``body``:

    * ``h1`` to ``h4``, ``p``, ``summary`` (the report's first line): text (inline `code`,
      **bold**, *italic*, and $…$ maths)
    * ``list``: a list of such texts
    * ``table``: a DataFrame (numbers are shortened to 3 significant digits when rendered)
    * ``figure``: the path of a PNG (an SVG of the same name sits next to it); ``caption`` text
    * ``chart``: a Vega-Lite spec (``mlplab.analysis.charts.spec``), drawn interactively in the
      HTML; ``files``: its static PNGs (the fallback without JavaScript, in print, and the
      Markdown's figure); ``caption`` text
    * ``filters``: where the HTML's filter bar goes (built from every chart of the page)
    * ``details``: a list of blocks shown collapsed in the HTML; ``caption``: its one-line summary
    * ``datatable``: a DataFrame shown as a sortable, searchable table; ``files``: the CSV (and
      parquet) beside the report that holds every row; ``caption`` text
    * ``code``: verbatim text
    """

    kind: str
    body: object
    caption: str = ""
    files: list[Path] = field(default_factory=list)


def walk(blocks: list[Block]):
    """Every block, those inside ``details`` too, in order."""
    for b in blocks:
        yield b
        if b.kind == "details":
            yield from walk(b.body)

"""The pieces a report is built from: each study module returns a list of blocks, which
``mlplab.analysis.report`` renders twice, to Markdown and to self-contained HTML."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Block:
    """One piece of a report. ``kind`` and ``body``:

    * ``h1``/``h2``/``h3``, ``p``: text (inline `code`, **bold**, *italic*, and $…$ maths)
    * ``list``: a list of such texts
    * ``table``: a DataFrame (numbers are shortened to 3 significant digits when rendered)
    * ``figure``: the path of a PNG (an SVG of the same name sits next to it); ``caption`` text
    * ``code``: verbatim text
    """

    kind: str
    body: object
    caption: str = ""

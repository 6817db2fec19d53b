"""The old import path of the figure helpers, for ``nielsen.py`` and ``chaos.py`` and their tests
until they move into ``studies/``: the shared ``mlplab.analysis.plots`` under its old names.
This module goes with them."""

from mlplab.analysis.plots import MIN_TEXT_PX, ordered_colors, save, style, text_px_in_report
from mlplab.analysis.plots import FigureSkipped as Skip

__all__ = ["MIN_TEXT_PX", "Skip", "ordered_colors", "save", "style", "text_px_in_report"]

"""The old import path of ``markdown_table``, for ``nielsen.py`` and ``chaos.py`` until they move
into ``studies/`` (the shared ``mlplab.analysis.fmt``). This module goes with them."""

from mlplab.analysis.fmt import markdown_table

__all__ = ["markdown_table"]

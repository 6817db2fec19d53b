"""Every study, by name: the report loops over this registry, and ``python -m mlplab.analysis
<name> <folder>`` runs one. Adding a study is a package next to this file and one line here."""

from __future__ import annotations

from mlplab.analysis.study import Study

STUDIES: dict[str, Study] = {}

"""Every study, by name: the report loops over this registry (in this order), and
``python -m mlplab.analysis <name> <folder>`` runs one. Adding a study is a package next to this
file and one line here (``docs/write-a-study.md``)."""

from __future__ import annotations

from mlplab.analysis.study import Study

STUDIES: dict[str, Study] = {}

# imported after STUDIES exists: the blog study looks the others up in it
from mlplab.analysis.studies import blog, chaos, isometry, nielsen, optimisers, remedies  # noqa: E402

STUDIES["blog"] = blog.STUDY
STUDIES["remedies"] = remedies.STUDY
STUDIES["optimisers"] = optimisers.STUDY
STUDIES["nielsen"] = nielsen.STUDY
STUDIES["chaos"] = chaos.STUDY
STUDIES["isometry"] = isometry.STUDY

"""The blog post's study: its formulas, errata and claims checked (``formulas``, ``claims``,
``table``), its figures (``figures``) and its part of the report (``sections``).

Every folder gets it: a folder that cannot test the post's claims says so, a folder that
belongs to another study (one of the other registered studies applies) shows the claims'
verdicts in brief, and the blog's own folders the whole story.
"""

from __future__ import annotations

from pathlib import Path

from mlplab.analysis import studies
from mlplab.analysis.studies.blog import charts, sections, table, wording
from mlplab.analysis.studies.blog.figures import make_figures


class Blog:
    name = "blog"
    title = "The blog post, checked"

    def __init__(self):
        self._last = None  # (results, mode, blog table): figures and sections of one report share them

    def applies(self, results) -> bool:
        return True  # a folder that cannot test a claim is told so

    def _framing(self, results) -> tuple[str, object]:
        """('full' | 'brief' | 'untestable', the blog table) for ``results``."""
        if self._last is None or self._last[0] is not results:
            tab = table.blog_table(results)
            if not sections.testable(tab):
                mode = "untestable"
            elif any(s.applies(results) for s in studies.STUDIES.values() if s is not self):
                mode = "brief"
            else:
                mode = "full"
            self._last = (results, mode, tab)
        return self._last[1], self._last[2]

    def tables(self, results) -> dict:
        return {"blog_table": table.blog_table(results), "blog_claim_cases": wording.claim_cases(results)}

    def figures(self, results, folder: Path) -> dict:
        return make_figures(results, folder) if self._framing(results)[0] == "full" else {}

    def sections(self, results, figures: dict) -> list:
        mode, tab = self._framing(results)
        if mode == "untestable":
            return sections.section_cannot_test()
        if mode == "brief":
            return sections.section_brief(tab)
        return (
            sections.section_post()
            + sections.section_checks(results, tab)
            + sections.section_figures(figures)
            + sections.section_theory(results)
        )

    def verdict_cells(self, results):
        """The claims (rows) × data sets (columns; 'all' first when there are several); none for a
        folder that cannot test any claim."""
        return None if self._framing(results)[0] == "untestable" else wording.verdict_cells(results)

    def cases(self, results):
        return wording.claim_cases(results)

    def charts(self, results) -> dict:
        return charts.charts(results) if self._framing(results)[0] == "full" else {}

    def write(self, results) -> str:
        """The blog table next to the folder (``table.write_table``) and the figures in it."""
        paths = list(table.write_table(results).values())
        for made in make_figures(results).values():
            paths += [] if isinstance(made, str) else made
        return "wrote " + ", ".join(map(str, paths))


STUDY = Blog()

"""The remedies study: each of the post's cures on its own against its plain twin (``compare``),
with its figures (``figures``) and report section (``sections``); the remedies come from
``conf/remedy/`` (``arms``)."""

from __future__ import annotations

from pathlib import Path

from mlplab.analysis.studies.remedies import charts, sections
from mlplab.analysis.studies.remedies.compare import remedy_cases, steps_table, verdict_cells, verdicts
from mlplab.analysis.studies.remedies.figures import make_figures
from mlplab.analysis.study import write_files

BLOG_REMEDIES = {"relu", "norm clipping"}  # the blog claims 4a and 4b check these already


class Remedies:
    name = "remedies"
    title = sections.SECTION

    def applies(self, results) -> bool:
        """A remedy run with a plain twin, besides relu and norm clipping (the blog's claims 4a, 4b)."""
        c = remedy_cases(results)
        return not c.empty and bool(set(c["remedy"]) - BLOG_REMEDIES)

    def tables(self, results) -> dict:
        return {
            "remedies_verdicts": verdicts(results),
            "remedies_cases": remedy_cases(results),
            "remedies_steps": steps_table(results),
        }

    def figures(self, results, folder: Path) -> dict:
        return make_figures(results, folder)

    def charts(self, results) -> dict:
        """R1 and R2 as interactive charts (``charts``), those the folder has runs for."""
        return charts.charts(results)

    def sections(self, results, figures: dict) -> list:
        return sections.sections(results, figures)

    def verdict_cells(self, results):
        return verdict_cells(results)

    def cases(self, results):
        return remedy_cases(results)

    def write(self, results) -> str:
        return write_files(self, results)


STUDY = Remedies()

"""The optimisers study: sgd, momentum, adam and rmsprop, each at its own best learning rate,
against one another by seed (``compare``), with its figures (``figures``, ``charts``) and report
section (``sections``). Its question: does Adam cure vanishing gradients, or only hide them?"""

from __future__ import annotations

from pathlib import Path

from mlplab.analysis.studies.optimisers import charts, sections
from mlplab.analysis.studies.optimisers.compare import all_runs, best_rates, cases, steps_table, verdict_cells, verdicts
from mlplab.analysis.studies.optimisers.figures import make_figures
from mlplab.analysis.study import write_files


class Optimisers:
    name = "optimisers"
    title = sections.SECTION

    def applies(self, results) -> bool:
        """Runs of sgd and of an adaptive optimiser (adam, rmsprop) in one folder."""
        arms = set(all_runs(results)["optim"])
        return "sgd" in arms and bool(arms & {"adam", "adamw", "rmsprop"})

    def tables(self, results) -> dict:
        return {
            "optimisers_verdicts": verdicts(results),
            "optimisers_cases": cases(results),
            "optimisers_rates": best_rates(results),
            "optimisers_steps": steps_table(results),
        }

    def figures(self, results, folder: Path) -> dict:
        return make_figures(results, folder)

    def charts(self, results) -> dict:
        return charts.charts(results)

    def sections(self, results, figures: dict) -> list:
        return sections.sections(results, figures)

    def headline(self, results) -> str:
        """The answer to the title's question, from the verdicts (``sections.answer``)."""
        return sections.answer(results)

    def verdict_cells(self, results):
        return verdict_cells(results)

    def cases(self, results):
        return cases(results)

    def write(self, results) -> str:
        return write_files(self, results)


STUDY = Optimisers()

"""The dynamical isometry study: the singular values of the input–output Jacobian at
initialisation, per depth, activation and init at the edge of chaos, against the free-probability
theory of Pennington, Schoenholz & Ganguli (2017, 2018) (``mlplab.theory.jjt_moments``), and
whether orthogonal-critical tanh trains faster than Gaussian-critical tanh at depth ≥ 64.

    make isometry        (conf/sweep/isometry*.yaml into results/isometry, then the report)
    python -m mlplab.analysis isometry results/isometry

By job: ``measures`` (per-run moments and theory, the claims' cases and verdicts, the tables),
``figures`` (I1–I4), ``sections`` and ``prose.md`` (the words)."""

from __future__ import annotations

from pathlib import Path

from mlplab.analysis.studies.isometry import sections
from mlplab.analysis.studies.isometry.figures import make_figures
from mlplab.analysis.studies.isometry.measures import (
    all_cases,
    depth_runs,
    moments_table,
    steps_table,
    trained_pairs,
    verdict_cells,
    verdicts,
    width_table,
)
from mlplab.analysis.study import write_files


class Isometry:
    name = "isometry"
    title = sections.SECTION

    def applies(self, results) -> bool:
        """Spectra at initialisation, or trained Gaussian and orthogonal twins."""
        return not depth_runs(results).empty or not trained_pairs(results).empty

    def tables(self, results) -> dict:
        return {
            "isometry_verdicts": verdicts(results),
            "isometry_moments": moments_table(results),
            "isometry_width": width_table(results),
            "isometry_steps": steps_table(results),
            "isometry_cases": all_cases(results),
        }

    def figures(self, results, folder: Path) -> dict:
        return make_figures(results, folder)

    def sections(self, results, figures: dict) -> list:
        return sections.sections(results, figures)

    def headline(self, results) -> str | None:
        return sections.answer(results)

    def verdict_cells(self, results):
        return verdict_cells(results)

    def cases(self, results):
        return all_cases(results)

    def write(self, results) -> str:
        return write_files(self, results)


STUDY = Isometry()

"""The edge-of-chaos study: Schoenholz et al. (2017), "Deep Information Propagation", measured.

    python -m mlplab.analysis.chaos results/chaos

For W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²) mean-field theory (``mlplab.theory``) predicts that the
squared gradient of one input changes by χ1 = σ_w² E[φ'(z)²], z ~ N(0, q*), per layer toward the
input:

    ln ‖δ^l‖² − ln ‖δ^(l+1)‖² → ln χ1,        ‖δ^l‖² ∝ exp(−(L − l)/ξ_∇),  ξ_∇ = −1/ln χ1,

vanishing in the ordered phase (χ1 < 1), exploding in the chaotic one (χ1 > 1), and neither on the
critical line χ1 = 1. Two inputs' correlation settles over ξ_c = −1/ln(σ_w² E[φ'(u1) φ'(u2)]) at
its fixed point c*, and the paper reports networks trainable up to a depth of about 6 ξ_c.

Two kinds of runs are read back from a results folder (``conf/sweep/chaos.yaml`` and
``chaos_train.yaml`` make both, into ``results/chaos``):

* **at initialisation** — plain networks (``init=normal``, no residual, no normalisation) trained
  on one image with batch size 1: step 0's ‖∂C/∂b^l‖ = ‖δ^l‖ of a single input, the quantity
  the theory describes. ``decay_table`` fits the per-layer rate of ln ‖∂C/∂b^l‖² by least
  squares over the hidden layers away from both ends and sets it beside ln χ1 (the infinitely
  deep prediction) and beside the mean-field prediction along the same layers (the length map
  started from the measured second layer), which separates the ends of the net from the rest;
* **trained** — plain networks trained for more than one step: ``trainability_table`` counts the
  runs whose final training accuracy reaches ``ACC_TARGET``, against depth <= 6 ξ_c.

Provenance of "6 ξ_c": papers that build on Schoenholz et al. quote it (the maximum trainable
depth is about 6 ξ_c), and their code draws it; the primary text (arXiv:1611.01232) could not be
read here to confirm the constant, and a third-party reproduction drew ξ_c, 2 ξ_c and 4.5 ξ_c
instead. The multiple is therefore a parameter (``TRAIN_MULTIPLE``), and the tables report the
measured trainable depth in units of ξ_c as well.

By job: ``select`` (which runs), ``measures`` (rates, decay and trainability tables),
``figures``, ``sentences`` and ``text.md`` (the words), ``sections`` (the report's part,
``report_blocks``, and the command's files, ``write_outputs``). ``STUDY`` is the study as the
report and the command see it (``mlplab.analysis.study.Study``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.blocks import Block
from mlplab.analysis.select import one_at_a_time
from mlplab.analysis.studies.chaos import charts
from mlplab.analysis.studies.chaos.figures import (
    critical_line,
    fig_chaos_heatmap,
    fig_trainability,
    make_figures,
    xi_c_curve,
)
from mlplab.analysis.studies.chaos.measures import (
    ACC_TARGET,
    NEAR_CRITICAL,
    RATE_TOL,
    TRAIN_MULTIPLE,
    decay_table,
    multiple_brackets,
    path_rate,
    run_rates,
    trainability_table,
    trainable_depths,
)
from mlplab.analysis.studies.chaos.sections import (
    report_blocks,
    section_blocks,
    short_decay_table,
    short_train_table,
    write_outputs,
)
from mlplab.analysis.studies.chaos.select import (
    MIN_FIT_LAYERS,
    SKIP_INPUT,
    SKIP_OUTPUT,
    fit_layers,
    init_runs,
    present,
    train_runs,
)
from mlplab.analysis.studies.chaos.sentences import TEXT, decay_sentences, train_sentences, what_was_run

__all__ = [
    "ACC_TARGET",
    "MIN_FIT_LAYERS",
    "NEAR_CRITICAL",
    "RATE_TOL",
    "SKIP_INPUT",
    "SKIP_OUTPUT",
    "STUDY",
    "TRAIN_MULTIPLE",
    "critical_line",
    "decay_sentences",
    "decay_table",
    "fig_chaos_heatmap",
    "fig_trainability",
    "fit_layers",
    "init_runs",
    "make_figures",
    "multiple_brackets",
    "path_rate",
    "present",
    "report_blocks",
    "run_rates",
    "short_decay_table",
    "short_train_table",
    "train_runs",
    "train_sentences",
    "trainability_table",
    "trainable_depths",
    "what_was_run",
    "write_outputs",
    "xi_c_curve",
]


@one_at_a_time
def _measured(results) -> tuple:
    """(the loaded results, ``decay_table``, ``trainability_table``) of ``results``."""
    res = load(results)
    return res, decay_table(res), trainability_table(res)


class ChaosStudy:
    """The edge of chaos as a ``Study``. ``tables``, ``figures`` and ``sections`` called in turn
    on one ``Results`` fit its runs once."""

    name = "chaos"
    title = TEXT("section")

    def applies(self, results) -> bool:
        """Whether ``results`` hold single-input runs deep enough for a fit, or trained runs
        over a grid of ≥ 3 depths × ≥ 3 σ_w (``present``)."""
        return present(results)

    def tables(self, results) -> dict[str, pd.DataFrame]:
        """``chaos_table`` (the decay per layer) and ``chaos_train_table``, those with rows."""
        _, decay, train = _measured(results)
        return {name: t for name, t in (("chaos_table", decay), ("chaos_train_table", train)) if not t.empty}

    def figures(self, results, folder: Path) -> dict[str, list[Path]]:
        """``chaos_heatmap`` and ``chaos_trainability`` saved into ``folder``, those with runs."""
        res, decay, train = _measured(results)
        made = make_figures(res, Path(folder), decay=decay, train=train)
        return {name: paths for name, paths in made.items() if isinstance(paths, list)}

    def charts(self, results) -> dict:
        """``chaos_heatmap`` and ``chaos_trainability`` as interactive charts (``charts``), those with runs."""
        res, decay, train = _measured(results)
        return charts.charts(res, decay, train)

    def sections(self, results, figures: dict[str, list[Path]]) -> list[Block]:
        """The report section "Edge of chaos", with the figures of ``figures``; [] where the
        study does not apply."""
        if not present(results):
            return []
        res, decay, train = _measured(results)
        return section_blocks(res, decay, train, figures)

    def write(self, results) -> str:
        """What ``python -m mlplab.analysis chaos <folder>`` writes (``write_outputs``)."""
        return write_outputs(results)


STUDY = ChaosStudy()

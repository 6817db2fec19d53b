"""Nielsen's "speed of learning" per hidden layer, side by side with ours.

    python -m mlplab.analysis.nielsen results/nielsen_mnist

Michael Nielsen, *Neural Networks and Deep Learning*, ch. 5 ("The vanishing gradient problem"):
the speed of learning of hidden layer l is ‖∂C/∂b^l‖, the gradient averaged over 1,000
training images, for sigmoid nets with 30-unit hidden layers, cross-entropy cost (sigmoid
output: mlplab's ``bce``), W ~ N(0, 1/n_in), b ~ N(0, 1) (``init=normal``, σ_w = σ_b = 1), on
MNIST (784 inputs): at initialisation, and after each epoch of full-batch training (η = 0.1,
L2 with λ = 5.0 over n = 1,000 images). Each layer learns ≈ 4–5× slower than the next.

He measured one network per depth. Two studies repeat it with many seeds and read it back from
the ``layers`` table (hidden layers are l = 1..depth; layer depth+1 is the output layer):

* ``results/nielsen_mnist`` (``conf/sweep/nielsen_mnist.yaml`` at initialisation and
  ``nielsen_mnist_training.yaml`` during training): real MNIST digits, his protocol;
* ``results/nielsen`` (``conf/sweep/nielsen.yaml``): the same networks on the 8x8 digits.

By job: ``published`` (his numbers and setting), ``select`` (his runs, their speeds),
``measures`` (his values in our distributions: ``percentiles``), ``figures`` (``fig_init``,
``fig_training``), ``sentences`` and ``text.md`` (the words), ``sections`` (the report's part,
``report_blocks``, and the command's tables, ``write_tables``). ``STUDY`` is the study as the
report and the command see it (``mlplab.analysis.study.Study``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import ordinal
from mlplab.analysis.measures import percentile_rank
from mlplab.analysis.studies.nielsen import charts
from mlplab.analysis.studies.nielsen.figures import fig_init, fig_training, make_figures
from mlplab.analysis.studies.nielsen.measures import (
    nielsen_first_last,
    nielsen_table,
    nielsen_training,
    percentile_table,
    percentiles,
    slowdown_table,
    training_checkpoints,
    training_curves,
)
from mlplab.analysis.studies.nielsen.published import (
    NIELSEN,
    NIELSEN_CONFIG,
    NIELSEN_EPOCHS,
    NIELSEN_PROTOCOL,
    NIELSEN_TRAINING,
    is_his_protocol,
    nielsen_network,
)
from mlplab.analysis.studies.nielsen.sections import compared, draw, report_blocks, section_blocks, write_tables
from mlplab.analysis.studies.nielsen.sections import tables as _tables
from mlplab.analysis.studies.nielsen.select import FOLDERS, has_nielsens, hidden_speeds, nielsen_folders, speeds_at_init
from mlplab.analysis.studies.nielsen.sentences import TEXT, init_sentences, training_sentences

__all__ = [
    "FOLDERS",
    "NIELSEN",
    "NIELSEN_CONFIG",
    "NIELSEN_EPOCHS",
    "NIELSEN_PROTOCOL",
    "NIELSEN_TRAINING",
    "STUDY",
    "fig_init",
    "fig_training",
    "hidden_speeds",
    "init_sentences",
    "is_his_protocol",
    "make_figures",
    "nielsen_first_last",
    "nielsen_folders",
    "nielsen_network",
    "nielsen_table",
    "nielsen_training",
    "ordinal",
    "percentile_rank",
    "percentile_table",
    "percentiles",
    "report_blocks",
    "slowdown_table",
    "speeds_at_init",
    "training_checkpoints",
    "training_curves",
    "training_sentences",
    "write_tables",
]


class NielsenStudy:
    """Nielsen's speeds of learning as a ``Study``. Its part of a folder's report shows the
    Nielsen folders next to it (``FOLDERS``, MNIST first), so ``figures`` draws theirs."""

    name = "nielsen"
    title = TEXT("section")

    def applies(self, results) -> bool:
        """Whether ``results`` hold a run with his configuration (``NIELSEN_CONFIG``, plain)."""
        return has_nielsens(results)

    def tables(self, results) -> dict[str, pd.DataFrame]:
        """``nielsen_table`` (means over seeds) and ``nielsen_percentiles``, 4 significant digits."""
        return _tables(results)

    def figures(self, results, folder: Path) -> dict[str, list[Path]]:
        """``<name>_init`` and ``<name>_training`` of each Nielsen folder the section shows, saved
        into ``folder`` (a figure a folder lacks the runs for is left out)."""
        found, _ = compared(results.path, results)
        made = draw(found, Path(folder))
        return {
            f"{name}_{kind}": paths
            for name, kinds in made.items()
            for kind, paths in kinds.items()
            if isinstance(paths, list)
        }

    def charts(self, results) -> dict:
        """The figures of ``figures`` as interactive charts (``charts``), those with runs."""
        return charts.charts(results)

    def sections(self, results, figures: dict[str, list[Path]]) -> list[Block]:
        """The report section "Nielsen's speeds of learning", with the figures of ``figures``."""
        found, notes = compared(results.path, results)
        made = {}
        for res in found:
            name = Path(res.path).name
            made[name] = {kind: figures.get(f"{name}_{kind}", "skipped") for kind in ("init", "training")}
        return section_blocks(results.path, found, notes, made)

    def write(self, results) -> str:
        """What ``python -m mlplab.analysis nielsen <folder>`` writes (``write_tables``)."""
        return write_tables(Path(results.path))


STUDY = NielsenStudy()

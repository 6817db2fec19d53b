"""The Nielsen and chaos studies through the registry, until they become packages of their own
(``studies/nielsen/``, ``studies/chaos/``): thin adapters over ``mlplab.analysis.nielsen`` and
``mlplab.analysis.chaos``, which draw their figures inside their report blocks. This module goes
when those packages are registered."""

from __future__ import annotations

from pathlib import Path

from mlplab.analysis import chaos, nielsen


class _Nielsen:
    name = "nielsen"
    title = "Nielsen's speeds of learning"

    def applies(self, results) -> bool:
        """A Nielsen folder (``nielsen``, ``nielsen_mnist``), or runs with his configuration."""
        if Path(results.path).name in nielsen.FOLDERS:
            return True
        try:
            nielsen.speeds_at_init(results)
        except (ValueError, KeyError):
            return False
        return True

    def tables(self, results) -> dict:
        return {"nielsen_table": nielsen.nielsen_table(results)}

    def figures(self, results, folder: Path) -> dict:
        return {}  # drawn by its report blocks

    def sections(self, results, figures: dict) -> list:
        return nielsen.report_blocks(Path(results.path))

    def write(self, results) -> str:
        return nielsen.write_tables(results.path)


class _Chaos:
    name = "chaos"
    title = "Edge of chaos"

    def applies(self, results) -> bool:
        return chaos.present(results)

    def tables(self, results) -> dict:
        return {"chaos_table": chaos.decay_table(results), "chaos_train_table": chaos.trainability_table(results)}

    def figures(self, results, folder: Path) -> dict:
        return {}  # drawn by its report blocks

    def sections(self, results, figures: dict) -> list:
        return chaos.report_blocks(results)

    def write(self, results) -> str:
        return chaos.write_outputs(results.path)


NIELSEN = _Nielsen()
CHAOS = _Chaos()

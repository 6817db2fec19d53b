"""``hydra/sweeper=mlplab``: plan every job once, then launch only the runs left to do.

Hydra's basic sweeper expands the jobs, composes each one's config again (one after another,
before anything is launched) and launches every job, done or not. This one plans the sweep with
``mlplab.cli.plan_jobs`` — each distinct choice of config groups composed once, every job
validated and its data checked — and hands the launcher only the jobs whose runs are not
committed yet: resuming a half-done sweep costs the missing runs, not the whole sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class MlplabSweeper(Sweeper):
    def __init__(self, params: dict[str, str] | None = None) -> None:
        self.params = params or {}
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from mlplab import results
        from mlplab.cli import start_sweep

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # written whole or not at all (a sweep started in the same second shares the folder)
        results.atomic_write_bytes(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config).encode())
        todo = start_sweep(self.config)
        if not todo:
            return []
        return self.launcher.launch([overrides for overrides, _ in todo], initial_job_idx=0)

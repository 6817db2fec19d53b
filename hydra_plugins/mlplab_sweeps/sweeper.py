"""``hydra/sweeper=mlplab``: plan every job once, launch only the runs left to do, summarise.

Hydra's basic sweeper expands the jobs, composes each one's config again (one after another,
before anything is launched) and launches every job, done or not. This one plans the sweep with
``mlplab.plan.make_plan`` — each distinct choice of config groups composed once, every job
validated and its data checked — records the plan (``plan.json`` in the sweep's Hydra folder)
and hands the launcher the plan itself (mlplab's launchers: ``launch_plan``), or the jobs whose
runs are not committed yet (Hydra's own launchers: ``launch``, each job running
``mlplab.cli.main``): resuming a half-done sweep costs the missing runs, not the whole sweep.
The runs' outcomes come back as the launcher's return values, and the sweep ends with its
summary (``mlplab.sweep.summary``), or with one line for Ctrl-C or a full disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
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
        self.started = time.perf_counter()
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from mlplab import results
        from mlplab.errors import PlanError, fail, leave
        from mlplab.plan import make_plan
        from mlplab.sweep import summary

        config = self.config
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # written whole or not at all (a sweep started in the same second shares the folder)
        results.atomic_write_bytes(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(config).encode())
        try:
            plan = make_plan(config)
        except PlanError as e:  # a bad job: nothing is launched
            if config.debug:
                raise
            fail(str(e))
        plan.record(sweep_dir)
        print(plan.headline(), flush=True)
        try:
            outcomes = self.launch(plan) if plan.todo else []
            summary(plan, outcomes, time.perf_counter() - self.started)
        except (Exception, KeyboardInterrupt) as e:  # Ctrl-C, a full disk: lines counting the plan's runs
            if config.debug:
                raise
            leave(e, plan.tally())
        return outcomes

    def launch(self, plan) -> list:
        """The outcomes (``mlplab.sweep.Outcome``) of the runs ``plan`` has left to do."""
        from mlplab.sweep import Outcome

        if hasattr(self.launcher, "launch_plan"):
            return list(self.launcher.launch_plan(plan).values())
        returns = self.launcher.launch([overrides for overrides, _ in plan.todo], initial_job_idx=0)
        done = [r.return_value for r in returns if r.status == JobStatus.COMPLETED]
        return [o for o in done if isinstance(o, Outcome)]

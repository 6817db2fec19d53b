"""What mlplab's local and Dask launchers share: their settings, checked when Hydra makes them;
the runs of a plan (``launch_plan``, from mlplab's sweeper) or of Hydra's jobs (``launch``, from
another sweeper), sent through ``mlplab.sweep.execute`` on the launcher's engine.

These launchers run RunSpecs, not Hydra's per-job machinery: no per-job config composition,
output folder or log files — one ``sweep.log`` in the sweep's Hydra folder, a line per run.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class PlanLauncher(Launcher):
    """A launcher of planned runs; a subclass says how its engine runs them (``run_specs``)."""

    def __init__(self, n_workers: int | None, chunks_per_worker: int, min_chunk_seconds: float) -> None:
        from mlplab.sweep import check_launcher

        check_launcher(n_workers, chunks_per_worker, min_chunk_seconds)
        self.n_workers, self.chunks_per_worker, self.min_chunk_seconds = n_workers, chunks_per_worker, min_chunk_seconds
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context

    @abc.abstractmethod
    def run_specs(self, specs: list, root: Path, sweep: str, force: bool) -> dict:
        """Run ``specs`` into the results folder ``root``: run_id -> ``mlplab.sweep.Outcome``
        (a run left out is missing)."""

    def execute(self, submit, as_completed, specs: list, root: Path, sweep: str, force: bool, workers: int, note=""):
        """``mlplab.sweep.execute`` with this launcher's chunks, logging to the sweep's Hydra folder."""
        from mlplab.sweep import execute

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        return execute(
            submit,
            as_completed,
            specs,
            root,
            sweep,
            force,
            workers,
            log_path=sweep_dir / "sweep.log",
            note=note,
            per_worker=self.chunks_per_worker,
            min_seconds=self.min_chunk_seconds,
        )

    def launch_plan(self, plan) -> dict:
        """The runs that ``plan`` (an ``mlplab.plan.Plan``) has left to do: run_id -> Outcome."""
        return self.run_specs([spec for _, spec in plan.todo], plan.root, plan.sweep_name, plan.force)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Hydra's way, under another sweeper: each job's config composed and prepared here;
        each job returns its run's status (or "missing")."""
        from mlplab.config import sweep_root, to_spec
        from mlplab.train import prepare

        specs = []
        for overrides in job_overrides:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            specs.append(prepare(to_spec(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))))
        outcomes = self.run_specs(specs, sweep_root(self.config), self.config.sweep_name, bool(self.config.force))
        return [
            JobReturn(
                overrides=list(o),
                status=JobStatus.COMPLETED,
                _return_value=outcomes[s.run_id].status if s.run_id in outcomes else "missing",
            )
            for o, s in zip(job_overrides, specs)
        ]

"""``hydra/launcher=dask``: a sweep's runs on Dask workers, in chunks, with a progress line.

Where the workers are:

* ``hydra.launcher.address=null`` (default), ``cluster=local``: a ``LocalCluster`` on this
  machine, one single-threaded worker process per core (each run uses one BLAS thread);
* ``hydra.launcher.address=tcp://host:8786``: an existing Dask scheduler and its workers;
* ``hydra.launcher.cluster=slurm``: pilot jobs through ``dask_jobqueue.SLURMCluster``
  (``hydra.launcher.slurm.{queue,account,cores,memory,walltime,jobs}``): SLURM schedules
  the workers, Dask the runs.

A Dask scheduler runs whatever pickled code a client sends it, on its workers, as their owner.
So the local cluster is the sweep's own: every socket on 127.0.0.1 (scheduler, nannies, workers,
the dashboard), TLS both ways with a certificate and key made for the sweep
(``Security.temporary()``), held in memory and handed to the workers the sweep spawns: other
users of the machine reach its ports but can neither join nor submit.

The launcher runs the specs the sweeper planned (``mlplab.cli.CONTEXT``), not Hydra's per-job
machinery: no per-job config composition, output folder or log files — one ``sweep.log`` in the
sweep's Hydra folder, a line per run. The workers start while the sweep is being planned.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


LOOPBACK = "127.0.0.1"


def local_cluster(n_workers: int):
    """The sweep's own ``LocalCluster``: ``n_workers`` single-threaded worker processes, every
    socket on 127.0.0.1 (scheduler, nannies, workers, the scheduler's and the workers' HTTP
    servers), TLS with credentials made for it and held in memory: other users of this machine
    reach its ports but cannot join nor submit."""
    from dask.distributed import LocalCluster
    from distributed.security import Security

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host=LOOPBACK,
                        dashboard_address=f"{LOOPBACK}:0",  # any free port (a sweep's neighbours differ)
                        security=Security.temporary(), silence_logs=logging.ERROR)


def slurm_cluster(conf, log_directory: str):
    """The ``dask_jobqueue.SLURMCluster`` of a ``SlurmConf``: ``cores`` single-threaded worker
    processes per job, ``memory`` and ``walltime`` per job."""
    import sys

    from dask_jobqueue import SLURMCluster

    return SLURMCluster(
        queue=conf.queue,
        account=conf.account,
        cores=int(conf.cores),
        processes=int(conf.cores),
        memory=str(conf.memory),
        walltime=str(conf.walltime),
        python=conf.python or sys.executable,
        job_extra_directives=list(conf.job_extra_directives),
        job_script_prologue=list(conf.job_script_prologue),
        log_directory=conf.log_directory or log_directory,
        job_name="mlplab",
        silence_logs="error",
    )


def dashboard(port: Optional[int]) -> tuple[str, str]:
    """(the link of a dashboard that the sweep's own cluster serves on ``port`` of 127.0.0.1, a
    line on how to reach it from another machine: an SSH tunnel), or ("", "") without one."""
    from distributed.utils import format_dashboard_link

    if port is None:
        return "", ""
    link = format_dashboard_link(LOOPBACK, port)
    return link, (f"mlplab: Dask dashboard {link}, on this machine only; from another: "
                  f"ssh -L {port}:{LOOPBACK}:{port} {socket.gethostname()}, then open {link}")


class DaskLauncher(Launcher):
    def __init__(self, address: Optional[str] = None, cluster: str = "local", n_workers: Optional[int] = None,
                 chunks_per_worker: int = 8, min_chunk_seconds: float = 0.3, slurm: Any = None) -> None:
        if cluster not in ("local", "slurm"):
            raise ValueError(f"hydra.launcher.cluster={cluster!r}: must be one of ['local', 'slurm']")
        from mlplab.sweep import check_launcher

        check_launcher(n_workers, chunks_per_worker, min_chunk_seconds)
        self.address, self.cluster, self.n_workers = address, cluster, n_workers
        self.chunks_per_worker, self.min_chunk_seconds, self.slurm = chunks_per_worker, min_chunk_seconds, slurm
        self.config: Optional[DictConfig] = None
        self._starting = None
        self.dashboard = importlib.util.find_spec("bokeh") is not None  # Dask's dashboard needs bokeh

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mlplab-dask")
        if self.address is None and self.cluster == "local":
            # start the local workers now, while the sweeper plans the sweep (dask_jobqueue
            # installs signal handlers, which only the main thread may: SLURM starts in launch)
            self._starting = self._pool.submit(self._connect)

    def _connect(self):
        """(client, cluster we started or None, expected worker count)."""
        from dask.distributed import Client

        logging.getLogger("distributed").setLevel(logging.ERROR)
        if self.address:
            client = Client(self.address)
            return client, None, sum(client.nthreads().values())
        if self.cluster == "slurm":
            log_dir = str(Path(self.config.hydra.sweep.dir) / "slurm")
            cluster = slurm_cluster(self.slurm, log_dir)
            cluster.scale(jobs=int(self.slurm.jobs))
            return Client(cluster), cluster, int(self.slurm.jobs) * int(self.slurm.cores)
        n = self.n_workers or os.cpu_count() or 1
        cluster = local_cluster(n)
        return Client(cluster), cluster, n

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from dask.distributed import as_completed

        from mlplab.cli import CONTEXT, sweep_root
        from mlplab.sweep import execute

        specs = planned_specs(self, job_overrides)
        config = self.config
        client, cluster, workers = self._starting.result() if self._starting else self._connect()
        note = ""
        if self.dashboard:  # an existing scheduler's own link, else the one on 127.0.0.1 here
            link, hint = ((client.dashboard_link, "") if cluster is None
                          else dashboard(cluster.scheduler_info["services"].get("dashboard")))
            note = f"; dashboard {link}" if link else ""
            if hint:
                print(hint, flush=True)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            outcomes = execute(client.submit, as_completed, specs, sweep_root(config), config.sweep_name,
                               bool(config.force), max(workers, 1), log_path=sweep_dir / "sweep.log", note=note,
                               per_worker=self.chunks_per_worker, min_seconds=self.min_chunk_seconds)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            self._pool.shutdown(wait=False)
        CONTEXT["outcomes"] = outcomes
        returns = []
        for overrides, spec in zip(job_overrides, specs):
            o = outcomes.get(spec.run_id)
            returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED,
                                     _return_value=o.status if o else "missing"))
        return returns


def planned_specs(launcher: Launcher, job_overrides) -> list:
    """The planned RunSpecs of these jobs (from mlplab's sweeper), or, under another sweeper,
    each job's config composed and prepared."""
    from mlplab.cli import CONTEXT
    from mlplab.config import to_spec
    from mlplab.train import prepare

    planned = {tuple(o): spec for o, spec in CONTEXT.get("todo", [])}
    if all(tuple(o) in planned for o in job_overrides):
        return [planned[tuple(o)] for o in job_overrides]
    loader = launcher.hydra_context.config_loader
    specs = []
    for overrides in job_overrides:
        cfg = loader.load_sweep_config(launcher.config, list(overrides))
        specs.append(prepare(to_spec(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))))
    return specs

"""``hydra/launcher=local``: a sweep's runs on this machine's cores, in worker processes started
from the sweep's own process, through Python's ``concurrent.futures`` — the same chunks,
progress line and sweep log as the Dask launcher, without a cluster to start.

On Linux the workers are forked (they start at once, with everything imported); on macOS,
where forking a process that has loaded Accelerate or Objective-C libraries is unsafe, and on
Windows, which cannot fork, they are spawned: new interpreters that import mlplab and receive
their runs pickled (``hydra.launcher.start_method=fork|spawn|forkserver`` chooses). Every start
method gives the same numbers (tested).

A worker killed by the system ends the pool: the runs it had not finished are reported
missing (exit code 1) and the next run of the command does them. The Dask launcher survives
it instead, sending the chunk to another worker.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from hydra_plugins.mlplab_sweeps.launching import PlanLauncher


def default_start_method(platform: str = sys.platform, available=None) -> str:
    """``fork`` where it is safe (Linux and other Unix), ``spawn`` on macOS (Python's own
    default there since 3.8: fork after Accelerate or Objective-C libraries is unsafe) and
    wherever fork is unavailable (Windows)."""
    available = multiprocessing.get_all_start_methods() if available is None else available
    return "fork" if "fork" in available and platform != "darwin" else "spawn"


def check_start_method(start_method: str | None) -> str:
    """The start method to use; ValueError, one line, for one this platform does not have."""
    if start_method is None:
        return default_start_method()
    available = multiprocessing.get_all_start_methods()
    if start_method not in available:
        raise ValueError(
            f"hydra.launcher.start_method={start_method!r}: must be one of {sorted(available)} "
            "on this platform, or null (fork on Linux, spawn on macOS and Windows)"
        )
    return start_method


class LocalLauncher(PlanLauncher):
    def __init__(
        self,
        n_workers: int | None = None,
        chunks_per_worker: int = 8,
        min_chunk_seconds: float = 0.3,
        start_method: str | None = None,
    ) -> None:
        super().__init__(n_workers, chunks_per_worker, min_chunk_seconds)
        self.start_method = check_start_method(start_method)

    def run_specs(self, specs: list, root: Path, sweep: str, force: bool) -> dict:
        from mlplab.results import remove_temporaries

        n = self.n_workers or os.cpu_count() or 1
        pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(self.start_method))
        try:
            outcomes = self.execute(pool.submit, as_completed, specs, root, sweep, force, n)
        except BaseException:
            # Ctrl-C (or any fault): stop the workers now — a run in flight is not committed and
            # is done again by the next sweep — and drop the chunks not started
            workers = multiprocessing.active_children()
            for worker in workers:
                worker.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            # the temporary files of the writes they were killed in; those of another sweep
            # writing into the same folder are left alone
            remove_temporaries(root, pids={w.pid for w in workers})
            raise
        pool.shutdown(wait=True)
        return outcomes

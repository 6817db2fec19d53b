"""``hydra/launcher=dask``: a sweep's runs on Dask workers, in chunks, with a progress line.

Where the workers are:

* ``hydra.launcher.address=null`` (default), ``cluster=local``: a ``LocalCluster`` on this
  machine, one single-threaded worker process per core (each run uses one BLAS thread);
* ``hydra.launcher.address=tls://host:8786`` with ``hydra.launcher.security.{ca_file,cert,key}``:
  an existing Dask scheduler and its workers (``tcp://`` too: unauthenticated, see below);
* ``hydra.launcher.cluster=slurm``: pilot jobs through ``dask_jobqueue.SLURMCluster``
  (``hydra.launcher.slurm.{queue,account,cores,memory,walltime,jobs}``): SLURM schedules
  the workers, Dask the runs.

A Dask scheduler runs whatever pickled code a client sends it, on its workers, as their owner.
So every cluster a sweep starts is its own: TLS both ways with a certificate and key made for
the sweep (``Security.temporary()``), which only the sweep and its workers hold, and every
socket that nothing on another host needs listens on 127.0.0.1 (the local cluster's scheduler,
nannies and workers; every dashboard). The SLURM workers get the credentials as two files,
0600 in a 0700 folder of the sweep's Hydra folder on the shared filesystem, removed when the
sweep ends; the local workers get them in memory, from the sweep that spawns them.

The launcher runs the plan that mlplab's sweeper hands it (``launching.PlanLauncher``, which
the local launcher shares). The workers start while the sweep is being planned.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import shutil
import socket
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.mlplab_sweeps.launching import PlanLauncher

LOOPBACK = "127.0.0.1"
SECURITY_FIELDS = ("ca_file", "cert", "key")


def local_cluster(n_workers: int):
    """The sweep's own ``LocalCluster``: ``n_workers`` single-threaded worker processes, every
    socket on 127.0.0.1 (scheduler, nannies, workers, the scheduler's and the workers' HTTP
    servers), TLS with credentials made for it and held in memory: other users of this machine
    reach its ports but cannot join nor submit."""
    from dask.distributed import LocalCluster
    from distributed.security import Security

    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host=LOOPBACK,
        dashboard_address=f"{LOOPBACK}:0",  # any free port (a sweep's neighbours differ)
        security=Security.temporary(),
        silence_logs=logging.ERROR,
    )


def sweep_credentials(parent: Path):
    """(Security, folder): a certificate and key made for this sweep (``Security.temporary()``:
    self-signed, the certificate is its own authority), written as ``cert.pem`` and ``key.pem``,
    0600, into a new 0700 folder ``tls-*`` of ``parent``; every role (the scheduler, the workers,
    the sweep's client) reads them there, and a peer without the key is refused both ways."""
    from distributed.security import Security

    made = Security.temporary()
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="tls-", dir=parent))  # 0700, a new name
    for name, text in (("cert.pem", made.tls_ca_file), ("key.pem", made.tls_worker_key)):
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    security = Security(
        require_encryption=True,
        tls_ca_file=cert,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
    )
    return security, folder


def slurm_cluster(conf, folder: Path):
    """(the ``dask_jobqueue.SLURMCluster`` of a ``SlurmConf``, its credentials folder):
    ``cores`` single-threaded worker processes per job, ``memory`` and ``walltime`` per job,
    job logs in ``folder/slurm`` (or ``conf.log_directory``). The scheduler, in this process,
    listens on every interface (or ``conf.interface``), since the workers are on other hosts,
    and speaks TLS only (``sweep_credentials`` in ``folder``, the job script names the files);
    its dashboard, and each worker's, listen on 127.0.0.1."""
    from dask_jobqueue import SLURMCluster

    security, credentials = sweep_credentials(Path(folder))
    try:
        cluster = SLURMCluster(
            queue=conf.queue,
            account=conf.account,
            cores=int(conf.cores),
            processes=int(conf.cores),
            memory=str(conf.memory),
            walltime=str(conf.walltime),
            python=conf.python or sys.executable,
            interface=conf.interface,
            job_extra_directives=list(conf.job_extra_directives),
            job_script_prologue=list(conf.job_script_prologue),
            worker_extra_args=["--dashboard-address", f"{LOOPBACK}:0"],
            log_directory=conf.log_directory or str(Path(folder) / "slurm"),
            job_name="mlplab",
            protocol="tls://",
            security=security,
            shared_temp_directory=str(credentials),  # (nothing to write there: the files are)
            scheduler_options={"dashboard_address": f"{LOOPBACK}:0"},
            silence_logs="error",
        )
    except BaseException:
        shutil.rmtree(credentials, ignore_errors=True)
        raise
    return cluster, credentials


def check_address(address: str | None, security: Any) -> str | None:
    """``hydra.launcher.address`` and ``hydra.launcher.security``: a ``tls://`` address needs the
    three files, which must exist; the files go only with a ``tls://`` address. Refused with one
    line naming the field, its value and the rule; returns a warning line for a ``tcp://`` address
    (Dask's default scheme: neither encrypted nor authenticated) not on this machine, else None."""
    files = {k: (security or {}).get(k) for k in SECURITY_FIELDS}
    scheme = address.split("://", 1)[0] if address and "://" in address else "tcp"
    if address is None or scheme != "tls":
        where = "null: the sweep's own cluster makes its own credentials" if address is None else f"{address!r}"
        for k, v in files.items():
            if v is not None:
                raise ValueError(
                    f"hydra.launcher.security.{k}={v!r}: only for a tls:// hydra.launcher.address "
                    f"(hydra.launcher.address={where})"
                )
    if address is None:
        return None
    if scheme == "tls":
        for k, v in files.items():
            if v is None:
                raise ValueError(
                    f"hydra.launcher.security.{k}=null: a tls:// hydra.launcher.address needs the "
                    "files hydra.launcher.security.ca_file, cert and key"
                )
            if not os.path.isfile(os.path.expanduser(v)):
                raise ValueError(f"hydra.launcher.security.{k}={v!r}: no such file")
        return None
    if scheme != "tcp":  # (another of Dask's protocols: as its owner set it up)
        return None
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if local:
        return None
    return (
        f"mlplab: warning: hydra.launcher.address={address!r} is neither encrypted nor authenticated: "
        "whoever reaches it can run code on its workers; prefer tls:// with hydra.launcher.security.{ca_file,cert,key}"
    )


def client_security(security: Any):
    """The ``distributed.security.Security`` of a client with these files (TLS, required)."""
    from distributed.security import Security

    path = {k: os.path.expanduser(security[k]) for k in SECURITY_FIELDS}
    return Security(
        require_encryption=True, tls_ca_file=path["ca_file"], tls_client_cert=path["cert"], tls_client_key=path["key"]
    )


def dashboard(port: int | None) -> tuple[str, str]:
    """(the link of a dashboard that the sweep's own cluster serves on ``port`` of 127.0.0.1, a
    line on how to reach it from another machine: an SSH tunnel), or ("", "") without one."""
    from distributed.utils import format_dashboard_link

    if port is None:
        return "", ""
    link = format_dashboard_link(LOOPBACK, port)
    return link, (
        f"mlplab: Dask dashboard {link}, on this machine only; from another: "
        f"ssh -L {port}:{LOOPBACK}:{port} {socket.gethostname()}, then open {link}"
    )


class DaskLauncher(PlanLauncher):
    def __init__(
        self,
        address: str | None = None,
        cluster: str = "local",
        n_workers: int | None = None,
        chunks_per_worker: int = 8,
        min_chunk_seconds: float = 0.3,
        slurm: Any = None,
        security: Any = None,
    ) -> None:
        if cluster not in ("local", "slurm"):
            raise ValueError(f"hydra.launcher.cluster={cluster!r}: must be one of ['local', 'slurm']")
        super().__init__(n_workers, chunks_per_worker, min_chunk_seconds)
        warning = check_address(address, security)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        self.address, self.cluster, self.slurm, self.security = address, cluster, slurm, security
        self._starting = None
        self._credentials: Path | None = None  # the SLURM workers' TLS files, removed at the end
        self.dashboard = importlib.util.find_spec("bokeh") is not None  # Dask's dashboard needs bokeh

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mlplab-dask")
        if self.address is None and self.cluster == "local":
            # start the local workers now, while the sweeper plans the sweep (dask_jobqueue
            # installs signal handlers, which only the main thread may: SLURM starts in run_specs)
            self._starting = self._pool.submit(self._connect)

    def _connect(self):
        """(client, cluster we started or None, expected worker count)."""
        from dask.distributed import Client

        logging.getLogger("distributed").setLevel(logging.ERROR)
        if self.address:
            tls = self.address.startswith("tls://")
            client = Client(self.address, security=client_security(self.security) if tls else None)
            return client, None, sum(client.nthreads().values())
        if self.cluster == "slurm":
            cluster, self._credentials = slurm_cluster(self.slurm, Path(self.config.hydra.sweep.dir))
            cluster.scale(jobs=int(self.slurm.jobs))
            return Client(cluster), cluster, int(self.slurm.jobs) * int(self.slurm.cores)
        n = self.n_workers or os.cpu_count() or 1
        cluster = local_cluster(n)
        return Client(cluster), cluster, n

    def run_specs(self, specs: list, root: Path, sweep: str, force: bool) -> dict:
        from dask.distributed import as_completed

        try:
            client, cluster, workers = self._starting.result() if self._starting else self._connect()
        except BaseException:
            self._remove_credentials()
            raise
        note = ""
        if self.dashboard:  # an existing scheduler's own link, else the one on 127.0.0.1 here
            link, hint = (
                (client.dashboard_link, "")
                if cluster is None
                else dashboard(cluster.scheduler_info["services"].get("dashboard"))
            )
            note = f"; dashboard {link}" if link else ""
            if hint:
                print(hint, flush=True)
        try:
            return self.execute(client.submit, as_completed, specs, root, sweep, force, max(workers, 1), note=note)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            self._remove_credentials()
            self._pool.shutdown(wait=False)

    def _remove_credentials(self) -> None:
        """The SLURM workers' TLS files: worthless once the sweep's scheduler is gone, removed."""
        if self._credentials is not None:
            shutil.rmtree(self._credentials, ignore_errors=True)
            self._credentials = None

"""The plugins' configs, registered in Hydra's ConfigStore: ``hydra/sweeper=mlplab`` (the
default of mlplab's config) and ``hydra/launcher=dask``."""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


@dataclass
class MlplabSweeperConf:
    _target_: str = "hydra_plugins.mlplab_sweeps.sweeper.MlplabSweeper"
    # KEY: VALUES of the sweep, as in Hydra's basic sweeper (values comma-separated)
    params: dict[str, str] | None = None


@dataclass
class SlurmConf:
    """A SLURM allocation of pilot jobs, each running Dask workers (dask_jobqueue.SLURMCluster):
    SLURM schedules the workers, Dask schedules the runs on them."""

    queue: str | None = None  # the partition (#SBATCH -p)
    account: str | None = None  # #SBATCH -A
    cores: int = 1  # cores per job: one single-threaded worker per core
    memory: str = "4GB"  # memory per job
    walltime: str = "01:00:00"  # per job
    jobs: int = 1  # how many jobs to ask for
    python: str | None = None  # the Python of the workers (default: the one running the sweep)
    job_extra_directives: list[str] = field(default_factory=list)  # more #SBATCH lines
    job_script_prologue: list[str] = field(default_factory=list)  # shell lines before the worker starts
    log_directory: str | None = None  # where SLURM writes the jobs' output (default: the sweep's hydra folder)
    # the network interface that the scheduler and the workers listen on (e.g. ib0; null: every
    # interface, each advertising its default route's address); the traffic is TLS either way
    interface: str | None = None


@dataclass
class SecurityConf:
    """The TLS files of a client of an existing scheduler (``hydra.launcher.address=tls://...``),
    as its owner hands them out: without them a secured scheduler refuses the connection."""

    ca_file: str | None = None  # the certificate authority of the scheduler's and workers' certificates
    cert: str | None = None  # this client's certificate
    key: str | None = None  # this client's private key (readable by its owner only)


@dataclass
class DaskLauncherConf:
    _target_: str = "hydra_plugins.mlplab_sweeps.dask_launcher.DaskLauncher"
    # where the workers are: null = the sweep's own cluster (see cluster); tls://host:8786 = an
    # existing Dask scheduler, with the files of security (cluster is then ignored); tcp://host:8786
    # too, but unauthenticated: whoever reaches that port runs code on its workers
    address: str | None = None
    cluster: str = "local"  # local or slurm (with address null)
    n_workers: int | None = None  # local: worker processes (null: one per core)
    chunks_per_worker: int = 8  # runs go in chunks: about this many per worker, longest first
    # no chunk holds less estimated work than this (seconds), unless a single run is that short:
    # scheduling stays a small part of each chunk; lower it to lose less to a worker that dies
    min_chunk_seconds: float = 0.3
    slurm: SlurmConf = field(default_factory=SlurmConf)
    security: SecurityConf = field(default_factory=SecurityConf)  # for a tls:// address only


@dataclass
class LocalLauncherConf:
    _target_: str = "hydra_plugins.mlplab_sweeps.local_launcher.LocalLauncher"
    n_workers: int | None = None  # worker processes (null: one per core)
    chunks_per_worker: int = 8  # runs go in chunks: about this many per worker, longest first
    # no chunk holds less estimated work than this (seconds), unless a single run is that short:
    # scheduling stays a small part of each chunk; lower it to lose less to a worker that dies
    min_chunk_seconds: float = 0.3
    # how the worker processes start: fork, spawn or forkserver; null: fork on Linux, spawn
    # where fork is unavailable or unsafe (macOS, Windows)
    start_method: str | None = None


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="mlplab", node=MlplabSweeperConf, provider="mlplab")
cs.store(group="hydra/launcher", name="dask", node=DaskLauncherConf, provider="mlplab")
cs.store(group="hydra/launcher", name="local", node=LocalLauncherConf, provider="mlplab")

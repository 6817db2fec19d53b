"""The Dask launcher's SLURM allocation, checked through the job script dask_jobqueue writes
from the config (no SLURM needed; ``make test-slurm`` runs a real one)."""

import sys

import pytest
from hydra import compose, initialize_config_dir

from hydra_plugins.mlplab_sweeps.dask_launcher import DaskLauncher, slurm_cluster
from mlplab.cli import CONF_DIR


def launcher_config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=dask", *overrides], return_hydra_config=True)
    return cfg.hydra.launcher


def test_the_slurm_job_script_follows_the_config(tmp_path):
    conf = launcher_config("hydra.launcher.cluster=slurm", "hydra.launcher.slurm.queue=short",
                           "hydra.launcher.slurm.account=lab", "hydra.launcher.slurm.cores=4",
                           "hydra.launcher.slurm.memory=8GB", "hydra.launcher.slurm.walltime=00:30:00",
                           "hydra.launcher.slurm.jobs=3", "+hydra.launcher.slurm.job_extra_directives=[--exclusive]")
    assert conf.cluster == "slurm" and conf.slurm.jobs == 3
    cluster = slurm_cluster(conf.slurm, str(tmp_path / "logs"))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    for directive in ["#SBATCH -J mlplab", "#SBATCH -p short", "#SBATCH -A lab", "#SBATCH -n 1",
                      "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G", "#SBATCH -t 00:30:00", "#SBATCH --exclusive",
                      f"#SBATCH -o {tmp_path / 'logs'}/mlplab-%J.out"]:
        assert directive in lines, (directive, script)
    worker = lines[-1]
    # one single-threaded worker per core, run by this Python
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://")
    assert "--nworkers 4" in worker and "--nthreads 1" in worker


def test_a_launcher_cluster_must_be_local_or_slurm():
    with pytest.raises(ValueError, match="hydra.launcher.cluster='pbs'"):
        DaskLauncher(cluster="pbs")

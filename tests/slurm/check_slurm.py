"""``make test-slurm``: a real SLURM on this machine, a small sweep through it, checked.

Opt-in and not part of ``make test`` (it installs system packages and starts daemons, as root):

1. installs SLURM and MUNGE from Debian's packages (``slurm-wlm``, ``munge``) if missing;
2. writes a one-node ``slurm.conf`` (this host, its cores, no cgroups, no accounting) in a
   temporary folder and starts ``munged``, ``slurmctld`` and ``slurmd`` without systemd;
3. runs ``sweep=smoke`` through ``hydra/launcher=dask hydra.launcher.cluster=slurm`` (two
   pilot jobs of one core each), and the same sweep on the local launcher;
4. checks that both give the same runs with bit-identical metrics and that SLURM ran the
   workers (its job log), then stops the daemons, whatever happened.

Exit code 0 when all of it holds; a step that fails says which, in one line.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["slurm-wlm", "munge"]


def step(msg: str) -> None:
    print(f"test-slurm: {msg}", flush=True)


def sh(*cmd, check=True, **kw):
    return subprocess.run(list(map(str, cmd)), check=check, capture_output=True, text=True, **kw)


def install() -> None:
    if all(shutil.which(x) for x in ("slurmctld", "slurmd", "munged", "sbatch")):
        step("SLURM and MUNGE are installed")
        return
    step(f"installing {' '.join(PACKAGES)} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sh("apt-get", "update", env=env)
    sh("apt-get", "install", "-y", "-q", *PACKAGES, env=env)


def write_conf(d: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    for sub in ("state", "spool", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "slurm.conf"
    conf.write_text(f"""\
ClusterName=mlplab
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / 'slurmd.log'}
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def start(d: Path, conf: Path) -> list[Path]:
    """munged, slurmctld, slurmd; their pid files (to stop them)."""
    if not Path("/etc/munge/munge.key").exists():
        sh("mungekey", "--create")
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    # the default socket (/run/munge/munge.socket.2): where SLURM's auth/munge looks for it
    sh("munged", "--force", f"--pid-file={d / 'munged.pid'}")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    sh("slurmctld", "-f", conf, env=env)
    sh("slurmd", "-f", conf, env=env)
    return [d / "slurmd.pid", d / "slurmctld.pid", d / "munged.pid"]


def wait_idle(env: dict, timeout: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        out = sh("sinfo", "-h", "-o", "%T", check=False, env=env).stdout.strip()
        if out in ("idle", "mixed"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the node did not come up (sinfo: {out!r})")


def stop(pids: list[Path]) -> None:
    for p in pids:
        try:
            os.kill(int(p.read_text().split()[0]), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def metrics(root):
    import pandas as pd

    import mlplab

    r = mlplab.load_results(root, join=False)
    out = []
    for df, key in ((r.runs, ["run_id"]), (r.steps, ["run_id", "step"]), (r.layers, ["run_id", "step", "layer"])):
        df = df.drop(columns=[c for c in df if c.endswith("_time_s")])
        df = df.astype({c: object for c in df if isinstance(df[c].dtype, pd.CategoricalDtype)})
        out.append(df.sort_values(key).reset_index(drop=True))
    return out


def main() -> int:
    import pandas as pd

    if os.geteuid() != 0:
        print("test-slurm: needs root (it installs packages and starts SLURM's daemons)", file=sys.stderr)
        return 2
    d = Path(tempfile.mkdtemp(prefix="mlplab-slurm-"))
    pids: list[Path] = []
    what = "installing"
    try:
        install()
        what = "starting munged, slurmctld, slurmd"
        conf = write_conf(d)
        pids = start(d, conf)
        env = {**os.environ, "SLURM_CONF": str(conf)}
        wait_idle(env)
        step(f"SLURM runs ({sh('sinfo', '-h', env=env).stdout.strip()})")
        what = "the sweep through SLURM"
        grid = ["sweep=smoke", "data.n_samples=200", "width=8"]
        slurm = d / "results-slurm"
        cmd = [sys.executable, "-m", "mlplab", "-m", *grid, f"results_dir={slurm}", "hydra/launcher=dask",
               "hydra.launcher.cluster=slurm", "hydra.launcher.slurm.queue=debug", "hydra.launcher.slurm.cores=1",
               "hydra.launcher.slurm.jobs=2", "hydra.launcher.slurm.memory=2GB", "hydra.launcher.slurm.walltime=00:10:00"]
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"exit code {p.returncode}: {p.stderr.strip()[-500:]}")
        step(p.stdout.strip().splitlines()[-1])
        jobs = list((slurm / "smoke" / "hydra").rglob("mlplab-*.out"))
        if not jobs:
            raise RuntimeError("SLURM wrote no job log: the workers did not run as SLURM jobs")
        step(f"{len(jobs)} SLURM job(s) ran the workers")
        what = "the same sweep on the local launcher"
        local = d / "results-local"
        p = subprocess.run([sys.executable, "-m", "mlplab", "-m", *grid, f"results_dir={local}", "hydra/launcher=local"],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"exit code {p.returncode}: {p.stderr.strip()[-500:]}")
        what = "comparing the two"
        for a, b in zip(metrics(slurm / "smoke"), metrics(local / "smoke")):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        step(f"{len(metrics(slurm / 'smoke')[0])} runs through SLURM, bit-identical to the local sweep")
        return 0
    except Exception as e:  # noqa: BLE001 - the step that failed, in one line
        print(f"test-slurm: {what} failed: {' '.join(str(e).split())}", file=sys.stderr)
        for log in sorted((d / "log").glob("*.log")):
            print(f"test-slurm: {log.name}: {' | '.join(log.read_text().splitlines()[-3:])}", file=sys.stderr)
        return 1
    finally:
        stop(pids)
        step("daemons stopped")


if __name__ == "__main__":
    sys.exit(main())

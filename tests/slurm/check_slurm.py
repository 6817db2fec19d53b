"""``make test-slurm``: a real SLURM on this machine, a small sweep through it, checked.

Opt-in and not part of ``make test`` (it installs system packages and starts daemons, as root):

1. installs SLURM and MUNGE from Debian's packages (``slurm-wlm``, ``munge``) if missing;
2. writes a one-node ``slurm.conf`` (this host, its cores, no cgroups, no accounting) in a
   temporary folder and starts ``munged``, ``slurmctld`` and ``slurmd`` without systemd;
3. runs ``sweep=smoke`` through ``hydra/launcher=dask hydra.launcher.cluster=slurm`` (two
   pilot jobs of one core each, the Dask traffic on the loopback interface), and the same sweep
   on the local launcher;
4. while the SLURM sweep runs, checks that it is secured: the workers' job script starts them
   with the scheduler's ``tls://`` address and the sweep's certificate and key, files 0600 in a
   0700 folder of the sweep's Hydra folder; the scheduler refuses a client without that
   certificate and a plain-TCP one; every socket of the sweep listens on 127.0.0.1;
5. checks that the workers registered through TLS (their SLURM job logs), that the files are
   gone once the sweep is, that both sweeps give the same runs with bit-identical metrics,
   then stops the daemons, whatever happened.

Exit code 0 when all of it holds; a step that fails says which, in one line.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import stat
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
StateSaveLocation={d / "state"}
SlurmdSpoolDir={d / "spool"}
SlurmctldPidFile={d / "slurmctld.pid"}
SlurmdPidFile={d / "slurmd.pid"}
SlurmctldLogFile={d / "log" / "slurmctld.log"}
SlurmdLogFile={d / "log" / "slurmd.log"}
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


def job_scripts(env: dict) -> list[str]:
    """The batch scripts of the jobs SLURM holds now (``scontrol write batch_script``)."""
    ids = sh("squeue", "-h", "-o", "%i", check=False, env=env).stdout.split()
    return [sh("scontrol", "write", "batch_script", i, "-", check=False, env=env).stdout for i in ids]


def refusals(address: str, cert: Path) -> list[str]:
    """How the scheduler at ``address`` answers a client that trusts its certificate but shows
    none, and a plain-TCP client: each should be refused (else the reason it was not)."""
    from dask.distributed import Client

    host, port = address.removeprefix("tls://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    out = []
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw, ctx.wrap_socket(raw) as s:
            s.recv(1)
        out.append("a client without a certificate was let in")
    except ssl.SSLError as e:
        if "CERTIFICATE_REQUIRED" not in str(e):
            out.append(f"a client without a certificate: {e}")
    try:
        Client(address.replace("tls://", "tcp://"), timeout="3s").close()
        out.append("a plain-TCP client was let in")
    except Exception:  # noqa: BLE001 - refused, as expected
        pass
    return out


class Watch:
    """What the SLURM sweep (process ``pid``, results in ``root``) shows while it runs: its TLS
    folder and the files' modes, the workers' command line in their job script, the scheduler's
    answers to clients without the sweep's key, its listening sockets."""

    def __init__(self, pid: int, root: Path, env: dict):
        self.pid, self.root, self.env = pid, root, env
        self.folder: Path | None = None
        self.modes: dict = {}
        self.worker: list[str] = []
        self.refused: list[str] | None = None
        self.listening: set = set()

    def poll(self) -> None:
        import psutil

        for folder in self.root.glob("smoke/hydra/*/tls-*"):
            try:
                self.modes = {
                    "folder": stat.S_IMODE(folder.stat().st_mode),
                    **{f.name: stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()},
                }
                self.folder = folder
            except FileNotFoundError:
                pass
        if not self.worker:
            for script in job_scripts(self.env):
                lines = [x for x in script.splitlines() if "distributed.cli.dask_worker" in x]
                if lines:
                    self.worker = lines[-1].split()
        if self.refused is None and self.modes and self.flag("--tls-ca-file"):
            self.refused = refusals(self.worker[3], Path(self.flag("--tls-ca-file")))
        try:
            conns = psutil.Process(self.pid).net_connections(kind="inet")
        except psutil.Error:
            return
        self.listening |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}

    def flag(self, name: str) -> str:
        return self.worker[self.worker.index(name) + 1] if name in self.worker else ""

    def check(self) -> None:
        if not self.worker:
            raise RuntimeError("no job script with a Dask worker was seen")
        if self.folder is None:
            raise RuntimeError("no tls-* folder was seen in the sweep's Hydra folder")
        if not self.worker[3].startswith("tls://") or self.flag("--protocol") != "tls://":
            raise RuntimeError(f"the workers do not use TLS: {' '.join(self.worker)}")
        files = [Path(self.flag(f)) for f in ("--tls-ca-file", "--tls-cert", "--tls-key")]
        if not all(f.parent == self.folder for f in files):
            raise RuntimeError(f"the workers' TLS files are not the sweep's ({self.folder}): {files}")
        if self.modes != {"folder": 0o700, "cert.pem": 0o600, "key.pem": 0o600}:
            raise RuntimeError(f"the TLS files' modes: { {k: oct(v) for k, v in self.modes.items()} }")
        step(
            f"the workers' job script: {self.worker[3]} --protocol tls:// --tls-ca-file/--tls-cert "
            f"{files[0].name} --tls-key {files[2].name} in {self.folder.relative_to(self.root)}/ (0700, files 0600)"
        )
        if self.refused is None:
            raise RuntimeError("the scheduler was not tried with clients lacking the sweep's certificate")
        if self.refused:
            raise RuntimeError("the scheduler " + "; ".join(self.refused))
        step("the scheduler refused a client without the sweep's certificate, and a plain-TCP client")
        ips = {ip for ip, _ in self.listening}
        scheduler = int(self.worker[3].rsplit(":", 1)[1])
        if scheduler not in {port for _, port in self.listening} or ips != {"127.0.0.1"}:
            raise RuntimeError(f"the sweep listened on {sorted(self.listening)}")
        step(
            f"the sweep's {len(self.listening)} listening sockets (the scheduler's, its HTTP server's) were on "
            "127.0.0.1"
        )


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
        cmd = [
            sys.executable,
            "-m",
            "mlplab",
            "-m",
            *grid,
            f"results_dir={slurm}",
            "hydra/launcher=dask",
            "hydra.launcher.cluster=slurm",
            "hydra.launcher.slurm.queue=debug",
            "hydra.launcher.slurm.cores=1",
            "hydra.launcher.slurm.jobs=2",
            "hydra.launcher.slurm.memory=2GB",
            "hydra.launcher.slurm.walltime=00:10:00",
            "hydra.launcher.slurm.interface=lo",
        ]  # the Dask traffic of the check: on 127.0.0.1
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err)
            watch = Watch(p.pid, slurm, env)
            deadline = time.time() + 600
            while p.poll() is None and time.time() < deadline:
                watch.poll()
                time.sleep(0.1)
            if p.poll() is None:
                p.kill()
            p.wait()
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
        if p.returncode != 0:
            raise RuntimeError(f"exit code {p.returncode}: {stderr.strip()[-500:]}")
        step(stdout.strip().splitlines()[-1])
        what = "checking that the sweep was secured"
        watch.check()
        if watch.folder.exists():
            raise RuntimeError(f"the sweep left its TLS files: {watch.folder}")
        step("the TLS files were removed with the sweep")
        jobs = list((slurm / "smoke" / "hydra").rglob("mlplab-*.out"))
        if not jobs:
            raise RuntimeError("SLURM wrote no job log: the workers did not run as SLURM jobs")
        logs = [f.with_suffix(".err").read_text() for f in jobs]
        registered = [x.split()[-1] for log in logs for x in log.splitlines() if "Registered to:" in x]
        if len(registered) != len(jobs) or not all(a.startswith("tls://") for a in registered):
            raise RuntimeError(f"the workers registered to {registered}")
        step(f"{len(jobs)} SLURM job(s) ran the workers, registered to the scheduler through TLS")
        what = "the same sweep on the local launcher"
        local = d / "results-local"
        p = subprocess.run(
            [sys.executable, "-m", "mlplab", "-m", *grid, f"results_dir={local}", "hydra/launcher=local"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
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

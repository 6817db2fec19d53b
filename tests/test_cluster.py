"""The Dask launcher's clusters: where they listen and whom they let in, checked on clusters
started as the launcher starts them, and its SLURM allocation through the job script
dask_jobqueue writes from the config (no SLURM needed; ``make test-slurm`` runs a real one)."""

import socket
import ssl
import stat
import sys

import dask
import psutil
import pytest
from hydra import compose, initialize_config_dir

from hydra_plugins.mlplab_sweeps.dask_launcher import (
    DaskLauncher,
    client_security,
    dashboard,
    local_cluster,
    slurm_cluster,
)
from mlplab.config import CONF_DIR

LOOPBACK = "127.0.0.1"


def launcher_config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=dask", *overrides], return_hydra_config=True)
    return cfg.hydra.launcher


def listening():
    """(pid, ip, port) of every listening socket of this process and its children."""
    me = psutil.Process()
    out = set()
    for p in [me, *me.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        out |= {(p.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def port(address):
    return int(address.rsplit(":", 1)[1])


def refused(address, **client_kw):
    """The error of a client's attempt to join (a short connect timeout: a refusal is at once)."""
    from dask.distributed import Client

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        try:
            Client(address, timeout="2s", **client_kw).close()
        except Exception as e:  # noqa: BLE001 - any refusal, as the client reports it
            return e
    return None


@pytest.fixture(scope="module")
def local():
    """The sweep's own local cluster, 2 workers, started as the launcher starts it; with the
    sockets that starting it opened."""
    before = listening()
    cluster = local_cluster(2)
    try:
        yield cluster, listening() - before
    finally:
        cluster.close()


def test_the_local_cluster_listens_on_loopback_only(local):
    """Scheduler, nannies, workers and every HTTP server (the dashboard's, with or without
    bokeh): 127.0.0.1, as the sockets show and as Dask reports them."""
    cluster, sockets = local
    assert {ip for _, ip, _ in sockets} == {LOOPBACK}, sockets
    info = cluster.scheduler_info
    workers = info["workers"]
    assert len(workers) == 2
    reported = [cluster.scheduler_address, *workers, *(w["nanny"] for w in workers.values())]
    assert all(a.startswith(f"tls://{LOOPBACK}:") for a in reported), reported
    ports = {p for _, _, p in sockets}
    assert {port(a) for a in reported} | {info["services"]["dashboard"]} <= ports
    # the processes' own sockets: the sweep's (scheduler, nannies, dashboard) and each worker's
    assert len({pid for pid, _, _ in sockets}) == 3


def test_the_local_cluster_refuses_whoever_lacks_its_credentials(local):
    """Only the holders of the sweep's key join: a client without a certificate, with another
    sweep's, or in plain TCP is refused by the scheduler; the sweep's own client runs a task."""
    from dask.distributed import Client
    from distributed.security import Security

    cluster, _ = local
    address = cluster.scheduler_address
    host, p = address.removeprefix("tls://").rsplit(":", 1)
    # trusting the scheduler's certificate but showing none: the scheduler ends the handshake
    ctx = ssl.create_default_context(cadata=cluster.security.tls_ca_file)
    ctx.check_hostname = False
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        with socket.create_connection((host, int(p)), timeout=2) as raw, ctx.wrap_socket(raw) as s:
            s.recv(1)
    other = Security.temporary()
    foreign = Security(
        require_encryption=True,
        tls_ca_file=cluster.security.tls_ca_file,
        tls_client_cert=other.tls_client_cert,
        tls_client_key=other.tls_client_key,
    )
    assert refused(address, security=foreign) is not None
    assert refused(address.replace("tls://", "tcp://")) is not None
    assert refused(address) is not None  # (no credentials: the client does not even try)
    assert [c for c in cluster.scheduler.clients if c != "fire-and-forget"] == []
    with Client(cluster) as client:
        assert client.submit(pow, 2, 10).result(timeout=30) == 1024


def test_the_slurm_job_script_follows_the_config(tmp_path):
    conf = launcher_config(
        "hydra.launcher.cluster=slurm",
        "hydra.launcher.slurm.queue=short",
        "hydra.launcher.slurm.account=lab",
        "hydra.launcher.slurm.cores=4",
        "hydra.launcher.slurm.memory=8GB",
        "hydra.launcher.slurm.walltime=00:30:00",
        "hydra.launcher.slurm.jobs=3",
        "+hydra.launcher.slurm.job_extra_directives=[--exclusive]",
        "hydra.launcher.slurm.interface=lo",
    )  # (the test's scheduler: on loopback)
    assert conf.cluster == "slurm" and conf.slurm.jobs == 3
    before = listening()
    cluster, credentials = slurm_cluster(conf.slurm, tmp_path)
    try:
        script = cluster.job_script()
        sockets = listening() - before
        link, hint = dashboard(cluster.scheduler_info["services"]["dashboard"])
    finally:
        cluster.close()
    lines = script.splitlines()
    for directive in [
        "#SBATCH -J mlplab",
        "#SBATCH -p short",
        "#SBATCH -A lab",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=8G",
        "#SBATCH -t 00:30:00",
        "#SBATCH --exclusive",
        f"#SBATCH -o {tmp_path / 'slurm'}/mlplab-%J.out",
    ]:
        assert directive in lines, (directive, script)
    worker = lines[-1].split()
    # one single-threaded worker per core, run by this Python, through TLS with the sweep's files
    assert worker[:3] == [sys.executable, "-m", "distributed.cli.dask_worker"]
    assert worker[3].startswith(f"tls://{LOOPBACK}:")
    flags = {a: b for a, b in zip(worker[4:], [*worker[5:], "--"]) if a.startswith("--") and not b.startswith("--")}
    assert flags["--nworkers"] == "4" and flags["--nthreads"] == "1" and flags["--protocol"] == "tls://"
    assert flags["--interface"] == "lo" and flags["--dashboard-address"] == f"{LOOPBACK}:0"
    assert (flags["--tls-ca-file"], flags["--tls-cert"], flags["--tls-key"]) == (
        str(credentials / "cert.pem"),
        str(credentials / "cert.pem"),
        str(credentials / "key.pem"),
    )
    # the files: 0600 in a 0700 folder of the sweep's Hydra folder
    assert credentials.parent == tmp_path and stat.S_IMODE(credentials.stat().st_mode) == 0o700
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in credentials.iterdir()} == {
        "cert.pem": 0o600,
        "key.pem": 0o600,
    }
    # the scheduler's dashboard on loopback, and the link that says so
    assert {ip for _, ip, _ in sockets} == {LOOPBACK} and len(sockets) == 2, sockets
    assert link.startswith(f"http://{LOOPBACK}:") and f"ssh -L {port(link.split('/status')[0])}:{LOOPBACK}:" in hint


def test_the_slurm_scheduler_lets_in_only_the_holders_of_the_sweeps_files(tmp_path):
    from dask.distributed import Client

    conf = launcher_config("hydra.launcher.cluster=slurm", "hydra.launcher.slurm.interface=lo")
    cluster, credentials = slurm_cluster(conf.slurm, tmp_path)
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://") and refused(address.replace("tls://", "tcp://")) is not None
        files = {
            "ca_file": str(credentials / "cert.pem"),
            "cert": str(credentials / "cert.pem"),
            "key": str(credentials / "key.pem"),
        }
        with Client(address, security=client_security(files), timeout="10s") as client:
            assert client.scheduler_info()["address"] == address
    finally:
        cluster.close()


def test_the_dashboard_link_is_on_loopback_and_says_how_to_tunnel():
    link, hint = dashboard(8787)
    assert link == "http://127.0.0.1:8787/status"
    assert hint.startswith(
        f"mlplab: Dask dashboard {link}, on this machine only; from another: ssh -L 8787:127.0.0.1:8787 "
    )
    assert dashboard(None) == ("", "")


def test_a_launcher_cluster_must_be_local_or_slurm():
    with pytest.raises(ValueError, match="hydra.launcher.cluster='pbs'"):
        DaskLauncher(cluster="pbs")


@pytest.mark.parametrize(
    "address,security,message",
    [
        (
            "tls://127.0.0.1:8786",
            {},
            "hydra.launcher.security.ca_file=null: a tls:// hydra.launcher.address needs the "
            "files hydra.launcher.security.ca_file, cert and key",
        ),
        ("tls://127.0.0.1:8786", {"ca_file": "FILE", "cert": "FILE"}, "hydra.launcher.security.key=null: a tls://"),
        (
            "tls://127.0.0.1:8786",
            {"ca_file": "FILE", "cert": "FILE", "key": "x.pem"},
            "hydra.launcher.security.key='x.pem': no such file",
        ),
        (
            None,
            {"ca_file": "FILE"},
            "hydra.launcher.security.ca_file='FILE': only for a tls:// hydra.launcher.address "
            "(hydra.launcher.address=null: the sweep's own cluster makes its own credentials)",
        ),
        (
            "tcp://127.0.0.1:8786",
            {"key": "FILE"},
            "hydra.launcher.security.key='FILE': only for a tls:// "
            "hydra.launcher.address (hydra.launcher.address='tcp://127.0.0.1:8786')",
        ),
    ],
    ids=["tls without files", "tls without a key", "a missing file", "files without an address", "files with tcp"],
)
def test_the_launcher_refuses_a_security_setting_that_cannot_work(tmp_path, address, security, message):
    file = tmp_path / "cert.pem"
    file.write_text("")
    security = {k: str(file) if v == "FILE" else v for k, v in security.items()}
    message = message.replace("'FILE'", repr(str(file)))
    with pytest.raises(ValueError) as e:
        DaskLauncher(address=address, security=security)
    assert str(e.value).startswith(message), str(e.value)


def test_an_unauthenticated_address_on_another_host_is_warned_about(tmp_path, capsys):
    for address in ("tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786", "127.0.0.1:8786"):
        DaskLauncher(address=address)
    assert capsys.readouterr().err == ""
    file = tmp_path / "cert.pem"
    file.write_text("")
    DaskLauncher(address="tls://10.0.0.7:8786", security={k: str(file) for k in ("ca_file", "cert", "key")})
    assert capsys.readouterr().err == ""
    for address in ("tcp://10.0.0.7:8786", "10.0.0.7:8786"):  # (Dask's default scheme is tcp)
        DaskLauncher(address=address)
        assert capsys.readouterr().err.splitlines() == [
            f"mlplab: warning: hydra.launcher.address={address!r} is neither encrypted nor authenticated: whoever "
            "reaches it can run code on its workers; prefer tls:// with hydra.launcher.security.{ca_file,cert,key}"
        ]


def test_the_security_keys_are_in_the_launchers_config():
    conf = launcher_config(
        "hydra.launcher.address=tls://127.0.0.1:8786",
        "hydra.launcher.security.ca_file=ca.pem",
        "hydra.launcher.security.cert=me.pem",
        "hydra.launcher.security.key=me.key",
    )
    assert dict(conf.security) == {"ca_file": "ca.pem", "cert": "me.pem", "key": "me.key"}
    assert launcher_config().security.ca_file is None and launcher_config().slurm.interface is None

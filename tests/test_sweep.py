"""Real multirun sweeps through ``python -m mlplab -m``: progress, resume, launchers, faults.

The sweeps run the command in a forked child of the test process (``conftest.Forked``): a new
interpreter's behaviour without its start-up; the worker processes of the launchers are the
real ones (forked by the local launcher, spawned by Dask and joblib). The first test runs its
sweep in a new interpreter, as a user does."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import FAULTY, Forked, forked

import mlplab
from mlplab import load_results
from mlplab import results as res

pytestmark = pytest.mark.slow

TINY = ["sweep=smoke", "data.n_samples=120", "width=6", "train.epochs=2", "train.batch_size=24"]


def sweep(tmp_path, *args, faulty=False, spawn=False, timeout=300):
    """``python -m mlplab -m TINY results_dir=tmp_path args``, run in ``tmp_path``; ``faulty``:
    with the fault of tests/faults/sitecustomize.py in the command's process and in every
    worker process it starts (``FAULT_ENV``); ``spawn``: in a new interpreter."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    argv = ["-m", *TINY, f"results_dir={tmp_path}", *args]
    if spawn:
        return subprocess.run(
            [sys.executable, "-m", "mlplab", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=timeout
        )
    if faulty:
        return forked(None, argv, tmp_path, timeout=timeout, code=FAULTY, env=FAULT_ENV)
    return forked("mlplab", argv, tmp_path, timeout=timeout)


def metrics(path):
    """The metric tables, sorted, without what legitimately differs (timings)."""
    r = load_results(path, join=False)
    tables = []
    for df, key in ((r.runs, ["run_id"]), (r.steps, ["run_id", "step"]), (r.layers, ["run_id", "step", "layer"])):
        df = df.drop(columns=[c for c in df if c.endswith("_time_s")])
        df = df.astype({c: object for c in df if isinstance(df[c].dtype, pd.CategoricalDtype)})
        tables.append(df.sort_values(key).reset_index(drop=True))
    return tables


def assert_same_metrics(got, want):
    for a, b in zip(got, want):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_multirun_writes_tables_with_progress_and_summary(tmp_path):
    p = sweep(tmp_path, "depth=0,2", "loss=mse,softmax_ce", "seed=0", spawn=True)  # the command's own start-up too
    assert p.returncode == 0, p.stderr
    assert "sweep 'smoke': 4 runs, 0 already done, 4 to run" in p.stdout
    assert re.search(r"4/4 runs \(100%\)", p.stdout) and "4 ok, 0 diverged, 0 failed, 0 missing" in p.stdout
    r = load_results(tmp_path / "smoke")
    assert len(r.runs) == 4 and set(r.runs.depth) == {0, 2} and set(r.runs.loss) == {"mse", "softmax_ce"}
    assert set(r.runs.status) == {"ok"} and set(r.runs.sweep) == {"smoke"}
    assert len(r.layers) == sum(
        len(r.steps[r.steps.run_id == i]) * (d + 1) for i, d in zip(r.runs.run_id, r.runs.depth)
    )
    for col in ["grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "sat_frac"]:
        assert r.layers.query("step == 0")[col].notna().all()
    assert r.steps.query("step == 0")[["train_loss", "train_accuracy", "grad_norm"]].notna().all(axis=None)
    # Hydra's own files sit beside the tables, not inside them
    assert (tmp_path / "smoke" / "hydra").is_dir()
    assert all(p.suffix == ".parquet" for t in res.TABLES for p in (tmp_path / "smoke" / t).iterdir())
    # and a parquet reader given **/*.parquet finds parquet files only (the compacted/ markers have no suffix)
    for f in (tmp_path / "smoke").rglob("*.parquet"):
        assert pq.read_table(f).num_rows > 0, f


def test_rerun_skips_done_runs_and_extending_runs_only_new_points(tmp_path):
    assert sweep(tmp_path, "depth=1", "loss=mse", "seed=0,1").returncode == 0
    first = metrics(tmp_path / "smoke")
    p = sweep(tmp_path, "depth=1", "loss=mse", "seed=0,1")
    assert "2 runs, 2 already done, 0 to run" in p.stdout and "2 ok, 0 diverged" in p.stdout
    assert "Launching jobs" not in p.stdout  # a complete sweep launches nothing
    p = sweep(tmp_path, "depth=1", "loss=mse", "seed=0,1,2")
    assert "3 runs, 2 already done, 1 to run" in p.stdout
    r = load_results(tmp_path / "smoke")
    assert len(r.runs) == 3 and r.runs.run_id.is_unique
    later = metrics(tmp_path / "smoke")
    pd.testing.assert_frame_equal(first[1], later[1][later[1].run_id.isin(first[1].run_id)].reset_index(drop=True))
    p = sweep(tmp_path, "depth=1", "loss=mse", "seed=0", "force=true")
    assert "1 runs, 1 already done, all to run" in p.stdout and "1/1 runs (100%)" in p.stdout


# -- the launchers: one sweep each, with a genuine fault in some runs ------------------------------
# Each launcher runs the same sweep once, shared by the tests of the group "launchers" (one
# worker of the test run): 4 runs (a group axis and a value axis), of which the 2 of width 5
# fail by the injected fault (the 3rd backward pass of a network whose first hidden layer has 5
# units raises), in whichever process runs them. These runs are one chunk, which one worker
# runs: the worker counts that split a sweep into chunks on several workers are those of GRID
# below (local and dask, 2 workers each). Dask's own local cluster (hydra.launcher.address
# unset) runs GRID there, killed worker and all, with the metrics of an uninterrupted sweep.
LAUNCHERS = {
    "basic": ["hydra/launcher=basic"],
    "joblib, 2 jobs": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "local, 2 workers": ["hydra/launcher=local", "hydra.launcher.n_workers=2"],
    # the workers as macOS and Windows start them: new interpreters, their runs pickled
    "local, 2 spawned workers": [
        "hydra/launcher=local",
        "hydra.launcher.n_workers=2",
        "hydra.launcher.start_method=spawn",
    ],
    "dask, existing TLS scheduler": ["hydra/launcher=dask"],  # + its tls:// address and the files to reach it
}
LAUNCH_GRID = ["depth=2", "loss=bce,softmax_ce", "activation=relu", "width=5,6", "seed=0"]
FAULT_ENV = {"PYTHONPATH": str(Path(__file__).resolve().parent / "faults"), "MLPLAB_FAULT": "backward"}


def dask_scheduler(folder):
    """A Dask scheduler and a single-threaded worker, started as a user starts a secured pair
    (TLS, a certificate and key that only they hold; every socket on 127.0.0.1), the worker with
    the fault too: (its address, its processes, the command's overrides for its files)."""
    import json

    from hydra_plugins.mlplab_sweeps.dask_launcher import sweep_credentials

    folder.mkdir(parents=True, exist_ok=True)
    _, tls = sweep_credentials(folder)
    cert, key = tls / "cert.pem", tls / "key.pem"
    files = ["--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key]
    local = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--no-dashboard"]
    sched_file = folder / "scheduler.json"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--port",
                "0",
                "--protocol",
                "tls",
                *local,
                *files,
                "--scheduler-file",
                str(sched_file),
            ],
            **quiet,
        )
    ]
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(sched_file),
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    *local,
                    *files,
                ],
                env={**os.environ, **FAULT_ENV},
                **quiet,
            )
        )
        deadline = time.time() + 60
        while True:  # the scheduler writes its file in place: it may exist, still empty or partial
            try:
                address = json.loads(sched_file.read_text())["address"]
                break
            except (FileNotFoundError, json.JSONDecodeError):
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        security = [
            f"hydra.launcher.security.ca_file={cert}",
            f"hydra.launcher.security.cert={cert}",
            f"hydra.launcher.security.key={key}",
        ]
        return address, procs, security
    except BaseException:
        for proc in procs:
            proc.kill()
            proc.wait()
        raise


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """launcher name -> (the finished sweep's process, its results folder): each launcher's
    sweep of LAUNCH_GRID, run when a test first asks for it."""
    done = {}

    def launch(name):
        if name not in done:
            folder = tmp_path_factory.mktemp(re.sub(r"\W+", "_", name))
            args, procs = list(LAUNCHERS[name]), []
            if "hydra/launcher=dask" in args:
                import distributed  # noqa: F401  (imported once here, not in the forked command)
            try:
                existing = name == "dask, existing TLS scheduler"
                if existing:
                    address, procs, security = dask_scheduler(folder / "scheduler")
                    assert address.startswith("tls://127.0.0.1:"), address
                    args += [f"hydra.launcher.address={address}", *security]
                # on an existing scheduler only its worker has the fault: the failed runs show
                # that the runs went there, not to a cluster of the command's own
                done[name] = (sweep(folder, *LAUNCH_GRID, *args, faulty=not existing), folder / "smoke")
            finally:  # the scheduler and its worker end with their sweep
                for proc in reversed(procs):
                    proc.terminate()
                    proc.wait(timeout=30)
        return done[name]

    return launch


@pytest.mark.xdist_group("launchers")
def test_launchers_and_worker_counts_give_bit_identical_metrics(launched):
    outs = {}
    for name in LAUNCHERS:
        p, root = launched(name)
        assert "2 ok, 0 diverged, 2 failed, 0 missing" in p.stdout, (name, p.stdout, p.stderr)
        outs[name] = metrics(root)
    for name in list(LAUNCHERS)[1:]:
        assert_same_metrics(outs[name], outs["basic"])


@pytest.mark.xdist_group("launchers")
@pytest.mark.parametrize("launcher", ["basic", "local, 2 workers", "dask, existing TLS scheduler"])
def test_a_failing_run_does_not_stop_the_sweep(launched, launcher):
    """A genuine fault inside some runs (injected into the runs of width 5, in whichever process
    runs them): recorded as failed, the sweep goes on, one line on stderr, exit code 1."""
    p, root = launched(launcher)
    assert p.returncode == 1
    assert "2 ok, 0 diverged, 2 failed, 0 missing" in p.stdout
    assert p.stderr.strip().splitlines() == [
        f"mlplab: sweep 'smoke': 2 failed, 0 missing of 4 runs; rerun the same command to retry them -> {root}"
    ]
    r = load_results(root)
    failed = r.runs[r.runs.status == "failed"]
    assert set(failed.width) == {5} and set(r.runs[r.runs.status == "ok"].width) == {6}
    assert set(failed.reason) == {"FloatingPointError: injected fault"}


@pytest.mark.xdist_group("launchers")
def test_a_sweep_on_an_existing_dask_scheduler(launched):
    """hydra.launcher.address=tls://... with hydra.launcher.security.{ca_file,cert,key}: the runs
    go to the workers of a secured Dask scheduler that is already running (here one started for
    the test, with a single-threaded worker). Only that worker has the fault, not the command:
    runs sent anywhere else would all be ok."""
    p, root = launched("dask, existing TLS scheduler")
    assert p.returncode == 1 and "2 ok, 0 diverged, 2 failed, 0 missing" in p.stdout, p.stderr
    assert_same_metrics(metrics(root), metrics(launched("basic")[1]))


def test_remedies_are_sweep_axes(tmp_path):
    p = sweep(tmp_path, "depth=3", "loss=softmax_ce", "seed=0", "residual=false,true", "norm=none,batch,layer")
    assert p.returncode == 0, p.stderr
    assert "6 ok, 0 diverged, 0 failed, 0 missing" in p.stdout
    r = load_results(tmp_path / "smoke")
    assert len(r.runs) == 6 and r.runs.run_id.is_unique
    combos = set(zip(r.runs.residual, r.runs.norm.astype(object)))
    assert combos == {(res, n) for res in (False, True) for n in ("none", "batch", "layer")}
    hidden = r.layers[(r.layers.layer <= 3) & (r.layers.step == 0)]
    assert (hidden.grad_gamma_norm.isna() == (hidden.norm == "none")).all()  # null exactly where no norm
    assert (hidden.norm == "none").sum() == (hidden.norm != "none").sum() / 2 == 6


def test_a_bad_value_stops_the_whole_sweep_before_any_training(tmp_path):
    p = sweep(tmp_path, "depth=1,-2", "loss=mse", "seed=0")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "mlplab: invalid config: depth=-2: must be an integer >= 0 (in job depth=-2 loss=mse seed=0 sweep=smoke "
        "data.n_samples=120 width=6 train.epochs=2 train.batch_size=24 results_dir=" + str(tmp_path) + ")"
    ]
    assert not (tmp_path / "smoke" / "runs").exists()


# -- interrupted sweeps ----------------------------------------------------------------------------
def children(pid):
    """Child process ids of ``pid`` (Linux /proc)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def worker_pids(pid):
    """The worker processes of a sweep (local: forked; dask, joblib: spawned)."""
    pids = []
    for c in children(pid):
        with open(f"/proc/{c}/cmdline", "rb") as f:
            cmd = f.read()
        if b"resource_tracker" not in cmd:
            pids.append(c)
    return pids


# 12 runs of about 0.02-0.06 s, each a chunk of its own (none is held back to make a chunk of
# 0.3 s): a sweep on 2 workers is interrupted once 3 are committed, with several still to run
GRID = [
    "depth=2,4,6",
    "loss=mse,bce",
    "seed=0,1",
    "width=32",
    "data.n_samples=1000",
    "train.epochs=2",
    "train.batch_size=8",
    "hydra.launcher.min_chunk_seconds=0",
]


def start(folder, *args):
    """The sweep of GRID in the background, the leader of its own process group (what a
    terminal's Ctrl-C or a kill of the group reaches)."""
    return Forked("mlplab", ["-m", *TINY, f"results_dir={folder}", *GRID, *args], folder, new_session=True)


def committed(root) -> int:
    for _ in range(50):
        try:
            return len(res.committed_ids(root)) if (root / "runs").is_dir() else 0
        except FileNotFoundError:  # a chunk's compaction replaced a file while it was listed
            time.sleep(0.01)
    raise AssertionError(f"{root}: cannot list the committed runs")


def wait_for_commits(root, n, proc):
    deadline = time.time() + 120
    while time.time() < deadline and committed(root) < n and proc.poll() is None:
        time.sleep(0.01)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The metrics of GRID swept without interruption, for the group "grid"."""
    folder = tmp_path_factory.mktemp("clean")
    p = sweep(folder, *GRID, "hydra/launcher=local", "hydra.launcher.n_workers=2")
    assert p.returncode == 0, p.stderr
    return metrics(folder / "smoke")


@pytest.mark.xdist_group("grid")
@pytest.mark.parametrize("launcher,victim", [("local", "whole sweep"), ("local", "one worker"), ("dask", "one worker")])
def test_sigkill_mid_sweep_then_rerun_recovers_every_run_exactly_once(tmp_path, clean, launcher, victim):
    """kill -9 of the whole sweep, or of one worker process: a dask sweep finishes anyway (the
    lost chunk goes to the restarted worker); a local one stops with one line and exit code 1.
    Either way the folder reads as it is, holds no temporary file once the sweep is over, and
    the same command then finishes exactly the missing runs, with the metrics of a clean sweep.
    (The kill of a whole dask sweep is that of a local one: every process of the group dies,
    and what the next sweep does with the folder does not depend on the launcher.)"""
    killed = tmp_path / "killed"
    killed.mkdir()
    if launcher == "dask":
        import distributed  # noqa: F401  (imported once here, not in the forked command)
    proc = start(killed, f"hydra/launcher={launcher}", "hydra.launcher.n_workers=2")
    root = killed / "smoke"
    wait_for_commits(root, 3, proc)
    if victim == "whole sweep":
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    else:
        os.kill(worker_pids(proc.pid)[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        if launcher == "dask":  # the sweep survives its worker
            assert proc.returncode == 0 and "12 ok, 0 diverged, 0 failed, 0 missing" in out, err
            assert not list(killed.rglob(".*.tmp"))
        else:
            assert proc.returncode == 1 and len(err.strip().splitlines()) == 1 and "missing" in err, err
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # any worker that lingers
        except ProcessLookupError:
            pass
    done_at_kill = committed(root)
    assert 3 <= done_at_kill <= 12
    if not (launcher == "dask" and victim == "one worker"):
        assert done_at_kill < 12, "the kill must land mid-sweep"
    time.sleep(0.5)
    assert committed(root) == done_at_kill  # nothing runs on after the kill
    load_results(root)  # a killed sweep's folder is readable as it is

    if done_at_kill < 12:  # (a dask sweep that survived its worker has nothing left to do)
        p = sweep(killed, *GRID, f"hydra/launcher={launcher}")
        assert p.returncode == 0, p.stderr
        assert f"12 runs, {done_at_kill} already done, {12 - done_at_kill} to run" in p.stdout
        assert not list(killed.rglob(".*.tmp"))

    got = metrics(root)
    assert got[0].run_id.is_unique and len(got[0]) == 12
    assert set(got[0].run_id) == set(clean[0].run_id)
    assert_same_metrics(got, clean)


@pytest.mark.xdist_group("grid")
def test_ctrl_c_mid_sweep_is_one_line_exit_130_and_a_rerun_resumes(tmp_path, clean):
    """SIGINT to the sweep's process group (what Ctrl-C sends): one line saying how far it got,
    exit code 130, no temporary file left; the same command then finishes the set, with the
    metrics of an uninterrupted sweep."""
    killed = tmp_path / "killed"
    killed.mkdir()
    proc = start(killed)
    root = killed / "smoke"
    wait_for_commits(root, 3, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done = committed(root)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        f"mlplab: interrupted: {done} of 12 runs committed; rerun the same command to resume"
    ]
    assert 3 <= done < 12 and not list(killed.rglob(".*.tmp"))
    p = sweep(killed, *GRID)
    assert p.returncode == 0 and f"12 runs, {done} already done" in p.stdout, p.stderr
    got = metrics(root)
    assert len(got[0]) == 12
    assert_same_metrics(got, clean)


def test_ctrl_c_during_a_single_run(tmp_path):
    args = [
        f"results_dir={tmp_path}",
        "sweep_name=one",
        "depth=12",
        "width=64",
        "train.epochs=200",
        "train.batch_size=8",
    ]
    proc = Forked("mlplab", args, tmp_path, new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "one").rglob("config.yaml")):
        time.sleep(0.02)  # Hydra writes the job's config just before the run starts
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["mlplab: interrupted: 0 of 1 runs committed; rerun the same command to resume"]
    assert not (tmp_path / "one" / "runs").exists() and not list(tmp_path.rglob(".*.tmp"))


def test_a_launcher_runs_the_plan_it_is_handed_and_returns_the_outcomes(tmp_path):
    """mlplab's sweeper hands its launcher the Plan as an argument (``launch_plan``), and the
    runs' outcomes come back as the return value: nothing passes through shared module state.
    Only the plan's runs to do are run; a run already committed is skipped if handed again."""
    from omegaconf import OmegaConf

    from hydra_plugins.mlplab_sweeps.local_launcher import LocalLauncher
    from mlplab.plan import Plan

    specs = [mlplab.RunSpec(depth=1, width=4, n_samples=60, epochs=1, seed=s) for s in (0, 1, 2)]
    jobs = [([f"seed={s.seed}"], s) for s in specs]
    root = tmp_path / "results" / "mine"
    mlplab.run(specs[0], root, sweep="mine")
    plan = Plan(root, "mine", False, jobs, todo=jobs[1:], done=1, seconds=0.0)
    launcher = LocalLauncher(n_workers=1)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "hydra")}}})
    launcher.setup(hydra_context=None, task_function=None, config=config)
    outcomes = launcher.launch_plan(plan)
    assert sorted(outcomes) == sorted(s.run_id for s in specs[1:])
    assert {o.status for o in outcomes.values()} == {"ok"}
    assert len(load_results(root).runs) == 3 and (tmp_path / "hydra" / "sweep.log").is_file()
    again = launcher.launch_plan(Plan(root, "mine", False, jobs, todo=jobs, done=3, seconds=0.0))
    assert {o.status for o in again.values()} == {"skipped"}


def test_the_local_launcher_forks_on_linux_and_spawns_on_macos_and_windows():
    from hydra_plugins.mlplab_sweeps.local_launcher import default_start_method

    unix = ["fork", "spawn", "forkserver"]
    assert default_start_method("linux", unix) == "fork"
    assert default_start_method("darwin", unix) == "spawn"  # fork after Accelerate is unsafe
    assert default_start_method("win32", ["spawn"]) == "spawn"
    assert default_start_method("freebsd14", unix) == "fork"


# -- a full disk -----------------------------------------------------------------------------------
def nospace(folder, files):
    """The environment of a command whose disk is full once ``files`` parquet files are written
    (by all its processes together: tests/faults/sitecustomize.py, MLPLAB_FAULT=nospace)."""
    return {
        "MLPLAB_FAULT": "nospace",
        "MLPLAB_FAULT_FILES": str(files),
        "MLPLAB_FAULT_COUNTER": str(folder / "written"),
    }


@pytest.mark.parametrize("files", [0, 7])
def test_a_full_disk_mid_sweep_is_one_line_exit_1_and_a_rerun_finishes(tmp_path, files):
    """The disk fills up after ``files`` parquet files (3 per run, and 3 per generation): the
    sweep ends with exit code 1 and one line saying how many runs are committed; those stay
    whole, no temporary or half-written file is left, and the same command with space again
    finishes the job."""
    args = ["-m", *TINY, f"results_dir={tmp_path}", "seed=0", "hydra/launcher=local", "hydra.launcher.n_workers=1"]
    p = forked(None, args, tmp_path, code=FAULTY, env=nospace(tmp_path, files))
    root = tmp_path / "smoke"
    done = files // 3
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"mlplab: disk full (No space left on device) writing results to {root}: {done} of 4 runs committed; "
        "free some space and rerun the same command to finish"
    ]
    runs = load_results(root).runs
    assert len(runs) == done and set(runs.status) <= {"ok"}
    assert not list(tmp_path.rglob(".*.tmp")) and not (root / ".lock").exists()
    for f in root.rglob("*.parquet"):
        pq.read_table(f)
    p = sweep(tmp_path, "seed=0")
    assert p.returncode == 0 and f"4 runs, {done} already done, {4 - done} to run" in p.stdout, p.stderr
    runs = load_results(root).runs
    assert len(runs) == 4 and runs.run_id.is_unique and set(runs.status) == {"ok"}


def test_a_full_disk_in_a_single_run_is_one_line_exit_1(tmp_path):
    args = [f"results_dir={tmp_path}", "sweep_name=one", "depth=1", "width=4", "train.epochs=1"]
    p = forked(None, args, tmp_path, code=FAULTY, env=nospace(tmp_path, 1))  # its layers file fits, not its steps
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        f"mlplab: disk full (No space left on device) writing results to {tmp_path / 'one'}: 0 of 1 runs committed; "
        "free some space and rerun the same command to finish"
    ]
    assert not list(tmp_path.rglob(".*.tmp"))
    p = forked("mlplab", args, tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(load_results(tmp_path / "one").runs) == 1

"""Real multirun sweeps through ``python -m mlplab -m``: progress, resume, launchers, faults."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mlplab import load_results
from mlplab import results as res

pytestmark = pytest.mark.slow

TINY = ["sweep=smoke", "data.n_samples=120", "width=6", "train.epochs=2", "train.batch_size=24"]


def sweep(tmp_path, *args, timeout=300):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlplab", "-m", *TINY, f"results_dir={tmp_path}", *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def metrics(path):
    """The metric tables, sorted, without what legitimately differs (timings)."""
    r = load_results(path, join=False)
    tables = []
    for df, key in ((r.runs, ["run_id"]), (r.steps, ["run_id", "step"]), (r.layers, ["run_id", "step", "layer"])):
        df = df.drop(columns=[c for c in df if c.endswith("_time_s")])
        df = df.astype({c: object for c in df if isinstance(df[c].dtype, pd.CategoricalDtype)})
        tables.append(df.sort_values(key).reset_index(drop=True))
    return tables


def test_multirun_writes_tables_with_progress_and_summary(tmp_path):
    p = sweep(tmp_path, "depth=0,2", "loss=mse,softmax_ce", "seed=0")
    assert p.returncode == 0, p.stderr
    assert "sweep 'smoke': 4 runs, 0 already done, 4 to run" in p.stdout
    assert re.search(r"4/4 runs \(100%\)", p.stdout) and "4 ok, 0 diverged, 0 failed, 0 missing" in p.stdout
    r = load_results(tmp_path / "smoke")
    assert len(r.runs) == 4 and set(r.runs.depth) == {0, 2} and set(r.runs.loss) == {"mse", "softmax_ce"}
    assert set(r.runs.status) == {"ok"} and set(r.runs.sweep) == {"smoke"}
    assert len(r.layers) == sum(len(r.steps[r.steps.run_id == i]) * (d + 1) for i, d in zip(r.runs.run_id, r.runs.depth))
    for col in ["grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "sat_frac"]:
        assert r.layers.query("step == 0")[col].notna().all()
    assert r.steps.query("step == 0")[["train_loss", "train_accuracy", "grad_norm"]].notna().all(axis=None)
    # Hydra's own files sit beside the tables, not inside them
    assert (tmp_path / "smoke" / "hydra").is_dir()
    assert all(p.suffix == ".parquet" for t in res.TABLES for p in (tmp_path / "smoke" / t).iterdir())


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


LAUNCHERS = {
    "basic": ["hydra/launcher=basic"],
    "joblib, 2 jobs": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "local, 1 worker": ["hydra/launcher=local", "hydra.launcher.n_workers=1"],
    "local, 2 workers": ["hydra/launcher=local", "hydra.launcher.n_workers=2"],
    "dask, 2 workers": ["hydra/launcher=dask", "hydra.launcher.n_workers=2"],
}


def test_launchers_and_worker_counts_give_bit_identical_metrics(tmp_path):
    grid = ["depth=1,3", "loss=bce,softmax_ce", "activation=sigmoid,relu", "seed=0"]
    outs = {}
    for name, launcher in LAUNCHERS.items():
        p = sweep(tmp_path / name.replace(" ", "_").replace(",", ""), *grid, *launcher)
        assert p.returncode == 0, p.stderr
        assert "8 ok, 0 diverged, 0 failed, 0 missing" in p.stdout
        outs[name] = metrics(tmp_path / name.replace(" ", "_").replace(",", "") / "smoke")
    for name in list(LAUNCHERS)[1:]:
        for a, b in zip(outs["basic"], outs[name]):
            pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_remedies_are_sweep_axes(tmp_path):
    p = sweep(tmp_path, "depth=3", "loss=softmax_ce", "seed=0", "residual=false,true", "norm=null,batch,layer")
    assert p.returncode == 0, p.stderr
    assert "6 ok, 0 diverged, 0 failed, 0 missing" in p.stdout
    r = load_results(tmp_path / "smoke")
    assert len(r.runs) == 6 and r.runs.run_id.is_unique
    combos = set(zip(r.runs.residual, r.runs.norm.astype(object).where(r.runs.norm.notna(), None)))
    assert combos == {(res, n) for res in (False, True) for n in (None, "batch", "layer")}
    hidden = r.layers[(r.layers.layer <= 3) & (r.layers.step == 0)]
    assert (hidden.grad_gamma_norm.isna() == hidden.norm.isna()).all()  # null exactly where no norm
    assert hidden.norm.isna().sum() == hidden.norm.notna().sum() / 2 == 6


FAULTS = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent / "faults"), "MLPLAB_FAULT": "backward"}


@pytest.mark.parametrize("launcher", ["basic", "local, 2 workers", "dask, 2 workers"])
def test_a_failing_run_does_not_stop_the_sweep(tmp_path, launcher):
    """A genuine fault inside one run (injected into the runs of width 5, in whichever process
    runs them): recorded as failed, the sweep goes on, one line on stderr, exit code 1."""
    cmd = [sys.executable, "-m", "mlplab", "-m", *TINY, f"results_dir={tmp_path}", "depth=1", "loss=mse", "seed=0",
           "width=4,5", *LAUNCHERS[launcher]]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=FAULTS)
    assert p.returncode == 1
    assert "1 ok, 0 diverged, 1 failed, 0 missing" in p.stdout
    assert p.stderr.strip().splitlines() == [
        f"mlplab: sweep 'smoke': 1 failed, 0 missing of 2 runs; rerun the same command to retry them -> {tmp_path / 'smoke'}"]
    r = load_results(tmp_path / "smoke")
    failed = r.runs[r.runs.status == "failed"]
    assert len(failed) == 1 and failed.reason.iloc[0] == "FloatingPointError: injected fault"


def test_a_bad_value_stops_the_whole_sweep_before_any_training(tmp_path):
    p = sweep(tmp_path, "depth=1,-2", "loss=mse", "seed=0")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["mlplab: invalid config: depth=-2: must be an integer >= 0 (in job depth=-2 loss=mse seed=0 sweep=smoke data.n_samples=120 width=6 train.epochs=2 train.batch_size=24 results_dir=" + str(tmp_path) + ")"]
    assert not (tmp_path / "smoke" / "runs").exists()


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


GRID = ["depth=2,4,6", "loss=mse,bce", "seed=0,1", "width=32", "data.n_samples=1000", "train.epochs=12", "train.batch_size=8"]


def interruptible():
    """Run a child with SIGINT at its default: a test run in the background (where the shell
    ignores SIGINT, and children inherit that) still sees what a user's Ctrl-C does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def committed(root) -> int:
    return len(res.committed_ids(root)) if (root / "runs").is_dir() else 0


@pytest.mark.parametrize("launcher,victim", [("local", "whole sweep"), ("local", "one worker"),
                                             ("dask", "whole sweep"), ("dask", "one worker")])
def test_sigkill_mid_sweep_then_rerun_recovers_every_run_exactly_once(tmp_path, launcher, victim):
    """kill -9 of the whole sweep, or of one worker process: a dask sweep finishes anyway (the
    lost chunk goes to the restarted worker); a local one stops with one line and exit code 1.
    Either way the folder reads as it is, holds no temporary file once the sweep is over, and
    the same command then finishes exactly the missing runs, with the metrics of a clean sweep."""
    killed = tmp_path / "killed"
    killed.mkdir()
    cmd = [sys.executable, "-m", "mlplab", "-m", *TINY, f"results_dir={killed}", *GRID, f"hydra/launcher={launcher}",
           "hydra.launcher.n_workers=2"]
    proc = subprocess.Popen(cmd, cwd=killed, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    root = killed / "smoke"
    deadline = time.time() + 120
    while time.time() < deadline and committed(root) < 3:
        time.sleep(0.02)
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

    p = sweep(killed, *GRID, f"hydra/launcher={launcher}")
    assert p.returncode == 0, p.stderr
    assert f"12 runs, {done_at_kill} already done, {12 - done_at_kill} to run" in p.stdout
    assert not list(killed.rglob(".*.tmp"))

    clean = tmp_path / "clean"
    assert sweep(clean, *GRID, "hydra/launcher=basic").returncode == 0
    got, want = metrics(root), metrics(clean / "smoke")
    assert got[0].run_id.is_unique and len(got[0]) == 12
    assert set(got[0].run_id) == set(want[0].run_id)
    for a, b in zip(got, want):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_ctrl_c_mid_sweep_is_one_line_exit_130_and_a_rerun_resumes(tmp_path):
    """SIGINT to the sweep's process group (what Ctrl-C sends): one line saying how far it got,
    exit code 130, no temporary file left; the same command then finishes the set, with the
    metrics of an uninterrupted sweep."""
    killed = tmp_path / "killed"
    killed.mkdir()
    cmd = [sys.executable, "-m", "mlplab", "-m", *TINY, f"results_dir={killed}", *GRID]
    proc = subprocess.Popen(cmd, cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=interruptible)
    root = killed / "smoke"
    deadline = time.time() + 120
    while time.time() < deadline and committed(root) < 3:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done = committed(root)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"mlplab: interrupted: {done} of 12 runs committed; rerun the same command to resume"]
    assert 3 <= done < 12 and not list(killed.rglob(".*.tmp"))
    p = subprocess.run(cmd, cwd=killed, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and f"12 runs, {done} already done" in p.stdout, p.stderr
    clean = tmp_path / "clean"
    assert sweep(clean, *GRID, "hydra/launcher=basic").returncode == 0
    got, want = metrics(killed / "smoke"), metrics(clean / "smoke")
    assert len(got[0]) == 12
    for a, b in zip(got, want):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_ctrl_c_during_a_single_run(tmp_path):
    cmd = [sys.executable, "-m", "mlplab", f"results_dir={tmp_path}", "sweep_name=one", "depth=12", "width=64",
           "train.epochs=200", "train.batch_size=8"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=interruptible)
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "one").rglob("config.yaml")):
        time.sleep(0.02)  # Hydra writes the job's config just before the run starts
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["mlplab: interrupted: 0 of 1 runs committed; rerun the same command to resume"]
    assert not (tmp_path / "one" / "runs").exists() and not list(tmp_path.rglob(".*.tmp"))


def test_a_sweep_on_an_existing_dask_scheduler(tmp_path):
    """hydra.launcher.address: the runs go to the workers of a Dask scheduler that is already
    running (here one started for the test, with two single-threaded workers)."""
    import json

    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                                       "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(sched_file.read_text())["address"]
        grid = ["depth=1,3", "loss=bce,softmax_ce", "seed=0"]
        p = sweep(tmp_path / "remote", *grid, "hydra/launcher=dask", f"hydra.launcher.address={address}")
        assert p.returncode == 0, p.stderr
        assert "4 ok, 0 diverged, 0 failed, 0 missing" in p.stdout
        assert sweep(tmp_path / "basic", *grid, "hydra/launcher=basic").returncode == 0
        for a, b in zip(metrics(tmp_path / "remote" / "smoke"), metrics(tmp_path / "basic" / "smoke")):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)

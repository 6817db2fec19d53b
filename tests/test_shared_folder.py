"""Several sweeps writing into one results folder at once: every run stored once, honest exit
codes, one compaction at a time (``mlplab.lock.Lease``), and a lease whose holder died does not
block the folder."""

import glob
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FAULTY, Forked, dead_pid

from mlplab import RunSpec, load_results, run
from mlplab import results as res
from mlplab.lock import HOST, LEASE_S, LOCK, Lease

FAULTS = str(Path(__file__).resolve().parent / "faults")
TINY = ["sweep=smoke", "data.n_samples=120", "width=6", "train.epochs=2", "train.batch_size=24",
        "hydra/launcher=local", "hydra.launcher.n_workers=1", "hydra.launcher.min_chunk_seconds=0"]


def stored_once(root):
    """Every run's rows are stored once on disk: the parquet files of each table, read directly
    (as any parquet reader sees them), hold each run (runs), each (run, step) (steps) and each
    (run, step, layer) (layers) once. Returns the run ids."""
    keys = {"runs": ["run_id"], "steps": ["run_id", "step"], "layers": ["run_id", "step", "layer"]}
    ids = None
    for table, key in keys.items():
        files = sorted(glob.glob(str(root / table / "*.parquet")))
        t = pa.concat_tables([pq.read_table(f, columns=key).cast(pa.schema([(k, pa.string() if k == "run_id" else pa.int32())
                                                                             for k in key])) for f in files])
        rows = list(zip(*(t.column(k).to_pylist() for k in key)))
        assert len(rows) == len(set(rows)), f"{table}: {len(rows) - len(set(rows))} rows stored twice"
        if table == "runs":
            ids = {r[0] for r in rows}
        else:
            assert {r[0] for r in rows} == ids
    return ids


def concurrent(folder, grids, env=None):
    """The sweeps of ``grids`` (lists of overrides) started at once into ``folder``/shared,
    each through the command line: their (returncode, stdout, stderr)."""
    procs = [Forked(None, ["-m", *TINY, f"results_dir={folder}", "sweep_name=shared", *grid], folder,
                    code=FAULTY, env={"MLPLAB_FAULT": "none", **(env or {})}) for grid in grids]
    out = []
    for p in procs:
        o, e = p.communicate(timeout=240)
        out.append((p.returncode, o, e))
    return out


@pytest.mark.slow
def test_overlapping_sweeps_into_one_folder_end_well_and_store_each_run_once(tmp_path):
    """Two sweeps of overlapping grids (seeds 0-2 and 1-3 of 4 settings: 8 runs in common)
    start at once into one folder, and their final compactions are held until both reach
    theirs, so that they start together; then a short sweep compacts while a longer one still
    commits chunks. Every sweep exits 0, ``load_results`` has each run once, and every run's
    rows are on disk once."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {"MLPLAB_FAULT": "barrier", "MLPLAB_FAULT_BARRIER": str(barrier), "MLPLAB_FAULT_PARTIES": "2"}
    root = tmp_path / "shared"
    for code, out, err in concurrent(tmp_path, [["seed=0,1,2"], ["seed=1,2,3"]], env):
        assert code == 0 and err == "", (out, err)
        assert "12 ok, 0 diverged, 0 failed, 0 missing" in out
    assert len(os.listdir(barrier)) == 2  # both compactions were held, then started together
    runs = load_results(root).runs
    assert len(runs) == 16 and runs.run_id.is_unique and set(runs.seed) == {0, 1, 2, 3}
    assert stored_once(root) == set(runs.run_id)

    for code, out, err in concurrent(tmp_path, [["seed=4", "depth=1"], ["seed=4,5"]]):
        assert code == 0 and err == "", (out, err)
    runs = load_results(root).runs
    assert len(runs) == 16 + 8 and runs.run_id.is_unique
    assert stored_once(root) == set(runs.run_id)
    assert not list(root.rglob(".*.tmp")) and not (root / ".lock").exists()


# -- the lease ---------------------------------------------------------------------------------------
def owner_file(root, host, pid, age=0.0, started=None):
    """A lease in ``root`` as another process left it: its owner file, renewed ``age`` seconds ago."""
    lock = root / LOCK
    lock.mkdir()
    path = lock / "owner.0123456789abcdef"
    path.write_text(json.dumps({"host": host, "pid": pid, "started": started, "token": "0123456789abcdef"}))
    os.utime(path, (time.time() - age,) * 2)
    return path


def hold(root, log, rounds):
    """In a child process: take the lease ``rounds`` times, each time writing ``in``/``out``
    lines around a short hold into ``log`` (appended: one write per line)."""
    for _ in range(rounds):
        with Lease(root):
            fd = os.open(log, os.O_WRONLY | os.O_APPEND)
            os.write(fd, f"in {os.getpid()}\n".encode())
            time.sleep(0.005)
            os.write(fd, f"out {os.getpid()}\n".encode())
            os.close(fd)
    os._exit(0)


def test_a_lease_is_held_by_one_process_at_a_time_even_over_a_stale_one(tmp_path):
    """Four processes take and give up the lease five times each, starting together over the
    stale lease of a dead process (all of them break it at once): every hold is alone."""
    owner_file(tmp_path, HOST, dead_pid())
    log = tmp_path / "log"
    log.touch()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=hold, args=(tmp_path, log, 5)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 4 * 5 * 2
    for enter, leave in zip(lines[::2], lines[1::2]):
        assert enter.startswith("in ") and leave == "out " + enter[3:], lines
    assert os.listdir(tmp_path) == ["log"]  # no lease, no scratch left


def test_a_compaction_killed_while_holding_the_lease_does_not_block_the_next(tmp_path):
    """A process holding the lease is killed (SIGKILL: it leaves its lease behind); the next
    compaction breaks it at once (same host, its pid gone) and compacts."""
    root = tmp_path / "r"
    run(RunSpec(depth=1, width=4, n_samples=100, epochs=1), root)
    ready = tmp_path / "ready"
    pid = os.fork()
    if pid == 0:
        Lease(root).acquire()
        ready.touch()
        time.sleep(60)
        os._exit(0)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert [n for n in os.listdir(root / LOCK) if n.startswith("owner.")]  # left behind
    t0 = time.monotonic()
    assert res.compact(root)["runs"] == 1
    assert time.monotonic() - t0 < 5 and not (root / LOCK).exists()


def test_a_lease_of_another_host_is_waited_for_until_it_expires(tmp_path):
    """Another host's lease cannot be judged by its pid: it is waited for while it is renewed,
    and broken once it was not renewed for the timeout (by the file system's clock)."""
    owner = owner_file(tmp_path, "elsewhere", os.getpid())
    assert not Lease(tmp_path).acquire(wait=0.3)  # renewed just now: its holder may be at work
    os.utime(owner)  # renewed again
    renewed = owner.stat().st_mtime
    lease = Lease(tmp_path, timeout=0.5)
    assert lease.acquire(wait=30)
    assert time.time() >= renewed + 0.5  # it waited for the lease to expire
    lease.release()
    owner_file(tmp_path, "elsewhere", 1, age=2 * LEASE_S)  # expired long ago: broken, not waited for
    lease = Lease(tmp_path)
    assert lease.acquire(wait=5)
    lease.release()


def test_a_reused_pid_does_not_keep_a_dead_holders_lease(tmp_path):
    """The holder's pid runs again, as another process (its start time differs): stale."""
    owner_file(tmp_path, HOST, os.getpid(), started="1")
    lease = Lease(tmp_path)
    assert lease.acquire(wait=5)
    lease.release()


def test_a_stale_lease_is_broken_once_and_a_newer_lease_never(tmp_path):
    """Two processes find the same dead holder's lease: the first breaks it and takes the
    folder; the second, breaking by the stale lease's owner file, finds it gone and leaves the
    new lease alone."""
    stale = owner_file(tmp_path, HOST, dead_pid())
    first, second = Lease(tmp_path), Lease(tmp_path)
    assert first.stale(json.loads(stale.read_text()), stale.stat().st_mtime)
    assert first.break_lease(stale.name)
    assert first.acquire(wait=1)
    assert not second.break_lease(stale.name)  # judged stale a moment ago: already broken
    assert first.check() and (tmp_path / LOCK / first.name).exists()
    assert not second.acquire(wait=0.1)
    first.release()
    assert second.acquire(wait=1)
    second.release()


def test_a_holder_whose_lease_expired_learns_it_was_broken(tmp_path):
    """A holder stalled beyond the timeout (here: a taker with a short one) loses its lease
    to the taker; ``check()`` says so, and its release leaves the taker's lease alone."""
    slow = Lease(tmp_path)
    slow.acquire()
    os.utime(tmp_path / LOCK / slow.name, (time.time() - 10,) * 2)  # as if not renewed for 10 s
    taker = Lease(tmp_path, timeout=5)
    assert taker.acquire(wait=1)
    assert not slow.check()
    slow.release()
    assert taker.check() and (tmp_path / LOCK / taker.name).exists()
    taker.release()
    assert not (tmp_path / LOCK).exists()


# -- what else is shared: temporary files, a run's files, generations being written -------------------
def test_only_the_temporaries_of_writers_that_are_gone_are_removed(tmp_path):
    """A temporary file's name says who writes it: a process of this host that is gone (removed),
    one that runs (kept), another host's or an older mlplab's nameless one (kept until old)."""
    folder = tmp_path / "runs"
    folder.mkdir()
    old = time.time() - 2 * res.ORPHAN_AGE_S

    def temporary(name, age=None):
        (folder / name).write_bytes(b"half")
        if age:
            os.utime(folder / name, (age, age))
        return name

    mine = res._temporary(folder / "b.parquet")  # in flight in this process
    os.close(mine[0])
    gone = {temporary(f".a.parquet.{HOST}.{dead_pid()}.abcd1234.tmp"),
            temporary(f".a.parquet.elsewhere.{os.getpid()}.abcd1234.tmp", old),
            temporary(".a.parquet.abcd1234.tmp", old),
            temporary(f".a.parquet.{HOST}.{os.getpid()}.abcd1234.tmp")}  # this process, not in flight
    kept = {temporary(f".a.parquet.{HOST}.{os.getppid()}.abcd1234.tmp"),  # a process that runs
            temporary(f".a.parquet.elsewhere.{os.getpid()}.efgh5678.tmp"),
            temporary(".a.parquet.efgh5678.tmp"),
            Path(mine[1]).name}
    assert res.remove_temporaries(tmp_path, pids={os.getppid()}) == 1  # only those of these processes
    assert res.remove_temporaries(tmp_path) == len(gone)
    assert set(os.listdir(folder)) == kept - {f".a.parquet.{HOST}.{os.getppid()}.abcd1234.tmp"}


SMALL = dict(depth=1, width=4, n_samples=100, epochs=1)


def test_a_file_rewritten_since_it_was_read_is_not_removed(tmp_path):
    """``_unlink_if`` removes a file only in the version that was read: one rewritten since (the
    same run done again by another sweep) stays, whole."""
    path = tmp_path / "a.parquet"
    read = res.atomic_write_bytes(path, b"first")
    newer = res.atomic_write_bytes(path, b"second")
    assert res._unlink_if(path, read) == 0 and path.read_bytes() == b"second"
    assert res._unlink_if(path, newer) == 1 and not path.exists()
    assert res._unlink_if(path, newer) == 0 and os.listdir(tmp_path) == []


def test_a_compaction_takes_files_that_move_under_it_and_keeps_a_run_done_again(tmp_path, monkeypatch):
    """While a compaction works, a worker moves two runs into its chunk's generation (the files
    listed are gone when they are read: the compaction looks again), and a run is done again
    (its new files are newer than the ones read: they stay). Nothing is lost; every run is
    stored once after the next compaction."""
    root = tmp_path / "r"
    specs = [RunSpec(**SMALL, seed=s) for s in range(4)]
    chunk = []
    for spec in specs[:2]:
        run(spec, root, tables=chunk)
    for spec in specs[2:]:
        run(spec, root)
    real_versions, real_read = res._own_versions, res._read_table
    moved, redone = [], {}

    def versions(cat):
        if not moved:  # the worker commits its chunk just after the compaction listed the folder
            merged = {t: pa.concat_tables([x[t] for x in chunk]).unify_dictionaries() for t in res.TABLES}
            res.commit_generation(root, merged, own={x["runs"].column("run_id")[0].as_py(): x["files"] for x in chunk})
            moved.append(True)
        return real_versions(cat)

    def read(cat, table, schema):
        out = real_read(cat, table, schema)
        if table == "runs" and not redone:  # read: now the run is done again, by another sweep
            redone.update(run(specs[3], root, force=True))
        return out

    monkeypatch.setattr(res, "_own_versions", versions)
    monkeypatch.setattr(res, "_read_table", read)
    assert res.compact(root)["runs"] == 4
    monkeypatch.undo()
    assert res.run_path(root, "runs", specs[3].run_id).exists()  # the newer version stayed
    runs = load_results(root).runs.set_index("run_id")
    assert len(runs) == 4 and runs.loc[specs[3].run_id, "wall_time_s"] == redone["wall_time_s"]
    res.compact(root)
    assert stored_once(root) == {s.run_id for s in specs}
    assert load_results(root).runs.set_index("run_id").loc[specs[3].run_id, "wall_time_s"] == redone["wall_time_s"]


def test_writes_in_flight_are_not_leftovers(tmp_path):
    """A run's steps and layers without its runs file (its commit is still to come) and a
    generation's steps without its runs file (a worker writing it) stay while their writer may
    be at work; they are removed once it is gone (a process of this host) or they are old."""
    root = tmp_path / "r"
    for seed in (0, 1):
        run(RunSpec(**SMALL, seed=seed), root)
    flight = RunSpec(**SMALL, seed=2)
    run(flight, root)
    res.run_path(root, "runs", flight.run_id).unlink()  # its steps and layers are written, its runs file not yet
    steps = pq.read_table(res.run_path(root, "steps", flight.run_id))
    writing = f"{res.COMPACT}{time.time_ns():020d}-{HOST}-{os.getppid()}"  # a live process of this host
    dead = f"{res.COMPACT}{time.time_ns():020d}-{HOST}-{dead_pid()}"
    other = f"{res.COMPACT}{time.time_ns():020d}-elsewhere-{os.getpid()}"
    for name in (writing, dead, other):
        pq.write_table(steps, root / "steps" / f"{name}.parquet")
    res.compact(root)
    left = {p.name for p in (root / "steps").iterdir()}
    assert {f"{flight.run_id}.parquet", f"{writing}.parquet", f"{other}.parquet"} <= left
    assert f"{dead}.parquet" not in left
    run(flight, root)  # its commit comes: the run is whole
    assert len(load_results(root).steps.query(f"run_id == '{flight.run_id}'")) == len(steps)
    old = time.time() - 2 * res.ORPHAN_AGE_S
    os.utime(root / "steps" / f"{other}.parquet", (old, old))
    res.compact(root)
    left = {p.name for p in (root / "steps").iterdir()}
    assert f"{other}.parquet" not in left and f"{writing}.parquet" in left


def test_a_run_moved_into_a_generation_while_read_is_read_again_not_without_its_steps(tmp_path, monkeypatch):
    """A reader listed a run's own files; a worker's chunk commit then moved them into its
    generation before the reader got to the steps: the reader looks again and finds the steps
    in the generation, not a run without steps. (A run whose runs file is there but whose steps
    file is not has none.)"""
    root = tmp_path / "r"
    chunk = []
    run(RunSpec(**SMALL), root, tables=chunk)
    real = res._read_table

    def read(cat, table, schema):
        if table == "steps" and chunk:  # between the runs and the steps of the reader
            merged = {t: chunk[0][t] for t in res.TABLES}
            res.commit_generation(root, merged, own={chunk[0]["runs"].column("run_id")[0].as_py(): chunk.pop()["files"]})
        return real(cat, table, schema)

    monkeypatch.setattr(res, "_read_table", read)
    r = load_results(root)
    assert len(r.runs) == 1 and len(r.steps) > 0 and not chunk

"""Several sweeps writing into one results folder at once: every run stored once, honest exit
codes, one compaction at a time (``mlplab.lock.Lease``), and a lease whose holder died does not
block the folder."""

import errno
import glob
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FAULTY, Forked, dead_pid

from mlplab import RunSpec, load_results, run
from mlplab import lock as lk
from mlplab import results as res
from mlplab.lock import HOST, LEASE_S, LOCK, Lease, alive, process_start, server_now, writer_here

FAULTS = str(Path(__file__).resolve().parent / "faults")
TINY = [
    "sweep=smoke",
    "data.n_samples=120",
    "width=6",
    "train.epochs=2",
    "train.batch_size=24",
    "hydra/launcher=local",
    "hydra.launcher.n_workers=1",
    "hydra.launcher.min_chunk_seconds=0",
]
SMALL = dict(depth=1, width=4, n_samples=100, epochs=1)


def stored_once(root):
    """Every run's rows are stored once on disk: the parquet files of each table, read directly
    (as any parquet reader sees them), hold each run (runs), each (run, step) (steps) and each
    (run, step, layer) (layers) once. Returns the run ids."""
    keys = {"runs": ["run_id"], "steps": ["run_id", "step"], "layers": ["run_id", "step", "layer"]}
    ids = None
    for table, key in keys.items():
        files = sorted(glob.glob(str(root / table / "*.parquet")))
        t = pa.concat_tables(
            [
                pq.read_table(f, columns=key).cast(
                    pa.schema([(k, pa.string() if k == "run_id" else pa.int32()) for k in key])
                )
                for f in files
            ]
        )
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
    procs = [
        Forked(
            None,
            ["-m", *TINY, f"results_dir={folder}", "sweep_name=shared", *grid],
            folder,
            code=FAULTY,
            env={"MLPLAB_FAULT": "none", **(env or {})},
        )
        for grid in grids
    ]
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


@pytest.mark.parametrize("holder", ["reused pid", "dead pid"])
def test_a_dead_holders_lease_is_broken_and_taken_at_once(tmp_path, holder):
    """The holder's pid is gone, or runs again as another process (its start time differs):
    its lease is stale, broken and taken at once, with no time to wait."""
    if holder == "reused pid":
        owner_file(tmp_path, HOST, os.getpid(), started="1")
    else:
        owner_file(tmp_path, HOST, dead_pid())
    lease = Lease(tmp_path)
    assert lease.acquire(wait=0)
    assert os.listdir(tmp_path / LOCK) == [lease.name]
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
    assert slow.check() is False and slow.held is False
    slow.release()
    assert taker.check() and (tmp_path / LOCK / taker.name).exists()
    taker.release()
    assert not (tmp_path / LOCK).exists()


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_alive_tells_a_running_process_from_one_that_ended_or_is_a_zombie(tmp_path):
    """A process that runs is alive — even one whose name holds ')' and ' Z ' (its name stands
    in parentheses before its state in /proc's stat line), and asking sends it no signal; one
    with another start time is another process. One that ended and is not reaped yet (a
    zombie) is not alive, nor one reaped, nor a pid of 0 or below (no process's)."""
    assert not alive(0) and not alive(-1) and not alive(dead_pid())
    odd = tmp_path / "x) Z (y"
    odd.symlink_to(shutil.which("sleep"))
    child = subprocess.Popen([str(odd), "30"])
    try:
        assert alive(child.pid) and alive(child.pid, process_start(child.pid))
        assert not alive(child.pid, "1")  # its pid, another start time: another process
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.2)  # still running: asking did not signal it
    finally:
        child.kill()
        child.wait()
    zombie = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while proc_state(zombie.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc_state(zombie.pid) == "Z"
    assert not alive(zombie.pid) and not alive(zombie.pid, process_start(zombie.pid))
    zombie.wait()
    assert not alive(zombie.pid)


def test_without_proc_a_process_that_exists_is_alive(monkeypatch):
    """Where /proc cannot be read (another system), kill() alone tells: a process that exists is
    alive, whatever start time is asked about (unsure: alive); one that ended is not."""

    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)

    monkeypatch.setattr(lk, "open", no_proc, raising=False)
    assert alive(os.getpid()) and alive(os.getpid(), "1")
    assert not alive(dead_pid())


@pytest.mark.parametrize("content", [b"\xff\xfe not text", b"[1, 2]", b'"owner"', b"", b'{"host": '])
def test_an_owner_file_that_is_not_a_json_object_is_judged_by_its_age(tmp_path, content):
    """An owner file that is no JSON object (damaged, or another program's) says nothing of its
    holder: its lease is waited on while renewed and broken once it expired."""
    path = owner_file(tmp_path, HOST, dead_pid())
    path.write_bytes(content)
    assert lk._owner(path) == ({}, path.stat().st_mtime)
    assert not Lease(tmp_path).acquire(wait=0.05)  # renewed just now
    old = time.time() - 2 * LEASE_S
    os.utime(path, (old, old))
    lease = Lease(tmp_path)
    assert lease.acquire(wait=5)
    lease.release()


def test_a_lease_is_judged_by_its_pid_only_on_its_own_host(tmp_path):
    """A pid says which process holds a lease only on the holder's host, and only as a number:
    another host's lease whose pid has ended here, or this host's whose pid is not a number,
    is judged by its age alone."""
    lease = Lease(tmp_path)
    now = server_now(tmp_path)
    gone = dead_pid()
    assert lease.stale({"host": HOST, "pid": gone}, now)
    assert not lease.stale({"host": "elsewhere", "pid": gone}, now)
    assert not lease.stale({"host": HOST, "pid": str(gone)}, now)
    assert lease.stale({"host": "elsewhere", "pid": gone}, now - 2 * LEASE_S)


def test_ages_are_measured_on_the_clock_of_the_folders_file_system(tmp_path, monkeypatch):
    """Over NFS the file server stamps mtimes by its own clock, which may run ahead of this
    host's: here two hours ahead, so a file it stamped two hours ago shows an mtime that is
    "now" on this host. How long a lease went without renewal and how old a temporary or a
    leftover file is are measured on the folder's clock (``server_now``), never this host's."""
    root = tmp_path / "r"
    run(RunSpec(**SMALL), root)
    ahead = 2 * res.ORPHAN_AGE_S
    real = lk.server_now

    def server(folder):  # None: a probe in the system's temporary folder, on this host's clock
        return real(folder) + (ahead if folder is not None and Path(folder) == root else 0.0)

    monkeypatch.setattr(lk, "server_now", server)
    monkeypatch.setattr(res, "server_now", server)
    owner_file(root, "elsewhere", 1)  # renewed two hours ago by the server's clock
    lease = Lease(root)
    assert lease.acquire(wait=0)  # expired: broken at once
    lease.release()
    (root / "runs" / ".a.parquet.abcd1234.tmp").write_bytes(b"half")  # an older mlplab's, two hours old
    assert res.remove_temporaries(root) == 1
    steps = next((root / "steps").glob("*.parquet"))
    left = root / "steps" / f"{res.COMPACT}{time.time_ns():020d}-elsewhere-1.parquet"
    shutil.copy(steps, left)  # another host's generation, unfinished for two hours
    res.compact(root)
    assert not left.exists()


def test_a_file_or_lease_is_old_only_beyond_its_limit(tmp_path, monkeypatch):
    """A temporary or leftover file is left over once unchanged for more than ORPHAN_AGE_S, and a
    lease expired once not renewed for more than its timeout: at the limit exactly, not yet."""
    root = tmp_path / "r"
    run(RunSpec(**SMALL), root)
    then = float(int(time.time()) - 10)  # whole seconds: the differences below are exact
    tmp = root / "runs" / ".a.parquet.abcd1234.tmp"
    tmp.write_bytes(b"half")
    left = root / "steps" / f"{res.COMPACT}{time.time_ns():020d}-elsewhere-1.parquet"
    shutil.copy(next((root / "steps").glob("*.parquet")), left)
    for p in (tmp, left):
        os.utime(p, (then, then))
    limit = then + res.ORPHAN_AGE_S
    cat = res.Catalogue.of(root)
    assert res._leftovers(root, cat, limit) == []
    assert [p for p, _ in res._leftovers(root, cat, limit + 1)] == [left]
    assert res.remove_temporaries(root, now=limit) == 0 and tmp.exists()
    assert res.remove_temporaries(root, now=limit + 1) == 1 and not tmp.exists()
    lease = Lease(root, timeout=10)
    monkeypatch.setattr(lk, "server_now", lambda folder: then + 10)
    assert not lease.stale({}, then)
    assert lease.stale({}, then - 1)


@pytest.mark.parametrize("when", ["before its folder is listed", "before its owner file is read"])
def test_a_lease_released_while_a_taker_looks_at_it_is_taken_at_once(tmp_path, monkeypatch, when):
    """The holder releases its lease after a taker's rename failed and before the taker looked
    at the lease (its folder or its owner file is gone): the taker tries again at once and
    takes it, with no time to wait."""
    holder, taker = Lease(tmp_path), Lease(tmp_path)
    assert holder.acquire()
    if when == "before its folder is listed":
        listdir = os.listdir

        def release_first(path):
            if Path(path) == taker.path and holder.held:
                holder.release()
            return listdir(path)

        monkeypatch.setattr(lk.os, "listdir", release_first)
    else:
        owner = lk._owner

        def release_first(path):
            if holder.held:
                holder.release()
            return owner(path)

        monkeypatch.setattr(lk, "_owner", release_first)
    assert taker.acquire(wait=0)
    assert not holder.held and os.listdir(tmp_path / LOCK) == [taker.name]
    taker.release()


@pytest.mark.parametrize("what", ["a file", "a folder of other files"])
def test_a_lock_name_that_holds_no_lease_is_waited_on_and_never_removed(tmp_path, what):
    """``.lock`` that is not mlplab's (a file, or a folder without an owner file) is no lease to
    break: takers wait on it (until their time is up) and leave it as it is."""
    path = tmp_path / LOCK
    if what == "a file":
        path.write_text("mine")
        mine = path
    else:
        path.mkdir()
        mine = path / "notes"
        mine.write_text("mine")
    lease = Lease(tmp_path)
    assert lease._break_if_stale() is False  # nothing to break, no use trying again at once
    assert not lease.acquire(wait=0.05)
    assert mine.read_text() == "mine" and sorted(os.listdir(tmp_path)) == [LOCK]


def test_a_process_killed_while_setting_a_file_aside_leaves_a_temporary_named_after_it(tmp_path, monkeypatch):
    """Breaking a lease and removing a compacted file both rename the file to a scratch name
    first (of two processes, one wins the rename), then remove it. Killed in between, a
    process leaves a hidden temporary that says what it held (``.lock.broken.…``,
    ``.<file>.…``) and who set it aside; the next clean-up removes it once that process is
    gone."""
    stale = owner_file(tmp_path, HOST, dead_pid())
    path = tmp_path / "a.parquet"
    version = res.atomic_write_bytes(path, b"rows")
    unlink = os.unlink

    def killed(p, *args, **kwargs):
        if Path(p).name.startswith("."):
            raise KeyboardInterrupt("killed")
        return unlink(p, *args, **kwargs)

    monkeypatch.setattr(lk.os, "unlink", killed)
    with pytest.raises(KeyboardInterrupt):
        Lease(tmp_path).break_lease(stale.name)
    with pytest.raises(KeyboardInterrupt):
        res._unlink_if(path, version)
    monkeypatch.undo()
    left = sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp"))
    assert [n.split(f".{HOST}.")[0] for n in left] == [".a.parquet", ".lock.broken"]
    assert all(writer_here(n) == os.getpid() for n in left)
    assert res.remove_temporaries(tmp_path) == 2  # this process is not writing them
    assert os.listdir(tmp_path) == [LOCK] and os.listdir(tmp_path / LOCK) == []


def test_compact_breaks_an_expired_lease_by_its_own_timeout(tmp_path, monkeypatch):
    """``compact(root, timeout)``: another host's lease not renewed for longer than ``timeout``
    is broken at once, not waited on until LEASE_S."""
    root = tmp_path / "r"
    run(RunSpec(**SMALL), root)
    owner_file(root, "elsewhere", 1, age=LEASE_S / 2)

    def no_waiting(seconds):
        raise AssertionError("waited on an expired lease")

    monkeypatch.setattr(lk.time, "sleep", no_waiting)
    assert res.compact(root, timeout=LEASE_S / 4)["runs"] == 1
    assert not (root / LOCK).exists()


def test_a_compaction_that_lost_its_lease_removes_nothing(tmp_path, monkeypatch):
    """A compaction stalled beyond its timeout while reading, its lease broken by another
    process meanwhile, still commits its generation (rows are never lost) but removes nothing
    it meant to replace — the runs' own files, a leftover — and says it removed none: those
    are the new holder's to judge."""
    root = tmp_path / "r"
    for seed in (0, 1):
        run(RunSpec(**SMALL, seed=seed), root)
    steps = next((root / "steps").glob("*.parquet"))
    shutil.copy(steps, root / "steps" / f"{res.COMPACT}{time.time_ns():020d}-{HOST}-{dead_pid()}.parquet")
    before = {p.relative_to(root) for p in root.rglob("*.parquet")}
    read = res._read_table

    def stalled(cat, table, schema):
        if (root / LOCK).exists():  # another process breaks the lease, judging it expired
            (owner,) = os.listdir(root / LOCK)
            assert Lease(root).break_lease(owner)
        return read(cat, table, schema)

    monkeypatch.setattr(res, "_read_table", stalled)
    assert res.compact(root) == {"runs": 2, "removed": 0}
    monkeypatch.undo()
    after = {p.relative_to(root) for p in root.rglob("*.parquet")}
    assert before < after and len(after - before) == 3  # the new generation, nothing removed
    assert len(load_results(root).runs) == 2


# -- what else is shared: temporary files, a run's files, generations being written -------------------


def test_only_the_temporaries_of_writers_that_are_gone_are_removed(tmp_path):
    """A temporary file's name says who writes it: a process of this host that is gone (removed),
    one that runs (kept), another host's or an older mlplab's nameless one (kept until old).
    With ``pids``, only those of these processes (a launcher's workers, just stopped); with
    ``now``, ages are reckoned at that time. A file that is not a temporary (not hidden, or not
    ``.tmp``) is never touched, however old."""
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
    worker = dead_pid()  # a launcher's worker, just stopped
    temporary(f".a.parquet.{HOST}.{worker}.abcd1234.tmp")
    gone = {
        temporary(f".a.parquet.{HOST}.{dead_pid()}.abcd1234.tmp"),
        temporary(f".a.parquet.elsewhere.{os.getpid()}.abcd1234.tmp", old),
        temporary(".a.parquet.abcd1234.tmp", old),
        temporary(f".a.parquet.{HOST}.{os.getpid()}.abcd1234.tmp"),
    }  # this process, not in flight
    young = {
        temporary(f".a.parquet.{HOST}.{os.getppid()}.abcd1234.tmp"),  # a process that runs
        temporary(f".a.parquet.elsewhere.{os.getpid()}.efgh5678.tmp"),
        temporary(".a.parquet.efgh5678.tmp"),
        Path(mine[1]).name,
    }
    others = {temporary("notes.tmp", old), temporary(".notes", old)}
    assert res.remove_temporaries(tmp_path, pids={worker}) == 1  # only those of these processes
    assert set(os.listdir(folder)) == gone | young | others
    assert res.remove_temporaries(tmp_path) == len(gone)
    assert set(os.listdir(folder)) == young | others
    later = time.time() + 2 * res.ORPHAN_AGE_S  # two hours on, every one of them is old
    assert res.remove_temporaries(tmp_path, now=later) == len(young)
    assert set(os.listdir(folder)) == others


def test_temporaries_are_looked_for_in_each_folder_of_a_results_folder_there_is(tmp_path):
    """In the folder itself (where leases are prepared), its tables, its markers and Hydra's
    folder: in each of them that exists (a folder may lack some, here runs/ and layers/)."""
    dead = dead_pid()
    for sub in ("", "steps", res.MARKERS, "hydra"):
        (tmp_path / sub).mkdir(exist_ok=True)
        (tmp_path / sub / f".x.{HOST}.{dead}.abcd1234.tmp").write_bytes(b"half")
    assert res.remove_temporaries(tmp_path) == 4
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_temporary_folder_of_a_writer_that_is_gone_is_removed_whole(tmp_path, monkeypatch):
    """A taker prepares its lease in a hidden folder (``.lock.<host>.<pid>.XXXXXXXX.tmp``, its
    owner file inside); killed before the rename, it leaves the folder, which the clean-up
    removes whole and counts once — even when another clean-up removes it first. A link by a
    temporary's name is removed itself, never what it points to."""
    dead = dead_pid()
    for token in ("abcd1234", "efgh5678"):
        prepared = tmp_path / f".lock.{HOST}.{dead}.{token}.tmp"
        prepared.mkdir()
        (prepared / "owner.0123456789abcdef").write_text("{}")
    target = tmp_path / "kept"
    target.mkdir()
    (target / "f").write_text("mine")
    (tmp_path / f".x.{HOST}.{dead}.ijkl9012.tmp").symlink_to(target)
    rmdir = os.rmdir

    def beaten(path, *args, **kwargs):  # another clean-up removed the first folder just before
        rmdir(path, *args, **kwargs)
        if str(path).endswith("abcd1234.tmp"):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))

    monkeypatch.setattr(res.os, "rmdir", beaten)
    assert res.remove_temporaries(tmp_path) == 3
    assert os.listdir(tmp_path) == ["kept"] and (target / "f").read_text() == "mine"


def test_a_temporary_removed_by_another_clean_up_meanwhile_is_passed_over(tmp_path, monkeypatch):
    """A temporary listed here and removed by another process's clean-up before it is looked at
    is passed over; the ones after it are still removed."""
    folder = tmp_path / "runs"
    folder.mkdir()
    doomed = folder / f".b.parquet.{HOST}.{dead_pid()}.abcd1234.tmp"
    doomed.write_bytes(b"half")
    listdir = os.listdir

    def listed_then_removed(path):
        names = listdir(path)
        return [".a.parquet.abcd1234.tmp", *names] if Path(path) == folder else names

    monkeypatch.setattr(res.os, "listdir", listed_then_removed)
    assert res.remove_temporaries(tmp_path) == 1 and not doomed.exists()


def test_a_file_rewritten_since_it_was_read_is_not_removed(tmp_path):
    """``_unlink_if`` removes a file only in the version that was read: one rewritten since (the
    same run done again by another sweep) stays, whole."""
    path = tmp_path / "a.parquet"
    read = res.atomic_write_bytes(path, b"first")
    newer = res.atomic_write_bytes(path, b"second")
    assert res._unlink_if(path, read) == 0 and path.read_bytes() == b"second"
    assert res._unlink_if(path, newer) == 1 and not path.exists()
    assert res._unlink_if(path, newer) == 0 and os.listdir(tmp_path) == []


def test_a_file_rewritten_since_it_was_read_is_put_back_where_there_are_no_hard_links(tmp_path, monkeypatch):
    """On a file system without hard links, a file set aside that is not the version read is
    renamed back, and nothing is left beside it."""
    path = tmp_path / "a.parquet"
    read = res.atomic_write_bytes(path, b"first")
    res.atomic_write_bytes(path, b"second")

    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(src))

    monkeypatch.setattr(res.os, "link", no_links)
    assert res._unlink_if(path, read) == 0 and path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["a.parquet"]


def own_files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*.parquet") if not p.name.startswith(res.COMPACT))


def test_a_runs_files_of_one_moment_on_a_coarse_clock_are_one_version(tmp_path):
    """Where mtimes are coarse (whole seconds on some file systems), a run's steps written just
    before its runs file can carry the very same mtime: the compaction still takes them as the
    run's and removes them with it. And a run's steps left beside the generation that
    replaced them (a compaction killed between its removals), stamped in the same moment as
    that generation, are a leftover."""
    root = tmp_path / "r"
    spec = RunSpec(**SMALL)
    run(spec, root)
    committed = os.stat(res.run_path(root, "runs", spec.run_id)).st_mtime_ns
    steps = res.run_path(root, "steps", spec.run_id)
    kept = steps.read_bytes()
    os.utime(steps, ns=(committed, committed))
    res.compact(root)
    assert own_files(root) == []
    (gen,) = (root / "runs").glob(f"{res.COMPACT}*")
    steps.write_bytes(kept)
    os.utime(steps, ns=(gen.stat().st_mtime_ns,) * 2)
    res.compact(root)
    assert own_files(root) == []
    assert len(load_results(root).steps) == len(pq.read_table(pa.BufferReader(kept)))


def test_a_runs_steps_newer_than_its_generation_are_a_write_in_flight(tmp_path):
    """A compacted run being done again, its steps and layers written and its runs file (the
    commit) still to come: they are newer than the run's generation, and the compaction
    leaves them alone."""
    root = tmp_path / "r"
    spec = RunSpec(**SMALL)
    run(spec, root)
    res.compact(root)
    (gen,) = (root / "runs").glob(f"{res.COMPACT}*")
    run(spec, root, force=True)
    res.run_path(root, "runs", spec.run_id).unlink()  # its commit is still to come
    later = gen.stat().st_mtime_ns + 10**9
    for table in ("steps", "layers"):
        os.utime(res.run_path(root, table, spec.run_id), ns=(later, later))
    res.compact(root)
    assert own_files(root) == [Path("layers") / f"{spec.run_id}.parquet", Path("steps") / f"{spec.run_id}.parquet"]


def test_a_leftover_listed_after_a_file_that_vanished_is_still_found(tmp_path, monkeypatch):
    """A steps file listed by the compaction and gone before it is looked at (moved or removed
    by another process) is passed over; the leftovers listed after it are still removed."""
    root = tmp_path / "r"
    run(RunSpec(**SMALL), root)
    dead = root / "steps" / f"{res.COMPACT}{time.time_ns():020d}-{HOST}-{dead_pid()}.parquet"
    shutil.copy(next((root / "steps").glob("*.parquet")), dead)
    files = res._files

    def listed_then_gone(folder):
        found = files(folder)
        return [folder / "0-gone.parquet", *found] if folder == root / "steps" else found

    monkeypatch.setattr(res, "_files", listed_then_gone)
    res.compact(root)
    assert not dead.exists()


def test_a_run_without_its_steps_file_is_compacted_with_its_layers_file(tmp_path):
    """A run whose steps file was lost still has its layers file: the compaction moves it into
    the generation and removes it, like every own file it read."""
    root = tmp_path / "r"
    spec = RunSpec(**SMALL)
    run(spec, root)
    layers = pq.read_table(res.run_path(root, "layers", spec.run_id))
    res.run_path(root, "steps", spec.run_id).unlink()
    assert res.compact(root) == {"runs": 1, "removed": 2}
    assert own_files(root) == [] and len(load_results(root).layers) == layers.num_rows


def test_a_compaction_in_the_process_writing_a_generation_leaves_that_generation_alone(tmp_path, monkeypatch):
    """A process writing a chunk's generation (its steps written, its runs file to come) may
    compact the folder meanwhile (from another thread): the generation's steps file is a write
    in flight of this very process, not a leftover, and the chunk commits whole."""
    root = tmp_path / "r"
    chunk = []
    run(RunSpec(**SMALL, seed=0), root, tables=chunk)
    run(RunSpec(**SMALL, seed=1), root)
    write, started = res.atomic_write_table, []

    def compact_meanwhile(table, path):
        if path.parent.name == "layers" and path.name.startswith(res.COMPACT) and not started:
            started.append(True)
            res.compact(root)
        return write(table, path)

    monkeypatch.setattr(res, "atomic_write_table", compact_meanwhile)
    ((rid, files),) = [(x["runs"].column("run_id")[0].as_py(), x["files"]) for x in chunk]
    res.commit_generation(root, {t: chunk[0][t] for t in res.TABLES}, own={rid: files})
    monkeypatch.undo()
    assert started and len(list((root / "steps").glob(f"{res.COMPACT}*"))) == 2
    r = load_results(root)
    assert len(r.runs) == 2 and set(r.steps.run_id) == set(r.runs.run_id) == set(r.layers.run_id)


def test_an_interrupt_just_after_a_generations_runs_file_keeps_the_generation(tmp_path):
    """A generation is committed by its runs file, written last: an interrupt (Ctrl-C, a
    signal handler raising) arriving just after it, before the commit winds up, leaves the
    committed generation whole — it is not taken for an unfinished one and removed — and the
    run's own files in place (nothing it replaces was removed yet)."""
    root = tmp_path / "r"
    chunk = []
    spec = RunSpec(**SMALL)
    run(spec, root, tables=chunk)

    def trace(frame, event, arg):
        return interrupt if "commit_generation" in frame.f_code.co_name else None

    def interrupt(frame, event, arg):
        if event == "line" and len(frame.f_locals.get("written", ())) == 3:
            raise KeyboardInterrupt("interrupted")
        return interrupt

    tracing = sys.gettrace()
    sys.settrace(trace)
    try:
        with pytest.raises(KeyboardInterrupt):
            res.commit_generation(root, {t: chunk[0][t] for t in res.TABLES}, own={spec.run_id: chunk[0]["files"]})
    finally:
        sys.settrace(tracing)
    assert [len(list((root / t).glob(f"{res.COMPACT}*"))) for t in res.TABLES] == [1, 1, 1]
    assert len(own_files(root)) == 3
    res.compact(root)
    assert stored_once(root) == {spec.run_id}


def test_a_failed_commit_removes_what_it_wrote_even_when_part_of_it_is_gone(tmp_path, monkeypatch):
    """A chunk commit whose runs file cannot be written (a full disk) removes the generation's
    steps and layers files it wrote — even when one of them was removed meanwhile (by hand, or
    by a clean-up) — and raises DiskFull; the run's own files stay."""
    root = tmp_path / "r"
    chunk = []
    spec = RunSpec(**SMALL)
    run(spec, root, tables=chunk)
    write = res.atomic_write_table

    def full(table, path):
        if path.parent.name == "runs":
            (root / "steps" / path.name).unlink()
            raise res.DiskFull(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return write(table, path)

    monkeypatch.setattr(res, "atomic_write_table", full)
    with pytest.raises(res.DiskFull):
        res.commit_generation(root, {t: chunk[0][t] for t in res.TABLES}, own={spec.run_id: chunk[0]["files"]})
    assert not list(root.rglob(f"{res.COMPACT}*")) and len(own_files(root)) == 3


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
            res.commit_generation(
                root, merged, own={chunk[0]["runs"].column("run_id")[0].as_py(): chunk.pop()["files"]}
            )
        return real(cat, table, schema)

    monkeypatch.setattr(res, "_read_table", read)
    r = load_results(root)
    assert len(r.runs) == 1 and len(r.steps) > 0 and not chunk

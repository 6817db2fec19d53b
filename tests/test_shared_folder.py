"""Several processes sharing one results folder: one compaction at a time (``mlplab.lock.Lease``),
a lease whose holder died does not block the folder, and cleaning up removes only what no live
process is writing."""

import json
import multiprocessing
import os
import time
from pathlib import Path

from conftest import dead_pid

from mlplab import results as res
from mlplab.lock import HOST, LEASE_S, LOCK, Lease


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

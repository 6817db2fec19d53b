"""A lease on a results folder, for processes on one host or on many sharing it over NFS: the
lock that lets one compaction at a time rewrite a folder that several sweeps write into.

**Why a lease directory.** Renaming a directory is atomic on every file system a results folder
lives on, NFS included: the server decides, and of two clients renaming onto one name exactly one
succeeds. ``fcntl``/``flock`` locks on NFS need the lock manager (often off, and its locks are
silently dropped when the server restarts), and ``O_EXCL`` was not atomic on older NFS clients.
A *lease* rather than "compaction by exactly one writer": the sweeps sharing a folder are
independent commands (started by hand, by SLURM, on several hosts), none of which can be named
the compactor beforehand, and any of them may be killed; a lease needs no coordinator, and a
dead holder's lease is broken by the next process that wants it.

**Layout.** ``<root>/.lock/owner.<token>`` (a hidden name: parquet readers and globs skip it), a
small JSON file: the holder's host, pid and process start time, and the random ``token`` of this
lease.

* **Taking it**: a directory holding the owner file is made under a unique hidden name and
  renamed to ``.lock``. The rename fails while ``.lock`` holds a lease (a non-empty directory), so
  a lease and its owner appear together — there is never a lease without an owner to judge.
* **Holding it**: a thread touches the owner file (``utime`` to "now": on NFS the server's clock)
  every ``timeout / 8`` seconds.
* **Breaking it**: a lease is stale when its holder is dead (same host, and its pid is gone, a
  zombie, or now another process, by its start time) or when it expired: its owner file was not
  touched for ``timeout`` seconds of the file server's clock (the breaker compares it with the
  mtime of a file it has just written, so no two hosts' clocks are compared). The breaker then
  renames the owner file **by its token** (``.lock/owner.<token>``) to a unique name: of several
  breakers exactly one succeeds, and none can break a newer lease by mistake — that one's owner
  file has another name. The winner removes the empty directory (or a taker's rename replaces it,
  which is as good) and everyone races for the name again.
* **Releasing it**: the owner file is removed by its token, then the empty directory.

A holder whose lease was broken while it was stalled (beyond ``timeout``) learns it from
``check()`` (``compact`` asks before it removes anything) or from its heartbeat, and stops.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

LOCK = ".lock"  # the lease directory in a results folder
LEASE_S = 60.0  # a lease not renewed for this long (file server's clock) is expired
# this host in the names of files being written: letters, digits and '-' only (no '.', so that
# ``.{name}.{host}.{pid}.XXXXXXXX.tmp`` splits unambiguously)
HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname()) or "localhost"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux's /proc), or None when not known:
    with the pid, it names one process of this host, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not); with ``started``,
    whether it is still the process that started then. Errs towards alive when unsure."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return True  # no /proc: kill() said it exists
    if fields[0] == "Z":
        return False
    return started is None or fields[19] == started


def scratch_name(base: str) -> str:
    """A hidden name for something this process is writing, that says who writes it:
    ``.{base}.{host}.{pid}.XXXXXXXX.tmp`` (``writer_here`` reads it back)."""
    return f".{base}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


_SCRATCH = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.tmp$")


def writer_here(name: str) -> int | None:
    """The pid of the process of this host writing the scratch file ``name``; None when the name
    says another host, or nothing (an older mlplab's temporary file)."""
    m = _SCRATCH.match(name)
    return int(m["pid"]) if m and m["host"] == HOST else None


def server_now(folder: Path) -> float:
    """The time now on the clock of the file system holding ``folder`` (a file's mtime, set by
    the NFS server on NFS): the mtime of a file written and removed here."""
    fd, probe = tempfile.mkstemp(prefix=f".clock.{HOST}.{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(probe)


def _owner(path: Path) -> tuple[dict, float] | None:
    """An owner file's content and mtime, or None if it is gone. Opened, then its attributes
    read from the open file: on NFS, opening a file fetches its attributes from the server
    (close-to-open), where a plain stat may answer from the client's cache."""
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(data)
    except ValueError:
        info = {}
    return (info if isinstance(info, dict) else {}), mtime


class Lease:
    """The lease on the results folder ``root`` (see the module's docstring). As a context
    manager it is taken (waiting as long as a live holder keeps it) and released::

        with Lease(root) as lease:
            ...
            if lease.check():  # still ours: go on
                ...

    ``timeout``: how long a lease may go without renewal before others break it (every holder
    and taker of a folder should use the same); the holder renews it every ``timeout / 8``."""

    def __init__(self, root, timeout: float = LEASE_S):
        self.root = Path(root)
        self.path = self.root / LOCK
        self.timeout = float(timeout)
        self.token = secrets.token_hex(8)
        self.name = f"owner.{self.token}"
        self.held = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- taking and releasing ---------------------------------------------------------------
    def acquire(self, wait: float | None = None) -> bool:
        """Take the lease, breaking a stale one; wait up to ``wait`` seconds (None: as long as
        it takes) while a live holder keeps it. Returns whether it was taken."""
        if self.held:
            raise RuntimeError("the lease is held already")
        deadline = None if wait is None else time.monotonic() + wait
        new = self.root / scratch_name("lock")
        os.mkdir(new)
        try:
            info = {
                "host": HOST,
                "pid": os.getpid(),
                "started": process_start(os.getpid()),
                "token": self.token,
                "since": time.time(),
            }
            with open(new / self.name, "w") as f:
                json.dump(info, f)
            pause = 0.005
            while True:
                try:
                    os.rename(new, self.path)
                    break
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                        raise
                    if not new.exists() and (self.path / self.name).exists():
                        break  # it was renamed after all (an NFS reply lost, the request resent)
                if self._break_if_stale():
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.5)
        finally:
            shutil.rmtree(new, ignore_errors=True)
        self.held = True
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="mlplab-lease", daemon=True)
        self._beat.start()
        return True

    def release(self) -> None:
        """Give the lease up (nothing to do if it was broken meanwhile)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if not self.held:
            return
        self.held = False
        try:
            os.unlink(self.path / self.name)
        except FileNotFoundError:
            return  # broken by another process: the directory is no longer ours
        try:
            os.rmdir(self.path)
        except OSError:
            pass  # a taker's lease replaced the empty directory already

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- holding it -------------------------------------------------------------------------
    def check(self) -> bool:
        """Renew the lease now and say whether it is still ours (False once it was broken)."""
        if self.held:
            try:
                os.utime(self.path / self.name)
            except FileNotFoundError:
                self.held = False
            except OSError:
                pass  # a passing NFS error: the lease is as it was
        return self.held

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.timeout / 8):
            if not self.check():
                return

    # -- breaking a stale one ---------------------------------------------------------------
    def stale(self, info: dict, mtime: float) -> bool:
        """Whether the lease of the owner file ``info`` (its content), last renewed at ``mtime``
        (file server's clock), may be broken: its holder is dead, or it expired."""
        if info.get("host") == HOST and isinstance(info.get("pid"), int):
            if not alive(info["pid"], info.get("started")):
                return True
        return server_now(self.root) - mtime > self.timeout

    def _break_if_stale(self) -> bool:
        """Break the lease in ``.lock`` if it is stale; True when there may be no lease now (the
        caller tries to take it again at once)."""
        try:
            found = os.listdir(self.path)
        except FileNotFoundError:
            return True  # released meanwhile
        except NotADirectoryError:
            return False  # not mlplab's: waited on, never removed
        names = [n for n in found if n.startswith("owner.")]
        if not names:
            # empty: a holder between its two removals, and a taker's rename replaces an empty
            # directory; anything else there is not mlplab's (a lease has its owner from the start)
            return not found
        seen = _owner(self.path / names[0])
        if seen is None:
            return True  # released or broken meanwhile
        if not self.stale(*seen):
            return False
        self.break_lease(names[0])
        return True  # broken, by this process or another one

    def break_lease(self, name: str) -> bool:
        """Break the lease whose owner file is ``name`` (``owner.<token>``), judged stale: only
        if that very lease is still there. True if this call broke it."""
        aside = self.root / scratch_name("lock.broken")
        try:
            os.rename(self.path / name, aside)
        except FileNotFoundError:
            return False  # broken by another process, or released: a newer lease is not touched
        os.unlink(aside)
        try:
            os.rmdir(self.path)
        except OSError:
            pass  # a taker's lease took the empty directory's place already
        return True

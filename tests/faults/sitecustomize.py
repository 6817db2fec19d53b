"""Fault injection for the tests, in every Python process that has this folder on its path
(PYTHONPATH): the sweep's driver and its worker processes alike, whether forked or spawned.

MLPLAB_FAULT=backward: the 3rd backward pass of every network whose first hidden layer has 5
units raises FloatingPointError("injected fault") — a genuine failure inside a run.

MLPLAB_FAULT=nospace: the disk fills up. The first MLPLAB_FAULT_FILES parquet files written (by
all the processes together, counted in the file MLPLAB_FAULT_COUNTER) are written; every later
parquet write raises OSError(ENOSPC) without writing anything, as a full disk does.

MLPLAB_FAULT=barrier: a sweep's final compaction waits until MLPLAB_FAULT_PARTIES processes have
reached theirs (each leaves a file in the folder MLPLAB_FAULT_BARRIER), so that the compactions
of sweeps sharing a results folder start together (at most 60 s of waiting).
"""

import os

FAULT = os.environ.get("MLPLAB_FAULT")

if FAULT == "backward":
    import mlplab.network as network

    original = network.MLP.backward_

    def faulty(self, *args, **kwargs):
        if self.sizes[1] == 5:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:
                raise FloatingPointError("injected fault")
        return original(self, *args, **kwargs)

    network.MLP.backward_ = faulty

elif FAULT == "nospace":
    import errno
    import fcntl

    import pyarrow.parquet as pq

    write_table = pq.write_table
    allowed = int(os.environ["MLPLAB_FAULT_FILES"])
    counter = os.environ["MLPLAB_FAULT_COUNTER"]

    def full(table, where, *args, **kwargs):
        with open(counter, "a+") as f:  # one count for every process: the disk is shared
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            written = len(f.read())
            if written >= allowed:
                raise OSError(errno.ENOSPC, "No space left on device (injected)", str(where))
            f.write("x")
        return write_table(table, where, *args, **kwargs)

    pq.write_table = full

elif FAULT == "barrier":
    import time

    import mlplab.results as results

    compact = results.compact

    def together(root, *args, **kwargs):
        folder, parties = os.environ["MLPLAB_FAULT_BARRIER"], int(os.environ["MLPLAB_FAULT_PARTIES"])
        open(os.path.join(folder, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(folder)) < parties and time.monotonic() < deadline:
            time.sleep(0.002)
        return compact(root, *args, **kwargs)

    results.compact = together

"""How much memory a run needs, estimated from its spec before anything is allocated.

A run holds its parameters and their gradients, the buffers of every batch size it forwards
(the training mini-batches, the last smaller one, and the whole training and test sets for
evaluation), its data set (generated in float64, shuffled, split and cast) and the rows it logs.
``estimate`` adds these up from the same formulas the code allocates by; ``check`` refuses a run
whose estimate exceeds the memory available to this process (the system's MemAvailable, or the
cgroup's limit when a container or a batch scheduler sets a lower one).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from mlplab.layout import SquaredNorms
from mlplab.optim import OPTIMISERS
from mlplab.record import Pending
from mlplab.spec import ConfigError, RunSpec

LOGGED_COLUMNS = 16  # metric arrays per layer and per step in a run's Record, 8 bytes or less each
BASELINE = 64 * 2**20  # temporaries of evaluation and writing, on top of what is counted


SPECTRA_ROW_BYTES = 24  # a row of the spectra table: step, sample, index, run_id code (int32), singular_value (float64)


def estimate(spec: RunSpec) -> dict[str, int]:
    """Bytes a run needs, by part: parameters (with gradients), the optimiser's state,
    activations (every batch size's buffers), data, records, the Jacobian's spectra. ``spec``
    must be resolved (a file's or data set's real shape in n_samples, n_features, n_classes)."""
    item = 4 if spec.dtype == "float32" else 8
    sizes, sched = spec.layer_sizes(), spec.schedule()
    L = len(sizes) - 1
    n_params = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    if spec.normalised:
        n_params += 2 * spec.width * spec.depth  # γ, β
    params = (2 + (n_params <= SquaredNorms.FLAT_MAX)) * n_params * item  # params, grads (+ their squares)
    optimiser = OPTIMISERS[spec.optim].ARRAYS * n_params * item  # its state: velocity, moments
    # per sample, the arrays a forward and backward pass keep: z/h/a per hidden layer (one array
    # for a plain layer, one more for a normalised one, one more for a residual one), z and a^L of the
    # output, two alternating δ buffers and two scratch buffers of the widest layer, ones
    per_layer = 1 + spec.normalised + spec.residual
    per_sample = spec.width * spec.depth * per_layer + 2 * spec.n_classes + 4 * max(sizes[1:]) + L
    n_train, n_test, batch, rows = sched.n_train, sched.n_test, sched.batch_size, sched.rows
    last = n_train % batch or batch
    activations = per_sample * sum({batch, last, n_train, n_test}) * item
    columns = spec.n_features + spec.n_classes
    data = spec.n_samples * columns * (8 + 8 + item)  # generated (float64), shuffled, cast
    records = 2 * rows * (L + 1) * LOGGED_COLUMNS * 8  # the arrays, then the tables made from them
    # the logged mini-batches' outputs kept raw until the run ends (mlplab.record.Pending)
    records += min(Pending.MAX_BYTES, rows * batch * (sum(sizes[1:]) + 3 * spec.n_classes) * item)
    spectra = 0
    if (
        sched.spectrum_every is not None
    ):  # mlplab.jacobian: J and its next layer's, per sample, in float64 (the SVD's copy)
        m, widest = min(spec.spectrum_samples, n_train), max(sizes[1 : spec.depth + 1], default=spec.n_features)
        values = (sched.n_steps // sched.spectrum_every + 2) * m * min(widest, spec.n_features)
        spectra = 3 * m * spec.n_features * widest * 8 + values * 2 * SPECTRA_ROW_BYTES
    return {
        "parameters": params,
        "optimiser": optimiser,
        "activations": activations,
        "data": data,
        "records": records,
        "spectra": spectra,
    }


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


class MemoryProbe:
    """Reads the bytes of memory this process may still use (``read_available``); a reading
    younger than ``max_age`` seconds is reused: a sweep's planner checks every run, and one
    reading costs several times a run's other checks. Its owner is whoever checks many runs
    (the planner, ``mlplab.train.Runner``)."""

    def __init__(self, max_age: float = 1.0):
        self.max_age, self.time, self.bytes = max_age, -math.inf, None

    def available(self) -> int | None:
        now = time.monotonic()
        if now - self.time >= self.max_age:
            self.time, self.bytes = now, read_available()
        return self.bytes


def read_available() -> int | None:
    """Bytes of memory this process may still use: MemAvailable, lowered to the room left
    under a cgroup (v2 or v1) limit; None where the system does not tell."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pass
    for limit, usage in [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ]:
        cap, used = _read_int(Path(limit)), _read_int(Path(usage))
        if cap is not None and used is not None and cap < 2**60:
            room = max(cap - used, 0)
            avail = room if avail is None else min(avail, room)
    return avail


UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size(n: float) -> str:
    """Bytes in binary units: '1.5 GiB' (beyond EiB in EiB)."""
    for unit in UNITS:
        if n < 1024 or unit == UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class ResourceError(ConfigError):
    """A run too large for this machine's memory: bad input, refused before anything runs."""

    def __init__(self, spec: RunSpec, need: dict[str, int], avail: int):
        parts = ", ".join(f"{k} {size(v)}" for k, v in need.items())
        total = sum(need.values()) + BASELINE
        msg = (
            f"invalid config: depth={spec.depth}, width={spec.width}, n_samples={spec.n_samples}: a run needs "
            f"about {size(total)} of memory ({parts}); {size(avail)} is available"
        )
        self.field, self.value, self.allowed = "depth, width", (spec.depth, spec.width), msg
        ValueError.__init__(self, msg)


def check(spec: RunSpec, avail: int | None = None, memory: MemoryProbe | None = None) -> None:
    """ResourceError when the run's estimate (plus a baseline for temporaries) exceeds the
    memory available: ``avail`` bytes, else ``memory``'s reading, else a reading now."""
    if avail is None:
        avail = memory.available() if memory is not None else read_available()
    need = estimate(spec)
    if avail is not None and sum(need.values()) + BASELINE > avail:
        raise ResourceError(spec, need, avail)

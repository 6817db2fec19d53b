"""Timing and the machine: interleaved repeats, thread limits, and what the numbers ran on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits


def per_call(fn, budget: float) -> int:
    """How many calls of ``fn`` fill about ``budget`` seconds (after two warm-up calls)."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(budget / once))


def timed(fn, n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def race(fns: dict, repeats: int, budget: float, pause: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` times, the functions taking turns (a
    noisy neighbour slows them alike, so their ratio holds).

    ``pause`` seconds of sleep before each turn let the idle worker threads of the previous
    function (OpenBLAS and OpenMP spin for a while after a parallel call) go to sleep, so they
    do not steal a core from the next one.
    """
    ns = {}
    for k, f in fns.items():
        time.sleep(pause)
        ns[k] = per_call(f, budget)
    out = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            time.sleep(pause)
            out[k].append(timed(f, ns[k]))
    return out


class Threads:
    """Limit NumPy's BLAS (threadpoolctl) and PyTorch (set_num_threads) to ``n`` threads."""

    def __init__(self, n: int, torch=None):
        self.n, self.torch = n, torch

    def __enter__(self):
        self.limit = threadpool_limits(limits=self.n)
        self.limit.__enter__()
        if self.torch is not None:
            self.old = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.torch is not None:
            self.torch.set_num_threads(self.old)
        self.limit.__exit__(*exc)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.platform()


def machine(torch, sweep: str | None) -> dict:
    """What the numbers ran on: CPU, BLAS with its kernel and threads, versions."""
    blas = "; ".join(
        f"{d.get('internal_api')} {d.get('version')}, {d.get('architecture')} kernels, {d.get('num_threads')} threads"
        for d in threadpool_info()
        if d.get("user_api") == "blas"
    )
    torch_info = "not installed"
    if torch is not None:
        blas = "MKL" if torch.backends.mkl.is_available() else "other"
        torch_info = f"{torch.__version__} ({torch.get_num_threads()} threads; BLAS: {blas})"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} logical CPUs)",
        "NumPy": f"{np.__version__}; BLAS: {blas}",
        "PyTorch": torch_info,
        "Python": platform.python_version(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "sweep": sweep or "(skipped)",
    }

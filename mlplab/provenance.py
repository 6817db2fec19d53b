"""What made a run's numbers, beside its config: recorded in every ``runs`` row.

The same config and seed give the same numbers on one machine; across machines the last digits
depend on which BLAS kernels computed the products (OpenBLAS picks them by CPU: AVX-512, AVX2,
...), and on the versions of NumPy and mlplab. Each run records them:

* ``python_version``, ``numpy_version``, ``mlplab_version``;
* ``blas``: the BLAS library NumPy calls and its version (``openblas 0.3.31``), and
  ``blas_core``: the kernels it chose for this CPU (OpenBLAS's core type, e.g. ``Haswell`` or
  ``SkylakeX``), as threadpoolctl reports them;
* ``mlplab_commit``: the git commit of the checkout mlplab runs from (``-dirty`` when tracked
  files differ from it), or null for an installed package.
"""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np

# the runs table's provenance columns, in order (mlplab.results.RUNS_SCHEMA)
COLUMNS = ("mlplab_version", "mlplab_commit", "numpy_version", "python_version", "blas", "blas_core")


def blas_of(info: list[dict]) -> tuple[str | None, str | None]:
    """(library and version, kernel core type) of NumPy's BLAS among the BLAS libraries in
    threadpoolctl's ``info()``: a process may hold several (SciPy's wheels bundle an OpenBLAS of
    their own, loaded first in some processes); NumPy's wheels keep theirs in ``numpy.libs``
    (``numpy/.dylibs`` on macOS). Where no path says, the first one."""
    blas = [lib for lib in info if lib.get("user_api") == "blas"]
    if not blas:
        return None, None
    lib = next(
        (b for b in blas if any(part.startswith("numpy") for part in Path(b.get("filepath") or "").parts)), blas[0]
    )
    name = " ".join(str(x) for x in (lib.get("internal_api"), lib.get("version")) if x)
    return name or None, lib.get("architecture") or None


@functools.lru_cache(maxsize=1)
def git_commit(folder: Path | None = None) -> str | None:
    """The commit checked out in the repository that holds mlplab's code, ``-dirty`` appended
    when a tracked file differs from it; None outside a checkout (an installed package) or
    without git."""
    repo = folder or Path(__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists() or not (repo / "mlplab").is_dir():
        return None
    try:
        head = subprocess.run([git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            [git, "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


@functools.lru_cache(maxsize=1)
def _fixed() -> dict:
    from mlplab import __version__  # here: mlplab's __init__ imports this module (through train)

    return {
        "mlplab_version": __version__,
        "mlplab_commit": git_commit(),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }


def provenance(controller) -> dict:
    """The provenance columns of a run made in this process; ``controller`` is its
    ``threadpoolctl.ThreadpoolController`` (mlplab.train.blas())."""
    blas, core = blas_of(controller.info())
    return {**_fixed(), "blas": blas, "blas_core": core}

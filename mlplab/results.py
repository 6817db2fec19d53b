"""Result tables on disk: atomic parquet writing and ``load_results``.

A sweep folder holds three tables, each a folder of parquet files, one file per run until runs
are compacted into *generations* (``compact``)::

    results/<sweep>/
        mlplab.json                  marks the folder as mlplab's, with the schema version
        runs/<run_id>.parquet        one row per run (config, status, final metrics, timings)
        steps/<run_id>.parquet       one row per logged step
        layers/<run_id>.parquet      one row per logged step and layer
        spectra/<run_id>.parquet     one row per singular value of the Jacobian, at the steps
                                     ``train.spectrum_every`` asks for (only runs that record it)
        <table>/compact-<generation>.parquet   the rows of many runs, compacted
        compacted/compact-<generation>         marks a committed generation (an empty file, no
                                               .parquet suffix: every *.parquet is parquet)
        .lock/                       the lease of the compaction at work (mlplab.lock)
        hydra/...                    Hydra's logs and .hydra/ (not a table)

Every file is written to a hidden temporary file in the same folder and renamed into place, so a
reader never sees half a file (pyarrow, pandas, DuckDB and polars skip names starting with '.').
A run's ``runs`` file is written last: it is the run's commit record. ``steps``/``layers`` files
without a ``runs`` file (left by a crash) are ignored by ``load_results`` and overwritten when the
run is done again.

Several sweeps (processes on one host, or on several sharing the folder over NFS) may write into
one folder at once: a temporary file's name says which process writes it, so that cleaning up
removes only those of processes that are gone; a run's own files are removed (once compacted)
only in the version that was read; readers look again when a file they listed was moved into a
newer generation meanwhile; and one compaction at a time rewrites the folder (``mlplab.lock``).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlplab.lock import HOST, LEASE_S, Lease, alive, scratch_name, server_now, writer_here
from mlplab.spec import BEFORE, COLUMN_TYPES, RESPELLED, SCHEMA_VERSION

if TYPE_CHECKING:  # pandas is imported when results are read (to_pandas), not to write them
    import pandas as pd

TABLES = ("runs", "steps", "layers")  # every run writes these
OPTIONAL = ("spectra",)  # only the runs that record it: a run or generation without the file has no rows
ALL_TABLES = TABLES + OPTIONAL
ROWS = ("steps", "layers", "spectra")  # the tables a runs file commits (written before it)
MARKER = "mlplab.json"
META_KEY = b"mlplab_schema"

_cat = pa.dictionary(pa.int32(), pa.string())

LAYERS_SCHEMA = pa.schema(
    [
        ("run_id", _cat),
        ("step", pa.int32()),
        ("epoch", pa.int32()),
        ("layer", pa.int32()),
        ("fan_in", pa.int32()),
        ("fan_out", pa.int32()),
        ("grad_w_norm", pa.float64()),
        ("grad_b_norm", pa.float64()),
        ("grad_gamma_norm", pa.float64()),
        ("grad_beta_norm", pa.float64()),
        ("weight_norm", pa.float64()),
        ("update_ratio", pa.float64()),
        ("act_mean", pa.float32()),
        ("act_std", pa.float32()),
        ("sat_frac", pa.float32()),
    ]
)

STEPS_SCHEMA = pa.schema(
    [
        ("run_id", _cat),
        ("step", pa.int32()),
        ("epoch", pa.int32()),
        ("train_loss", pa.float64()),
        ("train_accuracy", pa.float32()),
        ("test_loss", pa.float64()),
        ("test_accuracy", pa.float32()),
        ("batch_loss", pa.float64()),
        ("grad_norm", pa.float64()),
        ("clipped", pa.bool_()),
        # added with the optimisers and schedules: null in folders written before, where it is
        # the run's lr (filled in by load_results; the other columns are unchanged, so the schema version too)
        ("learning_rate", pa.float64()),
    ]
)

# added with the Jacobian's spectrum (mlplab.jacobian): a table of its own, which folders written
# before do not have (no rows); the other tables are unchanged, so the schema version too
SPECTRA_SCHEMA = pa.schema(
    [
        ("run_id", _cat),
        ("step", pa.int32()),
        ("sample", pa.int32()),
        ("index", pa.int32()),
        ("singular_value", pa.float64()),
    ]
)

# runs-table column types by name (mlplab.spec.COLUMN_TYPES)
ARROW_TYPES = {
    "bool": pa.bool_(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "category": _cat,
    "string": pa.string(),
}
# the config columns of the runs table: one per RunSpec field (batch_size and log_every resolved
# to numbers), typed by the field's declaration
CONFIG_TYPES = {name: ARROW_TYPES[t] for name, t in COLUMN_TYPES.items()}

RUNS_SCHEMA = pa.schema(
    [("run_id", _cat), ("sweep", _cat)]
    + list(CONFIG_TYPES.items())
    + [
        ("full_batch", pa.bool_()),
        ("status", _cat),
        ("diverged_step", pa.int32()),
        ("reason", pa.string()),
        ("n_steps", pa.int32()),
        ("steps_done", pa.int32()),
        ("max_grad_norm", pa.float64()),
        ("final_loss", pa.float64()),
        ("final_accuracy", pa.float32()),
        ("final_test_loss", pa.float64()),
        ("final_test_accuracy", pa.float32()),
        ("wall_time_s", pa.float64()),
        ("setup_time_s", pa.float64()),
        ("train_time_s", pa.float64()),
        ("write_time_s", pa.float64()),
        # provenance (mlplab.provenance): what made the numbers; null in folders written before
        # mlplab recorded them (the other columns are unchanged, so the schema version too)
        ("mlplab_version", _cat),
        ("mlplab_commit", _cat),
        ("numpy_version", _cat),
        ("python_version", _cat),
        ("blas", _cat),
        ("blas_core", _cat),
        ("schema_version", pa.int32()),
    ]
)

SCHEMAS = {"runs": RUNS_SCHEMA, "steps": STEPS_SCHEMA, "layers": LAYERS_SCHEMA, "spectra": SPECTRA_SCHEMA}

# what each column means (a name means one thing in every table); the config columns' meanings
# are their RunSpec fields' docs. The documentation's schema tables are generated from these.
COLUMN_DOCS = {
    "run_id": "the run: 16 hex digits of the sha256 of its config and the schema version",
    "sweep": "`sweep_name`",
    "step": "updates done (step 0 is the initialisation)",
    "epoch": "epoch of the mini-batch",
    "layer": "`l`, 1..L (layer L is the output layer)",
    "fan_in": "`n_(l-1)`",
    "fan_out": "`n_l`",
    "grad_w_norm": "`‖∂C/∂W^l‖_F` of the mini-batch, before clipping",
    "grad_b_norm": "`‖∂C/∂b^l‖₂`, Nielsen's speed of learning of layer `l` (0, to rounding, in a batch-normalised"
    " hidden layer: the analysis then compares `grad_w_norm`)",
    "grad_gamma_norm": "`‖∂C/∂γ^l‖₂` of a normalised hidden layer; null where the layer has no norm",
    "grad_beta_norm": "`‖∂C/∂β^l‖₂` of a normalised hidden layer; null where the layer has no norm",
    "weight_norm": "`‖W^l‖_F` before the update",
    "update_ratio": "`‖ΔW^l‖_F / ‖W^l‖_F` of the update applied (after clipping, decay, momentum or Adam's scaling)",
    "act_mean": "mean of `a^l` over the mini-batch",
    "act_std": "standard deviation of `a^l` over the mini-batch",
    "sat_frac": "fraction of saturated units of `h^l = σ(·)` (`a^l` but for a residual layer's `a^(l-1)`): sigmoid"
    " or softmax within 0.01 of 0 or 1, tanh within 0.01 of ±1, relu and leaky_relu with input ≤ 0; linear never",
    "train_loss": "mean loss on the whole training set in evaluation mode (batch norm: running estimates) after"
    " `step` updates; NaN between evaluations (`eval_every`)",
    "train_accuracy": "accuracy on the whole training set, evaluated as `train_loss`",
    "test_loss": "mean loss on the test set, evaluated as `train_loss`",
    "test_accuracy": "accuracy on the test set, evaluated as `train_loss`",
    "batch_loss": "mean loss of the mini-batch about to be applied (batch norm: its own statistics), at every row",
    "grad_norm": "global gradient norm over all parameters, before clipping",
    "clipped": "whether the clipping rule changed the gradient",
    "learning_rate": "η of the update applied at this step (the schedule's, warmup included)",
    "full_batch": "`batch_size` was `full`",
    "status": "`ok`, `diverged` or `failed`",
    "diverged_step": "the step where the run diverged",
    "reason": "why it diverged (which quantity, which layer), or the error of a failed run",
    "n_steps": "planned updates",
    "steps_done": "updates done",
    "max_grad_norm": "the largest finite global gradient norm (before clipping) of every step, logged or not",
    "final_loss": "training loss after training",
    "final_accuracy": "training accuracy after training",
    "final_test_loss": "test loss after training",
    "final_test_accuracy": "test accuracy after training",
    "wall_time_s": "seconds the run took",
    "setup_time_s": "seconds of it spent on the data and the network",
    "train_time_s": "seconds of it spent training",
    "write_time_s": "seconds of it spent writing the steps, layers and spectra tables",
    "sample": "the training sample (0: the first of the training split) whose Jacobian `J = ∂a^depth/∂a^0` it is",
    "index": "the singular value's rank, 0 = the largest",
    "singular_value": "a singular value of `J` (the network in training mode at `step`; step `n_steps`: the"
    " trained network); NaN where `J` is not finite",
    "mlplab_version": "mlplab's version",
    "mlplab_commit": "git commit of mlplab's checkout (`-dirty` when tracked files differ; null for a package)",
    "numpy_version": "NumPy's version",
    "python_version": "Python's version",
    "blas": "the BLAS NumPy calls and its version (threadpoolctl)",
    "blas_core": "the kernels the BLAS chose for the CPU (OpenBLAS's core type: `Haswell`, `SkylakeX`, ...)",
    "schema_version": "of the result tables",
}


class ResultsError(ValueError):
    """A results folder that cannot be read; ``str(err)`` is a one-line message."""


class Vanished(ResultsError):
    """A file listed a moment ago is gone: moved into a newer compacted generation by another
    process (or deleted). Readers look at the folder again (``_settled``)."""


class DiskFull(OSError):
    """No space left on the device (or the disk quota exceeded) while writing ``filename``.
    Nothing half-written is left: the write's temporary file is removed."""

    def __init__(self, path, err: OSError):
        code = err.errno if err.errno in (errno.ENOSPC, errno.EDQUOT) else errno.ENOSPC
        super().__init__(code, os.strerror(code), str(path))


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk is full or the quota is exceeded (pyarrow's errors carry the
    errno, or only its text)."""
    if isinstance(e, DiskFull):
        return True
    return isinstance(e, OSError) and (
        e.errno in (errno.ENOSPC, errno.EDQUOT)
        or any(text in str(e) for text in (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT)))
    )


# -- writing ---------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give: colleagues sharing a folder can read it


_IN_FLIGHT: set[str] = set()  # the temporary files this process is writing now


def _temporary(path: Path) -> tuple[int, str]:
    """A hidden temporary file beside ``path`` (readers skip names starting with '.'), named
    ``.{name}.{host}.{pid}.XXXXXXXX.tmp`` after the process writing it (``remove_temporaries``),
    with the mode of a normally created file (mkstemp's is 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    _IN_FLIGHT.add(os.path.basename(tmp))
    os.fchmod(fd, FILE_MODE)
    return fd, tmp


FileId = tuple  # (inode, size, mtime in ns): one version of a file, as written or read


def file_id(st: os.stat_result) -> FileId:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _atomic(path: Path, write) -> FileId:
    """``write(tmp)`` into a temporary file beside ``path``, then renamed to ``path``. Any
    failure removes the temporary file; a full disk raises DiskFull. Returns the identity of
    the file put in place (a rename keeps it)."""
    tmp = None
    try:
        fd, tmp = _temporary(path)
        os.close(fd)
        write(tmp)
        written = file_id(os.stat(tmp))
        os.replace(tmp, path)
        return written
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(path, e) from e
        raise
    finally:
        if tmp is not None:
            _IN_FLIGHT.discard(os.path.basename(tmp))


def atomic_write_bytes(path: Path, data: bytes) -> FileId:
    """Write ``data`` to ``path`` via a hidden temporary file and a rename."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return _atomic(Path(path), write)


def atomic_write_table(table: pa.Table, path: Path) -> FileId:
    """Write ``table`` as parquet to ``path`` via a hidden temporary file and a rename; returns
    the identity of the file written (``file_id``)."""
    return _atomic(Path(path), lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def prepare_folder(root: Path, key: str = "results_dir") -> Path:
    """Create the results folder ``root`` (and its marker) if needed: ResultsError, one line
    naming ``key``, when it cannot be written (a regular file in the way, no permission...); a
    full disk raises DiskFull. Checked at every call (``ResultsFolder`` checks once)."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        mark_folder(root)
        probe = root / f".write-test-{HOST}-{os.getpid()}"  # this process's own, whoever else probes
        probe.touch()
        probe.unlink()
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull(e.filename or root, e) from None
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(root) else ""
        raise ResultsError(f"{key}: the results folder {str(root)!r} cannot be written: {e.strerror}{where}") from None
    return root


class ResultsFolder:
    """A results folder as one writer uses it, run after run (``mlplab.train.Runner``): created
    and checked for writing once (``prepare_folder``), and again only when its marker is gone."""

    def __init__(self, root, key: str = "results_dir"):
        self.root, self.key, self.checked = Path(root), key, False

    def prepare(self) -> Path:
        if not (self.checked and (self.root / MARKER).is_file()):
            prepare_folder(self.root, self.key)
            self.checked = True
        return self.root


def mark_folder(root: Path) -> None:
    """Create ``root/mlplab.json`` (once) so readers can tell an mlplab results folder."""
    marker = Path(root) / MARKER
    if not marker.exists():
        atomic_write_bytes(marker, json.dumps({"schema_version": SCHEMA_VERSION}).encode())


def to_table(columns: dict, name: str, nulls: dict | None = None) -> pa.Table:
    """Columns (name -> array or list) to a table of the documented schema ``name``;
    ``nulls[column]``, a boolean mask, marks the entries that are null (not applicable)."""
    schema = SCHEMAS[name].with_metadata({META_KEY: str(SCHEMA_VERSION).encode()})
    nulls = nulls or {}
    arrays = []
    for field in schema:
        col = columns[field.name]
        if pa.types.is_dictionary(field.type):
            arrays.append(pa.array(list(col), pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(col, field.type, mask=nulls.get(field.name)))
    return pa.Table.from_arrays(arrays, schema=schema)


def run_path(root: Path, table: str, run_id: str) -> Path:
    return Path(root) / table / f"{run_id}.parquet"


# -- where each committed run is: its own files, or a compacted generation -----------------------
COMPACT = "compact-"  # compacted files: <table>/compact-<generation>.parquet
MARKERS = "compacted"  # <root>/compacted/compact-<generation>: the committed generations, for fast lookups
# a file no commit owns (a temporary file, a run's steps without its runs file...) unchanged this
# long is left over, whoever wrote it: no write of mlplab's pauses that long between two files
ORPHAN_AGE_S = 3600.0


def _is_generation(p: Path) -> bool:
    return p.name.startswith(COMPACT)


def new_generation() -> str:
    """A new generation's name, ``compact-<time in ns>-<host>-<pid>``: its files add
    ``.parquet``, its marker in ``compacted/`` does not. Sorted by name, newer generations come
    later (hosts sharing a folder keep their clocks close, as NFS needs anyway)."""
    return f"{COMPACT}{time.time_ns():020d}-{HOST}-{os.getpid()}"


_GENERATION = re.compile(r"^compact-\d+-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
_WRITING: set[str] = set()  # the generations this process is writing now


def _generation_writer_gone(stem: str) -> bool | None:
    """Whether the process that writes generation ``stem`` is gone: for a process of this host;
    None when its name says another host, or none (an older mlplab's name)."""
    m = _GENERATION.match(stem)
    if not m or m["host"] != HOST:
        return None
    pid = int(m["pid"])
    return stem not in _WRITING if pid == os.getpid() else not alive(pid)


def _status_of(path: Path) -> str | None:
    try:
        return str(pq.read_table(path, columns=["status"]).column("status")[0])
    except FileNotFoundError:
        raise  # gone since it was listed: moved into a generation (the caller looks again)
    except (OSError, pa.ArrowException, KeyError, IndexError):
        return None  # unreadable (e.g. truncated by hand): the run is done again, overwriting it


@functools.lru_cache(maxsize=4096)
def _generation_index(path: str, mtime_ns: int, size: int) -> dict[str, str]:
    """run_id -> status of a compacted generation's runs file (read once per file version).
    ``is_done`` looks a run up in every generation of the folder, oldest last, before each run:
    a cache smaller than the number of generations (a sweep's workers write one per chunk) is
    read through in a cycle and misses every time — 60–100 ms per run late in the default sweep."""
    t = pq.read_table(path, columns=["run_id", "status"])
    return dict(zip(t.column("run_id").to_pylist(), t.column("status").to_pylist()))


def generation_index(path: Path) -> dict[str, str]:
    st = path.stat()
    return _generation_index(str(path), st.st_mtime_ns, st.st_size)


@dataclass
class Catalogue:
    """The committed runs of a results folder and where each one's rows are: ``own[run_id]``
    its own ``runs/<run_id>.parquet`` (and steps/layers files), or ``compacted[run_id]`` the
    newest compacted generation that holds it. A run's own files win over a generation (they
    are newer: a failed run done again after compaction), a newer generation over an older
    one; a generation counts once its runs file exists (it is written last).

    A catalogue is what the folder held when it was listed: another process may move a run's
    rows into a newer generation since, and reading a file then raises FileNotFoundError (or
    Vanished); ``_settled`` makes a new catalogue and reads again."""

    root: Path
    own: dict[str, Path]
    compacted: dict[str, str]
    generations: list[Path]  # their runs files, newest first

    @classmethod
    def of(cls, root) -> Catalogue:
        folder = Path(root) / "runs"
        files = _files(folder)  # none when there is no such folder
        own = {p.stem: p for p in files if not _is_generation(p)}
        generations = sorted((p for p in files if _is_generation(p)), key=lambda p: p.name, reverse=True)
        compacted: dict[str, str] = {}
        for g in generations:
            for rid in generation_index(g):
                if rid not in own and rid not in compacted:
                    compacted[rid] = g.stem
        return cls(Path(root), own, compacted, generations)

    def ids(self) -> set[str]:
        return set(self.own) | set(self.compacted)

    def statuses(self) -> dict[str, str]:
        out = {}
        for g in reversed(self.generations):  # oldest first: newer generations overwrite
            out.update(generation_index(g))
        for rid, path in self.own.items():
            status = _status_of(path)
            if status is None:
                out.pop(rid, None)
            else:
                out[rid] = status
        return out


def _settled(look, tries: int = 50):
    """``look()``, done again while a file it listed vanishes before it is read: another process
    moved the rows into a newer generation, which is written (and marked) before the files it
    replaces are removed, so a fresh look finds them."""
    for i in range(tries):
        try:
            return look()
        except (Vanished, FileNotFoundError):
            if i == tries - 1:
                raise
            time.sleep(min(0.001 * 2**i, 0.1))


def _marked(root: Path) -> list[str]:
    """The generations marked in ``<root>/compacted/``, newest first. A marker is named
    ``compact-<generation>``; an older mlplab named it ``compact-<generation>.parquet`` (an empty
    file by a parquet name, which parquet readers globbing ``**/*.parquet`` choke on): read
    alike, and replaced by the next compaction."""
    try:
        names = os.listdir(Path(root) / MARKERS)
    except OSError:
        return []
    return sorted({n.removesuffix(".parquet") for n in names if n.startswith(COMPACT)}, reverse=True)


def _hinted_generations(root: Path) -> list[Path]:
    """The runs files of the compacted generations marked in ``<root>/compacted/``, newest
    first (no listing of the big table folders). A marker is written after its generation's
    runs file and before any file the generation replaces is removed, so a run that no marker
    leads to still has its older files."""
    return [p for p in (Path(root) / "runs" / f"{n}.parquet" for n in _marked(root)) if p.is_file()]


def committed_row(root: Path, run_id: str) -> dict | None:
    """The ``runs`` row of a committed run, from its own file or its compacted generation."""

    def look():
        path = run_path(root, "runs", run_id)
        if path.is_file():
            return pq.read_table(path).to_pylist()[0]
        for g in _hinted_generations(root):
            if run_id in generation_index(g):
                t = pq.read_table(g)
                return t.filter(pc.equal(t.column("run_id").cast(pa.string()), run_id)).to_pylist()[0]
        return None

    return _settled(look)


def committed_status(root: Path, run_id: str) -> str | None:
    """The status of a committed run (``ok``, ``diverged``, ``failed``), or None if not done.
    A run's own file is looked for first, then the compacted generations (no folder listing:
    this runs before every run of a sweep, in folders of many thousand files)."""

    def look():
        path = run_path(root, "runs", run_id)
        if path.is_file():
            return _status_of(path)
        for g in _hinted_generations(root):
            status = generation_index(g).get(run_id)
            if status is not None:
                return status
        return None

    return _settled(look)


def is_done(root: Path, run_id: str) -> bool:
    """True when the run needs no rerun: committed as ``ok`` or ``diverged`` (a ``failed`` run is
    retried by the next sweep, since its failure may have been transient)."""
    return committed_status(root, run_id) in ("ok", "diverged")


def committed_ids(root: Path) -> set[str]:
    """Ids of the runs committed in ``root``."""
    return _settled(lambda: Catalogue.of(root).ids())


def completed_statuses(root: Path) -> dict[str, str]:
    """run_id -> status of every committed run in ``root`` (reads only the status column)."""
    return _settled(lambda: Catalogue.of(root).statuses())


def check_versions(cat: Catalogue, path) -> None:
    """ResultsError unless every committed file of the folder has this mlplab's schema version."""
    versions: dict[str, int] = {}  # version -> number of files
    for f in list(cat.own.values()) + cat.generations:
        try:
            meta = pq.read_schema(f).metadata or {}
        except (OSError, pa.ArrowException) as e:
            raise _unreadable(f, e) from None
        version = meta.get(META_KEY, b"?").decode()
        versions[version] = versions.get(version, 0) + 1
    if len(versions) > 1 or (versions and str(SCHEMA_VERSION) not in versions):
        found = ", ".join(f"{v} ({n} files)" for v, n in sorted(versions.items()))
        raise ResultsError(
            f"results path={str(path)!r}: result schema versions {found}; this mlplab reads "
            f"version {SCHEMA_VERSION} only (rerun the sweep into a new folder)"
        )


def compact(root, timeout: float = LEASE_S) -> dict[str, int]:
    """Gather every committed run's rows of each table into one file per table, a new
    *generation* ``<table>/compact-<generation>.parquet``, then remove the files it replaces
    (``commit_generation``). Readers take each run from one place (``Catalogue``). Returns how
    many runs were compacted and files removed.

    One compaction at a time: it holds the folder's lease (``mlplab.lock.Lease``, ``timeout``
    seconds; a dead holder's lease is broken, so a compaction killed midway never blocks the
    folder). Sweeps may go on writing into the folder meanwhile — their workers commit runs and
    chunk generations without the lease — so:

    * a file listed here may vanish before it is read (moved into a worker's newer generation):
      the compaction looks at the folder again;
    * a run's own files are removed only in the version that was read (``_unlink_if``): a run
      done again meanwhile (an overlapping sweep, ``force``) keeps its new files;
    * a file no commit owns — a generation's steps and layers without its runs file, a run's
      steps and layers without its runs file, a temporary file — may be a write in flight: it
      is removed only once its writer is gone (a process of this host, named in the file's
      name), once the run's generation replaced it, or once it is ORPHAN_AGE_S old.
    """
    root = check_results_folder(root)
    with Lease(root, timeout) as lease:
        return _settled(lambda: _compact(root, lease))


def _compact(root: Path, lease: Lease) -> dict[str, int]:
    cat = Catalogue.of(root)
    check_versions(cat, root)
    own = _own_versions(cat)  # before they are read: what is read is that version or a newer one
    now = server_now(root)
    leftovers = _leftovers(root, cat, now)
    stale = remove_temporaries(root, now=now)
    _tidy_markers(root)
    if not cat.own and len(cat.generations) <= 1 and not leftovers:
        return {"runs": len(cat.compacted), "removed": stale}
    tables = {t: _read_table(cat, t, SCHEMAS[t]) for t in (*ROWS, "runs")}
    removed = commit_generation(root, tables, own=own, generations=[g.name for g in cat.generations], lease=lease)
    if lease.check():
        for p, version in leftovers:
            removed += _unlink_if(p, version)
    return {"runs": len(cat.ids()), "removed": removed + stale}


def _own_versions(cat: Catalogue) -> dict[str, dict[str, FileId]]:
    """run_id -> table -> the version (``file_id``) of each own file of the catalogue's runs: the
    files a compaction may remove. A steps, layers or spectra file newer than its runs file belongs to a
    later attempt at the run, still being written (a runs file comes last): it is read, not
    removed."""
    out = {}
    for rid, path in cat.own.items():
        runs = os.stat(path)  # FileNotFoundError: moved into a generation, look again
        versions = {"runs": file_id(runs)}
        for table in ROWS:
            try:
                st = os.stat(run_path(cat.root, table, rid))
            except FileNotFoundError:
                continue
            if st.st_mtime_ns <= runs.st_mtime_ns:
                versions[table] = file_id(st)
        out[rid] = versions
    return out


def _leftovers(root: Path, cat: Catalogue, now: float) -> list[tuple[Path, FileId]]:
    """The steps, layers and spectra files no commit owns (no runs file by their name) that no writer
    will finish, with their versions: a generation's, once the process writing it is gone; a
    run's, once the run's generation is newer (a compaction killed between its removals); any,
    once ORPHAN_AGE_S old (``now``: the file server's clock) — a kill of another host's writer,
    or of a run before its commit."""
    out = []
    for table in ROWS:
        for p in _files(root / table):
            if (root / "runs" / p.name).exists():
                continue
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            if _is_generation(p):
                gone = _generation_writer_gone(p.stem)
            else:
                g = cat.compacted.get(p.stem)
                try:
                    gone = g is not None and st.st_mtime_ns <= os.stat(root / "runs" / f"{g}.parquet").st_mtime_ns
                except FileNotFoundError:
                    gone = None
            if gone or now - st.st_mtime > ORPHAN_AGE_S:
                out.append((p, file_id(st)))
    return out


def _tidy_markers(root: Path) -> None:
    """Markers of generations that are gone are removed (a compaction killed between removing a
    generation and its marker), and an older mlplab's marker named ``….parquet`` is replaced by
    one of today's name. Only under the folder's lease."""
    folder = root / MARKERS
    try:
        names = [n for n in os.listdir(folder) if n.startswith(COMPACT)]
    except OSError:
        return
    for n in names:
        stem = n.removesuffix(".parquet")
        if not (root / "runs" / f"{stem}.parquet").is_file():
            _unlink(folder / n)  # a marker comes after its runs file: this one's generation is gone
        elif n != stem:
            if not (folder / stem).exists():
                atomic_write_bytes(folder / stem, b"")
            _unlink(folder / n)


def commit_generation(
    root,
    tables: dict[str, pa.Table],
    own: dict[str, dict[str, FileId]],
    generations: list[str] = (),
    lease: Lease | None = None,
) -> int:
    """Write ``tables`` (steps, layers, runs; spectra when it has rows) as a new compacted generation and remove what it
    replaces: the runs' own files, ``own`` (run id -> table -> the version of the file whose rows
    are in ``tables``; a file found in another version — the run done again since — stays), and
    the older ``generations`` (file names).

    Crash-safe at every step: the generation's steps and layers files are written first and its
    runs file last (each atomically: it counts only once whole), then its marker; only then are
    the replaced files removed, a runs file before its steps and layers. A kill loses nothing,
    and the next ``compact`` finishes the job; a write that fails (a full disk: DiskFull) removes
    the generation's files written before it.

    It needs no lease when ``generations`` is empty, as a sweep's workers commit their chunks:
    it only adds a generation, whose runs' rows are where they were until it is committed, and
    removes only the versions of files it read — beside other chunk commits and a compaction,
    every run is readable at every moment from one place or another. With ``lease`` (a
    compaction), nothing is removed once the lease was lost. Returns the number of files removed."""
    root = Path(root)
    name = new_generation()
    file = f"{name}.parquet"
    meta = {META_KEY: str(SCHEMA_VERSION).encode()}
    written = []
    _WRITING.add(name)
    try:
        for table in (*ROWS, "runs"):  # runs last: it commits the generation
            if table in OPTIONAL and (tables.get(table) is None or not len(tables[table])):
                continue  # no rows: no file (a reader finds none)
            atomic_write_table(tables[table].replace_schema_metadata(meta), root / table / file)
            written.append(root / table / file)
    except BaseException:
        if root / "runs" / file not in written:  # not committed: its files are of no use
            for p in written:
                p.unlink(missing_ok=True)
        raise
    finally:
        _WRITING.discard(name)
    atomic_write_bytes(root / MARKERS / name, b"")
    if lease is not None and not lease.check():
        return 0  # another process took the folder over: what this one replaced is its to remove
    removed = 0
    for g in generations:
        for table in ("runs", *ROWS):
            removed += _unlink(root / table / g)
        _unlink(root / MARKERS / g.removesuffix(".parquet"))
        _unlink(root / MARKERS / g)  # an older mlplab's marker name
    for rid, versions in own.items():
        for table in ("runs", *ROWS):
            if table in versions:
                removed += _unlink_if(run_path(root, table, rid), versions[table])
    return removed


def remove_temporaries(root, pids=None, now: float | None = None) -> int:
    """Remove the temporary files of writes that will never finish from the results folder
    ``root`` (its tables, markers and Hydra folder, and the folder itself, where leases are
    prepared). A temporary's name says which process writes it (``.{name}.{host}.{pid}.XXXXXXXX.tmp``):
    one of a process of this host that is gone is removed, and any unchanged for ORPHAN_AGE_S
    (``now``: the file server's clock; another host's, or an older mlplab's that says nothing);
    the writes in flight of other sweeps stay. With ``pids``, only those of these processes of
    this host (a launcher's workers, just stopped). Returns how many were removed."""
    root = Path(root)
    if pids is None and now is None and root.is_dir():
        now = server_now(root)
    removed = 0
    for folder in (root, *(root / t for t in (*ALL_TABLES, MARKERS, "hydra"))):
        try:
            names = [n for n in os.listdir(folder) if n.startswith(".") and n.endswith(".tmp")]
        except OSError:
            continue
        for n in names:
            p, pid = folder / n, writer_here(n)
            if pids is not None:
                doomed = pid in pids
            else:
                gone = None if pid is None else (n not in _IN_FLIGHT if pid == os.getpid() else not alive(pid))
                try:
                    doomed = gone or now - os.lstat(p).st_mtime > ORPHAN_AGE_S
                except FileNotFoundError:
                    continue
            if doomed:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                    removed += 1
                else:
                    removed += _unlink(p)
    return removed


def _unlink(p: Path) -> int:
    try:
        p.unlink()
        return 1
    except FileNotFoundError:
        return 0


def _unlink_if(path: Path, version: FileId) -> int:
    """Remove ``path`` if it is still the ``version`` (``file_id``) that was read; a newer one,
    written since by another process, stays. Atomic: the file is first renamed to a scratch
    name, which takes whatever version is there at that instant, and put back if it is not the
    one to remove (unless a newer still took its place). Returns 1 if removed."""
    aside = path.parent / scratch_name(path.name)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return 0
    if file_id(os.stat(aside)) == version:
        os.unlink(aside)
        return 1
    try:
        os.link(aside, path)  # back, unless a newer version took the name meanwhile
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        if not path.exists():
            os.rename(aside, path)
    Path(aside).unlink(missing_ok=True)
    return 0


# -- reading ---------------------------------------------------------------------------------
@dataclass
class Results:
    """The tables of a results folder (config columns joined onto steps and layers). Iterating
    gives the three every run writes (``runs, steps, layers = load_results(...)``); ``spectra``
    (the Jacobian's singular values, mostly empty) is an attribute, not joined: it is large, and
    ``run_id`` finds its run's config in ``runs``."""

    runs: pd.DataFrame
    steps: pd.DataFrame
    layers: pd.DataFrame
    path: Path
    for_analysis: bool = False  # prepared by mlplab.analysis.load (plain strings, "none" for no data file)
    spectra: pd.DataFrame | None = None

    def __iter__(self):
        return iter((self.runs, self.steps, self.layers))


# config columns joined onto steps and layers by load_results (every name is unique across the
# three tables: ``loss`` is the loss function, ``train_loss`` and ``test_loss`` its values)
JOIN_COLUMNS = ["sweep"] + list(CONFIG_TYPES) + ["status"]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def _unreadable(f: Path, e: Exception) -> ResultsError:
    """The error of a file that cannot be read: Vanished when it is gone (the caller looks at
    the folder again), else ResultsError naming it."""
    error = Vanished if isinstance(e, FileNotFoundError) else ResultsError
    return error(
        f"results file={str(f)!r} cannot be read ({' '.join(str(e).split())}): rerun the sweep "
        f"to redo run {f.stem}, or delete the file"
    )


def _read_file(f: Path, schema: pa.Schema) -> pa.Table:
    try:
        return pq.read_table(f, schema=schema)
    except (OSError, pa.ArrowException) as e:
        raise _unreadable(f, e) from None


def _read_table(cat: Catalogue, table: str, schema: pa.Schema) -> pa.Table:
    """The rows of ``table`` of every committed run, each from where the catalogue says (many
    small files are read together, on several threads)."""
    import pyarrow.dataset as ds  # here: it imports pandas, which a command refusing bad input never needs

    root = cat.root
    own = [run_path(root, table, rid) for rid in sorted(cat.own)]
    if table != "runs":
        present = [f for f in own if f.is_file()]
        if len(present) < len(own):  # a run's steps or layers file is missing:
            for f in set(own) - set(present):
                if not run_path(root, "runs", f.stem).is_file():  # moved into a generation since listed
                    raise Vanished(f"results file={str(f)!r} is gone")
        own = present  # (else the run has none: its files were lost, not moved)
    parts = []
    if own:
        try:
            parts.append(ds.dataset([str(f) for f in own], schema=schema, format="parquet").to_table())
        except (OSError, pa.ArrowException):
            parts += [_read_file(f, schema) for f in own]  # the slow way, to name the file that fails
    by_generation: dict[str, list[str]] = {}
    for rid, g in cat.compacted.items():
        by_generation.setdefault(g, []).append(rid)
    for g, rids in sorted(by_generation.items()):
        f = root / table / f"{g}.parquet"
        if table in OPTIONAL and not f.is_file():
            if not (root / "runs" / f.name).is_file():  # moved into a newer generation since listed
                raise Vanished(f"results file={str(f)!r} is gone")
            continue  # a generation with no rows of this table
        t = _read_file(f, schema)
        parts.append(t.filter(pc.is_in(t.column("run_id").cast(pa.string()), pa.array(rids))))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).unify_dictionaries().combine_chunks()


def respell(runs: pa.Table) -> pa.Table:
    """The runs table with values stored under an old spelling in today's (``RESPELLED``: a
    null ``norm``, written before "none" was its spelling, reads "none"), and the columns of
    fields added later filled, in the rows of runs made before, with the value every run had
    then (``BEFORE``: ``optim`` "sgd", ...; a null that is a value, ``lr_step_size``, stays)."""
    for name, new in {**RESPELLED, **BEFORE}.items():
        i = runs.schema.get_field_index(name)
        col, typ = runs.column(i), runs.schema.field(i).type
        if col.null_count and new is not None:
            if pa.types.is_dictionary(typ):  # a name: filled as text, then coded again
                filled = pc.fill_null(col.cast(pa.string()), new).cast(typ)
            else:
                filled = pc.fill_null(col, pa.scalar(new, typ))
            runs = runs.set_column(i, runs.schema.field(i), filled)
    return runs


def fill_learning_rate(steps: pa.Table, runs: pa.Table) -> pa.Table:
    """``steps`` with a null ``learning_rate`` (rows written before it was recorded, when
    every run kept η = lr) filled with the run's ``lr``."""
    i = steps.schema.get_field_index("learning_rate")
    col = steps.column(i)
    if not col.null_count or not len(runs):
        return steps
    ids = runs.column("run_id").cast(pa.string())
    at = pc.index_in(steps.column("run_id").cast(pa.string()), value_set=ids)
    lr = pc.take(runs.column("lr"), at)
    return steps.set_column(i, steps.schema.field(i), pc.coalesce(col, lr))


def check_results_folder(path) -> Path:
    """Raise ResultsError unless ``path`` is an mlplab results folder."""
    root = Path(path)
    if not root.is_dir():
        raise ResultsError(f"results path={str(path)!r}: no such folder")
    if not (root / MARKER).is_file() and not (root / "runs").is_dir():
        raise ResultsError(
            f"results path={str(path)!r}: not an mlplab results folder (expected {MARKER} and runs/, steps/, layers/)"
        )
    return root


def load_results(path, join: bool = True) -> Results:
    """Read a results folder into DataFrames: ``runs``, ``steps``, ``layers`` (and ``spectra``,
    the Jacobian's singular values of the runs that record them, not joined: ``Results``).

    Only committed runs are returned (a ``steps``/``layers`` file without its ``runs`` row is
    ignored) and leftover temporary files are skipped. Folders that mix result schema versions
    are refused. With ``join``, the config columns of ``runs`` are joined onto ``steps`` and
    ``layers`` so each row says which depth, activation, loss... it belongs to.
    """
    root = check_results_folder(path)

    def look():
        cat = Catalogue.of(root)
        check_versions(cat, path)
        return [_read_table(cat, t, SCHEMAS[t]) for t in ("runs", *ROWS)]

    runs, steps, layers, spectra = _settled(look)
    steps = fill_learning_rate(steps, runs)
    runs, steps, layers, spectra = (t.to_pandas() for t in (respell(runs), steps, layers, spectra))
    if join and len(runs):
        cfg = runs[["run_id"] + JOIN_COLUMNS]
        steps = steps.merge(cfg, on="run_id", how="left")
        layers = layers.merge(cfg, on="run_id", how="left")
    return Results(runs, steps, layers, root, spectra=spectra)

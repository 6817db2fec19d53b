"""Result tables on disk: atomic parquet writing and ``load_results``.

A sweep folder holds three tables, each a folder of parquet files, one file per run until runs
are compacted into *generations* (``compact``)::

    results/<sweep>/
        mlplab.json                  marks the folder as mlplab's, with the schema version
        runs/<run_id>.parquet        one row per run (config, status, final metrics, timings)
        steps/<run_id>.parquet       one row per logged step
        layers/<run_id>.parquet      one row per logged step and layer
        <table>/compact-<generation>.parquet   the rows of many runs, compacted
        compacted/compact-<generation>         marks a committed generation (an empty file, no
                                               .parquet suffix: every *.parquet is parquet)
        hydra/...                    Hydra's logs and .hydra/ (not a table)

Every file is written to a hidden temporary file in the same folder and renamed into place, so a
reader never sees half a file (pyarrow, pandas, DuckDB and polars skip names starting with '.').
A run's ``runs`` file is written last: it is the run's commit record. ``steps``/``layers`` files
without a ``runs`` file (left by a crash) are ignored by ``load_results`` and overwritten when the
run is done again.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlplab.lock import HOST, alive, server_now, writer_here
from mlplab.spec import COLUMN_TYPES, SCHEMA_VERSION

if TYPE_CHECKING:  # pandas is imported when results are read (to_pandas), not to write them
    import pandas as pd

TABLES = ("runs", "steps", "layers")
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
    ]
)

# runs-table column types by name (mlplab.spec.COLUMN_TYPES)
ARROW_TYPES = {"bool": pa.bool_(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
               "float64": pa.float64(), "category": _cat, "string": pa.string()}
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
        ("mlplab_version", _cat),
        ("numpy_version", _cat),
        ("schema_version", pa.int32()),
    ]
)

SCHEMAS = {"runs": RUNS_SCHEMA, "steps": STEPS_SCHEMA, "layers": LAYERS_SCHEMA}


class ResultsError(ValueError):
    """A results folder that cannot be read; ``str(err)`` is a one-line message."""


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _IN_FLIGHT.discard(os.path.basename(tmp))


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` as parquet to ``path`` via a hidden temporary file and a rename."""
    path = Path(path)
    fd, tmp = _temporary(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _IN_FLIGHT.discard(os.path.basename(tmp))


_PREPARED: set[str] = set()  # folders this process has created or checked


def prepare_folder(root: Path, key: str = "results_dir") -> Path:
    """Create the results folder ``root`` (and its marker) if needed: ResultsError, one line
    naming ``key``, when it cannot be written (a regular file in the way, no permission...).
    Checked once per process and folder."""
    root = Path(root)
    if str(root) in _PREPARED and (root / MARKER).is_file():
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        mark_folder(root)
        probe = root / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(root) else ""
        raise ResultsError(f"{key}: the results folder {str(root)!r} cannot be written: {e.strerror}{where}") from None
    _PREPARED.add(str(root))
    return root


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
# a file no commit owns (a temporary file, a run's steps without its runs file...) unchanged this
# long is left over, whoever wrote it: no write of mlplab's pauses that long between two files
ORPHAN_AGE_S = 3600.0


def _is_generation(p: Path) -> bool:
    return p.name.startswith(COMPACT)


def _status_of(path: Path) -> str | None:
    try:
        return str(pq.read_table(path, columns=["status"]).column("status")[0])
    except (OSError, pa.ArrowException, KeyError, IndexError):
        return None  # unreadable (e.g. truncated by hand): the run is done again, overwriting it


@functools.lru_cache(maxsize=16)
def _generation_index(path: str, mtime_ns: int, size: int) -> dict[str, str]:
    """run_id -> status of a compacted generation's runs file (read once per file version)."""
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
    one; a generation counts once its runs file exists (it is written last)."""

    root: Path
    own: dict[str, Path]
    compacted: dict[str, str]
    generations: list[Path]  # their runs files, newest first

    @classmethod
    def of(cls, root) -> "Catalogue":
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


MARKERS = "compacted"  # <root>/compacted/compact-<generation>: the committed generations, for fast lookups


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
    path = run_path(root, "runs", run_id)
    if path.is_file():
        return pq.read_table(path).to_pylist()[0]
    for g in _hinted_generations(root):
        if run_id in generation_index(g):
            t = pq.read_table(g)
            return t.filter(pc.equal(t.column("run_id").cast(pa.string()), run_id)).to_pylist()[0]
    return None


def committed_status(root: Path, run_id: str) -> str | None:
    """The status of a committed run (``ok``, ``diverged``, ``failed``), or None if not done.
    A run's own file is looked for first, then the compacted generations (no folder listing:
    this runs before every run of a sweep, in folders of many thousand files)."""
    path = run_path(root, "runs", run_id)
    if path.is_file():
        return _status_of(path)
    for g in _hinted_generations(root):
        status = generation_index(g).get(run_id)
        if status is not None:
            return status
    return None


def is_done(root: Path, run_id: str) -> bool:
    """True when the run needs no rerun: committed as ``ok`` or ``diverged`` (a ``failed`` run is
    retried by the next sweep, since its failure may have been transient)."""
    return committed_status(root, run_id) in ("ok", "diverged")


def committed_ids(root: Path) -> set[str]:
    """Ids of the runs committed in ``root``."""
    return Catalogue.of(root).ids()


def completed_statuses(root: Path) -> dict[str, str]:
    """run_id -> status of every committed run in ``root`` (reads only the status column)."""
    return Catalogue.of(root).statuses()


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


def compact(root) -> dict[str, int]:
    """Gather every committed run's rows of each table into one file per table, a new
    *generation* ``<table>/compact-<time>-<pid>.parquet``, then remove the files it replaces
    (``commit_generation``). Readers take each run from one place (``Catalogue``); files of a
    generation that never got its runs file (a kill while it was written) are removed. Do not
    compact a folder while a sweep writes into it (sweeps compact when they end); leftover
    temporary files of processes killed mid-write are removed too (``remove_temporaries``).
    Returns how many runs were compacted and files removed."""
    root = check_results_folder(root)
    cat = Catalogue.of(root)
    check_versions(cat, root)
    # files no committed run owns: a generation that never got its runs file, a run's steps and
    # layers without its runs file (a run killed before its commit, or a compaction killed
    # between removals)
    leftovers = [p for t in ("steps", "layers") for p in _files(root / t)
                 if not (root / "runs" / p.name).exists() and (_is_generation(p) or p.stem not in cat.own)]
    stale = remove_temporaries(root)
    _tidy_markers(root)
    if not cat.own and len(cat.generations) <= 1 and not leftovers:
        return {"runs": len(cat.compacted), "removed": stale}
    tables = {t: _read_table(cat, t, SCHEMAS[t]) for t in ("steps", "layers", "runs")}
    removed = commit_generation(root, tables, own=list(cat.own), generations=[g.name for g in cat.generations])
    for p in leftovers:
        removed += _unlink(p)
    return {"runs": len(cat.ids()), "removed": removed + stale}


def _tidy_markers(root: Path) -> None:
    """Markers of generations that are gone are removed (a compaction killed between removing a
    generation and its marker), and an older mlplab's marker named ``….parquet`` is replaced by
    one of today's name."""
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


def commit_generation(root, tables: dict[str, pa.Table], own: list[str], generations: list[str] = ()) -> int:
    """Write ``tables`` (steps, layers, runs) as a new compacted generation and remove what it
    replaces: the runs' own files (``own``, run ids) and older ``generations`` (file names).

    Crash-safe at every step: the generation's steps and layers files are written first and its
    runs file last (each atomically: it counts only once whole), then its marker
    (``compacted/compact-<generation>``, without the files' .parquet suffix); only then are
    the replaced files removed, a runs file before its steps and layers. A kill loses nothing,
    and the next ``compact`` finishes the job. Returns the number of files removed."""
    root = Path(root)
    name = f"{COMPACT}{time.time_ns():020d}-{os.getpid()}"
    file = f"{name}.parquet"
    meta = {META_KEY: str(SCHEMA_VERSION).encode()}
    for table in ("steps", "layers", "runs"):  # runs last: it commits the generation
        atomic_write_table(tables[table].replace_schema_metadata(meta), root / table / file)
    atomic_write_bytes(root / MARKERS / name, b"")
    removed = 0
    for g in generations:
        for table in ("runs", "steps", "layers"):
            removed += _unlink(root / table / g)
        _unlink(root / MARKERS / g.removesuffix(".parquet"))
        _unlink(root / MARKERS / g)  # an older mlplab's marker name
    for rid in own:
        for table in ("runs", "steps", "layers"):
            removed += _unlink(run_path(root, table, rid))
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
    for folder in (root, *(root / t for t in (*TABLES, MARKERS, "hydra"))):
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


# -- reading ---------------------------------------------------------------------------------
@dataclass
class Results:
    """The three tables of a results folder (config columns joined onto steps and layers)."""

    runs: pd.DataFrame
    steps: pd.DataFrame
    layers: pd.DataFrame
    path: Path
    for_analysis: bool = False  # prepared by mlplab.analysis.load (plain strings, norm "none")

    def __iter__(self):
        return iter((self.runs, self.steps, self.layers))


# config columns joined onto steps and layers by load_results (every name is unique across the
# three tables: ``loss`` is the loss function, ``train_loss`` and ``test_loss`` its values)
JOIN_COLUMNS = ["sweep"] + list(CONFIG_TYPES) + ["status"]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def _unreadable(f: Path, e: Exception) -> ResultsError:
    return ResultsError(
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
    own = [f for f in own if table == "runs" or f.is_file()]
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
        t = _read_file(root / table / f"{g}.parquet", schema)
        parts.append(t.filter(pc.is_in(t.column("run_id").cast(pa.string()), pa.array(rids))))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).unify_dictionaries().combine_chunks()


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
    """Read a results folder into three DataFrames: ``runs``, ``steps``, ``layers``.

    Only committed runs are returned (a ``steps``/``layers`` file without its ``runs`` row is
    ignored) and leftover temporary files are skipped. Folders that mix result schema versions
    are refused. With ``join``, the config columns of ``runs`` are joined onto ``steps`` and
    ``layers`` so each row says which depth, activation, loss... it belongs to.
    """
    root = check_results_folder(path)
    cat = Catalogue.of(root)
    check_versions(cat, path)
    runs, steps, layers = (_read_table(cat, t, SCHEMAS[t]).to_pandas() for t in ("runs", "steps", "layers"))
    if join and len(runs):
        cfg = runs[["run_id"] + JOIN_COLUMNS]
        steps = steps.merge(cfg, on="run_id", how="left")
        layers = layers.merge(cfg, on="run_id", how="left")
    return Results(runs, steps, layers, root)

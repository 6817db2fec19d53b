"""Results on disk: readable by any parquet tool, atomic, and refused when they cannot be trusted."""

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import dead_pid

from mlplab import RunSpec, load_results, run
from mlplab import results as res

SMALL = dict(depth=1, width=4, n_samples=100, epochs=2, batch_size=20)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1):
        run(RunSpec(**SMALL, seed=seed), root, sweep="t")
    return root


def test_tables_are_plain_parquet_datasets(folder):
    for table in res.TABLES:
        direct = pd.read_parquet(folder / table)
        dataset = ds.dataset(folder / table, format="parquet").to_table()
        assert len(direct) == dataset.num_rows > 0

    # the ids, computed here from the config (sha256 of the sorted-key JSON with the schema
    # version; norm "none" hashed as null, its spelling when the first runs were made; the
    # fields added later left out at the values runs had before them)
    def run_id(seed):
        fields = {**dataclasses.asdict(RunSpec(**SMALL, seed=seed)), "norm": None}
        for name in ("optim", "momentum", "beta1", "beta2", "eps", "rms_alpha"):
            del fields[name]
        for name in ("lr_schedule", "warmup_steps", "lr_gamma", "lr_step_size"):
            del fields[name]
        for name in ("spectrum_every", "spectrum_samples", "input_q0"):
            del fields[name]
        blob = json.dumps({"schema": res.SCHEMA_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    runs = pd.read_parquet(folder / "runs")
    assert set(runs.run_id) == {run_id(0), run_id(1)} and set(runs.seed) == {0, 1}
    for table in ("steps", "layers"):
        assert set(pd.read_parquet(folder / table).run_id) == set(runs.run_id)
    assert json.loads((folder / "mlplab.json").read_text())["schema_version"] == res.SCHEMA_VERSION


def test_column_types_are_compact_and_documented(folder):
    r = load_results(folder)
    assert str(r.layers.run_id.dtype) == "category" and str(r.runs.activation.dtype) == "category"
    assert r.layers.layer.dtype == "int32" and r.layers.act_mean.dtype == "float32"
    assert r.layers.grad_w_norm.dtype == "float64"  # norms keep float64: exploding runs overflow float32
    assert list(r.steps.columns[:11]) == [f.name for f in res.STEPS_SCHEMA]
    assert "loss" in r.steps.columns and "loss" in r.layers.columns  # the loss function's name
    assert "train_loss" in r.steps.columns and r.steps.train_loss.dtype.kind == "f"


def test_leftover_temporary_and_orphan_files_are_ignored(folder):
    before = load_results(folder)
    (folder / "layers" / ".abc.parquet.123.tmp").write_bytes(b"PAR1 half a file")
    (folder / "steps" / ".def.parquet.456.tmp").write_bytes(b"")
    orphan = RunSpec(**SMALL, seed=7)
    run(orphan, folder)
    res.run_path(folder, "runs", orphan.run_id).unlink()  # as if killed before the commit
    after = load_results(folder)
    assert len(after.runs) == 2
    pd.testing.assert_frame_equal(before.steps, after.steps)
    pd.testing.assert_frame_equal(before.layers, after.layers)
    assert pd.read_parquet(folder / "layers").shape[0] > len(after.layers)  # the orphan is on disk


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    t = res.to_table(
        {
            "run_id": ["a"],
            "step": [0],
            "epoch": [0],
            "train_loss": [1.0],
            "train_accuracy": [0.5],
            "test_loss": [1.0],
            "test_accuracy": [0.5],
            "batch_loss": [1.0],
            "grad_norm": [1.0],
            "clipped": [False],
            "learning_rate": [0.5],
        },
        "steps",
    )
    res.atomic_write_table(t, tmp_path / "steps" / "a.parquet")
    assert [p.name for p in (tmp_path / "steps").iterdir()] == ["a.parquet"]
    assert pq.read_table(tmp_path / "steps" / "a.parquet").num_rows == 1


def test_mixed_schema_versions_are_refused(folder):
    path = next((folder / "runs").glob("*.parquet"))
    t = pq.read_table(path)
    pq.write_table(t.replace_schema_metadata({res.META_KEY: b"0"}), path)
    with pytest.raises(res.ResultsError) as e:
        load_results(folder)
    assert str(e.value).startswith(
        f"results path={str(folder)!r}: result schema versions 0 (1 files), {res.SCHEMA_VERSION} (1 files); "
    )
    before = table_files(folder)
    with pytest.raises(res.ResultsError) as e:  # compaction refuses too, naming the folder, and touches nothing
        res.compact(folder)
    assert str(e.value).startswith(f"results path={str(folder)!r}: result schema versions 0 (1 files)")
    assert table_files(folder) == before


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_a_folder_that_is_not_mlplab_results_is_refused(tmp_path, make):
    path = tmp_path / "x"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("not a folder")
    with pytest.raises(res.ResultsError) as e:
        load_results(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("table", res.TABLES)
def test_a_truncated_file_is_named_and_the_rerun_repairs_it(folder, table):
    spec = RunSpec(**SMALL, seed=0)
    path = res.run_path(folder, table, spec.run_id)
    good = pq.read_table(path)
    path.write_bytes(path.read_bytes()[:40])  # truncated, e.g. copied from a full disk
    with pytest.raises(res.ResultsError) as e:
        load_results(folder)
    assert not isinstance(e.value, res.Vanished)  # there, but unreadable: not looked for again
    msg = str(e.value)
    assert msg.startswith(f"results file={str(path)!r} cannot be read (") and "\n" not in msg
    assert "magic bytes not found" in msg  # the reader's reason, on one line
    assert msg.endswith(f"): rerun the sweep to redo run {spec.run_id}, or delete the file")
    row = run(spec, folder, sweep="t")
    if table == "runs":  # an unreadable commit record means "not done": the run is redone
        assert not row["skipped"]
    else:  # the commit record is intact: skipping is right, forcing repairs the table
        assert row["skipped"]
        run(spec, folder, sweep="t", force=True)
    assert pq.read_table(path).equals(good) if table != "runs" else pq.read_table(path).num_rows == 1
    assert len(load_results(folder).runs) == 2


def test_result_files_get_the_umask_mode(tmp_path):
    """mkstemp makes 0600 files; results are written with the mode open() would give, so a
    group sharing a results folder can read them."""
    path = tmp_path / "t" / "a.parquet"
    res.atomic_write_bytes(path, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044 & ~mask  # readable by group and others


def test_a_column_name_means_one_thing_across_the_tables():
    """A SQL join of the three tables needs no renaming: the runs table shares only run_id with
    steps and layers, and steps and layers share only their keys (run_id, step, epoch)."""
    names = {t: set(res.SCHEMAS[t].names) for t in res.TABLES}
    assert names["runs"] & names["steps"] == {"run_id"}
    assert names["runs"] & names["layers"] == {"run_id"}
    assert names["steps"] & names["layers"] == {"run_id", "step", "epoch"}
    assert "loss" in names["runs"] and {"train_loss", "test_loss"} <= names["steps"]


# -- compaction ------------------------------------------------------------------------------------
def sorted_tables(root):
    r = load_results(root, join=False)
    out = []
    keys = {"runs": ["run_id"], "steps": ["run_id", "step"], "layers": ["run_id", "step", "layer"]}
    keys["spectra"] = ["run_id", "step", "sample", "index"]
    for df, key in ((getattr(r, t), k) for t, k in keys.items()):
        df = df.astype({c: object for c in df if isinstance(df[c].dtype, pd.CategoricalDtype)})
        out.append(df.sort_values(key).reset_index(drop=True))
    return out


def assert_same(a, b):
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y, check_exact=True)


def table_files(root):
    return {t: sorted(p.name for p in (root / t).iterdir()) for t in res.ALL_TABLES if (root / t).is_dir()}


@pytest.fixture(scope="module")
def many_made(tmp_path_factory):
    """Six runs, each committed in its own files, made once; tests change copies of it."""
    root = tmp_path_factory.mktemp("many_made") / "many"
    for seed in range(6):
        run(RunSpec(**SMALL, seed=seed), root, sweep="t")
    return root


@pytest.fixture
def many(many_made, tmp_path):
    """A copy of ``many_made`` of the test's own (a results folder can be moved or copied)."""
    return Path(shutil.copytree(many_made, tmp_path / "many", symlinks=True))


def test_compaction_leaves_one_file_per_table_and_the_same_rows(many):
    before = sorted_tables(many)
    # a write killed midway: its process, of this host, is gone
    (many / "layers" / f".x.parquet.{res.HOST}.{dead_pid()}.abcd1234.tmp").write_bytes(b"half a file")
    done = res.compact(many)
    assert done["runs"] == 6 and done["removed"] == 6 * 3 + 1
    files = table_files(many)
    assert all(len(v) == 1 and v[0].startswith("compact-") for v in files.values()), files
    assert_same(before, sorted_tables(many))
    for table in res.TABLES:  # plain parquet readers see each row once
        assert len(pd.read_parquet(many / table)) == len(before[res.TABLES.index(table)])
    assert res.compact(many) == {"runs": 6, "removed": 0}  # nothing left to do
    # a run in the compacted files is done: run() skips it, the planner counts it
    assert run(RunSpec(**SMALL, seed=3), many)["skipped"]
    assert set(res.completed_statuses(many).values()) == {"ok"} and len(res.committed_ids(many)) == 6


def test_a_run_done_again_after_compaction_wins_over_its_compacted_rows(many):
    res.compact(many)
    spec = RunSpec(**SMALL, seed=2)
    again = run(spec, many, force=True)  # its own files now, newer than the compacted ones
    assert not again["skipped"]
    runs = load_results(many).runs
    assert len(runs) == 6 and runs.set_index("run_id").loc[spec.run_id, "wall_time_s"] == again["wall_time_s"]
    res.compact(many)
    assert load_results(many).runs.set_index("run_id").loc[spec.run_id, "wall_time_s"] == again["wall_time_s"]


@pytest.fixture(scope="module")
def mixed_made(many_made, tmp_path_factory):
    """``many_made`` compacted into one generation, plus two runs in their own files, one of
    them with a spectra file."""
    root = Path(shutil.copytree(many_made, tmp_path_factory.mktemp("mixed_made") / "many", symlinks=True))
    res.compact(root)
    run(RunSpec(**SMALL, seed=6), root)
    run(RunSpec(**SMALL, seed=7, spectrum_every=4, spectrum_samples=2), root)
    assert len(table_files(root)["runs"]) == 3
    return root


@pytest.mark.parametrize("step", range(19))
def test_a_compaction_killed_at_any_step_loses_nothing_and_the_next_one_finishes(
    mixed_made, tmp_path, monkeypatch, step
):
    """Every write and removal of a compaction, interrupted in turn (as by a kill): the folder
    reads the same rows at once, and the next compaction leaves it clean. The folder: one
    generation plus runs in their own files (a copy of ``mixed_made``): 4 tables and a marker
    written, 4 files (its spectra, absent, too) and 2 marker names of the old generation and 2
    runs' 3 and 4 files removed."""
    many = Path(shutil.copytree(mixed_made, tmp_path / "many", symlinks=True))
    before = sorted_tables(many)
    calls = {"n": 0}

    def interrupt(original):
        def f(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == step + 1:
                raise KeyboardInterrupt("killed")
            return original(*args, **kwargs)

        return f

    for name in ("atomic_write_table", "atomic_write_bytes", "_unlink", "_unlink_if"):
        monkeypatch.setattr(res, name, interrupt(getattr(res, name)))
    try:
        res.compact(many)
    except KeyboardInterrupt:
        pass
    else:
        assert step == 18, "the compaction has fewer steps than the test thinks"
    assert calls["n"] == min(step + 1, 18), "the compaction has more steps than the test thinks"
    monkeypatch.undo()
    assert_same(before, sorted_tables(many))
    assert set(res.completed_statuses(many)) == set(before[0].run_id)
    res.compact(many)
    files = table_files(many)
    assert all(len(v) == 1 for v in files.values()), files
    assert_same(before, sorted_tables(many))


def test_a_compaction_writes_the_runs_file_last_and_removes_a_runs_own_runs_file_first(
    mixed_made, tmp_path, monkeypatch
):
    """The order of a compaction's writes and removals, as it makes them: the new generation's
    tables with its runs file last (the commit), then its marker; then, of each replaced run's own
    files, its runs file before its steps and layers (a run with rows but no runs file is not
    committed, so nothing half-removed is ever read)."""
    many = Path(shutil.copytree(mixed_made, tmp_path / "many", symlinks=True))
    order = []

    def spy(name, original):
        def f(*args, **kwargs):
            path = args[1] if name == "atomic_write_table" else args[0]  # (table, path) or (path, ...)
            order.append((name, Path(path)))
            return original(*args, **kwargs)

        return f

    for name in ("atomic_write_table", "atomic_write_bytes", "_unlink", "_unlink_if"):
        monkeypatch.setattr(res, name, spy(name, getattr(res, name)))
    res.compact(many)
    writes = [p for name, p in order if name == "atomic_write_table"]
    tables = [p.parent.name for p in writes]
    assert tables[-1] == "runs" and sorted(tables) == ["layers", "runs", "spectra", "steps"]  # the runs file last
    first_removal = next(i for i, (name, _) in enumerate(order) if name.startswith("_unlink"))
    marker = next(i for i, (name, p) in enumerate(order) if name == "atomic_write_bytes")
    assert order.index(("atomic_write_table", writes[-1])) < marker < first_removal
    removed = [(p.parent.name, p.stem) for name, p in order if name.startswith("_unlink")]
    own = {stem for table, stem in removed if table == "steps" and not stem.startswith("compact-")}
    assert len(own) == 2
    for rid in own:
        at = {table: i for i, (table, stem) in enumerate(removed) if stem == rid}
        assert at["runs"] < at["steps"] and at["runs"] < at["layers"], at


def test_the_compact_command(many, capsys):
    from mlplab.compact import main

    assert main([str(many)]) == 0
    assert "compacted 6 runs" in capsys.readouterr().out
    assert main([str(many / "nope")]) == 2


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_the_umask_is_read_without_changing_it(mask):
    old = os.umask(mask)
    try:
        assert res._umask() == mask
        assert os.umask(mask) == mask  # still in force after reading it
    finally:
        os.umask(old)


def test_unlink_counts_only_what_it_removed(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x")
    assert res._unlink(p) == 1 and not p.exists()
    assert res._unlink(p) == 0


def test_results_unpack_as_runs_steps_layers(folder):
    r = load_results(folder)
    runs, steps, layers = r
    assert runs is r.runs and steps is r.steps and layers is r.layers


def test_two_generations_and_leftovers_compact_into_one_and_are_counted(many):
    """A compaction killed after its new generation was committed leaves two; files of a run
    killed before its commit are leftovers. The next compaction keeps one generation, removes
    the other's 3 files and the 2 leftovers, and says so."""
    res.compact(many)
    (old,) = [p.name for p in (many / "runs").iterdir()]
    new = old.replace(res.COMPACT, res.COMPACT + "9")  # sorts after: the newer generation
    for t in res.TABLES:
        (many / t / new).write_bytes((many / t / old).read_bytes())
    (many / res.MARKERS / new).write_bytes(b"")
    before = sorted_tables(many)
    assert res.compact(many) == {"runs": 6, "removed": 6}  # a third generation replaces both (3 files each)
    assert all(len(v) == 1 for v in table_files(many).values())
    assert_same(before, sorted_tables(many))
    (gen,) = [p.name for p in (many / "runs").iterdir()]
    for t in ("steps", "layers"):  # a run killed before its commit, long ago
        (many / t / ("f" * 16 + ".parquet")).write_bytes((many / t / gen).read_bytes())
        os.utime(many / t / ("f" * 16 + ".parquet"), (time.time() - 2 * res.ORPHAN_AGE_S,) * 2)
    assert res.compact(many) == {"runs": 6, "removed": 3 + 2}  # a new generation replaces the old, + the leftovers
    assert all(len(v) == 1 for v in table_files(many).values())
    assert_same(before, sorted_tables(many))


def test_statuses_prefer_a_runs_own_file_and_drop_an_unreadable_one(many):
    res.compact(many)
    ids = sorted(res.committed_ids(many))
    redo, broken = RunSpec(**SMALL, seed=1), RunSpec(**SMALL, seed=2)
    gen = next((many / "runs").iterdir())
    t = pq.read_table(gen)
    status = [
        "failed" if r == redo.run_id else s
        for r, s in zip(t.column("run_id").to_pylist(), t.column("status").to_pylist())
    ]
    pq.write_table(
        t.set_column(t.schema.get_field_index("status"), "status", pa.array(status, t.schema.field("status").type)), gen
    )
    run(redo, many, force=True)  # its own file: ok, newer than the generation's "failed"
    res.run_path(many, "runs", broken.run_id).write_bytes(b"PAR1 cut")  # an own file nobody can read
    got = res.Catalogue.of(many).statuses()
    assert got[redo.run_id] == "ok"
    assert broken.run_id not in got  # unreadable: not done, whatever the generation says
    assert set(got) == set(ids) - {broken.run_id}
    lone = RunSpec(**SMALL, seed=9)  # in no generation, and unreadable too
    run(lone, many)
    res.run_path(many, "runs", lone.run_id).write_bytes(b"PAR1 cut")
    assert set(res.Catalogue.of(many).statuses()) == set(ids) - {broken.run_id}


def test_a_generations_index_is_read_again_when_its_file_changes(tmp_path):
    """The index is cached per (path, mtime, size): a rewrite of the same size, or of another
    size with the old mtime put back, is still seen."""
    path = tmp_path / "g.parquet"

    def write(ids):
        pq.write_table(pa.table({"run_id": ids, "status": ["ok"] * len(ids)}), path)

    write(["a" * 16])
    assert res.generation_index(path) == {"a" * 16: "ok"}
    st = path.stat()
    write(["b" * 16])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert path.stat().st_size == st.st_size and res.generation_index(path) == {"b" * 16: "ok"}
    st = path.stat()
    write(["c" * 16, "d" * 16])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size != st.st_size and res.generation_index(path) == {"c" * 16: "ok", "d" * 16: "ok"}


def test_each_generation_is_read_once_however_many_a_folder_holds(tmp_path, monkeypatch):
    """``is_done`` looks a run up in every generation before each run of a sweep: with more
    generations than a small cache holds (a sweep writes one per chunk), each must still be read
    once, not once per lookup."""
    paths = []
    for k in range(40):
        paths.append(tmp_path / f"g{k}.parquet")
        pq.write_table(pa.table({"run_id": [f"{k:016d}"], "status": ["ok"]}), paths[-1])
    reads = []
    read_table = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, **kw: reads.append(path) or read_table(path, **kw))
    for _ in range(3):
        assert [res.generation_index(p) for p in paths] == [{f"{k:016d}": "ok"} for k in range(40)]
    assert sorted(reads) == sorted(str(p) for p in paths)


def test_a_runs_rows_come_from_the_newest_generation_that_holds_it(many):
    """Two generations hold the same runs (a compaction killed before it removed the older):
    the newer one's rows are read, and compaction keeps them."""
    res.compact(many)
    (old,) = [p.name for p in (many / "runs").iterdir()]
    new = old.replace(res.COMPACT, res.COMPACT + "9")
    for t in res.TABLES:
        tab = pq.read_table(many / t / old)
        if t == "runs":
            i = tab.schema.get_field_index("wall_time_s")
            tab = tab.set_column(i, "wall_time_s", pa.array([123.0] * tab.num_rows, tab.schema.field(i).type))
        pq.write_table(tab, many / t / new)
    (many / res.MARKERS / new).write_bytes(b"")
    assert (load_results(many).runs["wall_time_s"] == 123.0).all()
    res.compact(many)
    assert (load_results(many).runs["wall_time_s"] == 123.0).all()


def test_a_run_missing_its_own_steps_file_still_loads(folder):
    spec = RunSpec(**SMALL, seed=0)
    res.run_path(folder, "steps", spec.run_id).unlink()
    r = load_results(folder)
    assert len(r.runs) == 2 and spec.run_id not in set(r.steps["run_id"]) and len(set(r.steps["run_id"])) == 1


# --- the folder and its files, called directly ---------------------------------------------------


def test_prepare_folder_creates_nested_folders_once_and_names_what_blocks_it(tmp_path):
    root = tmp_path / "a" / "b" / "sweep"
    folder = res.ResultsFolder(root)
    assert folder.prepare() == root and (root / res.MARKER).is_file() and folder.checked
    (root / res.MARKER).unlink()  # checked again when its marker is gone
    folder.prepare()
    assert (root / res.MARKER).is_file()
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(res.ResultsError) as e:
        res.prepare_folder(blocked / "sub", key="hydra.sweep.dir")
    assert str(e.value) == (
        f"hydra.sweep.dir: the results folder {str(blocked / 'sub')!r} cannot be written: Not a directory"
    )
    with pytest.raises(res.ResultsError) as e:
        res.prepare_folder(blocked)
    assert str(e.value).startswith(f"results_dir: the results folder {str(blocked)!r} cannot be written: File exists")


@pytest.mark.parametrize("write", ["bytes", "table"])
def test_an_atomic_write_makes_folders_and_leaves_nothing_when_it_fails(tmp_path, write):
    path = tmp_path / "x" / "y" / "f.parquet"
    table = pa.table({"a": [1, 2]})
    (res.atomic_write_bytes(path, b"abc") if write == "bytes" else res.atomic_write_table(table, path))
    assert path.is_file()
    if write == "table":
        assert pq.read_table(path).equals(table)
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    bad = b"" if write == "table" else object()  # not a table / not bytes: the write raises
    with pytest.raises(Exception):  # noqa: B017 - whichever error the writer raises
        res.atomic_write_bytes(path, bad) if write == "bytes" else res.atomic_write_table(bad, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.parquet"]  # no temporary left
    fd, tmp = res._temporary(path)
    os.close(fd)
    assert Path(tmp).name.startswith(".f.parquet.") and Path(tmp).name.endswith(".tmp")
    assert Path(tmp).parent == path.parent  # beside its file: the rename stays on one file system


def test_done_means_ok_or_diverged_and_failed_runs_are_redone(folder):
    rid = RunSpec(**SMALL, seed=0).run_id
    path = res.run_path(folder, "runs", rid)
    t = pq.read_table(path)
    for status, done in (("ok", True), ("diverged", True), ("failed", False)):
        i = t.schema.get_field_index("status")
        pq.write_table(t.set_column(i, "status", pa.array([status], t.schema.field(i).type)), path)
        assert res.is_done(folder, rid) is done
    assert res.is_done(folder, "0" * 16) is False


def test_hinted_generations_are_newest_first(tmp_path):
    """Markers are named after their generation (``compact-1``); an older mlplab's markers,
    named ``compact-1.parquet``, lead to their generation alike."""
    (tmp_path / "runs").mkdir()
    (tmp_path / res.MARKERS).mkdir()
    for name, marker in (("compact-1", "compact-1.parquet"), ("compact-3", "compact-3"), ("compact-2", "compact-2")):
        (tmp_path / "runs" / f"{name}.parquet").write_bytes(b"")
        (tmp_path / res.MARKERS / marker).write_bytes(b"")
    (tmp_path / res.MARKERS / "compact-4").write_bytes(b"")  # its runs file is gone: no hint
    (tmp_path / res.MARKERS / ".compact-5.host.1.abcd1234.tmp").write_bytes(b"")  # a marker being written
    assert [p.name for p in res._hinted_generations(tmp_path)] == [
        "compact-3.parquet",
        "compact-2.parquet",
        "compact-1.parquet",
    ]
    assert res._hinted_generations(tmp_path / "nope") == []


def assert_every_parquet_name_is_parquet(root):
    """What a parquet reader given a glob sees: every file under ``root`` named ``*.parquet`` is
    non-empty and reads as parquet, and each table's files read as one pyarrow dataset."""
    import glob

    files = glob.glob(str(root / "**" / "*.parquet"), recursive=True)
    assert files
    for f in files:
        assert os.path.getsize(f) > 0, f
        pq.read_table(f)
    for table in res.TABLES:
        found = glob.glob(str(root / table / "**" / "*.parquet"), recursive=True)
        assert ds.dataset(found, format="parquet").to_table().num_rows > 0


def test_only_parquet_files_are_named_parquet(many):
    """A compacted folder, with a run in its own files beside the generation: every ``*.parquet``
    is parquet (the markers in ``compacted/`` have no suffix)."""
    res.compact(many)
    run(RunSpec(**SMALL, seed=9), many)
    assert_every_parquet_name_is_parquet(many)
    (gen,) = [p.stem for p in (many / "runs").glob("compact-*")]
    assert os.listdir(many / res.MARKERS) == [gen]
    assert (many / res.MARKERS / gen).read_bytes() == b""  # a marker is an empty file


def test_an_older_folders_parquet_named_markers_are_read_and_replaced(many):
    """A folder compacted by an older mlplab, whose markers were empty files named
    ``compact-<generation>.parquet``: its generations are found through them, and the next
    compaction leaves markers without the suffix — whether it has nothing else to do or
    replaces the generation."""
    res.compact(many)
    (gen,) = os.listdir(many / res.MARKERS)
    (many / res.MARKERS / gen).rename(many / res.MARKERS / f"{gen}.parquet")
    spec = RunSpec(**SMALL, seed=0)
    assert res._hinted_generations(many) == [many / "runs" / f"{gen}.parquet"]
    assert res.is_done(many, spec.run_id) and res.committed_row(many, spec.run_id)["seed"] == 0
    res.compact(many)  # nothing to gather
    assert os.listdir(many / res.MARKERS) == [gen] and (many / res.MARKERS / gen).read_bytes() == b""
    assert_every_parquet_name_is_parquet(many)
    (many / res.MARKERS / gen).rename(many / res.MARKERS / f"{gen}.parquet")
    run(RunSpec(**SMALL, seed=9), many)
    res.compact(many)  # a new generation replaces the old one, and its marker
    (new,) = [p.stem for p in (many / "runs").glob("compact-*")]
    assert new != gen and os.listdir(many / res.MARKERS) == [new]
    assert_every_parquet_name_is_parquet(many)
    assert len(load_results(many).runs) == 7


def test_table_files_skip_hidden_and_underscored_names(tmp_path):
    for name in ("b.parquet", "a.parquet", ".x.parquet", "_common_metadata.parquet", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in res._files(tmp_path)] == ["a.parquet", "b.parquet"]


@pytest.mark.parametrize("has", ["marker", "runs"])
def test_a_results_folder_is_one_with_a_marker_or_a_runs_folder(tmp_path, has):
    (tmp_path / res.MARKER).write_text("{}") if has == "marker" else (tmp_path / "runs").mkdir()
    assert res.check_results_folder(tmp_path) == tmp_path
    with pytest.raises(res.ResultsError, match=r"not an mlplab results folder \(expected mlplab.json and runs/"):
        res.check_results_folder(tmp_path / "runs" if has == "runs" else (tmp_path / "e").mkdir() or tmp_path / "e")


def test_files_without_a_version_are_named_with_their_count(folder):
    path = next((folder / "runs").glob("*.parquet"))
    t = pq.read_table(path)
    pq.write_table(t.replace_schema_metadata({}), path)
    with pytest.raises(res.ResultsError, match=rf"schema versions {res.SCHEMA_VERSION} \(1 files\), \? \(1 files\);"):
        res.check_versions(res.Catalogue.of(folder), folder)


def test_a_runs_file_gone_after_listing_is_an_error_not_a_lost_run(folder):
    """A committed run's runs file that disappears between listing and reading (another
    process deleting it) stops the read, naming the file: it is never silently left out."""
    cat = res.Catalogue.of(folder)
    gone = next(iter(cat.own.values()))
    gone.unlink()
    with pytest.raises(res.ResultsError, match=f"results file={str(gone)!r} cannot be read"):
        res._read_table(cat, "runs", res.SCHEMAS["runs"])


def test_a_runs_own_files_are_read_in_one_scan(folder, monkeypatch):
    """Many small files are read as one dataset; the file-by-file reader is only the fallback
    that names a file that cannot be read."""
    calls = []
    real = res._read_file
    monkeypatch.setattr(res, "_read_file", lambda f, schema: calls.append(f) or real(f, schema))
    r = load_results(folder)
    assert len(r.runs) == 2 and len(r.steps) > 0 and calls == []


def test_load_results_joins_the_config_only_when_asked(folder):
    plain = load_results(folder, join=False)
    for name in res.TABLES:
        assert list(getattr(plain, name).columns) == res.SCHEMAS[name].names
    joined = load_results(folder)
    assert {"depth", "activation", "seed"} <= set(joined.steps.columns) - set(plain.steps.columns)
    assert len(joined.steps) == len(plain.steps) and (joined.steps.depth == 1).all()


@pytest.mark.parametrize("write", ["bytes", "table"])
def test_a_failed_atomic_write_raises_its_own_error_even_if_its_temporary_is_gone(tmp_path, monkeypatch, write):
    """A write that fails after its temporary file was removed (by a compaction clearing
    temporaries) raises the write's error, not one about the missing temporary."""

    def replace(src, dst):
        os.unlink(src)
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(res.os, "replace", replace)
    path = tmp_path / "f.parquet"
    with pytest.raises(res.DiskFull) as e:  # a full disk, said so whatever the writer's words
        res.atomic_write_bytes(path, b"abc") if write == "bytes" else res.atomic_write_table(pa.table({"a": [1]}), path)
    assert str(e.value) == f"[Errno 28] No space left on device: {str(path)!r}"
    assert "injected" in str(e.value.__cause__)
    assert list(tmp_path.iterdir()) == []


def test_a_results_folder_is_checked_once_by_its_writer_even_when_marked(tmp_path, monkeypatch):
    """A folder another process made (its marker there already) is still checked for writing
    the first time; the next calls trust the check, for the writer that made it; another
    ``ResultsFolder`` (another writer, a later command) checks again."""
    root = tmp_path / "theirs"
    root.mkdir()
    (root / res.MARKER).write_text("{}")
    probes = []
    real = res.mark_folder
    monkeypatch.setattr(res, "mark_folder", lambda r: probes.append(r) or real(r))
    folder = res.ResultsFolder(root)
    folder.prepare()
    folder.prepare()
    assert probes == [root]
    res.ResultsFolder(root).prepare()
    res.prepare_folder(root)
    assert probes == [root] * 3


def test_prepare_folder_names_the_file_that_blocks_it_when_not_the_folder(tmp_path):
    root = tmp_path / "sweep"
    res.prepare_folder(root)
    probe = root / f".write-test-{res.HOST}-{os.getpid()}"
    probe.mkdir()  # the write test cannot remove it
    with pytest.raises(res.ResultsError) as e:
        res.prepare_folder(root)
    assert str(e.value) == f"results_dir: the results folder {str(root)!r} cannot be written: Is a directory ({probe})"


def test_a_mixed_folder_counts_the_files_of_each_version(folder):
    run(RunSpec(**SMALL, seed=2), folder, sweep="t")
    path = sorted((folder / "runs").glob("*.parquet"))[0]
    pq.write_table(pq.read_table(path).replace_schema_metadata({res.META_KEY: b"0"}), path)
    with pytest.raises(res.ResultsError, match=rf"schema versions 0 \(1 files\), {res.SCHEMA_VERSION} \(2 files\);"):
        res.check_versions(res.Catalogue.of(folder), folder)


def test_a_full_disk_is_told_apart_from_a_folder_that_cannot_be_written(tmp_path, monkeypatch):
    """ENOSPC or EDQUOT, with the errno or (pyarrow) only its text, is a full disk: DiskFull, not
    ResultsError (bad input, exit code 2), even when the folder is being prepared."""
    assert res.is_disk_full(OSError(28, "No space left on device"))
    assert res.is_disk_full(OSError(122, "Disk quota exceeded"))
    assert res.is_disk_full(OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"))
    assert not res.is_disk_full(OSError(13, "Permission denied")) and not res.is_disk_full(ValueError("full"))

    def full(root):
        raise OSError(28, "No space left on device", str(root / res.MARKER))

    monkeypatch.setattr(res, "mark_folder", full)
    with pytest.raises(res.DiskFull) as e:
        res.prepare_folder(tmp_path / "sweep")
    assert e.value.errno == 28 and e.value.filename == str(tmp_path / "sweep" / res.MARKER)


def test_a_full_disk_keeps_the_errno_that_says_which_and_says_enospc_when_there_is_none(tmp_path):
    """DiskFull says ENOSPC or EDQUOT as the error did; an error that said it only in words
    (pyarrow's) becomes ENOSPC."""
    path = tmp_path / "f.parquet"
    for err, code in (
        (OSError(errno.EDQUOT, "Disk quota exceeded"), errno.EDQUOT),
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"), errno.ENOSPC),
    ):
        e = res.DiskFull(path, err)
        assert (e.errno, e.strerror, e.filename) == (code, os.strerror(code), str(path))
        assert res.is_disk_full(e)


def test_a_file_moved_before_its_version_is_checked_is_looked_for_again(folder, monkeypatch):
    """A reader lists the folder; a worker's chunk commit moves the runs into its generation
    before the reader checks the files' schema versions: the reader looks again and finds
    them there."""
    check, moved = res.check_versions, []

    def move_first(cat, path):
        if not moved:
            tables = {t: res._read_table(cat, t, res.SCHEMAS[t]) for t in res.TABLES}
            res.commit_generation(folder, tables, own=res._own_versions(cat))
            moved.append(True)
        return check(cat, path)

    monkeypatch.setattr(res, "check_versions", move_first)
    r = load_results(folder)
    assert moved and len(r.runs) == 2
    assert all(p.name.startswith(res.COMPACT) for p in (folder / "runs").iterdir())  # they were moved


def test_a_folder_holding_only_leftovers_is_compacted_to_an_empty_one(tmp_path):
    """A sweep whose one run was killed before its commit, long ago: its steps and layers are
    all the folder holds. The compaction removes them; the folder reads as empty tables of the
    documented columns."""
    root = tmp_path / "sweep"
    spec = RunSpec(**SMALL)
    run(spec, root)
    res.run_path(root, "runs", spec.run_id).unlink()
    old = time.time() - 2 * res.ORPHAN_AGE_S
    for table in ("steps", "layers"):
        os.utime(res.run_path(root, table, spec.run_id), (old, old))
    assert res.compact(root) == {"runs": 0, "removed": 2}
    r = load_results(root, join=False)
    for name in res.TABLES:
        assert len(getattr(r, name)) == 0 and list(getattr(r, name).columns) == res.SCHEMAS[name].names


def test_a_null_norm_of_an_older_folder_reads_none_and_its_runs_are_done(folder):
    """Runs written when no normalisation was spelled null (the runs table's ``norm`` null) read
    "none", as runs written today store it; their ids are today's, so they are not run again."""
    today = load_results(folder, join=True)
    assert set(today.runs.norm) == {"none"} and set(today.steps.norm) == {"none"}
    for f in (folder / "runs").glob("*.parquet"):  # the runs files as an older version wrote them
        t = pq.read_table(f)
        i = t.schema.get_field_index("norm")
        t = t.set_column(i, t.schema.field(i), pa.nulls(len(t), t.schema.field(i).type))
        pq.write_table(t, f)
    assert pd.read_parquet(folder / "runs").norm.isna().all()
    old = load_results(folder, join=True)
    assert list(old.runs.norm) == ["none", "none"] and set(old.layers.norm) == {"none"}
    pd.testing.assert_frame_equal(old.runs.astype({"norm": str}), today.runs.astype({"norm": str}))
    assert run(RunSpec(**SMALL, seed=0), folder, sweep="t")["skipped"]


def test_a_results_folder_names_its_key_when_it_cannot_be_written(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(res.ResultsError, match=r"^results_dir: the results folder .* cannot be written: File exists"):
        res.ResultsFolder(blocked).prepare()
    folder = res.ResultsFolder(blocked / "sub", key="hydra.sweep.dir")
    with pytest.raises(res.ResultsError, match=r"^hydra\.sweep\.dir: the results folder .* Not a directory"):
        folder.prepare()
    assert not folder.checked

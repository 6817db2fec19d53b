"""Every bad input through the command line: exit code 2 (1 for a run that fails), exactly one
line on stderr starting 'mlplab:', and nothing already written changed.

Each case runs ``python -m mlplab`` (or an analysis command) against a copy of a results folder
that already holds a committed run; the digests of its files before and after must be equal and
no table file may appear. The command runs in a forked child of the test process (``forked``):
the module's ``__main__``, its exit code, stdout and stderr as from a new interpreter, without a
new interpreter's start-up. A few cases run in a new interpreter instead (``SPAWNED``). More
values refused by the same rules (``VALUE_CASES``) and the many ways a data file's content can
be wrong (``FILE_CASES``) run in this process, through the functions the command calls after
Hydra has composed the config.
"""

import dataclasses
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FAULTY, forked

import mlplab

pytestmark = pytest.mark.slow

TINY = ["data.n_samples=100", "width=4", "train.epochs=1"]


def _npz(path, **arrays):
    np.savez(path, **arrays)


def _rng():
    return np.random.default_rng(0)


# name -> writes the file data/<name> (in the case's folder)
DATA_FILES = {
    "good.npz": lambda p: _npz(p, X=_rng().standard_normal((50, 3)), labels=np.arange(50) % 3),
    "nan.npz": lambda p: _npz(p, X=np.where(np.eye(50, 3) > 0, np.nan, 1.0), labels=np.arange(50) % 3),
    "inf.npz": lambda p: _npz(p, X=np.full((50, 3), np.inf), labels=np.arange(50) % 3),
    "x3d.npz": lambda p: _npz(p, X=np.ones((50, 3, 2)), labels=np.arange(50) % 3),
    "x1d.npz": lambda p: _npz(p, X=np.ones(50), labels=np.arange(50) % 3),
    "xstr.npz": lambda p: _npz(p, X=np.array([["a", "b"]] * 50), labels=np.arange(50) % 2),
    "one_sample.npz": lambda p: _npz(p, X=np.ones((1, 3)), labels=np.array([1])),
    "empty.npz": lambda p: _npz(p, X=np.ones((0, 3)), labels=np.zeros(0, int)),
    "short_y.npz": lambda p: _npz(p, X=np.ones((50, 3)), Y=np.eye(2)[np.arange(49) % 2]),
    "y1d.npz": lambda p: _npz(p, X=np.ones((50, 3)), Y=np.arange(50) % 2),
    "y1col.npz": lambda p: _npz(p, X=np.ones((50, 3)), Y=np.ones((50, 1))),
    "ynan.npz": lambda p: _npz(p, X=np.ones((50, 3)), Y=np.full((50, 2), np.nan)),
    "neg_label.npz": lambda p: _npz(p, X=np.ones((50, 3)), labels=np.arange(50) % 3 - 1),
    "float_label.npz": lambda p: _npz(p, X=np.ones((50, 3)), labels=(np.arange(50) % 3).astype(float)),
    "one_class.npz": lambda p: _npz(p, X=np.ones((50, 3)), labels=np.zeros(50, int)),
    "short_labels.npz": lambda p: _npz(p, X=np.ones((50, 3)), labels=np.arange(40) % 3),
    "no_x.npz": lambda p: _npz(p, features=np.ones((50, 3)), labels=np.arange(50) % 3),
    "y_and_labels.npz": lambda p: _npz(p, X=np.ones((50, 3)), Y=np.eye(2)[np.arange(50) % 2], labels=np.arange(50) % 2),
    "object.npz": lambda p: _npz(p, X=np.array([object()] * 50, dtype=object).reshape(50, 1), labels=np.arange(50) % 2),
    "soft_y.npz": lambda p: _npz(p, X=_rng().standard_normal((50, 3)), Y=np.full((50, 2), 0.5)),
    "corrupt.npz": lambda p: p.write_bytes(b"PK\x03\x04 this is not a zip archive"),
    "array.npy": lambda p: np.save(p, np.ones((50, 3))),
    "a_folder.npz": lambda p: p.mkdir(),
}


def file_case(name, words, loss=None):
    args = ["data=file", f"data.path=data/{name}", "train.batch_size=8"] + ([f"loss={loss}"] if loss else [])
    return (args, 2, words)


# Values refused by the rules that CASES exercise through ``python -m mlplab``, run in this
# process as ``main`` runs them: Hydra composes the config (``compose``), then ``prepare`` and
# ``mlplab.run`` (the functions the command calls), and the error becomes the command's line and
# exit code (``one_line``, ``exit_code``).
VALUE_CASES = {
    "word eval_every": (["train.eval_every=often"], ["train.eval_every='often'"]),
    "negative decay": (["train.weight_decay=-1"], ["train.weight_decay=-1.0", ">= 0"]),
    "empty test split": (["data.test_fraction=0.001"], ["data.test_fraction=0.001", "0 for testing"]),
    "negative sigma_b": (["init.sigma_b=-1"], ["init.sigma_b=-1.0"]),
    "leaky slope above 1": (["activation=leaky_relu", "activation.alpha=2"], ["activation.alpha=2.0", "(0, 1)"]),
    "negative seed": (["seed=-1"], ["seed=-1"]),
    "beta1 of one": (["optim=adam", "optim.beta1=1"], ["optim.beta1=1.0", "[0, 1)"]),
    "zero eps": (["optim=rmsprop", "optim.eps=0"], ["optim.eps=0.0", "> 0"]),
    "unknown schedule": (["train.schedule=linear"], ["train.schedule='linear'", "cosine"]),
    "warmup beyond the run": (["train.warmup_steps=100000"], ["train.warmup_steps=100000", "updates"]),
    "seed beyond int64": ([f"seed={2**63}"], [f"seed={2**63}", "<= 9223372036854775807"]),
    "depth beyond int32": ([f"depth={2**31}"], [f"depth={2**31}", "<= 2147483647"]),
    "one sample": (["data.n_samples=1"], ["data.n_samples=1", ">= 2"]),
    "one class": (["data.n_classes=1"], ["data.n_classes=1", ">= 2"]),
    "negative noise": (["data.noise=-1"], ["data.noise=-1.0"]),
    "batch norm with a last batch of one": (
        ["norm=batch", "train.batch_size=79"],
        ["train.batch_size=79", "last batch of 1"],
    ),
    "batch norm with batches of one": (["norm=batch", "train.batch_size=1"], ["train.batch_size=1", "norm=batch"]),
    "depth beyond memory": (["depth=1000000", "width=32"], ["depth=1000000", "of memory", "available"]),
    "samples beyond memory": (
        ["data.n_samples=2000000000", "data.n_features=1000"],
        ["n_samples=2000000000", "of memory"],
    ),
}


# What a data file's content can get wrong, refused when the run reads the file: run in this
# process like VALUE_CASES, with the spec composed once (only the path differs). The cases of
# CASES with a data file take the same path through ``python -m mlplab``, for a file that is
# missing, one whose values are refused, and targets refused for the loss.
FILE_CASES = {
    "a folder as data file": ("a_folder.npz", ["a_folder.npz", "not a regular file"]),
    "corrupt data file": ("corrupt.npz", ["corrupt.npz", "not a readable .npz"]),
    "a .npy array": ("array.npy", ["array.npy", "single array"]),
    "no X": ("no_x.npz", ["no_x.npz", "'features'", "X (samples, features)"]),
    "both Y and labels": ("y_and_labels.npz", ["exactly one of Y and labels"]),
    "Inf in X": ("inf.npz", ["inf.npz", "X has 150 NaN or infinite"]),
    "3-D X": ("x3d.npz", ["X has shape (50, 3, 2)", "2-D"]),
    "1-D X": ("x1d.npz", ["X has shape (50,)", "2-D"]),
    "text X": ("xstr.npz", ["X has dtype", "real numbers"]),
    "object X": ("object.npz", ["object.npz", "not a readable .npz"]),
    "one sample in the file": ("one_sample.npz", ["X has 1 samples", "at least 2"]),
    "empty file data": ("empty.npz", ["X has 0 samples"]),
    "Y with fewer rows": ("short_y.npz", ["Y has shape (49, 2)", "one row per sample"]),
    "1-D Y": ("y1d.npz", ["Y has shape (50,)"]),
    "one-column Y": ("y1col.npz", ["Y has 1 column"]),
    "NaN in Y": ("ynan.npz", ["Y has 100 NaN"]),
    "negative label": ("neg_label.npz", ["labels has the value -1", "0..K-1"]),
    "float labels": ("float_label.npz", ["labels has dtype float64", "integers"]),
    "one class in the file": ("one_class.npz", ["only class 0"]),
    "fewer labels than samples": ("short_labels.npz", ["labels has shape (40,)"]),
}


CASES = {
    # config values: field, value, what is allowed. test_config checks the rules of the values
    # in this process; VALUE_CASES above run more of them as the command does. Here: one case
    # per kind of rule and place it is checked (int, float (NaN), 'full' or int; against the
    # data's size, against the memory), and Hydra's own refusals (type, option, key)
    "negative depth": (["depth=-1"], 2, ["depth=-1", "integer >= 0"]),
    "nan lr": (["train.lr=nan"], 2, ["train.lr=nan", "finite"]),
    "text batch": (["train.batch_size=abc"], 2, ["train.batch_size='abc'"]),
    "batch above the training set": (["train.batch_size=500"], 2, ["train.batch_size=500", "80 training samples"]),
    # Hydra: types, options, keys
    "text depth": (["depth=abc"], 2, ["depth=abc", "Integer"]),
    "unknown activation": (["activation=swish"], 2, ["activation/swish", "sigmoid"]),
    "unknown optimiser": (["optim=lion"], 2, ["optim/lion", "adam"]),
    "unknown key": (["nosuchkey=1"], 2, ["nosuchkey"]),
    "added unknown key": (["+nosuchkey=1"], 2, ["nosuchkey", "no such key"]),
    "force-added unknown key": (["++nosuchkey=1"], 2, ["nosuchkey", "no such key"]),
    "added known key": (["+depth=3"], 2, ["depth"]),
    # sizes that cannot fit: refused with the estimate, before anything is allocated
    "width beyond memory": (["width=1000000000"], 2, ["width=1000000000", "of memory", "available"]),
    # data files
    "missing data file": file_case("missing.npz", ["data.path='data/missing.npz'", "no such file"]),
    "NaN in X": file_case("nan.npz", ["nan.npz", "X has", "NaN or infinite", "finite"]),
    "soft targets for cross-entropy": file_case("soft_y.npz", ["loss='softmax_ce'", "0/1"], loss="softmax_ce"),
    # the results folder
    "results folder is a file": (["results_dir=a_file"], 2, ["results_dir", "a_file", "Not a directory"]),
    "results folder under a file": (["results_dir=a_file/deeper"], 2, ["results_dir", "Not a directory"]),
}
SWEEP_CASES = {
    "bad value among good ones": (["depth=1,-1"], 2, ["depth=-1", "in job"]),
    "unknown option among good ones": (["activation=relu,swish"], 2, ["activation/swish", "in job"]),
    "missing data file in a sweep": (
        ["data=file", "data.path=data/missing.npz", "depth=1,2"],
        2,
        ["no such file", "in job"],
    ),
    "bad data file in a sweep": (
        ["data=file", "data.path=data/nan.npz", "depth=1,2"],
        2,
        ["NaN or infinite", "in job"],
    ),
    "memory in a sweep": (["width=8,1000000000"], 2, ["width=1000000000", "of memory", "in job"]),
    "results folder is a file (sweep)": (["results_dir=a_file", "depth=1,2"], 2, ["results_dir", "Not a directory"]),
    "added unknown key (sweep)": (["+nosuchkey=1", "depth=1,2"], 2, ["nosuchkey"]),
    "unknown key (sweep)": (["nosuchkey=1,2"], 2, ["nosuchkey"]),
    "start method": (
        ["hydra/launcher=local", "hydra.launcher.start_method=thread", "depth=1,2"],
        2,
        ["hydra.launcher.start_method='thread'", "must be one of", "spawn"],
    ),
    "launcher setting": (
        ["hydra/launcher=local", "hydra.launcher.chunks_per_worker=0", "depth=1,2"],
        2,
        ["hydra.launcher.chunks_per_worker=0", "must be an integer >= 1"],
    ),
    "TLS scheduler without its files": (
        ["hydra/launcher=dask", "hydra.launcher.address=tls://127.0.0.1:8786", "depth=1,2"],
        2,
        ["hydra.launcher.security.ca_file=null", "needs the files"],
    ),
    "TLS file that is not there": (
        [
            "hydra/launcher=dask",
            "hydra.launcher.address=tls://127.0.0.1:8786",
            "hydra.launcher.security.ca_file=ca.pem",
            "hydra.launcher.security.cert=ca.pem",
            "hydra.launcher.security.key=ca.pem",
            "depth=1,2",
        ],
        2,
        ["hydra.launcher.security.ca_file='ca.pem'", "no such file"],
    ),
}
ANALYSIS_CASES = {
    "report on a missing folder": (["mlplab.analysis", "report", "results/none"], 2, ["no such folder"]),
    "report with a second folder missing": (["mlplab.analysis", "report", "results/base", "x"], 2, ["path='x'"]),
    "a study with two folders": (
        ["mlplab.analysis", "blog", "results/base", "results/base"],
        2,
        ["only the report takes several"],
    ),
    "blog on a folder not mlplab's": (["mlplab.analysis", "blog", "data"], 2, ["not an mlplab results folder"]),
    "blog with an unknown option": (["mlplab.analysis", "blog", "--nope"], 2, ["--nope"]),
    "an unknown study": (["mlplab.analysis", "nope", "results/base"], 2, ["invalid choice: 'nope'"]),
}


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    """A folder with results/base holding one committed run, and the data files (each case
    works on a copy; made once per worker, so that the cases need not share one)."""
    root = tmp_path_factory.mktemp("base")
    mlplab.run(mlplab.RunSpec(depth=1, width=4, n_samples=100, epochs=1), root / "results" / "base", sweep="base")
    (root / "data").mkdir()
    for name, write in DATA_FILES.items():
        write(root / "data" / name)
    (root / "a_file").write_text("not a folder")
    return root


def digests(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tables(folder: Path) -> set:
    return {str(p.relative_to(folder)) for t in ("runs", "steps", "layers") for p in folder.rglob(f"{t}/*")}


# cases that run in a new interpreter instead: the command's own start-up, for a run and for an
# analysis command that does not import the plotting libraries (a sweep's start-up in a new
# interpreter is test_sweep's first test)
SPAWNED = {"negative depth", "blog on a folder not mlplab's"}


def invoke(base, tmp_path, args, module="mlplab", code=None, spawn=False):
    """``python -m module args`` (``python -c code args`` if ``code``) in a copy of ``base``."""
    case = tmp_path / "case"
    shutil.copytree(base, case)
    before, before_tables = digests(case / "results"), tables(case / "results")
    if spawn:
        p = subprocess.run([sys.executable, "-m", module, *args], cwd=case, capture_output=True, text=True, timeout=120)
    else:
        p = forked(module, args, case, code=code)
    after = digests(case / "results")
    assert {k: after.get(k) for k in before} == before, "a file already written was changed"
    return p, case, before_tables


def check(p, code, words):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlplab: "), p.stderr
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stdout
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_run_is_one_line_and_changes_nothing(base, tmp_path, name):
    args, code, words = CASES[name]
    p, case, before_tables = invoke(
        base, tmp_path, ["results_dir=results", "sweep_name=base", *TINY, *args], spawn=name in SPAWNED
    )
    check(p, code, words)
    assert tables(case / "results") == before_tables, "bad input wrote a table file"


def compose_spec(args):
    """The spec ``python -m mlplab results_dir=results sweep_name=base TINY args`` runs."""
    from hydra import compose, initialize_config_dir

    from mlplab.config import CONF_DIR, to_spec

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return to_spec(
            compose(config_name="config", overrides=["results_dir=results", "sweep_name=base", *TINY, *args])
        )


def refused_in_process(base, tmp_path, monkeypatch, make_spec, words):
    """What ``main`` does with the spec of one run (``make_spec()``, where composing it may be
    what fails), in this process, in a copy of ``base``: ``prepare``, ``mlplab.run``; the error
    must be the command's one line with exit code 2, and nothing in the results folder may
    change."""
    from mlplab.errors import exit_code, one_line
    from mlplab.train import prepare

    case = tmp_path / "case"
    shutil.copytree(base, case)
    monkeypatch.chdir(case)  # relative paths, as on the command line
    before, before_tables = digests(case / "results"), tables(case / "results")
    with pytest.raises(Exception) as e:
        mlplab.run(prepare(make_spec()), Path("results/base"), sweep="base")
    line = one_line(e.value)
    assert exit_code(e.value) == 2, (type(e.value), line)
    assert "\n" not in line and "Traceback" not in line
    for w in words:
        assert w in line, (w, line)
    assert digests(case / "results") == before and tables(case / "results") == before_tables


@pytest.mark.parametrize("name", list(VALUE_CASES))
def test_a_bad_value_is_one_line_and_changes_nothing(base, tmp_path, monkeypatch, name):
    args, words = VALUE_CASES[name]
    refused_in_process(base, tmp_path, monkeypatch, lambda: compose_spec(args), words)


@pytest.fixture(scope="module")
def file_spec():
    return compose_spec(file_case("good.npz", [])[0])


@pytest.mark.parametrize("name", list(FILE_CASES))
def test_a_bad_data_file_is_one_line_and_changes_nothing(base, tmp_path, monkeypatch, file_spec, name):
    file, words = FILE_CASES[name]
    spec = dataclasses.replace(file_spec, data_path=f"data/{file}")
    refused_in_process(base, tmp_path, monkeypatch, lambda: spec, words)


def test_a_run_that_fails_exits_1_with_one_line_and_is_recorded(base, tmp_path):
    """Not bad input: a fault inside the run. It is recorded as failed, its line on stderr."""
    p, case, _ = invoke(base, tmp_path, ["results_dir=results", "sweep_name=base", *TINY, "width=5"], code=FAULTY)
    check(p, 1, ["run", "failed: FloatingPointError: injected fault", "results/base"])
    r = mlplab.load_results(case / "results" / "base")
    assert sorted(r.runs.status) == ["failed", "ok"]
    assert r.runs.set_index("status").loc["failed", "steps_done"] == 2


@pytest.mark.parametrize("name", list(SWEEP_CASES))
def test_a_bad_sweep_is_one_line_and_changes_nothing(base, tmp_path, name):
    args, code, words = SWEEP_CASES[name]
    p, case, before_tables = invoke(
        base, tmp_path, ["-m", "results_dir=results", "sweep_name=base", *TINY, *args], spawn=name in SPAWNED
    )
    check(p, code, words)
    assert tables(case / "results") == before_tables


@pytest.mark.parametrize("name", list(ANALYSIS_CASES))
def test_a_bad_analysis_command_is_one_line(base, tmp_path, name):
    module, *args = ANALYSIS_CASES[name][0]
    p, _, _ = invoke(base, tmp_path, args, module=module, spawn=name in SPAWNED)
    check(p, *ANALYSIS_CASES[name][1:])


# sweep_name values that would put results outside results_dir (or into it, unnamed); the
# absolute one is made per test, under the test's own folder
UNSAFE_NAMES = ["..", "../x", "a/../..", ".", "", "a/b", "ABSOLUTE"]


def everything(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_a_sweep_name_that_leaves_results_dir_is_refused_before_anything_is_written(base, tmp_path, name, sweep):
    """Exit 2 and one line naming the value and the rule; not a file or folder created, in
    the case's folder (the parent of results_dir) or at the absolute path."""
    outside = tmp_path / "outside"
    value = str(outside) if name == "ABSOLUTE" else name
    case = tmp_path / "case"
    shutil.copytree(base, case)
    before = everything(tmp_path)
    p = forked(
        "mlplab",
        [
            *(["-m"] if sweep else []),
            "results_dir=results",
            f"sweep_name={value}",
            *TINY,
            *(["depth=1,2"] if sweep else []),
        ],
        case,
    )
    check(p, 2, [f"sweep_name={value!r}", "one plain folder name"])
    assert everything(tmp_path) == before and not outside.exists()


def test_the_table_covers_forty_bad_inputs():
    assert len(CASES) + len(VALUE_CASES) + len(FILE_CASES) + len(SWEEP_CASES) + len(ANALYSIS_CASES) >= 40
    assert SPAWNED <= set(CASES) | set(SWEEP_CASES) | set(ANALYSIS_CASES)

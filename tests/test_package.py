"""mlplab as a user installs it: a wheel, not the checkout.

The wheel is built from this checkout and installed, without its dependencies, into a new
virtual environment that sees the test environment's packages (a ``.pth`` line), so that the
only mlplab it can import is the wheel's. From an empty folder, the ``mlplab`` command and
``python -m mlplab`` must find their configs and sweep plugins inside the package and write
their results to ``./results``.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import mlplab

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def sh(*cmd, cwd=None, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the new environment's bin folder)."""
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"  # a copy: building writes build/ and *.egg-info/ beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("mlplab", "hydra_plugins", "conf"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    p = sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", source)
    assert p.returncode == 0, p.stderr
    (wheel,) = (tmp / "dist").glob("mlplab-*.whl")
    env = tmp / "env"
    p = sh(sys.executable, "-m", "venv", "--without-pip", env)
    assert p.returncode == 0, p.stderr
    python = env / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (purelib / "mlplab-test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    p = sh(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    assert p.returncode == 0, p.stderr
    return wheel, python.parent


def test_the_wheel_holds_every_module_and_config_of_the_checkout(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    code = {p.relative_to(REPO).as_posix() for d in ("mlplab", "hydra_plugins") for p in (REPO / d).rglob("*.py")}
    code |= {p.relative_to(REPO).as_posix() for p in (REPO / "mlplab").rglob("*.md")}  # a study's prose
    configs = {"mlplab/conf/" + p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    assert code and configs and code <= names and configs <= names, sorted((code | configs) - names)
    assert "mlplab/conf/sweep/smoke.yaml" in names


def test_the_installed_command_runs_a_sweep_from_an_empty_folder(installed, tmp_path):
    _, bin_dir = installed
    where = sh(
        bin_dir / "python",
        "-c",
        "import mlplab, hydra_plugins.mlplab_sweeps as h; print(mlplab.__file__); print(h.__file__)",
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert all(not Path(f).is_relative_to(REPO) for f in where.stdout.split()), where.stdout  # the wheel's, not ours
    work = tmp_path / "work"
    work.mkdir()
    p = sh(bin_dir / "mlplab", "-m", "sweep=smoke", cwd=work)
    assert p.returncode == 0, p.stderr
    assert "8 ok, 0 diverged, 0 failed, 0 missing" in p.stdout, p.stdout
    r = mlplab.load_results(work / "results" / "smoke")
    assert len(r.runs) == 8 and set(r.runs.status) == {"ok"}
    assert {p.name for p in work.iterdir()} == {"results"}  # nothing else written to the folder
    for cmd, prog in (([bin_dir / "mlplab"], "mlplab"), ([bin_dir / "python", "-m", "mlplab"], "python -m mlplab")):
        h = sh(*cmd, "--help", cwd=work)
        assert h.returncode == 0 and "config groups" in h.stdout and "smoke" in h.stdout, h.stderr
        assert h.stdout.startswith(f"usage: {prog} "), h.stdout


def test_an_installed_package_takes_sweep_files_from_a_folder_of_the_user(installed, tmp_path):
    """A user's own sweep file, in a folder beside the results, through Hydra's search path."""
    _, bin_dir = installed
    (tmp_path / "myconf" / "sweep").mkdir(parents=True)
    (tmp_path / "myconf" / "sweep" / "mine.yaml").write_text(
        "# @package _global_\nsweep_name: mine\ndata:\n  n_samples: 60\nwidth: 4\ntrain:\n  epochs: 1\n"
        "hydra:\n  sweeper:\n    params:\n      depth: 1,2\n"
    )
    p = sh(bin_dir / "mlplab", "-m", "sweep=mine", "hydra.searchpath=[file://myconf]", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(mlplab.load_results(tmp_path / "results" / "mine").runs) == 2


def locked_versions(lock: Path) -> dict[str, str]:
    """name -> version of every package ``lock`` pins for this platform and Python."""
    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    out = {}
    for line in lock.read_text().splitlines():
        if not line or line[0] in " #-":
            continue
        pin, _, marker = line.rstrip(" \\").partition(";")
        name, _, version = pin.strip().partition("==")
        if not marker.strip() or Marker(marker.strip()).evaluate():
            out[canonicalize_name(name)] = version
    return out


def test_the_environment_holds_exactly_the_locked_versions():
    """``make venv`` installs requirements.lock: in that environment every package the lock
    pins for this platform is installed at its version, and nothing else but mlplab and pip."""
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not the environment `make venv` made from requirements.lock")
    want = locked_versions(REPO / "requirements.lock")
    have = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    extras = set(have) - set(want) - {"mlplab", "pip"}
    assert len(want) > 40 and {"numpy", "hydra-core", "pytest"} <= set(want)
    assert {n: (v, have.get(n)) for n, v in want.items() if have.get(n) != v} == {}
    # `make mutation`, `make bench-torch`, `make bench-jax` and `make test-browser` add their tools on top
    assert not extras or {"mutmut", "torch", "jax", "playwright"} & extras, sorted(extras)


def test_the_lock_covers_every_requirement_of_pyproject():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pinned = locked_versions(REPO / "requirements.lock")
    for r in wanted:
        if r.marker is None or r.marker.evaluate():
            assert canonicalize_name(r.name) in pinned and r.specifier.contains(pinned[canonicalize_name(r.name)]), r


def imported_modules(path: Path) -> set[str]:
    """The modules a Python file imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_core_imports_neither_the_analysis_nor_hydra_nor_its_internals():
    """The library imports Hydra only where the command line is (its config schema, the command,
    the sweep's plan, the usage text), never Hydra's private modules, and never the analysis,
    which reads results and needs nothing of the core but ``load_results``."""
    command_line = {"config", "cli", "plan", "usage"}
    for path in sorted((REPO / "mlplab").glob("*.py")):
        names = imported_modules(path)
        assert not {n for n in names if n.startswith("mlplab.analysis")}, path.name
        if path.stem not in command_line:
            assert not {n for n in names if n.split(".")[0] == "hydra"}, path.name
    for path in [*(REPO / "mlplab").rglob("*.py"), *(REPO / "hydra_plugins").rglob("*.py")]:
        assert not {n for n in imported_modules(path) if n.startswith("hydra._internal")}, path

"""The README and the documentation site say what the code does.

- every ```python block of README.md and docs/*.md runs as written, in a fresh folder where
  ``make sweep`` has left a (tiny) results/default;
- every shell block (```bash, ```console, ```sh) is checked without running it: each ``make X``
  names a target of the Makefile, each ``python -m mlplab KEY=VALUE`` a key of the config (and an
  option of a config group), each ``python -m mlplab.analysis NAME`` a study;
- the README fits on a screen or two; the generated tables cover every RunSpec field and column;
- the site builds with zero warnings (``sphinx-build -W``, as ``make docs``).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlplab
from mlplab.config import CLI_KEYS
from mlplab.spec import FIELDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONF = ROOT / "conf"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^```([\w{}-]*)[^\n]*\n(.*?)^```\s*$", flags=re.S | re.M)
SHELL = {"bash", "console", "sh", "shell"}
# the studies of `python -m mlplab.analysis NAME FOLDER` while the registry is still empty
STUDY_NAMES = {"blog", "remedies", "nielsen", "chaos"}


def blocks(kinds: set[str]) -> list[tuple[str, int, str]]:
    """(page, index, code) of every fenced block whose language is one of ``kinds``."""
    out = []
    for page in PAGES:
        for i, m in enumerate(m for m in FENCE.finditer(page.read_text()) if m.group(1) in kinds):
            out.append((page.relative_to(ROOT).as_posix(), i + 1, m.group(2)))
    return out


PYTHON = blocks({"python"})
SHELL_BLOCKS = blocks(SHELL)


def test_every_page_has_examples():
    pages = {page for page, _, _ in PYTHON + SHELL_BLOCKS}
    assert "README.md" in pages and len(PYTHON) >= 6


# -- python blocks ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> Path:
    """What the quick start's ``make sweep`` leaves, in small: results/default with two runs."""
    root = tmp_path_factory.mktemp("quick_start")
    for depth in (1, 2):
        spec = mlplab.RunSpec(depth=depth, width=4, n_samples=100, epochs=1)
        mlplab.run(spec, root / "results" / "default", sweep="default")
    return root / "results"


@pytest.mark.parametrize(("page", "i", "code"), PYTHON, ids=[f"{p}:{i}" for p, i, _ in PYTHON])
def test_a_python_block_runs(page, i, code, tiny_results, tmp_path, monkeypatch):
    shutil.copytree(tiny_results, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{page} python block {i}", "exec"), {"__name__": "__docs__"})


# -- shell blocks -----------------------------------------------------------------------------------
def make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z_-]+):", (ROOT / "Makefile").read_text(), flags=re.M))


def config_keys() -> set[str]:
    return {f.metadata["key"] for f in FIELDS if f.metadata["config"]} | {name for name, *_ in CLI_KEYS}


def groups() -> dict[str, set[str]]:
    return {p.name: {f.stem for f in p.glob("*.yaml")} for p in CONF.iterdir() if p.is_dir()}


def commands(code: str) -> list[list[str]]:
    """The block's commands as words: continuation lines joined, comments and prompts dropped."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.strip().removeprefix("$ ")
        if line and not line.startswith("#"):
            out.append(shlex.split(line, comments=True))
    return out


def check_mlplab_args(args: list[str]) -> None:
    known, options = config_keys(), groups()
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            assert arg in ("-m", "--multirun", "--help", "-h"), f"unknown flag {arg!r}"
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key.startswith(("hydra.", "hydra/")):
            continue  # Hydra's own (launchers, searchpath): documented by the sweeps and cluster pages
        if key in options:
            if key != "sweep":  # a sweep of one's own is the point of these examples
                for v in value.split(","):
                    assert v in options[key], f"{key}={v}: no conf/{key}/{v}.yaml"
            continue
        assert key in known, f"{key!r} is not a key of mlplab's config"


def check_command(words: list[str]) -> None:
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before a command
        words = words[1:]
    if not words:
        return
    if words[0] == "make":
        targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
        for t in targets:
            assert t in make_targets(), f"make {t}: no such target in the Makefile"
        return
    prog = Path(words[0]).name
    if prog.startswith("python") and words[1:3] == ["-m", "mlplab"]:
        check_mlplab_args(words[3:])
    elif prog == "mlplab":
        check_mlplab_args(words[1:])
    elif prog.startswith("python") and words[1:3] == ["-m", "mlplab.analysis"]:
        from mlplab.analysis.studies import STUDIES

        names = (set(STUDIES) or STUDY_NAMES) | {"report"}
        assert words[3] in names, f"python -m mlplab.analysis {words[3]}: no such study ({sorted(names)})"
        args = [w for w in words[4:] if not w.startswith("--")]
        if words[3] == "report":  # one folder or several, and --out <folder>
            assert all(w.startswith("results/") for w in args), "python -m mlplab.analysis report FOLDER... [--out F]"
        else:
            assert len(words) == 5, "python -m mlplab.analysis NAME FOLDER"
    elif prog.startswith("python") and words[1:3] == ["-m", "mlplab.compact"]:
        assert len(words) == 4


@pytest.mark.parametrize(("page", "i", "code"), SHELL_BLOCKS, ids=[f"{p}:{i}" for p, i, _ in SHELL_BLOCKS])
def test_a_shell_block_names_real_targets_and_keys(page, i, code):
    for words in commands(code):
        check_command(words)


@pytest.mark.parametrize(
    "bad",
    [
        "make no-such-target",
        "python -m mlplab nosuchkey=1",
        "python -m mlplab -m activation=swish",
        "python -m mlplab.analysis nosuchstudy results/x",
    ],
)
def test_the_shell_check_catches_a_wrong_command(bad):
    with pytest.raises(AssertionError):
        check_command(shlex.split(bad))


# -- the README and the generated tables --------------------------------------------------------
def test_the_readme_fits_on_a_screen_or_two():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_the_readme_links_to_pages_that_exist():
    for link in re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text()):
        assert (ROOT / link).exists(), link


def test_every_page_is_in_the_site():
    index = (DOCS / "index.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.stem != "index":
            assert re.search(rf"^{re.escape(page.stem)}$", index, flags=re.M), f"{page.name} is in no toctree"


def test_every_column_has_a_meaning():
    """The results page's tables take each column's meaning from the code: none is missing or stale."""
    import mlplab.results as res

    columns = {c for schema in res.SCHEMAS.values() for c in schema.names}
    assert {c for c in columns if c not in res.CONFIG_TYPES} == set(res.COLUMN_DOCS)


def test_every_run_field_has_a_meaning():
    for f in FIELDS:
        assert f.metadata["doc"] or f.metadata["group"], f"RunSpec.{f.name} needs a doc"


def render(tmp_path: Path) -> Path:
    out = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    return out


@pytest.mark.slow
def test_the_site_builds_with_zero_warnings_and_generates_its_tables(tmp_path):
    import mlplab.results as res

    site = render(tmp_path)
    configuration = (site / "configuration.html").read_text()
    for f in FIELDS:  # a new field shows up with no edit of the pages
        assert f'<code class="docutils literal notranslate"><span class="pre">{f.metadata["key"]}' in configuration
    results = (site / "results.html").read_text()
    for name, schema in res.SCHEMAS.items():
        for column in schema.names:
            assert f'<span class="pre">{column}</span>' in results, f"{name}.{column}"
    make = (site / "make.html").read_text()
    for target in re.findall(r"^([a-zA-Z_-]+):.*## ", (ROOT / "Makefile").read_text(), flags=re.M):
        assert f'make</span> <span class="pre">{target}</span>' in make or f"make {target}" in make, target
    api = (site / "api.html").read_text()
    for module in ("mlplab.network", "mlplab.spec", "mlplab.results", "mlplab.analysis.verdicts"):
        assert f'id="module-{module}"' in api

"""docs/write-a-study.md: its code blocks, run in order on a small results folder, register a
study that the report and the command pick up."""

import re
from pathlib import Path

import pytest

import mlplab
from mlplab.analysis.prose import Prose
from mlplab.analysis.studies import STUDIES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "write-a-study.md"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh folder holding results/default, as ``make sweep`` leaves it (in small), as the
    working directory. Plain tanh networks: they can test none of the blog post's claims, so the
    report is short (no blog figures)."""
    for depth in (1, 2):
        for seed in range(2):
            spec = mlplab.RunSpec(depth=depth, width=4, epochs=1, n_samples=100, seed=seed, activation="tanh")
            mlplab.run(spec, tmp_path / "results" / "default", sweep="default")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_worked_example_of_the_docs_runs(workdir):
    (code,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)
    namespace = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # the page's own asserts check the outcome
    assert namespace["Depths"].name == "depths" and "depths" not in STUDIES  # registered, then removed
    folder = workdir / "results" / "default"
    assert "## Final loss per depth" in (folder / "report.md").read_text()
    assert (folder / "depths.csv").read_text().startswith("depth,final_loss")


def test_prose_pieces_are_paragraphs_lists_and_mappings_with_named_placeholders():
    prose = Prose(
        "# a title, not a piece\n\n<!-- para -->\nOne {n} and\n  two {{literal}}.\n\n"
        "<!-- items -->\n- first: {x:g} x\n  goes on\n- second: plain\n\n<!-- raw -->\n{kept} as {{written}}\n"
    )
    assert set(prose.pieces) == {"para", "items", "raw"}
    assert prose("para", n=3) == "One 3 and two {literal}."
    assert prose("raw") == "{kept} as {{written}}"  # no values: the piece as written
    assert prose.items("items", x=0.5) == ["first: 0.5 x goes on", "second: plain"]
    assert prose.mapping("items", x=2.0) == {"first": "2 x goes on", "second": "plain"}
    assert prose("para") == "One {n} and two {{literal}}."  # to be filled later (str.format)
    assert Prose.of("mlplab.analysis.studies.remedies")("section") == "The remedies, each against its plain twin"

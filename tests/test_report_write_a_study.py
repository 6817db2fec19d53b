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
def folder(tmp_path):
    """Plain tanh networks: they can test none of the blog post's claims, so the report is short
    (no blog figures) and the example's section is the one that says something."""
    root = tmp_path / "depths"
    for depth in (1, 2):
        for seed in range(2):
            mlplab.run(
                mlplab.RunSpec(depth=depth, width=4, epochs=1, n_samples=100, seed=seed, activation="tanh"),
                root,
                sweep="depths",
            )
    return root


def test_the_worked_example_of_the_docs_runs(folder):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 4
    namespace = {"folder": folder}
    try:
        for code in blocks:
            exec(compile(code, str(PAGE), "exec"), namespace)  # the page's own asserts check the outcome
        assert "depths" in STUDIES and namespace["Depths"].name == "depths"
    finally:
        STUDIES.pop("depths", None)
    assert "depths" not in STUDIES
    assert (folder / "report.md").is_file() and (folder / "depths.csv").is_file()


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

"""docs/write-a-study.md: its code blocks, run in order on a small results folder, register a
study that the report and the command pick up."""

import re
from pathlib import Path

import pytest

import mlplab
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

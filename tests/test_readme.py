"""The README's Python code runs as written: every ```python block, in a fresh folder where
``make sweep`` has left a (tiny) results/default."""

import re
from pathlib import Path

import pytest

import mlplab

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_a_readme_python_block_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for depth in (1, 2):  # what the quick start's sweep leaves, in small
        mlplab.run(mlplab.RunSpec(depth=depth, width=4, n_samples=100, epochs=1), "results/default", sweep="default")
    namespace: dict = {}
    exec(compile(BLOCKS[i], f"README.md python block {i + 1}", "exec"), namespace)

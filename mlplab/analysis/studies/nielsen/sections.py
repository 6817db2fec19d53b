"""The Nielsen study as text: its part of the report (``report_blocks``, or ``section_blocks``
from figures already drawn) and the Markdown and CSV tables its command writes (``write_tables``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import markdown_table, significant
from mlplab.analysis.studies.nielsen.figures import make_figures
from mlplab.analysis.studies.nielsen.measures import (
    nielsen_first_last,
    nielsen_table,
    percentile_table,
    slowdown_table,
    training_checkpoints,
)
from mlplab.analysis.studies.nielsen.published import dataset_name
from mlplab.analysis.studies.nielsen.select import FOLDERS, nielsen_folders, speeds_at_init
from mlplab.analysis.studies.nielsen.sentences import TEXT, init_sentences, training_sentences
from mlplab.results import Results, ResultsError, load_results

SWEEPS = ("nielsen_mnist", "nielsen_mnist_training", "nielsen")

# the reader's names of the columns of the tables in the report
PERCENTILE_COLUMNS = {
    "depth": "hidden layers",
    "layer": "layer",
    "network": "network",
    "nielsen": "Nielsen (MNIST)",
    "median": "ours: median",
    "p5": "ours: 5 %",
    "p95": "ours: 95 %",
    "n": "networks",
    "percentile": "percentile of his",
}
SLOWDOWN_COLUMNS = {
    "depth": "hidden layers",
    "layer": "layer l",
    "nielsen": "Nielsen",
    "median": "ours: median",
    "p5": "ours: 5 %",
    "p95": "ours: 95 %",
    "percentile": "percentile of his",
}
CHECKPOINT_COLUMNS = {
    "depth": "hidden layers",
    "nielsen": "Nielsen",
    "n": "seeds",
    "median": "ours: median",
    "lo": "ours: lowest",
    "hi": "ours: highest",
    "inside": "his within ours",
}


def how_to_make(results_dir: str) -> str:
    """The commands that make the Nielsen runs into ``results_dir``."""
    sweeps = " && ".join(f"python -m mlplab -m sweep={s} results_dir={results_dir}" for s in SWEEPS)
    return TEXT("how_to_make", sweeps=sweeps)


def _display(table: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """The rows with a value of his, with the reader's column names."""
    d = table.dropna(subset=["nielsen"])
    return pd.DataFrame({shown: d[c] for c, shown in columns.items()}).reset_index(drop=True)


def compared(folder, results: Results | None = None) -> tuple[list[Results], list[Block]]:
    """The Nielsen folders next to ``folder`` (``nielsen_folders``) that hold his runs, loaded
    (``results`` where it is one of them, already loaded), and a paragraph for each that does not."""
    found, notes = [], []
    for path in nielsen_folders(folder):
        try:
            res = load(results if results is not None and Path(results.path) == path else path)
            speeds_at_init(res)
        except (ResultsError, ValueError, KeyError) as e:
            notes.append(Block("p", TEXT("cannot_compare", folder=path.name, error=e)))
            continue
        found.append(res)
    return found, notes


def draw(found: list[Results], outdir: Path) -> dict[str, dict[str, list[Path] | str]]:
    """``make_figures`` of each folder in ``found`` into ``outdir``: folder name -> its figures."""
    return {Path(res.path).name: make_figures(res, outdir, Path(res.path).name) for res in found}


def folder_blocks(res: Results, made: dict[str, list[Path] | str]) -> list[Block]:
    """The blocks of one Nielsen results folder: per data set the table at initialisation, the
    slowdown factors, the sentences and figures; then the training curves."""
    name = Path(res.path).name
    speeds = speeds_at_init(res)
    pct, slow = percentile_table(speeds), slowdown_table(speeds)
    out = []
    for dataset in sorted(pct.dataset.unique()):
        p, s = pct[pct.dataset == dataset], slow[slow.dataset == dataset]
        other = "" if dataset == "mnist" else " " + TEXT("init.other_data", dataset=dataset_name(dataset))
        out += [
            Block("h3", TEXT("init.heading", dataset=dataset_name(dataset), folder=name)),
            Block("p", TEXT("init.intro") + other),
            Block("table", _display(p, PERCENTILE_COLUMNS)),
            Block("p", TEXT("init.slowdown_intro")),
            Block("table", _display(s, SLOWDOWN_COLUMNS)),
            Block("list", init_sentences(p, s)),
        ]
    if isinstance(made["init"], list):
        out.append(Block("figure", made["init"][0], TEXT("init.caption")))
    if isinstance(made["training"], list):
        cp = training_checkpoints(res)
        his = TEXT("training.his") if len(cp) else TEXT("training.not_his")
        out += [
            Block("h3", TEXT("training.heading", folder=name)),
            Block("figure", made["training"][0], TEXT("training.caption", his=his)),
        ]
        if len(cp):
            out += [
                Block("table", cp.rename(columns=CHECKPOINT_COLUMNS)),
                Block("list", training_sentences(res)),
            ]
    return out


def section_blocks(folder, found: list[Results], notes: list[Block], made: dict) -> list[Block]:
    """The report section for ``folder`` from the Nielsen folders ``compared`` found and the
    figures ``draw`` made of them."""
    folder = Path(folder)
    out = [Block("h2", TEXT("section")), *notes]
    if not found:
        wanted = " or ".join(f"{n}/" for n in FOLDERS)
        how = how_to_make(folder.parent.name)
        return out + [Block("p", TEXT("no_runs", folder=folder.name, wanted=wanted, how=how))]
    out.append(Block("p", TEXT("intro")))
    for res in found:
        out += folder_blocks(res, made[Path(res.path).name])
    return out


def report_blocks(folder, outdir=None) -> list[Block]:
    """The report section "Nielsen's speeds of learning" for the results ``folder``: the MNIST and
    8×8-digits Nielsen studies found next to it (``nielsen_folders``), his values against our
    distributions, the figures (written to ``outdir``, default ``<folder>/figures``). A short
    paragraph saying how to make them when there are none."""
    folder = Path(folder)
    found, notes = compared(folder)
    made = draw(found, Path(outdir) if outdir is not None else folder / "figures")
    return section_blocks(folder, found, notes, made)


def tables(results) -> dict[str, pd.DataFrame]:
    """The tables the command writes as CSV, rounded to 4 significant digits: ``nielsen_table``
    (means over seeds) and ``nielsen_percentiles`` (his values in our distribution)."""
    return {
        "nielsen_table": significant(nielsen_table(results)),
        "nielsen_percentiles": significant(percentile_table(speeds_at_init(results))),
    }


def write_tables(folder) -> str:
    """The side-by-side tables as Markdown, also written to ``nielsen_table.md`` and ``.csv``
    (means), ``nielsen_percentiles.csv`` (his values in our distribution) in the results folder,
    and the figures to its ``figures/``. ResultsError for a folder without Nielsen's runs."""
    r = load_results(folder)
    try:
        speeds = speeds_at_init(r)
    except ValueError as e:  # a results folder without Nielsen's runs: one line, exit code 2
        raise ResultsError(f"{r.path}: {e}") from None
    table, first_last = significant(nielsen_table(r)), significant(nielsen_first_last(r))
    pct, slow = significant(percentile_table(speeds)), significant(slowdown_table(speeds))
    sentences = (
        s for d in pct.dataset.unique() for s in init_sentences(pct[pct.dataset == d], slow[slow.dataset == d])
    )
    parts = [
        "# " + TEXT("tables.title"),
        "## " + TEXT("tables.percentiles"),
        TEXT("tables.percentile_means"),
        markdown_table(pct),
        "## " + TEXT("tables.slowdown"),
        markdown_table(slow),
        "\n".join(f"- {s}" for s in sentences),
        "## " + TEXT("tables.means"),
        markdown_table(table),
        "## " + TEXT("tables.first_last"),
        markdown_table(first_last),
    ]
    cp = training_checkpoints(r)
    if len(cp):
        parts += [
            "## " + TEXT("tables.training"),
            markdown_table(significant(cp)),
            "\n".join(f"- {s}" for s in training_sentences(r)),
        ]
    made = make_figures(r, Path(r.path) / "figures", Path(r.path).name)
    parts += [
        "## " + TEXT("tables.figures"),
        "\n".join(f"- {n}: {w if isinstance(w, str) else ', '.join(p.name for p in w)}" for n, w in made.items()),
    ]
    md = "\n\n".join(parts) + "\n"
    (r.path / "nielsen_table.md").write_text(md, encoding="utf-8")
    table.to_csv(r.path / "nielsen_table.csv", index=False)
    pct.to_csv(r.path / "nielsen_percentiles.csv", index=False)
    return md

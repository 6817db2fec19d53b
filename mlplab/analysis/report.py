"""The report of one results folder: ``report.md`` and a self-contained ``report.html``.

    python -m mlplab.analysis report results/<sweep>

A title, then the part of every registered study (``mlplab.analysis.studies.STUDIES``, in its
order) that applies to the folder, each with its figures, then the exact configuration and
versions. The blocks are rendered twice (``mlplab.analysis.render``): to Markdown (figures
linked) and to HTML (figures embedded).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

import mlplab
from mlplab.analysis import load
from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import cell
from mlplab.analysis.render import to_html, to_markdown
from mlplab.analysis.studies import STUDIES
from mlplab.provenance import COLUMNS as PROVENANCE
from mlplab.results import CONFIG_TYPES

CONFIG_SECTION = "Configuration and versions"
OTHER_STUDIES = (
    "Other studies write their own folders and reports: `make blog` (the post's study on four data sets), "
    "`make remedies` (every remedy against its plain twin), `make nielsen` (Nielsen's ch. 5 on real MNIST "
    "and the 8×8 digits), `make chaos` (the edge of chaos)."
)


def _multiruns(folder: Path) -> list[tuple[str, str]]:
    """(hydra folder name, the command that made it) for each multirun logged in the folder."""
    out = []
    for f in sorted((folder / "hydra").glob("*/multirun.yaml")):
        try:
            cfg = yaml.safe_load(f.read_text())["hydra"]
        except (yaml.YAMLError, KeyError, TypeError):
            continue
        task = " ".join(cfg.get("overrides", {}).get("task") or [])
        params = cfg.get("sweeper", {}).get("params") or {}
        grid = "; ".join(f"{k}: {v}" for k, v in params.items())
        out.append((f.parent.name, f"python -m mlplab -m {task}" + (f"    # grid {grid}" if grid else "")))
    return out


def section_config(res) -> list[Block]:
    runs = res.runs
    out = [Block("h2", CONFIG_SECTION)]
    status = runs["status"].value_counts()
    out.append(Block("p", f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in status.items()) + "."))
    cfg = [c for c in CONFIG_TYPES if c in runs]
    const = {c: runs[c].iloc[0] for c in cfg if runs[c].nunique(dropna=False) == 1}
    varied = {
        c: sorted(runs[c].dropna().unique().tolist(), key=lambda v: (isinstance(v, str), v))
        for c in cfg
        if c not in const
    }
    values = [", ".join(map(cell, v)) for v in varied.values()] + [cell(v) or "none" for v in const.values()]
    kinds = ["varied"] * len(varied) + ["fixed"] * len(const)
    out.append(Block("table", pd.DataFrame({"key": list(varied) + list(const), "value": values, "": kinds})))
    cmds = _multiruns(Path(res.path))
    if cmds:
        out += [
            Block("p", "Sweeps run into this folder (from the Hydra logs):"),
            Block("code", "\n".join(f"# {t}\n{c}" for t, c in cmds)),
        ]
    versions = {
        c: ", ".join(sorted(map(str, runs[c].dropna().unique()))) for c in [*PROVENANCE, "schema_version"] if c in runs
    }
    versions["report built by mlplab"] = mlplab.__version__
    out.append(Block("list", [f"{k}: {v}" for k, v in versions.items()]))
    return out


def build(source) -> list[Block]:
    """Every block of the report, in order: the title, the part of each study that applies to
    the folder (with its figures, drawn into ``<folder>/figures``), the configuration."""
    res = load(source)
    folder = Path(res.path)
    blocks = [
        Block("h1", f"mlplab report: {folder.name}"),
        Block(
            "p",
            f"Results folder `{folder.name}`: {len(res.runs)} runs. Rebuild with "
            f"`make report SWEEP={folder.name}` (or `python -m mlplab.analysis report <folder>`). " + OTHER_STUDIES,
        ),
    ]
    for study in STUDIES.values():
        if study.applies(res):
            blocks += study.sections(res, study.figures(res, folder / "figures"))
    return blocks + section_config(res)


def write_report(source) -> dict[str, Path]:
    """Build ``report.md`` and ``report.html`` (and the figures) in the results folder."""
    res = load(source)
    folder = Path(res.path)
    blocks = build(res)
    paths = {"md": folder / "report.md", "html": folder / "report.html"}
    paths["md"].write_text(to_markdown(blocks, folder), encoding="utf-8")
    paths["html"].write_text(to_html(blocks), encoding="utf-8")
    return paths

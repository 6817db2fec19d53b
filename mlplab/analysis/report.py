"""The report of one results folder, or of several side by side: ``report.md`` and one
self-contained, interactive ``report.html``.

    python -m mlplab.analysis report results/<sweep> [results/<other> ...] [--out <folder>]

In the order a reader wants: a one-line summary of what was run; the *verdict map* of every
registered study (``mlplab.analysis.studies.STUDIES``) that applies, the study named like the
folder's sweep first; the figures, interactive where the study gives a chart (``charts``), with
one filter bar over them all; then each study's text and evidence, collapsed; every case as a
searchable table and a CSV/parquet file beside the report; the exact configuration and versions.
Over several folders, the folder is a filter and a facet of every chart and a column group of the
verdict map.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

import mlplab
from mlplab.analysis import load
from mlplab.analysis import verdictmap as vmap
from mlplab.analysis.blocks import Block
from mlplab.analysis.charts import FOLDER, spec
from mlplab.analysis.fmt import cell
from mlplab.analysis.render import to_html, to_markdown
from mlplab.analysis.studies import STUDIES
from mlplab.analysis.study import optional
from mlplab.provenance import COLUMNS as PROVENANCE
from mlplab.results import CONFIG_TYPES, Results

CONFIG_SECTION = "Configuration and versions"
SECTIONS = ["Verdicts at a glance", "Figures"]  # then each study's title, CASES_SECTION, CONFIG_SECTION
CASES_SECTION = "Every case, to sort and search"
EVIDENCE = "How it was measured: the study's text, tables and evidence"
SHORT = 2  # a study's part of at most this many blocks (a note) is not collapsed
OTHER_STUDIES = (
    "Other studies write their own folders and reports: `make blog` (the post's study on four data sets), "
    "`make remedies` (every remedy against its plain twin), `make nielsen` (Nielsen's ch. 5 on real MNIST "
    "and the 8×8 digits), `make chaos` (the edge of chaos)."
)
SUMMARY_AXES = ("dataset", "depth", "loss", "activation", "init", "norm", "residual", "clip", "lr", "sigma_w")


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


def _values(col: pd.Series) -> list:
    return sorted(col.dropna().unique().tolist(), key=lambda v: (isinstance(v, str), v))


def summary_line(runs: pd.DataFrame) -> str:
    """What was run, in one line: runs by status, seeds, the axes that vary (and the data sets),
    and what computed the numbers."""
    status = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items())
    seeds = runs["seed"].nunique() if "seed" in runs else 0
    parts = [f"**{len(runs)} runs** ({status}), {seeds} seed{'s' * (seeds != 1)}"]
    for axis in SUMMARY_AXES:
        if axis in runs and (runs[axis].nunique() > 1 or axis == "dataset"):
            vals = _values(runs[axis])
            text = ", ".join(map(cell, vals)) if len(vals) <= 6 else f"{cell(vals[0])} … {cell(vals[-1])} ({len(vals)})"
            parts.append(f"{axis} {text}")
    return " · ".join(parts) + f" · computed with {computed_with(runs)}"


def computed_with(runs: pd.DataFrame) -> str:
    """'mlplab 0.1.0 (commit 6bd3793), numpy 2.4.6, Python 3.11.7, openblas 0.3.31 (Haswell)'."""

    def of(col: str, short: int | None = None) -> str:
        vals = sorted(str(v)[:short] for v in runs[col].dropna().unique()) if col in runs else []
        return "/".join(vals) or "?"

    commit = (
        f" (commit {of('mlplab_commit', 7)})" if "mlplab_commit" in runs and runs["mlplab_commit"].notna().any() else ""
    )
    return (
        f"mlplab {of('mlplab_version')}{commit}, numpy {of('numpy_version')}, Python {of('python_version')}, "
        f"{of('blas')} ({of('blas_core')})"
    )


def section_config(res) -> list[Block]:
    runs = res.runs
    status = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items())
    out = [Block("p", f"{len(runs)} runs: {status}.")]
    cfg = [c for c in CONFIG_TYPES if c in runs]
    const = {c: runs[c].iloc[0] for c in cfg if runs[c].nunique(dropna=False) == 1}
    varied = {c: _values(runs[c]) for c in cfg if c not in const}
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


def _drop_empty_headings(blocks: list[Block]) -> list[Block]:
    """Headings left with nothing under them (their figures moved to the top) are dropped."""
    out: list[Block] = []
    for b in reversed(blocks):
        if b.kind in ("h2", "h3"):
            level = int(b.kind[1])
            nxt = out[-1] if out else None
            if nxt is None or (nxt.kind in ("h1", "h2", "h3", "h4") and int(nxt.kind[1]) <= level):
                continue
        out.append(b)
    return out[::-1]


def _demote(b: Block) -> Block:
    """A study's h2/h3 one level down: its sections sit under the study's own heading."""
    return Block({"h2": "h3", "h3": "h4"}[b.kind], b.body) if b.kind in ("h2", "h3") else b


def _titled(title: str, words: str) -> str:
    """A caption's head: 'The remedies: the verdicts', or 'Does Adam …? The verdicts' after a question."""
    return f"{title} {words[0].upper()}{words[1:]}" if title.endswith("?") else f"{title}: {words}"


class _Part:
    """One study over the report's folders: its verdict cells, figures, charts, text, cases."""

    def __init__(self, study, results: list[Results], names: list[str]):
        self.study, self.results, self.names = study, results, names
        self.figures = [study.figures(r, Path(r.path) / "figures") for r in results]
        self.sections = [study.sections(r, f) for r, f in zip(results, self.figures)]

    def _stack(self, method: str) -> pd.DataFrame | None:
        frames = [optional(self.study, method, r) for r in self.results]
        frames = [f.assign(**{FOLDER: n}) for f, n in zip(frames, self.names) if f is not None and not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else None

    def verdict_cells(self) -> pd.DataFrame | None:
        cells = self._stack("verdict_cells")
        if cells is not None and len(self.names) > 1:
            cells["column"] = cells[FOLDER] + ": " + cells["column"].astype(str)
        return cells

    def headlines(self) -> list[Block]:
        """The study's answer in a paragraph per folder (its optional ``headline``), for the first screen."""
        out = []
        for r, n in zip(self.results, self.names):
            text = optional(self.study, "headline", r)
            if text:
                out.append(Block("p", (f"`{n}`: " if len(self.names) > 1 else "") + text))
        return out

    def cases(self) -> pd.DataFrame | None:
        cases = self._stack("cases")
        return cases if cases is None or len(self.names) > 1 else cases.drop(columns=FOLDER)

    def figure_blocks(self) -> list[Block]:
        """Each figure once (over every folder), as a chart where the study has one."""
        charts = [optional(self.study, "charts", r) or {} for r in self.results]
        out = []
        for name in dict.fromkeys(n for f in self.figures for n in f):
            made = [(f[name], n) for f, n in zip(self.figures, self.names) if isinstance(f.get(name), list)]
            if not made:
                continue
            caption = self._caption(made[0][0][0])
            pngs = [m[0] for m, _ in made]
            versions = [(c[name], n) for c, n in zip(charts, self.names) if name in c]
            if versions:
                data = pd.concat([c.data.assign(**{FOLDER: n}) for c, n in versions], ignore_index=True)
                if len(self.names) == 1:
                    data = data.drop(columns=FOLDER)
                vl = spec(versions[0][0], data)
                if versions[0][0].note:
                    vl["description"] = "Interactive: " + versions[0][0].note  # the page says it, not the .md
                out.append(Block("chart", vl, caption, pngs))
            else:
                out += [Block("figure", p, caption) for p in pngs]
        return out

    def _caption(self, png: Path) -> str:
        for sec in self.sections:
            for b in sec:
                if b.kind == "figure" and Path(b.body) == Path(png):
                    return b.caption
        return ""

    def text_blocks(self) -> list[Block]:
        """The study's own sections without their figures, per folder."""
        out = []
        for sec, name in zip(self.sections, self.names):
            blocks = [_demote(b) for b in _drop_empty_headings([b for b in sec if b.kind != "figure"])]
            if len(self.names) > 1:
                blocks = [Block("h3", f"Folder `{name}`"), *[_demote(b) if b.kind == "h3" else b for b in blocks]]
            out += blocks
        return out


def build(sources, out: Path | None = None) -> list[Block]:
    """Every block of the report, in order (figures drawn into each folder's ``figures/``; the
    verdict maps into ``out/figures``, the case tables into ``out``)."""
    results = [load(s) for s in (sources if isinstance(sources, (list, tuple)) else [sources])]
    names = [Path(r.path).name for r in results]
    out = Path(out or results[0].path)
    parts = []
    own = {str(x) for r in results for x in r.runs["sweep"].dropna().unique()}  # the sweeps that wrote the folders
    # a study named like a folder's sweep (make isometry writes sweep 'isometry') comes first,
    # the others in the registry's order
    for s in sorted(STUDIES.values(), key=lambda s: s.name not in own):
        applies = [s.applies(r) for r in results]  # once per folder: it can compute a study's cases
        if any(applies):
            parts.append(_Part(s, [r for r, a in zip(results, applies) if a], [n for n, a in zip(names, applies) if a]))

    title = f"mlplab report: {' + '.join(names)}"
    blocks = [Block("h1", title)]
    for r, n in zip(results, names):
        blocks.append(Block("summary", (f"`{n}`: " if len(results) > 1 else "") + summary_line(r.runs)))

    maps = []
    for p in parts:
        cells = p.verdict_cells()
        if cells is None or cells.empty:
            continue
        fig_name = f"verdict_map_{p.study.name}"
        pngs = vmap.save_figure(cells, p.study.title, out / "figures", fig_name)
        caption = (
            f"**{_titled(p.study.title, 'the verdicts')}.** Each cell is a verdict over its cases: blue reproduced, "
            "light blue reproduced in some cases, orange not reproduced, greys undecided or not enough data, "
            "white not tested; the numbers are the median effect, the range of the cases' medians (one case: its "
            "interval) and how many cases hold. Hover a cell for the verdict in words."
        )
        maps.append(Block("chart", spec(vmap.chart(cells, fig_name, p.study.title)), caption, pngs[:1]))
        maps += p.headlines()
    if maps:
        blocks += [Block("h2", SECTIONS[0]), *maps]

    figures = [b for p in parts for b in p.figure_blocks()]
    if figures:
        blocks += [Block("h2", SECTIONS[1]), Block("filters", None), *figures]

    for p in parts:
        text = p.text_blocks()
        short = len(text) <= SHORT  # a note, not a story: shown as it is
        blocks += [Block("h2", p.study.title), *(text if short else [Block("details", text, EVIDENCE)])]

    tables = []
    for p in parts:
        cases = p.cases()
        if cases is None or cases.empty:
            continue
        files = [out / f"report_{p.study.name}_cases.csv", out / f"report_{p.study.name}_cases.parquet"]
        out.mkdir(parents=True, exist_ok=True)
        cases.to_csv(files[0], index=False)
        cases.to_parquet(files[1], index=False)
        tables.append(
            Block("datatable", cases, f"**{_titled(p.study.title, 'every case')}.** Click a column to sort.", files)
        )
    if tables:
        blocks += [Block("h2", CASES_SECTION), *tables]

    rebuild = (
        f"Rebuild with `python -m mlplab.analysis report {' '.join(f'results/{n}' for n in names)}`"
        + (f" (or `make report SWEEP={names[0]}`). " if len(names) == 1 else ". ")
        + OTHER_STUDIES
    )
    config = [Block("p", rebuild)]
    for r, n in zip(results, names):
        config += ([Block("h3", f"Folder `{n}`")] if len(results) > 1 else []) + section_config(r)
    blocks += [Block("h2", CONFIG_SECTION), Block("details", config, "Every setting, the sweep commands, versions")]
    return blocks


def default_out(sources) -> Path:
    """Where a report goes: the folder itself, or for several ``<parent of the first>/report_<a>+<b>``."""
    paths = [Path(s.path if isinstance(s, Results) else s) for s in sources]
    if len(paths) == 1:
        return paths[0]
    return paths[0].parent / ("report_" + "+".join(p.name for p in paths))


def write_report(sources, out: Path | None = None) -> dict[str, Path]:
    """Build ``report.md`` and ``report.html`` (and the figures and case tables) in ``out``."""
    sources = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    out = Path(out) if out else default_out(sources)
    blocks = build(sources, out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "html": out / "report.html"}
    paths["md"].write_text(to_markdown(blocks, out), encoding="utf-8")
    paths["html"].write_text(to_html(blocks), encoding="utf-8")
    return paths

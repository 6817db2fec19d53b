"""The edge-of-chaos study as text: its part of the report (``report_blocks``, or
``section_blocks`` from figures already drawn), the short tables shown there, and the Markdown
and CSV tables its command writes (``write_outputs``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import markdown_table, significant
from mlplab.analysis.studies.chaos.figures import make_figures
from mlplab.analysis.studies.chaos.measures import (
    RATE_TOL,
    TRAIN_MULTIPLE,
    decay_table,
    trainability_table,
    trainable_depths,
)
from mlplab.analysis.studies.chaos.select import present
from mlplab.analysis.studies.chaos.sentences import TEXT, decay_sentences, train_sentences, what_was_run


def short_decay_table(t: pd.DataFrame, sigma_b2: float | None = None) -> pd.DataFrame:
    """A few rows of ``decay_table`` for the report: σ_w² ∈ {0.5, 1, 1.5, 1.75, 2, 3, 4} (the
    nearest present) at one σ_b² (the given one if present, else the middle one)."""
    if t.empty:
        return t
    sb = sorted(t["sigma_b2"].unique())
    pick = sigma_b2 if sigma_b2 in sb else sb[len(sb) // 2]
    d = t[t["sigma_b2"] == pick]
    want = [0.5, 1.0, 1.5, 1.75, 2.0, 3.0, 4.0]
    sw = d["sigma_w2"].to_numpy()
    rows = sorted({int(np.argmin(np.abs(sw - w))) for w in want})
    d = d.iloc[rows]
    return pd.DataFrame(
        {
            "σ_w²": d["sigma_w2"],
            "σ_b²": d["sigma_b2"],
            "phase": d["phase"],
            "ln χ1 (theory)": d["log_chi1"],
            "mean field, same layers": d["rate_path"],
            "measured (median)": d["rate"],
            "min–max": [f"{a:.3g} – {b:.3g}" for a, b in zip(d["rate_min"], d["rate_max"])],
            "ξ_∇ theory": d["xi_grad"],
            "ξ measured": d["xi_measured"],
            "seeds": d["n"],
        }
    ).reset_index(drop=True)


def short_train_table(tt: pd.DataFrame, multiple: float = TRAIN_MULTIPLE) -> pd.DataFrame:
    d = trainable_depths(tt)
    if d.empty:
        return d
    return pd.DataFrame(
        {
            "σ_w²": d["sigma_w2"],
            "σ_b²": d["sigma_b2"],
            "deepest trainable": d["deepest"],
            "first failing depth": d["first_failure"],
            "ξ_c": d["xi_c"],
            f"{multiple:g} ξ_c": d["max_depth"],
            "deepest / ξ_c": d["deepest_over_xi_c"],
        }
    )


def _train_sigma_b2(train: pd.DataFrame) -> float | None:
    """The σ_b² of the trained runs, at which the short decay table is shown (None without them)."""
    return float(train["sigma_b2"].iloc[0]) if not train.empty else None


def section_blocks(res, decay: pd.DataFrame, train: pd.DataFrame, made: dict) -> list[Block]:
    """The "Edge of chaos" section from the tables and the figures ``make_figures`` made."""
    out = [Block("h2", TEXT("section")), Block("p", TEXT("intro")), Block("list", what_was_run(res))]
    if not decay.empty:
        out += [
            Block("h3", TEXT("decay.heading")),
            Block("figure", str(made["chaos_heatmap"][0]), TEXT("decay.caption", tol=RATE_TOL)),
            Block("table", short_decay_table(decay, _train_sigma_b2(train))),
            Block("list", decay_sentences(decay)),
        ]
    if not train.empty:
        out += [
            Block("h3", TEXT("train.heading")),
            Block("figure", str(made["chaos_trainability"][0]), TEXT("train.caption", multiple=TRAIN_MULTIPLE)),
            Block("table", short_train_table(train)),
            Block("list", train_sentences(train)),
        ]
    out.append(Block("p", TEXT("provenance")))
    return out


def report_blocks(folder) -> list[Block]:
    """The "Edge of chaos" section of a report: what was run, both figures, short tables and
    computed sentences on where measurement and theory disagree; [] without chaos runs."""
    res = load(folder)
    if not present(res):
        return []
    decay = decay_table(res)
    train = trainability_table(res)
    return section_blocks(res, decay, train, make_figures(res, decay=decay, train=train))


def write_outputs(folder) -> str:
    """Figures (``figures/chaos_*.png`` and ``.svg``) and ``chaos_table.md`` / ``.csv`` (the
    decay table; the trainability table in ``chaos_train_table.csv``) in the results folder;
    returns the Markdown."""
    res = load(folder)
    path = Path(res.path)
    decay, train = decay_table(res), trainability_table(res)
    if decay.empty and train.empty:
        return TEXT("no_runs", folder=path.name)
    made = make_figures(res, decay=decay, train=train)
    parts = ["# " + TEXT("section"), "", *what_was_run(res)]
    if not decay.empty:
        parts += [
            "",
            "## " + TEXT("decay.heading"),
            "",
            markdown_table(significant(short_decay_table(decay, _train_sigma_b2(train)))),
            "",
            *[f"- {s}" for s in decay_sentences(decay)],
        ]
        decay.to_csv(path / "chaos_table.csv", index=False)
    if not train.empty:
        parts += [
            "",
            "## " + TEXT("train.heading"),
            "",
            markdown_table(significant(short_train_table(train))),
            "",
            *[f"- {s}" for s in train_sentences(train)],
        ]
        train.to_csv(path / "chaos_train_table.csv", index=False)
    figures = ", ".join(
        str(Path(w[0]).relative_to(path)) if not isinstance(w, str) else f"{n} ({w})" for n, w in made.items()
    )
    parts += ["", TEXT("provenance"), "", TEXT("figures_written", figures=figures)]
    md = "\n".join(parts) + "\n"
    (path / "chaos_table.md").write_text(md)
    return md

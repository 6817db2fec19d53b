"""The blog table: the post's formulas, its errata and its empirical claims, each with a check.

    python -m mlplab.analysis blog [results/blog]

writes ``results/blog_table.md``, ``results/blog_table.parquet`` and ``results/blog_table.csv``
(next to the results folder, named after it), and every case behind the claims' verdicts in
``results/blog_claim_cases.{parquet,csv}``. One row per checked item, columns:

    section    formula | erratum | claim
    item       what is checked (the table cell, the erratum, the claim id)
    post_says  the post's formula or statement
    check      the corrected formula or how the claim is measured
    verdict    computed: holds / does not hold, erratum confirmed, reproduced / not reproduced /
               reproduced only when ... / not enough data
    evidence   the numbers behind the verdict, as text
    max_rel_error, n_cases, n_holds, n_fails, n_undecided, min_seeds, effect_min, effect_max
               the same numbers as columns (``NUMERIC_COLUMNS``)

Formula and erratum rows come from ``formulas`` (checked by central
differences, no results needed); claim rows from ``claims`` and ``wording`` on the results folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from mlplab.analysis import load
from mlplab.analysis.fmt import markdown_table, scientific
from mlplab.analysis.studies.blog import claims, formulas, wording

TEXT_COLUMNS = ["section", "item", "post_says", "check", "verdict", "evidence"]
# the numbers behind the verdicts, next to the prose: for formulas and errata the largest
# relative error and the number of random networks checked; for claims the counts and range of
# their cases (``claims.CASE_SUMMARY``; every case: ``<name>_claim_cases.{parquet,csv}``)
NUMERIC_COLUMNS = [
    "max_rel_error",
    "n_cases",
    "n_holds",
    "n_fails",
    "n_undecided",
    "min_seeds",
    "effect_min",
    "effect_max",
]
COLUMNS = TEXT_COLUMNS + NUMERIC_COLUMNS
SECTION_TITLES = {
    "formula": "The post's comparison table, entry by entry (central differences)",
    "erratum": "The post's errata",
    "claim": "The post's claims, measured on the sweep",
}
FORMULA_COLUMNS = {"post_says", "check"}  # shown as code in Markdown


def formula_rows() -> pd.DataFrame:
    """One row per entry of the post's table (``formulas.formula_table``)."""
    return _formula_rows().copy()


@functools.cache
def _formula_rows() -> pd.DataFrame:  # the checks use fixed seeds and no results: once per process
    rows = []
    for r in formulas.formula_table().to_dict("records"):
        if r["holds"] and r.get("chained_holds", True):
            verdict = "holds"
        elif r["holds"]:
            verdict = "holds; wrong when chained from the post's δ^L"
        else:
            verdict = "does not hold"
        evidence = f"max rel. error {scientific(r['max_rel_error'])} over {r['n_cases']} random networks"
        if "chained_max_rel_error" in r and not r.get("chained_holds", True):
            evidence += f"; chained {scientific(r['chained_max_rel_error'])}"
        if r.get("note"):
            evidence += f"; {r['note']}"
        check = r["correct_formula"] if r["correct_formula"] != r["post_formula"] else "same"
        rows.append(
            {
                "section": "formula",
                "item": f"{r['column']}: {r['entry']}",
                "post_says": r["post_formula"],
                "check": check,
                "verdict": verdict,
                "evidence": evidence,
                "max_rel_error": float(r["max_rel_error"]),
                "n_cases": int(r["n_cases"]),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def erratum_rows() -> pd.DataFrame:
    """One row per erratum (``formulas.errata_table``)."""
    return _erratum_rows().copy()


@functools.cache
def _erratum_rows() -> pd.DataFrame:  # as _formula_rows
    rows = []
    for r in formulas.errata_table().to_dict("records"):
        if not r["post_holds"] and r["correct_holds"]:
            verdict = "erratum confirmed"
        elif r["post_holds"]:
            verdict = "not an erratum: the post's version holds"
        else:
            verdict = "unresolved: the correction does not hold either"
        evidence = (
            f"checked: {r['check']}; post's version: rel. error {scientific(r['max_rel_error'])}; "
            f"corrected: {scientific(r['correct_max_rel_error'])}"
        )
        if r.get("note"):
            evidence += f"; {r['note']}"
        rows.append(
            {
                "section": "erratum",
                "item": f"{r['erratum']}. {r['title']}",
                "post_says": r["post_formula"],
                "check": r["correct_formula"],
                "verdict": verdict,
                "evidence": evidence,
                "max_rel_error": float(r["max_rel_error"]),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def claim_rows(source) -> pd.DataFrame:
    """One row per empirical claim (``wording.verdicts``)."""
    v = wording.verdicts(source)
    return pd.DataFrame(
        {
            "section": "claim",
            "item": v["claim"],
            "post_says": v["post_claim"],
            "check": v["check"],
            "verdict": v["verdict"],
            "evidence": v["evidence"],
            **{c: v[c] for c in claims.CASE_SUMMARY},
        },
        columns=COLUMNS,
    )


def blog_table(source) -> pd.DataFrame:
    """Formula, erratum and claim rows in one table (``COLUMNS``)."""
    res = load(source)
    t = pd.concat([formula_rows(), erratum_rows(), claim_rows(res)], ignore_index=True)
    return t.astype({c: "Int64" for c in NUMERIC_COLUMNS if c.startswith(("n_", "min_"))})


# -- Markdown -------------------------------------------------------------------------------------
def table_markdown(table: pd.DataFrame, folder: Path) -> str:
    parts = [
        "# The blog post, checked",
        "",
        f"Formulas and errata are checked numerically (mlplab.analysis.studies.blog.formulas); claims are measured on "
        f"`{folder.name}` (mlplab.analysis.studies.blog.claims). Every verdict is computed. "
        "Rebuild with `python -m mlplab.analysis blog " + f"{folder.parent.name}/{folder.name}`.",
    ]
    for section, title in SECTION_TITLES.items():
        d = table[table["section"] == section][TEXT_COLUMNS].drop(columns="section")
        if d.empty:
            continue
        parts += ["", f"## {title}", "", markdown_table(d, FORMULA_COLUMNS if section != "claim" else ())]
    return "\n".join(parts) + "\n"


def table_paths(folder) -> dict[str, Path]:
    """``<parent>/<name>_table.{md,parquet,csv}`` for the results folder ``<parent>/<name>``."""
    folder = Path(folder)
    stem = folder.parent / f"{folder.name}_table"
    paths = {ext: stem.with_suffix(f".{ext}") for ext in ("md", "parquet", "csv")}
    cases = folder.parent / f"{folder.name}_claim_cases"
    return paths | {f"cases_{ext}": cases.with_suffix(f".{ext}") for ext in ("parquet", "csv")}


def write_table(source) -> dict[str, Path]:
    """Write the blog table as Markdown, parquet and CSV next to the results folder."""
    res = load(source)
    table = blog_table(res)
    paths = table_paths(res.path)
    paths["md"].write_text(table_markdown(table, Path(res.path)), encoding="utf-8")
    table.to_parquet(paths["parquet"], index=False)
    table.to_csv(paths["csv"], index=False)
    cases = wording.claim_cases(res)
    cases.to_parquet(paths["cases_parquet"], index=False)
    cases.to_csv(paths["cases_csv"], index=False)
    return paths

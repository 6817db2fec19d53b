"""The blog study's part of the report: the post and its claims, the checks (claims, errata,
formulas), the figures, the mean-field theory against the measured decay per layer; or, in a
folder that belongs to another study, the claims' verdicts in brief. Its prose: ``prose.md``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import number, pretty
from mlplab.analysis.measures import PHASES
from mlplab.analysis.plots import LOSS_ORDER
from mlplab.analysis.select import varying
from mlplab.analysis.studies.blog import summaries, table, wording
from mlplab.analysis.studies.blog.figures import TITLES
from mlplab.analysis.studies.blog.wording import PROSE
from mlplab.analysis.verdicts import NOT_TESTED

SECTIONS = [  # the blog study's sections, when the folder can test its claims
    "What the post claims",
    "Checks: claims, errata and formulas",
    "Figures",
    "Theory: predicted vs measured decay per layer",
]
BRIEF = "The blog post's claims on these runs"
SECTION_NAMES = {"formula": "formulas", "erratum": "errata", "claim": "claims"}


def testable(tab: pd.DataFrame) -> bool:
    """Whether the folder can test any of the post's claims (``tab``: the blog table)."""
    verdicts = tab.loc[tab["section"] == "claim", "verdict"]
    return bool(len(verdicts)) and not verdicts.str.startswith(NOT_TESTED).all()


def section_post() -> list[Block]:
    return [
        Block("h2", SECTIONS[0]),
        Block("p", PROSE("post")),
        Block("p", PROSE("post_claims")),
        Block("list", PROSE.items("claims")),
        Block("p", PROSE("errata")),
    ]


def verdict_summary(tab: pd.DataFrame) -> str:
    """'formulas: 17 holds, 4 ...; claims: 3 reproduced, 2 reproduced only when ...'."""
    parts = []
    for section, v in tab.groupby("section", sort=False)["verdict"]:
        kinds = (
            v.str.replace(r" \(undecided when .*\)$", "", regex=True)
            .str.replace(r" only when .*", " only when (conditions)", regex=True)
            .str.replace(r"^(not tested|not enough data) \(.*\)$", r"\1", regex=True)
        )
        parts.append(
            f"{SECTION_NAMES.get(section, section)}: " + ", ".join(f"{n} {k}" for k, n in kinds.value_counts().items())
        )
    return "; ".join(parts)


def _steps_cell(r) -> str:
    if r.n_reached == 0:
        return f"never (0/{r.n})"
    spread = f"{number(r.q25)}–{number(r.q75)}"
    reach = "" if r.n_reached == r.n else f" ({r.n_reached}/{r.n})"
    return f"{number(r.median)} [{spread}]{reach}"


def convergence_grid(conv: pd.DataFrame) -> pd.DataFrame:
    """summaries.claim_convergence as one row per (target, data set, activation, depth), one column
    per loss."""
    d = conv.assign(cell=[_steps_cell(r) for r in conv.itertuples()])
    d["target"] = [
        f"{t} ≥ {v:.3g}" if v == v else f"{t}: none (met at step 0)" for t, v in zip(d["target"], d["target_value"])
    ]
    g = d.pivot_table(
        index=["target", "dataset", "activation", "depth"], columns="loss", values="cell", aggfunc="first", sort=False
    )
    order = [c for c in LOSS_ORDER if c in g.columns] + [c for c in g.columns if c not in LOSS_ORDER]
    return g[order].reset_index().rename_axis(columns=None)


def _claim_details(res, claim_rows: pd.DataFrame) -> list[Block]:
    """Claim 1's steps and claims 3 and 4b's exploding settings in detail, where tested."""
    out = []
    tested = set(claim_rows.loc[~claim_rows["verdict"].str.startswith(NOT_TESTED), "item"])
    conv = summaries.claim_convergence(res)
    conv = conv[conv["activation"] == "sigmoid"]
    if not conv.empty and tested & {"1a", "1b"}:
        out += [
            Block(
                "h3",
                "Claim 1 in detail: steps to the accuracy target (sigmoid), median [quartiles] over seeds "
                "(k/n: runs that reach it)",
            ),
            Block("table", convergence_grid(conv)),
        ]
    exp = summaries.claim_exploding(res)
    exp = exp[exp["exploding"]]
    if not exp.empty and tested & {"3", "4b"}:
        keep = (
            ["activation"]
            + varying(exp, ["dataset", "loss", "depth", "sigma_w", "init"])
            + ["factor", "clip", "n", "n_diverged", "diverged_step", "max_grad_norm", "final_loss", "ratio_step0"]
        )
        d = exp[keep].rename(
            columns={
                "factor": "√χ1",
                "diverged_step": "non-finite at step (median)",
                "max_grad_norm": "largest finite ‖∇‖ (median)",
                "ratio_step0": "first/last at step 0",
            }
        )
        out += [
            Block("h3", "Claims 3 and 4b in detail: the settings with √χ1 > 1, unclipped vs norm-clipped twins"),
            Block("table", d),
        ]
    return out


def section_checks(res, tab: pd.DataFrame) -> list[Block]:
    """The claims first (how they are decided, per data set, in detail), then the errata and
    the formula table."""
    out = [Block("h2", SECTIONS[1]), Block("p", "Verdicts at a glance: " + verdict_summary(tab) + ".")]

    def rows(section):
        d = tab[tab["section"] == section][table.TEXT_COLUMNS].drop(columns="section")
        return [Block("h3", table.SECTION_TITLES[section]), Block("table", d)] if not d.empty else []

    out += [Block("h3", "How the claims are decided"), Block("list", wording.method_notes())]
    claim_rows = tab[tab["section"] == "claim"]
    untested = claim_rows[claim_rows["verdict"].str.startswith(NOT_TESTED)]
    if len(untested):
        out.append(Block("p", PROSE("untested", claims=", ".join(untested["item"]))))
    out += rows("claim")
    by_data = wording.verdicts(res, by_dataset=True)
    if by_data["dataset"].nunique() > 2:  # "all" and at least two data sets
        grid = by_data.pivot(index="claim", columns="dataset", values="verdict")
        grid = grid[["all"] + [c for c in grid.columns if c != "all"]].reset_index().rename_axis(columns=None)
        out += [Block("h3", "The claims per data set"), Block("table", grid)]
        notes = wording.disagreements(res, by_data)
        out.append(Block("list", notes) if notes else Block("p", PROSE("agree")))
    out += _claim_details(res, claim_rows)
    cases = wording.claim_cases(res)
    if len(cases):
        cases = cases.assign(interval=[f"[{number(lo)}, {number(hi)}]" for lo, hi in zip(cases["low"], cases["high"])])
        keep = (
            ["claim"]
            + (["dataset"] if cases["dataset"].nunique() > 1 else [])
            + ["case", "n", "effect", "interval", "coverage", "p", "decision"]
        )
        out += [Block("h3", "Every case behind the verdicts"), Block("p", PROSE("cases")), Block("table", cases[keep])]
    return out + rows("erratum") + rows("formula")


def section_figures(made: dict) -> list[Block]:
    out = [Block("h2", SECTIONS[2])]
    for name, what in made.items():
        if isinstance(what, str):
            out.append(Block("p", f"**{TITLES[name]}**: {what}."))
        else:
            out.append(Block("figure", what[0], f"**{TITLES[name]}.** {PROSE(name)}"))
    return out


def _remedied_note(van: pd.DataFrame) -> list[Block]:
    """The runs the theory leaves out (residual or normalised), named, or nothing."""
    remedied = van[van["residual"].astype(bool) | (van["norm"] != "none")]
    if not len(remedied):
        return []
    kinds = sorted(
        {
            ("residual" if r else "") + (" + " if r and n != "none" else "") + (f"{n} norm" if n != "none" else "")
            for r, n in zip(remedied["residual"].astype(bool), remedied["norm"])
        }
    )
    n = len(remedied.groupby(["activation", "residual", "norm", "init", "sigma_w", "sigma_b"]))
    return [Block("p", PROSE("theory_remedied", kinds=", ".join(kinds), n=n))]


THEORY_COLUMNS = {
    "activation": "activation",
    "init": "init",
    "sigma_w": "sigma_w",
    "sigma_b": "sigma_b",
    "depth": "depth",
    "n": "n",
    "median": "measured ratio",
    "predicted": "predicted ratio",
    "per_layer": "measured per layer",
    "predicted_per_layer": "predicted per layer",
}


def section_theory(res) -> list[Block]:
    out = [Block("h2", SECTIONS[3])]
    van = summaries.claim_vanishing(res)
    van = van[van["phase"] == PHASES[0]]
    note = _remedied_note(van)
    van = van[van["predicted"].notna()]
    if van.empty:
        return out + note + [Block("p", PROSE("theory_none"))]
    out.append(Block("p", PROSE("theory")))
    d = van[list(THEORY_COLUMNS)].rename(columns=THEORY_COLUMNS)
    with np.errstate(divide="ignore", invalid="ignore"):
        d["measured/predicted"] = d["measured ratio"] / d["predicted ratio"]
    out.append(Block("table", pretty(d)))
    per = d.groupby(["activation", "init", "sigma_w", "sigma_b"])[
        ["measured per layer", "predicted per layer"]
    ].median()
    lines = [
        f"{a}, init={i}, σ_w={sw:g}, σ_b={sb:g}: measured {m:.3g} vs predicted {p:.3g} per layer"
        for (a, i, sw, sb), (m, p) in per.iterrows()
    ]
    out.append(Block("list", lines))
    return out + note


def section_brief(tab: pd.DataFrame) -> list[Block]:
    """The post's claims as this folder's runs decide them: the verdicts table alone (the full
    blog framing belongs to the folders of the blog study)."""
    d = tab[tab["section"] == "claim"][["item", "post_says", "verdict", "evidence"]]
    return [Block("h2", BRIEF), Block("p", PROSE("brief", decision=wording.method_notes()[1])), Block("table", d)]


def section_cannot_test() -> list[Block]:
    return [Block("p", PROSE("cannot_test"))]

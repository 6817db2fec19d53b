"""The study report of one results folder: ``report.md`` and a self-contained ``report.html``.

    python -m mlplab.analysis.report results/<sweep>

It tells the post's story in the order a reader needs it: what the post claims; the table of
checks (formulas, errata, claims with computed verdicts); the figures; the mean-field theory
against the measured decay per layer; Nielsen's speeds of learning (from a ``nielsen`` sweep
next to this one, if there is one); the exact configuration and versions. The report is built
from blocks rendered twice, to Markdown (figures linked) and to HTML (figures embedded as
base64 PNG). A folder that is not an mlplab results folder ends with a one-line message and
exit code 2.
"""

from __future__ import annotations

import base64
import html
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import mlplab
from mlplab.analysis import claims, command, figures, load, remedies, table
from mlplab.analysis.blocks import Block
from mlplab.analysis.studies import chaos, nielsen
from mlplab.provenance import COLUMNS as PROVENANCE
from mlplab.results import CONFIG_TYPES

SECTIONS = [  # the blog study's sections, when the folder can test its claims
    "What the post claims",
    "Checks: claims, errata and formulas",
    "Figures",
    "Theory: predicted vs measured decay per layer",
]
CONFIG_SECTION = "Configuration and versions"
OTHER_STUDIES = (
    "Other studies write their own folders and reports: `make blog` (the post's study on four data sets), "
    "`make remedies` (every remedy against its plain twin), `make nielsen` (Nielsen's ch. 5 on real MNIST "
    "and the 8×8 digits), `make chaos` (the edge of chaos)."
)


# -- sections -------------------------------------------------------------------------------------
POST = [
    "The post (2019, after Nielsen's *Neural Networks and Deep Learning*) derives backpropagation for "
    r"an MLP with sigmoid units: $z^l = W^l a^{l-1} + b^l$, $a^l = \sigma(z^l)$, $\delta^l = \partial C/\partial z^l$, "
    r"$\delta^l = (W^{l+1})^T \delta^{l+1} \odot \sigma'(z^l)$, $\partial C/\partial W^l = \delta^l (a^{l-1})^T$, "
    r"$\partial C/\partial b^l = \delta^l$, and tabulates the output error $\delta^L$ for three losses: MSE, binary "
    "cross-entropy (BCE) and softmax cross-entropy.",
    "From that table it draws four claims:",
]
CLAIMS = [
    r"**1. Cross-entropy converges faster than MSE** with a sigmoid output: its $\delta^L = a^L - y$ lacks MSE's factor $\sigma'(z^L)$.",
    r"**2. Vanishing gradients**: each layer down the recursion multiplies $\delta$ by another $\sigma'(z) \le 1/4$, so lower layers barely train.",
    r"**3. Exploding gradients**: when the per-layer factor exceeds 1, $\delta$ grows toward the input.",
    "**4. Remedies**: ReLU (derivative 1), gradient clipping, weight regularisation, residual connections, batch normalisation "
    "(claims 4a and 4b check ReLU and norm clipping; `make remedies` measures every remedy against its plain twin).",
]
ERRATA = (
    r"A careful reading also finds four errata (the sigmoid's sign, the bias update, the softmax $\delta^L$, "
    "a summed rather than averaged batch gradient); they are checked numerically below."
)
FIGURE_NOTES = {
    "gradient_profile": "Nielsen's speed of learning ‖∂C/∂b^l‖ per layer, at step 0 (solid) and at the last logged step of ok runs (dashed). A constant factor per layer is a straight line on the log scale; a line falling toward layer 1 is a vanishing gradient, a rising one an exploding gradient.",
    "ratio_vs_depth": "The first layer's speed over the output layer's, one dot per run. Below 1 the first layer learns more slowly than the output layer. The dotted lines are the mean-field prediction at initialisation (σ_w, σ_b of each setting), against which the left panel is read.",
    "curves": "Claim 1 at one learning rate: the loss whose curve falls (top) or rises (bottom) first converges faster. Training losses are divided by their step-0 value so the three losses share one axis.",
    "exploding": "The exploding setting whose unclipped runs diverge most often (deepest first), one seed, without and with norm clipping. Norms are measured before clipping; a cross marks the step at which the unclipped run diverged.",
    "steps_heatmap": "Claim 1 at every depth and data set: median steps to reach the accuracy targets (the same for every loss). The verdicts of claims 1a and 1b compare these steps seed by seed.",
}


def section_post() -> list[Block]:
    return [Block("h2", SECTIONS[0]), *[Block("p", t) for t in POST], Block("list", CLAIMS), Block("p", ERRATA)]


def section_checks(res, tab: pd.DataFrame) -> list[Block]:
    """The claims first (how they are decided, per data set, in detail), then the errata and
    the formula table."""
    out = [Block("h2", SECTIONS[1]), Block("p", "Verdicts at a glance: " + verdict_summary(tab) + ".")]

    def rows(section):
        d = tab[tab["section"] == section][table.TEXT_COLUMNS].drop(columns="section")
        return [Block("h3", table.SECTION_TITLES[section]), Block("table", d)] if not d.empty else []

    out += [Block("h3", "How the claims are decided"), Block("list", claims.method_notes())]
    claim_rows = tab[tab["section"] == "claim"]
    untested = claim_rows[claim_rows["verdict"].str.startswith(claims.NOT_TESTED)]
    if len(untested):
        out.append(
            Block(
                "p",
                "This folder cannot test claim(s) "
                + ", ".join(untested["item"])
                + ": the verdict names what a sweep would need (e.g. `make blog`).",
            )
        )
    out += rows("claim")
    by_data = claims.verdicts(res, by_dataset=True)
    if by_data["dataset"].nunique() > 2:  # "all" and at least two data sets
        grid = by_data.pivot(index="claim", columns="dataset", values="verdict")
        grid = grid[["all"] + [c for c in grid.columns if c != "all"]].reset_index().rename_axis(columns=None)
        out += [Block("h3", "The claims per data set"), Block("table", grid)]
        notes = claims.disagreements(res, by_data)
        out.append(Block("list", notes) if notes else Block("p", "The data sets agree on every claim they can decide."))
    tested = set(claim_rows.loc[~claim_rows["verdict"].str.startswith(claims.NOT_TESTED), "item"])
    conv = claims.claim_convergence(res)
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
    exp = claims.claim_exploding(res)
    exp = exp[exp["exploding"]]
    if not exp.empty and tested & {"3", "4b"}:
        keep = (
            ["activation"]
            + [c for c in claims.varying(exp, ["dataset", "loss", "depth", "sigma_w", "init"])]
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
    cases = claims.case_table(res)
    if len(cases):
        cases = cases.assign(
            interval=[f"[{claims.fmt(lo)}, {claims.fmt(hi)}]" for lo, hi in zip(cases["low"], cases["high"])]
        )
        keep = (
            ["claim"]
            + (["dataset"] if cases["dataset"].nunique() > 1 else [])
            + ["case", "n", "effect", "interval", "coverage", "p", "decision"]
        )
        out += [
            Block("h3", "Every case behind the verdicts"),
            Block(
                "p",
                "One row per case: the median effect over its seeds (the unit of each claim is in its check), "
                "the distribution-free interval of that median and its exact coverage, the one-sided sign-test "
                "p-value for a positive effect, and the decision. Also in `<folder>_claim_cases.{parquet,csv}` "
                "(`python -m mlplab.analysis.table`).",
            ),
            Block("table", cases[keep]),
        ]
    return out + rows("erratum") + rows("formula")


SECTION_NAMES = {"formula": "formulas", "erratum": "errata", "claim": "claims"}


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
    spread = f"{_fmt_cell(r.q25)}–{_fmt_cell(r.q75)}"
    reach = "" if r.n_reached == r.n else f" ({r.n_reached}/{r.n})"
    return f"{_fmt_cell(r.median)} [{spread}]{reach}"


def convergence_grid(conv: pd.DataFrame) -> pd.DataFrame:
    """claims.claim_convergence as one row per (target, data set, activation, depth), one column
    per loss."""
    d = conv.assign(cell=[_steps_cell(r) for r in conv.itertuples()])
    d["target"] = [
        f"{t} ≥ {v:.3g}" if v == v else f"{t}: none (met at step 0)" for t, v in zip(d["target"], d["target_value"])
    ]
    g = d.pivot_table(
        index=["target", "dataset", "activation", "depth"], columns="loss", values="cell", aggfunc="first", sort=False
    )
    order = [c for c in figures.LOSS_ORDER if c in g.columns] + [c for c in g.columns if c not in figures.LOSS_ORDER]
    return g[order].reset_index().rename_axis(columns=None)


def section_figures(made: dict) -> list[Block]:
    out = [Block("h2", SECTIONS[2])]
    for name, what in made.items():
        title = figures.TITLES[name]
        if isinstance(what, str):
            out.append(Block("p", f"**{title}**: {what}."))
        else:
            out.append(Block("figure", what[0], f"**{title}.** {FIGURE_NOTES[name]}"))
    return out


def section_theory(res) -> list[Block]:
    out = [Block("h2", SECTIONS[3])]
    van = claims.claim_vanishing(res)
    van = van[van["phase"] == claims.PHASES[0]]
    remedied = van[van["residual"].astype(bool) | (van["norm"] != "none")]
    note = []
    if len(remedied):
        kinds = sorted(
            {
                ("residual" if r else "") + (" + " if r and n != "none" else "") + (f"{n} norm" if n != "none" else "")
                for r, n in zip(remedied["residual"].astype(bool), remedied["norm"])
            }
        )
        note = [
            Block(
                "p",
                f"mlplab.theory predicts plain networks only: the runs with {', '.join(kinds)} "
                f"({len(remedied.groupby(['activation', 'residual', 'norm', 'init', 'sigma_w', 'sigma_b']))} setting(s)) "
                "have no mean-field prediction and are left out of this comparison.",
            )
        ]
    van = van[van["predicted"].notna()]
    if van.empty:
        return out + note + [Block("p", "No unclipped plain runs with hidden layers: nothing to compare.")]
    out.append(
        Block(
            "p",
            "Mean-field theory (mlplab.theory; Poole et al. 2016, Schoenholz et al. 2017) predicts that at initialisation "
            "‖δ^l‖ changes by √χ^l per layer, χ^l = σ_w² E[φ'(z)²] over the layer's pre-activations z ~ N(0, q^l). "
            "Below, the measured first-to-last ratio ‖∂C/∂b^1‖/‖∂C/∂b^L‖ at step 0 (median over runs) against the "
            "predicted product of √χ^l over the depth hidden layers, and the same as a per-layer factor "
            "(ratio^(1/depth)).",
        )
    )
    d = van[
        [
            "activation",
            "init",
            "sigma_w",
            "sigma_b",
            "depth",
            "n",
            "median",
            "predicted",
            "per_layer",
            "predicted_per_layer",
        ]
    ].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        d["measured/predicted"] = d["median"] / d["predicted"]
    d = d.rename(
        columns={
            "median": "measured ratio",
            "predicted": "predicted ratio",
            "per_layer": "measured per layer",
            "predicted_per_layer": "predicted per layer",
        }
    )
    out.append(Block("table", _pretty(d)))
    per = d.groupby(["activation", "init", "sigma_w", "sigma_b"])[
        ["measured per layer", "predicted per layer"]
    ].median()
    lines = [
        f"{a}, init={i}, σ_w={sw:g}, σ_b={sb:g}: measured {m:.3g} vs predicted {p:.3g} per layer"
        for (a, i, sw, sb), (m, p) in per.iterrows()
    ]
    out.append(Block("list", lines))
    return out + note


def section_nielsen(res) -> list[Block]:
    """Nielsen's speeds of learning, in the report of a Nielsen folder (``nielsen``,
    ``nielsen_mnist``) or of any folder holding runs with his configuration."""
    folder = Path(res.path)
    if folder.name not in nielsen.FOLDERS:
        try:
            nielsen.speeds_at_init(res)
        except (ValueError, KeyError):
            return []
    return nielsen.report_blocks(folder)


def _multiruns(folder: Path) -> list[tuple[str, str]]:
    """(hydra folder name, the command that made it) for each multirun logged in the folder."""
    try:
        import yaml
    except ImportError:
        return []
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
    out.append(
        Block(
            "table",
            pd.DataFrame(
                {
                    "key": list(varied) + list(const),
                    "value": [", ".join(map(_fmt_cell, v)) for v in varied.values()]
                    + [_fmt_cell(v) or "none" for v in const.values()],
                    "": ["varied"] * len(varied) + ["fixed"] * len(const),
                }
            ),
        )
    )
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


BRIEF = "The blog post's claims on these runs"


def section_claims_brief(tab: pd.DataFrame) -> list[Block]:
    """The post's claims as this folder's runs decide them: the verdicts table alone (the full
    blog framing belongs to the folders of the blog study)."""
    d = tab[tab["section"] == "claim"][["item", "post_says", "verdict", "evidence"]]
    return [
        Block("h2", BRIEF),
        Block(
            "p",
            "These runs belong to a study of their own (below); where they can also decide one of the post's "
            "claims, the verdict is here. " + claims.method_notes()[1],
        ),
        Block("table", d),
    ]


def blog_testable(tab: pd.DataFrame) -> bool:
    """Whether the folder can test any of the post's claims."""
    verdicts = tab.loc[tab["section"] == "claim", "verdict"]
    return bool(len(verdicts)) and not verdicts.str.startswith(claims.NOT_TESTED).all()


def build(source) -> list[Block]:
    """Every block of the report, in order, framed by what the folder holds: the blog study
    where its claims can be tested, the remedies, Nielsen and edge-of-chaos studies where their
    runs are present, then the configuration."""
    res = load(source)
    folder = Path(res.path)
    tab = table.blog_table(res)
    head = [
        Block("h1", f"mlplab report: {folder.name}"),
        Block(
            "p",
            f"Results folder `{folder.name}`: {len(res.runs)} runs. Rebuild with "
            f"`make report SWEEP={folder.name}` (or `python -m mlplab.analysis.report <folder>`). " + OTHER_STUDIES,
        ),
    ]
    blocks = head
    studies = remedies.report_blocks(res) + section_nielsen(res) + chaos.report_blocks(res)
    if not blog_testable(tab):
        blocks.append(
            Block(
                "p",
                "This folder cannot test any of the blog post's claims (it has no matched pair or "
                "setting for them; `make blog` runs the study that can), so the report shows its own "
                "studies only.",
            )
        )
    elif studies:  # a study of its own: the post's claims on its runs, in brief
        blocks += section_claims_brief(tab)
    else:
        made = figures.make_figures(res)
        blocks += section_post() + section_checks(res, tab) + section_figures(made) + section_theory(res)
    blocks += studies
    return blocks + section_config(res)


# -- rendering ------------------------------------------------------------------------------------
def _fmt_cell(v, inf: str = "never") -> str:
    """Short text of one table value: 3 significant digits; +inf as ``inf`` (steps: 'never')."""
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return inf if v > 0 else "-inf"
        return "" if math.isnan(v) else claims.fmt(float(v))
    return "" if v is None else str(v)


def _pretty(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers as short strings (3 significant digits; inf as 'inf')."""
    return df.apply(lambda col: col.map(lambda v: _fmt_cell(v, "inf"))).reset_index(drop=True)


def to_markdown(blocks: list[Block], folder: Path) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.body)
        elif b.kind == "p":
            out.append(b.body)
        elif b.kind == "list":
            out.append("\n".join(f"- {x}" for x in b.body))
        elif b.kind == "table":
            out.append(table.markdown_table(_pretty(b.body)))
        elif b.kind == "figure":
            rel = Path(b.body).relative_to(folder) if Path(b.body).is_relative_to(folder) else Path(b.body)
            out.append(
                f"![{Path(b.body).stem}]({rel.as_posix()})\n\n{b.caption} ([SVG]({rel.with_suffix('.svg').as_posix()}))"
            )
        elif b.kind == "code":
            out.append(f"```\n{b.body}\n```")
    return "\n\n".join(out) + "\n"


def _maths(tex: str) -> str:
    """LaTeX to inline MathML (self-contained HTML: no script, no font download)."""
    from latex2mathml.converter import convert

    return convert(tex)


def _inline(text: str) -> str:
    """Escape, then $maths$ to MathML, `code`, **bold** and *italic* to HTML."""
    parts = re.split(r"\$([^$]+)\$", text)  # odd items are maths
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(_maths(part))
            continue
        s = html.escape(part)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        out.append(re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", s))
    return "".join(out)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 30px;line-height:1.45;color:#222}
table{border-collapse:collapse;font-size:0.82em;margin:0.8em 0}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3}code,pre{background:#f6f6f6;font-size:0.9em}pre{padding:0.6em;overflow-x:auto;white-space:pre-wrap}
figure{margin:1.2em 0}img{max-width:100%;height:auto}figcaption{font-size:0.9em;color:#444}math{font-size:1.05em}
@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}figure,table,pre{break-inside:avoid;page-break-inside:avoid}
tr,img{break-inside:avoid;page-break-inside:avoid}h1,h2,h3{break-after:avoid;page-break-after:avoid}
figcaption{break-before:avoid;page-break-before:avoid}a{color:inherit;text-decoration:none}}"""


def to_html(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.body)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.body)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b.body) + "</ul>")
        elif b.kind == "table":
            d = _pretty(b.body)
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in d.itertuples(index=False)
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "figure":
            data = base64.b64encode(Path(b.body).read_bytes()).decode("ascii")
            out.append(
                f'<figure><img alt="{html.escape(Path(b.body).stem)}" src="data:image/png;base64,{data}"><figcaption>{_inline(b.caption)}</figcaption></figure>'
            )
        elif b.kind == "code":
            out.append(f"<pre><code>{html.escape(b.body)}</code></pre>")
    title = html.escape(blocks[0].body if blocks else "mlplab report")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{CSS}</style></head>\n<body>\n'
        + "\n".join(out)
        + "\n</body></html>\n"
    )


def write_report(source) -> dict[str, Path]:
    """Build ``report.md`` and ``report.html`` (and the figures) in the results folder."""
    res = load(source)
    folder = Path(res.path)
    blocks = build(res)
    paths = {"md": folder / "report.md", "html": folder / "report.html"}
    paths["md"].write_text(to_markdown(blocks, folder), encoding="utf-8")
    paths["html"].write_text(to_html(blocks), encoding="utf-8")
    return paths


def main(argv=None) -> int:
    return command(
        lambda folder: "wrote " + ", ".join(map(str, write_report(folder).values())), argv, "results/default"
    )


if __name__ == "__main__":
    sys.exit(main())

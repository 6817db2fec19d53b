"""The report and the blog table of a tiny sweep, their numbers recomputed from its parquet
tables; bad folders on the command line."""

import base64
import math
import os
import re
import runpy
import sys
import traceback
import warnings

import numpy as np
import pandas as pd
import pytest

import mlplab
import mlplab.analysis.__main__ as analysis_command
from mlplab.analysis import load, measures, plots, render, report
from mlplab.analysis.studies import STUDIES
from mlplab.analysis.studies.blog import claims, figures, summaries, table
from mlplab.analysis.studies.blog import sections as blog_sections
from mlplab.results import CONFIG_TYPES

TINY = dict(width=8, epochs=2, n_samples=200)


def make_sweep(root):
    """Sigmoid and relu, mse and softmax_ce, depths 1 and 3, two seeds; plus one exploding relu
    setting (σ_w = 2, depth 8) with and without norm clipping."""
    for act in ("sigmoid", "relu"):
        for loss in ("mse", "softmax_ce"):
            for depth in (1, 3):
                for seed in (0, 1):
                    mlplab.run(
                        mlplab.RunSpec(activation=act, loss=loss, depth=depth, seed=seed, **TINY), root, sweep="tiny"
                    )
    for clip in ("none", "norm"):
        mlplab.run(
            mlplab.RunSpec(
                activation="relu", sigma_w=2.0, depth=8, loss="softmax_ce", clip=clip, epochs=1, log_every=1
            ),
            root,
            sweep="tiny",
        )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The tiny sweep with its report (figures included) and its blog table, built once; the
    tests that read it run on one worker together (tests/conftest.py), not waiting for it on
    two. Tests only read it."""
    root = tmp_path_factory.mktemp("report_sweep") / "tiny"
    make_sweep(root)
    report.write_report(root)
    table.write_table(root)
    return root


# -- reading Markdown -------------------------------------------------------------------------
def sections(md: str, level: str = "## ") -> dict[str, str]:
    """{heading: the text beneath it, up to the next heading of that level}, in order."""
    parts = re.split(rf"^{level}(.+)$", md, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def md_tables(text: str) -> list[pd.DataFrame]:
    """Every Markdown table in ``text``, its cells as strings."""
    out, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            head, body = cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                body.append(cells(lines[i]))
                i += 1
            out.append(pd.DataFrame(body, columns=head))
        else:
            i += 1
    return out


def shows(cell: str, x: float, what: str = ""):
    """The cell shows ``x`` to the significant digits it prints (3, or 2 in 1.2e+03 form)."""
    digits = re.sub(r"e[-+]?\d+$", "", cell.lstrip("-")).replace(".", "").lstrip("0")
    tol = 0.5 * 10.0 ** -(max(len(digits), 1) - 1) * (1 + 1e-9)
    assert float(cell) == pytest.approx(x, rel=tol), f"{what}: the report shows {cell!r}, the data give {x!r}"


# -- the figures files -------------------------------------------------------------------------------
def test_every_figure_is_written_as_png_and_svg(sweep):
    for i, name in enumerate(figures.FIGURES, start=1):
        png, svg = sweep / "figures" / f"{i}_{name}.png", sweep / "figures" / f"{i}_{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert "<svg" in svg.read_text()[:2000], name
        # legible in the report: its smallest text, at the width the report shows it
        assert plots.text_px_in_report(png) >= plots.MIN_TEXT_PX, name


# -- the report of the tiny sweep ---------------------------------------------------------------------
ORDER = [*report.SECTIONS, STUDIES["blog"].title, report.CASES_SECTION, report.CONFIG_SECTION]
BLOG_ORDER = [  # the blog study's part, collapsed under its title
    "What the post claims",
    "Checks: claims, errata and formulas",
    "Theory: predicted vs measured decay per layer",
]


def blog_part(md: str) -> dict[str, str]:
    """The blog study's sections (its headings one level down in the report)."""
    return sections(sections(md)[STUDIES["blog"].title], "### ")


def test_report_sections_come_in_order(sweep):
    md = (sweep / "report.md").read_text()
    assert md.startswith("# mlplab report: tiny\n")
    assert list(sections(md)) == ORDER
    assert list(blog_part(md)) == BLOG_ORDER
    page = re.sub(r"<script.*?</script>", "", (sweep / "report.html").read_text(), flags=re.S)  # the text, no code
    h2 = [t.replace("&#x27;", "'") for t in re.findall(r"<h2>(.*?)</h2>", page)]
    assert h2 == ORDER, h2
    assert "make nielsen" in md  # no Nielsen runs here: a pointer, not a section
    assert "<math" in page and "$" not in page.split("<body>")[1]  # maths rendered as MathML
    assert "break-inside:avoid" in page  # printing keeps figures with their captions
    claims_md = blog_part(md)[blog_sections.SECTIONS[0]]
    assert re.findall(r"^- \*\*(\d)\. ", claims_md, flags=re.M) == ["1", "2", "3", "4"]


def test_report_figures_section_links_and_embeds_each_figure_in_order(sweep):
    md = (sweep / "report.md").read_text()
    body = sections(md)[report.SECTIONS[1]]
    links = re.findall(r"^!\[(.+?)\]\((.+?)\)\n\n\*\*(.+?)\.\*\* (.+) \(\[SVG\]\((.+?)\)\)$", body, flags=re.M)
    assert [l[0] for l in links] == [f"{i}_{n}" for i, n in enumerate(figures.FIGURES, 1)]
    for (stem, png, title, note, svg), name in zip(links, figures.FIGURES):
        assert (png, svg) == (f"figures/{stem}.png", f"figures/{stem}.svg")
        assert (title, note) == (figures.TITLES[name], blog_sections.PROSE(name)), name
    page = (sweep / "report.html").read_text()
    assert 'src="figures/' not in page  # self-contained
    embedded = re.findall(r'<img class="static" alt="([^"]+)" src="data:image/png;base64,([^"]+)">', page)
    embedded = [(a, d) for a, d in embedded if not a.startswith("verdict_map")]
    assert [a for a, _ in embedded] == [l[0] for l in links]
    for stem, data in embedded:
        assert base64.b64decode(data) == (sweep / "figures" / f"{stem}.png").read_bytes(), stem


def test_report_checks_state_the_blog_tables_rows_and_counts(sweep):
    md = (sweep / "report.md").read_text()
    checks = blog_part(md)[blog_sections.SECTIONS[1]]
    tab = pd.read_parquet(sweep.parent / "tiny_table.parquet")
    # the summary: per section, in the table's order, how many rows got each kind of verdict
    names = {"formula": "formulas", "erratum": "errata", "claim": "claims"}
    parts = []
    for section, rows in tab.groupby("section", sort=False):
        kinds = rows["verdict"].map(
            lambda v: (
                "not enough data"
                if v.startswith("not enough data")
                else "not tested"
                if v.startswith("not tested")
                else v
            )
        )
        parts.append(f"{names[section]}: " + ", ".join(f"{n} {k}" for k, n in kinds.value_counts().items()))
    assert f"Verdicts at a glance: {'; '.join(parts)}." in checks
    sub = sections(checks, "#### ")
    # the claims first (how they are decided, their verdicts, the details), then errata and formulas
    assert list(sub) == [
        "How the claims are decided",
        table.SECTION_TITLES["claim"],
        "Claim 1 in detail: steps to the accuracy target (sigmoid), median [quartiles] over seeds "
        "(k/n: runs that reach it)",
        "Claims 3 and 4b in detail: the settings with √χ1 > 1, unclipped vs norm-clipped twins",
        "Every case behind the verdicts",
        table.SECTION_TITLES["erratum"],
        table.SECTION_TITLES["formula"],
    ]
    for section, title in table.SECTION_TITLES.items():
        shown = md_tables(sub[title])[0]
        want = tab[tab["section"] == section][["item", "post_says", "check", "verdict", "evidence"]]
        assert list(shown.columns) == list(want.columns), title
        assert shown.values.tolist() == want.astype(str).values.tolist(), title
    cases = pd.read_parquet(sweep.parent / "tiny_claim_cases.parquet")
    shown = md_tables(sub["Every case behind the verdicts"])[0]
    assert list(shown["claim"]) == list(cases["claim"]) and list(shown["case"]) == list(cases["case"])
    assert list(shown["decision"]) == list(cases["decision"]) and list(shown["n"].astype(int)) == list(cases["n"])
    for s, (e, lo, hi) in zip(shown.itertuples(), cases[["effect", "low", "high"]].to_numpy()):
        shows(s.effect, e, f"case {s.claim} {s.case}")
        a, b = s.interval.strip("[]").split(", ")
        shows(a, lo, f"interval of {s.claim} {s.case}")
        shows(b, hi, f"interval of {s.claim} {s.case}")


def steps_text(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.3g}"


def steps_cell(steps: np.ndarray) -> str:
    """'median [q25–q75]' of the steps over seeds (inf: never), '(k/n)' when not all reach."""
    k, n = int(np.isfinite(steps).sum()), len(steps)
    if k == 0:
        return f"never (0/{n})"
    q = [steps_text(float(np.quantile(steps, p, method="nearest"))) for p in (0.25, 0.75)]
    return f"{steps_text(float(np.median(steps)))} [{q[0]}–{q[1]}]" + ("" if k == n else f" ({k}/{n})")


def test_report_claim_1_grid_states_the_median_steps_per_loss(sweep):
    """Median [quartiles] of the steps to the accuracy target over the seeds, per depth and loss,
    from the per-run steps (pandas groupby; a run that never reaches it counts as never)."""
    md = (sweep / "report.md").read_text()
    sub = sections(blog_part(md)[blog_sections.SECTIONS[1]], "#### ")
    grid = md_tables(next(v for k, v in sub.items() if k.startswith("Claim 1 in detail")))[0]
    assert list(grid.columns) == ["target", "dataset", "activation", "depth", "mse", "softmax_ce"]
    pr = claims.per_run(load(sweep))
    pr = pr[(pr["activation"] == "sigmoid") & (pr["clip"] == "none")]
    rows = 0
    for target, column in (("test accuracy", "test_accuracy"), ("train accuracy", "train_accuracy")):
        for depth, d in pr.groupby("depth"):
            row = grid[grid["target"].str.startswith(target) & (grid["depth"] == str(depth))]
            assert len(row) == 1, (target, depth)
            rows += 1
            t = d[f"target_{column}"].median()
            assert row["target"].iloc[0] == (f"{target} ≥ {t:.3g}" if t == t else f"{target}: none (met at step 0)")
            for loss, g in d.groupby("loss"):
                steps = np.where(g[f"steps_{column}"] < g["beyond"], g[f"steps_{column}"], np.inf)
                assert row[loss].iloc[0] == steps_cell(steps), (target, depth, loss)
    assert rows == len(grid)


def test_report_theory_table_is_the_measured_median_ratio_per_setting(sweep):
    """Measured: the median over the unclipped runs of ‖∂C/∂b^1‖/‖∂C/∂b^L‖ at step 0, from the
    layers table (pandas); per layer: its depth-th root; against measures.predicted_ratio."""
    md = (sweep / "report.md").read_text()
    theory = blog_part(md)[blog_sections.SECTIONS[3]]
    shown = md_tables(theory)[0]
    raw = mlplab.load_results(sweep, join=False)
    runs = raw.runs[raw.runs["clip"] == "none"]
    lay = raw.layers[raw.layers["step"] == 0].merge(runs[["run_id", "depth"]], on="run_id")
    first = lay[lay["layer"] == 1].set_index("run_id")["grad_b_norm"]
    last = lay[lay["layer"] == lay["depth"] + 1].set_index("run_id")["grad_b_norm"]
    per_run = runs.set_index("run_id").assign(ratio=first / last)
    want = per_run.groupby(["activation", "sigma_w", "depth"])["ratio"].agg(["median", "size"])
    assert len(shown) == len(want)
    for r in shown.to_dict("records"):
        key = (r["activation"], float(r["sigma_w"]), int(r["depth"]))
        m, n = want.loc[key]
        assert int(r["n"]) == n, key
        shows(r["measured ratio"], m, f"measured {key}")
        shows(r["measured per layer"], m ** (1 / key[2]), f"per layer {key}")
        p = measures.predicted_ratio(
            key[0], "normal", key[1], 1.0, int(runs.loc[runs["depth"] == key[2], "width"].iloc[0]), key[2]
        )
        shows(r["predicted ratio"], p, f"predicted {key}")
        shows(r["measured/predicted"], m / p, f"measured/predicted {key}")
    # one line per setting: the median over its depths of the per-layer factors
    per_layer = (
        (want["median"] ** (1 / want.index.get_level_values("depth"))).groupby(level=["activation", "sigma_w"]).median()
    )
    lines = re.findall(
        r"^- (\w+), init=normal, σ_w=(\S+), σ_b=1: measured (\S+) vs predicted (\S+) per layer$", theory, flags=re.M
    )
    assert len(lines) == len(per_layer)
    for act, sw, m, _ in lines:
        shows(m, per_layer[(act, float(sw))], f"per layer {act} σ_w={sw}")


def test_report_configuration_counts_the_runs_and_their_values(sweep):
    md = (sweep / "report.md").read_text()
    config = sections(md)[report.CONFIG_SECTION]
    runs = mlplab.load_results(sweep, join=False).runs
    status = runs["status"].value_counts()
    assert f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in status.items()) + "." in config
    assert (status["ok"], status["diverged"]) == (17, 1)  # the unclipped σ_w = 2 run blows up
    t = md_tables(config)[0]
    kind = dict(zip(t["key"], t[""]))
    values = dict(zip(t["key"], t["value"]))
    varied = {
        "activation": "relu, sigmoid",
        "loss": "mse, softmax_ce",
        "depth": "1, 3, 8",
        "seed": "0, 1",
        "sigma_w": "1, 2",
        "clip": "none, norm",
        "epochs": "1, 2",
        "width": "8, 32",
    }  # as make_sweep runs them
    assert {k: values[k] for k in varied} == varied and all(kind[k] == "varied" for k in varied)
    for key in ("init", "lr", "dataset", "residual", "dtype", "alpha", "n_classes"):
        v = runs[key].iloc[0]
        assert kind[key] == "fixed" and values[key] == (f"{v:g}" if isinstance(v, float) else str(v)), key
    assert set(kind) == set(runs.columns) & set(CONFIG_TYPES)
    assert f"- numpy_version: {np.__version__}" in config


# -- the blog table ----------------------------------------------------------------------------------
def test_blog_table_files_hold_one_table(sweep):
    paths = table.table_paths(sweep)
    assert paths["md"] == sweep.parent / "tiny_table.md"
    t = pd.read_parquet(paths["parquet"])
    assert list(t.columns) == table.COLUMNS
    assert list(t["section"].unique()) == ["formula", "erratum", "claim"]
    assert list(t.loc[t["section"] == "claim", "item"]) == ["1a", "1b", "2", "3", "4a", "4b"]
    csv = pd.read_csv(paths["csv"], keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(csv[table.TEXT_COLUMNS], t[table.TEXT_COLUMNS].astype(object), check_dtype=False)
    np.testing.assert_allclose(csv["max_rel_error"].to_numpy(float), t["max_rel_error"].to_numpy(float))
    md = paths["md"].read_text()
    assert list(sections(md)) == list(table.SECTION_TITLES.values())
    for section, title in table.SECTION_TITLES.items():
        shown = md_tables(sections(md)[title])[0]
        assert list(shown["item"]) == list(t.loc[t["section"] == section, "item"]), title
        assert list(shown["verdict"]) == list(t.loc[t["section"] == section, "verdict"]), title
    cases = pd.read_parquet(paths["cases_parquet"])
    assert len(pd.read_csv(paths["cases_csv"])) == len(cases)
    assert (cases["low"] <= cases["effect"]).all() and (cases["effect"] <= cases["high"]).all()


def test_blog_table_claim_numbers_count_its_cases(sweep):
    """Each claim row's numbers, recomputed from the claim-cases table (pandas groupby), and its
    verdict from them: two seeds per case never decide."""
    t = pd.read_parquet(sweep.parent / "tiny_table.parquet").set_index("item")
    cases = pd.read_parquet(sweep.parent / "tiny_claim_cases.parquet")
    g = cases.groupby("claim")
    want = pd.DataFrame(
        {
            "n_cases": g.size(),
            "n_holds": g["decision"].agg(lambda d: (d == "holds").sum()),
            "n_fails": g["decision"].agg(lambda d: (d == "fails").sum()),
            "n_undecided": g["decision"].agg(lambda d: (d == "undecided").sum()),
            "min_seeds": g["n"].min(),
            "effect_min": g["effect"].min(),
            "effect_max": g["effect"].max(),
        }
    )
    for cid in ["1a", "1b", "2", "3", "4a", "4b"]:
        row = t.loc[cid]
        if cid not in want.index:
            assert row["n_cases"] == 0 and row["verdict"].startswith("not tested ("), (cid, row["verdict"])
            continue
        for c in want.columns:
            assert row[c] == pytest.approx(want.loc[cid, c]), (cid, c, row[c], want.loc[cid, c])
        assert want.loc[cid, "n_undecided"] == want.loc[cid, "n_cases"]  # at most two seeds per case
        assert row["verdict"] == f"not enough data ({want.loc[cid, 'min_seeds']} seeds in a case; a case needs ≥ 5)", (
            cid
        )


# -- folders the report cannot or need not cover ------------------------------------------------------
def test_a_folder_that_cannot_test_the_post_gets_no_blog_sections(tmp_path):
    root = tmp_path / "tanh"
    for seed in (0, 1):
        mlplab.run(mlplab.RunSpec(activation="tanh", depth=2, seed=seed, **TINY), root, sweep="tanh")
    md = report.write_report(root)["md"].read_text()
    assert list(sections(md)) == [STUDIES["blog"].title, report.CONFIG_SECTION]  # no verdicts, no figures
    intro = md.split(f"## {report.CONFIG_SECTION}")[0]
    assert "cannot test any of the blog post's claims" in intro
    config = sections(md)[report.CONFIG_SECTION]
    assert "2 runs: 2 ok." in config
    assert "| seed | 0, 1 | varied |" in config and "| activation | tanh | fixed |" in config
    assert not (root / "figures").exists()


def test_theory_speaks_of_plain_networks_only(tmp_path):
    """Residual and normalised runs get no mean-field prediction (no line in figure 2, no row in
    the theory table) and the report says so."""
    root = tmp_path / "remedies"
    for kw in (dict(), dict(residual=True), dict(norm="batch")):
        for depth in (1, 3):
            mlplab.run(mlplab.RunSpec(depth=depth, **kw, **TINY), root, sweep="remedies")
    van = summaries.claim_vanishing(root)
    plain = (~van.residual.astype(bool)) & (van.norm == "none")
    assert van[plain].predicted.notna().all() and van[~plain].predicted.isna().all()
    assert len(van[~plain]) == 2 * 2 * 2  # two remedies x two depths x two phases
    theory = render.to_markdown(blog_sections.section_theory(load(root)), root)
    assert "predicts plain networks only: the runs with batch norm, residual (2 setting(s))" in theory
    shown = md_tables(theory)[0]
    assert list(shown["depth"]) == ["1", "3"] and set(shown["activation"]) == {"sigmoid"}  # the plain runs only
    raw = mlplab.load_results(root, join=False)
    plain_runs = raw.runs[~raw.runs["residual"].astype(bool) & (raw.runs["norm"] == "none")].set_index("depth")
    for r in shown.to_dict("records"):
        rid = plain_runs.loc[int(r["depth"]), "run_id"]
        lay = raw.layers[(raw.layers["run_id"] == rid) & (raw.layers["step"] == 0)].set_index("layer")["grad_b_norm"]
        shows(r["measured ratio"], lay[1] / lay[int(r["depth"]) + 1], f"depth {r['depth']}")
    assert measures.predicted_ratio("sigmoid", "normal", 1.0, 1.0, 32, 3) > 0
    assert math.isnan(measures.predicted_ratio("sigmoid", "normal", 1.0, 1.0, 32, 3, residual=True))
    assert math.isnan(measures.predicted_ratio("sigmoid", "normal", 1.0, 1.0, 32, 3, norm="layer"))
    # ∂C/∂b^l = 0 under batch norm: its first-to-last ratio is that of the weight gradients
    res = load(root)
    ratios = measures.gradient_ratios(res.layers).merge(res.runs[["run_id", "norm", "depth"]], on="run_id")
    bn = ratios[ratios.norm == "batch"]
    assert (bn.measure == "grad_w_norm").all() and (ratios[ratios.norm != "batch"].measure == "grad_b_norm").all()
    assert (bn.ratio > 1e-3).all()  # the bias-gradient ratio would be rounding noise, ~1e-16


# -- bad folders ------------------------------------------------------------------------------------
BAD = {
    "missing": (lambda p: None, "no such folder"),
    "not-mlplab": (lambda p: p.mkdir(), "not an mlplab results folder"),
}
COMMANDS = ["report", *STUDIES]  # python -m mlplab.analysis <command> <folder>


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("bad", list(BAD))
def test_bad_folder_is_a_one_line_error_with_exit_code_2(tmp_path, capsys, command, bad):
    folder = tmp_path / "nowhere"
    make, words = BAD[bad]
    make(folder)
    assert analysis_command.main([command, str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("mlplab: ") and str(folder) in err and words in err, err


def forked(module: str, args: list[str], tmp_path):
    """``python -m module args`` in a forked child of this process (mlplab already imported):
    (exit code, stdout, stderr)."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    pid = os.fork()
    if pid == 0:  # the child becomes the command and never returns
        code = 1
        try:
            for path, fd in ((out, 1), (err, 2)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            sys.argv = [module, *args]
            warnings.resetwarnings()
            warnings.simplefilter("ignore")
            sys.modules.pop(module, None)  # run as __main__, as `python -m` does
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.read_text(), err.read_text()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_folder_exit_code_from_the_command_line(tmp_path, command):
    bad = tmp_path / "missing"
    code, out, err = forked("mlplab.analysis.__main__", [command, str(bad)], tmp_path)
    assert code == 2, (code, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("mlplab: ") and str(bad) in err, err

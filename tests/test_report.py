"""Figures, the blog table and the report, built from a tiny sweep in a temporary folder."""

import math
import subprocess
import sys

import pandas as pd
import pytest

import mlplab
from mlplab.analysis import figures, load, report, table

TINY = dict(width=8, epochs=2, n_samples=200)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Sigmoid and relu, mse and softmax_ce, depths 1 and 3, two seeds; plus one exploding relu
    setting (σ_w = 2, depth 8) with and without norm clipping."""
    root = tmp_path_factory.mktemp("results") / "tiny"
    for act in ("sigmoid", "relu"):
        for loss in ("mse", "softmax_ce"):
            for depth in (1, 3):
                for seed in (0, 1):
                    mlplab.run(mlplab.RunSpec(activation=act, loss=loss, depth=depth, seed=seed, **TINY), root, sweep="tiny")
    for clip in ("none", "norm"):
        mlplab.run(mlplab.RunSpec(activation="relu", sigma_w=2.0, depth=8, loss="softmax_ce", clip=clip, epochs=1, log_every=1), root, sweep="tiny")
    return root


@pytest.fixture(scope="module")
def built(sweep):
    return report.write_report(sweep)


def test_every_figure_is_written_as_png_and_svg(sweep, built):
    for i, name in enumerate(figures.FIGURES, start=1):
        png, svg = sweep / "figures" / f"{i}_{name}.png", sweep / "figures" / f"{i}_{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert "<svg" in svg.read_text()[:2000], name
        # legible in the report: its smallest text, at the width the report shows it
        assert figures.text_px_in_report(png) >= figures.MIN_TEXT_PX, name


def test_a_folder_that_cannot_test_the_post_gets_no_blog_sections(tmp_path):
    root = tmp_path / "tanh"
    for seed in (0, 1):
        mlplab.run(mlplab.RunSpec(activation="tanh", depth=2, seed=seed, **TINY), root, sweep="tanh")
    md = report.write_report(root)["md"].read_text()
    assert "cannot test any of the blog post's claims" in md
    assert not any(f"## {t}" in md for t in report.SECTIONS)
    assert f"## {report.CONFIG_SECTION}" in md


def test_a_figure_without_data_is_skipped_with_a_note(tmp_path):
    root = tmp_path / "plain"
    for seed in (0, 1):
        mlplab.run(mlplab.RunSpec(depth=2, seed=seed, **TINY), root, sweep="plain")
    made = figures.make_figures(root)
    assert isinstance(made["exploding"], str) and made["exploding"].startswith("skipped:")
    assert not (root / "figures" / "4_exploding.png").exists()
    assert all((root / "figures" / f"{i}_{n}.png").exists() for i, n in enumerate(figures.FIGURES, 1) if not isinstance(made[n], str))
    assert isinstance(made["curves"], list)


def test_report_has_every_section_and_embeds_the_figures(sweep, built):
    md = built["md"].read_text()
    page = built["html"].read_text()
    for title in report.SECTIONS:
        assert f"## {title}" in md
        assert title.replace("'", "&#x27;") in page
    for name in figures.FIGURES:
        assert f"figures/{list(figures.FIGURES).index(name) + 1}_{name}.png" in md
    assert page.count('src="data:image/png;base64,') == len(figures.FIGURES)
    assert 'src="figures/' not in page  # self-contained
    assert "make nielsen" in md and "## Nielsen" not in md  # no Nielsen runs here: a pointer, not a section
    assert "<math" in page and "$" not in page.split("<body>")[1]  # maths rendered as MathML
    assert "break-inside:avoid" in page  # printing keeps figures with their captions
    for cid in ("1a", "1b", "2", "3", "4a", "4b"):
        assert f"| {cid} |" in md


def test_blog_table_files_and_rows(sweep):
    paths = table.write_table(sweep)
    assert paths["md"] == sweep.parent / "tiny_table.md"
    t = pd.read_parquet(paths["parquet"])
    assert list(t.columns) == table.COLUMNS
    assert list(t.loc[t["section"] == "claim", "item"]) == ["1a", "1b", "2", "3", "4a", "4b"]
    assert t["verdict"].str.len().gt(0).all()
    assert len(pd.read_csv(paths["csv"])) == len(t)
    # the numbers behind the verdicts, as columns next to the prose
    claims_rows = t[t["section"] == "claim"]
    assert t["max_rel_error"].dtype.kind == "f" and t.loc[t["section"] == "formula", "max_rel_error"].notna().all()
    assert (claims_rows["n_holds"] + claims_rows["n_fails"] + claims_rows["n_undecided"] == claims_rows["n_cases"]).all()
    cases = pd.read_parquet(paths["cases_parquet"])
    assert len(cases) == claims_rows["n_cases"].sum() and set(cases["decision"]) <= {"holds", "fails", "undecided"}
    assert (cases["low"] <= cases["effect"]).all() and (cases["effect"] <= cases["high"]).all()
    assert "## The post's claims, measured on the sweep" in paths["md"].read_text()


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["missing", "not-mlplab"])
def test_bad_folder_is_a_one_line_error_with_exit_code_2(tmp_path, capsys, make):
    bad = tmp_path / "nowhere"
    make(bad)
    assert report.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err
    assert table.main([str(bad)]) == 2


def test_bad_folder_exit_code_from_the_command_line(tmp_path):
    bad = tmp_path / "missing"
    p = subprocess.run([sys.executable, "-m", "mlplab.analysis.report", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and str(bad) in p.stderr


def test_theory_speaks_of_plain_networks_only(tmp_path):
    """Residual and normalised runs get no mean-field prediction (no line in figure 2, no row in
    the theory table) and the report says so."""
    from mlplab.analysis import claims

    root = tmp_path / "remedies"
    for kw in (dict(), dict(residual=True), dict(norm="batch")):
        for depth in (1, 3):
            mlplab.run(mlplab.RunSpec(depth=depth, **kw, **TINY), root, sweep="remedies")
    van = claims.claim_vanishing(root)
    plain = (~van.residual.astype(bool)) & (van.norm == "none")
    assert van[plain].predicted.notna().all() and van[~plain].predicted.isna().all()
    assert len(van[~plain]) == 2 * 2 * 2  # two remedies x two depths x two phases
    blocks = report.section_theory(load(root))
    theory = report.to_markdown(blocks, root)
    assert "predicts plain networks only: the runs with batch norm, residual (2 setting(s))" in theory
    assert "| sigmoid |" in theory  # the plain setting's row is there
    assert claims.predicted_ratio("sigmoid", "normal", 1.0, 1.0, 32, 3) > 0
    assert math.isnan(claims.predicted_ratio("sigmoid", "normal", 1.0, 1.0, 32, 3, residual=True))
    assert math.isnan(claims.predicted_ratio("sigmoid", "normal", 1.0, 1.0, 32, 3, norm="layer"))
    # ∂C/∂b^l = 0 under batch norm: its first-to-last ratio is that of the weight gradients
    res = load(root)
    ratios = claims.gradient_ratios(res.layers).merge(res.runs[["run_id", "norm", "depth"]], on="run_id")
    bn = ratios[ratios.norm == "batch"]
    assert (bn.measure == "grad_w_norm").all() and (ratios[ratios.norm != "batch"].measure == "grad_b_norm").all()
    assert (bn.ratio > 1e-3).all()  # the bias-gradient ratio would be rounding noise, ~1e-16

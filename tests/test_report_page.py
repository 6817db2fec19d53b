"""The report as a page: one file that makes no request, opening with the summary and the verdict
map; the data each interactive chart carries equal to the parquet tables; the map equal to the
verdicts; a report over two folders side by side."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from test_report import make_sweep

import mlplab
import mlplab.analysis.__main__ as analysis_command
from mlplab.analysis import load, render, report
from mlplab.analysis.charts import AXES, SIGNIFICANT, embedded_rows, pack, param, unpack
from mlplab.analysis.measures import PHASES
from mlplab.analysis.studies.blog import wording
from mlplab.analysis.verdicts import CATEGORIES, category

RTOL = 10.0 ** (1 - SIGNIFICANT)  # the page keeps 5 significant digits


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("page") / "tiny"
    make_sweep(root)
    report.write_report(root)
    return root


class Page(HTMLParser):
    """Every element's tag and attributes in order, the scripts' and styles' text, and the
    charts' specs (by the id their figure names)."""

    def __init__(self, text: str):
        super().__init__()
        self.elements, self.scripts, self.styles, self._in = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in = (tag, dict(attrs)) if tag in ("script", "style") else None

    def handle_data(self, data):
        if self._in and self._in[0] == "script":
            self.scripts.append((self._in[1], data))
        elif self._in and self._in[0] == "style":
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in = None

    def specs(self) -> list[dict]:
        return [json.loads(text) for attrs, text in self.scripts if attrs.get("type") == "application/json"]


def page_of(folder) -> Page:
    return Page((folder / "report.html").read_text(encoding="utf-8"))


def charts_of(page: Page, maps: bool = False) -> dict[str, dict]:
    """Each chart's spec by the name of its static figure (the <img class="static"> after it);
    the verdict maps too with ``maps``."""
    out, spec_ids = {}, []
    for tag, attrs in page.elements:
        if tag == "div" and attrs.get("class") == "vega":
            spec_ids.append(attrs["data-spec"])
        if tag == "img" and attrs.get("class") == "static" and spec_ids:
            out[re.sub(r"^\d+_", "", attrs["alt"])] = spec_ids[-1]
    by_id = {attrs["id"]: json.loads(text) for attrs, text in page.scripts if attrs.get("type") == "application/json"}
    return {name: by_id[sid] for name, sid in out.items() if maps or not name.startswith("verdict_map")}


# -- one file, no request ------------------------------------------------------------------------
def test_the_page_points_to_nothing_outside_itself(tiny):
    page = page_of(tiny)
    for tag, attrs in page.elements:
        for key in ("src", "href", "data", "poster", "srcset"):
            v = attrs.get(key)
            if v is None:
                continue
            if v.startswith("data:") or v.startswith("#"):
                continue
            # the only other links: the case tables, files beside the report, to download
            assert tag == "a" and "download" in attrs and "/" not in v and ":" not in v, (tag, key, v)
            assert (tiny / v).is_file(), v
        assert not (tag == "script" and "src" in attrs), attrs
        assert not (tag == "link"), attrs  # no stylesheet, icon or font from elsewhere
    for css in page.styles:
        assert "url(" not in css and "@import" not in css
    for spec in page.specs():
        text = json.dumps(spec)
        assert '"url"' not in text and "http" not in text  # data inline, no schema address
    # the JavaScript is embedded once: Vega's bundle and the page's script
    bundles = [t for a, t in page.scripts if "vegaEmbed" in t and "type" not in a]
    assert len([t for t in bundles if "window.vegaEmbed=" in t]) == 1


def test_the_page_opens_with_the_summary_and_the_verdict_map_before_any_table(tiny):
    page = page_of(tiny)
    tags = [(t, a) for t, a in page.elements if t in ("h1", "h2", "p", "figure", "table", "details")]
    assert tags[0][0] == "h1" and tags[1] == ("p", {"class": "summary"})
    first_table = next(i for i, (t, _) in enumerate(tags) if t == "table")
    first_map = next(i for i, (t, a) in enumerate(tags) if t == "figure" and a.get("class") == "chart")
    assert first_map < first_table
    md = (tiny / "report.md").read_text()
    runs = load(tiny).runs
    assert md.split("\n\n")[1].startswith(f"**{len(runs)} runs** (")  # the summary line, then the map
    assert "verdict_map_blog.png" in md.split("## Figures")[0]


def test_the_evidence_is_collapsed_and_every_case_is_a_table_and_a_file(tiny):
    text = (tiny / "report.html").read_text()
    assert "<details>" in text and "<details open" not in text
    cases = pd.read_csv(tiny / "report_blog_cases.csv")
    want = wording.claim_cases(tiny)
    assert len(cases) == len(want) > 0
    pd.testing.assert_frame_equal(pd.read_parquet(tiny / "report_blog_cases.parquet"), want, check_dtype=False)
    table = re.search(r'<div class="datatable">.*?<tbody>(.*?)</tbody>', text, re.S).group(1)
    assert table.count("<tr>") == len(want)


# -- the data each chart carries -----------------------------------------------------------------------
def test_each_blog_chart_carries_the_rows_of_the_parquet_tables(tiny):
    charts = charts_of(page_of(tiny))
    assert set(charts) == {"gradient_profile", "ratio_vs_depth", "curves", "exploding", "steps_heatmap"}
    res = mlplab.load_results(tiny)
    layers, steps, runs = res.layers, res.steps, res.runs.set_index("run_id")

    # 1: every layer of every unclipped run at step 0, and of the ok ones at their last step
    prof = embedded_rows(charts["gradient_profile"])
    # the unclipped runs of the sweep's main setting (σ_w = 1; the exploding σ_w = 2 run is another)
    unclipped = runs.index[(runs["clip"] == "none") & (runs["sigma_w"] == 1.0)]
    lay = layers[layers["run_id"].isin(unclipped) & (layers["grad_b_norm"] > 0)]
    last = lay["run_id"].map(layers.groupby("run_id")["step"].max())
    ok_last = lay[(lay["step"] == last) & (lay["step"] > 0) & (lay["status"] == "ok")]
    assert (prof["phase"] == PHASES[0]).sum() == (lay["step"] == 0).sum()
    assert (prof["phase"] == PHASES[1]).sum() == len(ok_last)
    got = prof.merge(lay, on=["run_id", "step", "layer"], suffixes=("", "_parquet"))
    assert len(got) == len(prof)
    np.testing.assert_allclose(got["grad_b_norm"], got["grad_b_norm_parquet"], rtol=RTOL)

    # 3: the curves, thinned to at most 40 logged steps per run, first and last kept
    cur = embedded_rows(charts["curves"])
    st = steps[steps["run_id"].isin(unclipped)]
    for run_id, g in cur.groupby("run_id"):
        logged = st.loc[st["run_id"] == run_id, "step"]
        assert len(g) == min(len(logged), 40) and {logged.min(), logged.max()} <= set(g["step"])
    loss0 = st[st["step"] == 0].set_index("run_id")["train_loss"]
    both = cur.merge(st, on=["run_id", "step"], suffixes=("", "_parquet"))
    finite = np.isfinite(both["train_loss"])
    np.testing.assert_allclose(
        both.loc[finite, "rel_loss"], (both["train_loss"] / both["run_id"].map(loss0))[finite], rtol=RTOL
    )
    np.testing.assert_allclose(both["test_accuracy"], both["test_accuracy_parquet"], rtol=RTOL)

    # 2: one ratio per unclipped run with hidden layers and phase: ‖∂C/∂b^1‖ / ‖∂C/∂b^L‖
    rat = embedded_rows(charts["ratio_vs_depth"])
    r0 = rat[rat["phase"] == PHASES[0]].set_index("run_id")["ratio"]
    at0 = layers[layers["step"] == 0]
    first = at0[at0["layer"] == 1].set_index("run_id")["grad_b_norm"]
    top = at0.loc[at0.groupby("run_id")["layer"].idxmax()].set_index("run_id")["grad_b_norm"]
    np.testing.assert_allclose(r0, (first / top)[r0.index], rtol=RTOL)
    assert set(r0.index) == set(runs.index[(runs["clip"] == "none") & (runs["depth"] >= 1)])


def test_each_chart_can_be_filtered_on_the_axes_its_rows_have(tiny):
    for name, spec in charts_of(page_of(tiny)).items():
        rows = embedded_rows(spec)
        axes = [a for a in AXES if a in rows]
        assert axes, name
        names = {p["name"] for p in spec["params"]}
        assert {param(a) for a in axes} <= names, name
        test = spec["transform"][0]["filter"]
        assert all(f"datum[{json.dumps(a)}] === {param(a)}" in test for a in axes), name
        assert all(f"!isValid(datum[{json.dumps(a)}])" in test for a in axes), name  # theory rows stay


def test_the_filter_bar_offers_each_axis_that_varies(tiny):
    text = (tiny / "report.html").read_text()
    bar = re.search(r'<nav id="filters".*?</nav>', text, re.S).group(0)
    selects = dict(re.findall(r'<select data-param="(f_\w+)">(.*?)</select>', bar))
    runs = load(tiny).runs
    for axis in ("depth", "loss", "activation"):
        opts = re.findall(r'<option value="([^"]+)"', selects[param(axis)])
        assert opts[0] == "null"
        assert sorted(json.loads(o.replace("&quot;", '"')) for o in opts[1:]) == sorted(runs[axis].unique().tolist())


def test_pack_and_unpack_keep_every_row():
    rows = [
        {"run": "a", "x": 1.234567891, "n": 3, "flag": True, "miss": None},
        {"run": "b", "x": float("nan"), "n": 4, "flag": False, "miss": "y"},
        {"run": "a", "x": -2e-300, "n": 5, "flag": True, "miss": None},
    ]
    back = unpack(json.loads(json.dumps(pack(rows), allow_nan=False)))
    assert back["run"].tolist() == ["a", "b", "a"] and back["n"].tolist() == [3, 4, 5]
    assert back["flag"].tolist() == [True, False, True]
    assert [None if pd.isna(m) else m for m in back["miss"]] == [None, "y", None]
    assert back["x"][0] == pytest.approx(1.2346, rel=1e-12) and pd.isna(back["x"][1])
    assert back["x"][2] == pytest.approx(-2e-300)


# -- the verdict map ------------------------------------------------------------------------------------
def test_the_verdict_map_has_the_verdicts_of_the_verdicts_table(tiny):
    spec = charts_of(page_of(tiny), maps=True)["verdict_map_blog"]
    cells = embedded_rows(spec)
    v = wording.verdicts(tiny, by_dataset=True)
    v = v[v["dataset"] != "all"] if v["dataset"].nunique() == 2 else v
    assert len(cells) == len(v)
    for (_, c), (_, w) in zip(cells.iterrows(), v.iterrows()):
        assert c["verdict"] == w["verdict"] and c["column"] == w["dataset"] and c["row"].startswith(w["claim"] + ":")
        assert c["category"] == category(w["verdict"]) in CATEGORIES
        assert c["cases"] == w["n_cases"]
        if w["n_cases"]:
            assert c["holds"] == w["n_holds"] and c["fails"] == w["n_fails"]
            lo, hi = sorted([w["effect_min"], w["effect_max"]])
            assert lo - RTOL * abs(lo) <= c["effect"] <= hi + RTOL * abs(hi)


# -- several folders side by side ------------------------------------------------------------------------
def test_a_report_over_two_folders_has_the_folder_as_filter_facet_and_map_columns(tiny, tmp_path):
    other = tmp_path / "mine"
    for seed in (0, 1):
        mlplab.run(
            mlplab.RunSpec(activation="sigmoid", loss="mse", depth=2, seed=seed, width=8, epochs=2, n_samples=200),
            other,
            sweep="mine",
        )
    out = tmp_path / "both"
    assert analysis_command.main(["report", str(tiny), str(other), "--out", str(out)]) == 0  # the command, in-process
    text = (out / "report.html").read_text()
    assert "<h1>mlplab report: tiny + mine</h1>" in text
    assert text.count('<p class="summary">') == 2
    bar = re.search(r'<nav id="filters".*?</nav>', text, re.S).group(0)
    assert '<select data-param="f_folder">' in bar and "&quot;mine&quot;" in bar and "&quot;tiny&quot;" in bar
    charts = charts_of(Page(text))
    prof = embedded_rows(charts["gradient_profile"])
    assert set(prof["folder"]) == {"tiny", "mine"}
    assert charts["gradient_profile"]["facet"]["row"]["field"] in ("folder", "_panel")
    cells = embedded_rows(charts_of(Page(text), maps=True)["verdict_map_blog"])
    assert {c.split(":")[0] for c in cells["column"]} == {"tiny", "mine"}
    # the folders' own reports are not touched
    assert (tiny / "report.html").stat().st_mtime < (out / "report.html").stat().st_mtime


def test_only_the_report_takes_several_folders(tiny, tmp_path):
    code = subprocess.run(
        [sys.executable, "-m", "mlplab.analysis", "remedies", str(tiny), str(tiny)], capture_output=True, text=True
    )
    assert code.returncode == 2 and "only the report takes several" in code.stderr
    assert code.stderr.count("\n") == 1


def test_the_html_renderer_embeds_the_vega_bundle_once():
    page = render.to_html([render.Block("h1", "x"), render.Block("datatable", pd.DataFrame({"a": [1]}), "t", [])])
    assert page.count("window.vegaEmbed=") == 1

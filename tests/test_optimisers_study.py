"""The optimisers study on a small real sweep: the learning-rate rule, the pairing by seed, each
claim's per-seed effects recomputed here from the parquet tables, the verdicts per data set,
the figures, the charts and the report section."""

import math

import altair as alt
import numpy as np
import pandas as pd
import pytest
from test_charts_studies import checked

from mlplab import RunSpec
from mlplab.analysis import load
from mlplab.analysis import report as report_mod
from mlplab.analysis.charts import embedded_rows, spec
from mlplab.analysis.plots import text_px_in_report
from mlplab.analysis.studies import STUDIES
from mlplab.analysis.studies.optimisers import charts, compare, figures, sections
from mlplab.analysis.verdicts import STAT_COLUMNS
from mlplab.train import Runner

GRIDS = {"sgd": (0.5, 60.0), "momentum": (0.01, 0.05), "adam": (1e-3, 1e-2), "rmsprop": (1e-3, 1e-2)}
SEEDS = range(5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Sigmoid and relu nets of depth 2 and 6 on blobs, each optimiser at two rates (sgd's 60
    diverges), five seeds; and adam with ε = 1e-30 in one cell."""
    root = tmp_path_factory.mktemp("optimisers")
    run = Runner(root, "optimisers", False)
    base = dict(width=16, n_samples=300, epochs=4, eval_every="log")
    for act in ("sigmoid", "relu"):
        for depth in (2, 6):
            for optim, rates in GRIDS.items():
                for lr in rates:
                    for seed in SEEDS:
                        run(RunSpec(**base, depth=depth, activation=act, optim=optim, lr=lr, seed=seed))
    for seed in SEEDS:
        run(RunSpec(**base, depth=6, optim="adam", eps=1e-30, lr=1e-2, seed=seed))
    return root


def test_an_optimiser_with_another_eps_is_an_arm_of_its_own():
    assert compare.optimiser_of("adam", 1e-8) == "adam"
    assert compare.optimiser_of("adam", 1e-30) == "adam ε=1e-30"
    assert compare.optimiser_of("rmsprop", 1e-6) == "rmsprop ε=1e-06"
    assert compare.optimiser_of("sgd", 1e-30) == "sgd"  # sgd has no ε: the value means nothing
    assert compare.arm_order(["rmsprop", "adam ε=1e-30", "sgd", "adam", "momentum"]) == [
        "sgd",
        "momentum",
        "adam",
        "adam ε=1e-30",
        "rmsprop",
    ]


def test_each_optimiser_runs_at_the_rate_with_the_lowest_median_final_loss(folder):
    """Recomputed from the runs table: per cell and optimiser, the median over seeds of the final
    training loss, a diverged run counting as +inf; the smallest wins."""
    runs = load(folder).runs
    assert (runs[(runs.optim == "sgd") & (runs.lr == 60.0)].status == "diverged").any()  # the rule meets one
    best = compare.best_rates(folder)
    for (ds, act, depth, arm), g in best.groupby(["dataset", "activation", "depth", "optimiser"]):
        optim, _, eps = arm.partition(" ε=")
        r = runs[(runs.dataset == ds) & (runs.activation == act) & (runs.depth == depth) & (runs.optim == optim)]
        r = r[np.isclose(r.eps, float(eps), rtol=1e-9, atol=0)] if eps else r[r.eps == 1e-8]
        loss = r.final_loss.where(r.status == "ok", math.inf)
        med = loss.groupby(r.lr).median()
        assert g.lr.iloc[0] == med.idxmin(), (ds, act, depth, arm)
        assert g["at grid edge"].iloc[0] == (len(med) > 1 and med.idxmin() in (med.index.min(), med.index.max()))
    assert set(best.optimiser) == {"sgd", "momentum", "adam", "rmsprop", "adam ε=1e-30"}
    assert (best[best.optimiser == "sgd"].lr == 0.5).all()  # never the rate that diverges


def test_the_chosen_runs_are_one_per_seed_and_pair_by_seed(folder):
    pr = compare.per_run(folder)
    counts = pr.groupby(["dataset", "activation", "depth", "optimiser"]).seed.agg(["nunique", "size"])
    assert (counts["nunique"] == 5).all() and (counts["size"] == 5).all()
    p = compare.pairs(pr, "momentum", "sgd")
    assert len(p) == 4 * 5 and (p.run_id_a != p.run_id_b).all()
    runs = load(folder).runs.set_index("run_id")
    assert (runs.loc[p.run_id_a, "seed"].to_numpy() == runs.loc[p.run_id_b, "seed"].to_numpy()).all()


def ratio(layers, run_id, column, phase):
    """Layer 1's ``column`` over the output layer's, at step 0 or at the run's last logged step."""
    lay = layers[layers.run_id == run_id]
    step = 0 if phase == "init" else lay.step.max()
    at = lay[lay.step == step].set_index("layer")[column]
    return at.loc[1] / at.loc[at.index.max()]


def test_every_claims_effects_are_recomputed_from_the_tables(folder):
    """For one cell, each claim's median effect from the layers and steps tables directly."""
    res = load(folder)
    pr = compare.per_run(folder)
    c = compare.cases(folder)
    cell = pr[(pr.activation == "sigmoid") & (pr.depth == 6)]
    ids = {arm: g.sort_values("seed").run_id.tolist() for arm, g in cell.groupby("optimiser")}

    def case(claim, **where):
        sub = c[(c.claim == claim) & (c.activation == "sigmoid") & (c.depth == 6)]
        for k, v in where.items():
            sub = sub[sub[k] == v]
        assert len(sub) == 1, (claim, where)
        return sub.iloc[0]

    u = [ratio(res.layers, r, "update_ratio", "end") for r in ids["adam"]]
    assert case("a", optimiser="adam", phase="after training").effect == pytest.approx(
        np.median(1 - np.abs(np.log10(u))), rel=1e-12
    )
    g = [ratio(res.layers, r, "grad_w_norm", "end") for r in ids["rmsprop"]]
    assert case("b", optimiser="rmsprop").effect == pytest.approx(np.median(-np.log10(g) - 1), rel=1e-12)
    um = [ratio(res.layers, r, "update_ratio", "init") for r in ids["momentum"]]
    us = [ratio(res.layers, r, "update_ratio", "init") for r in ids["sgd"]]
    d = 0.5 - np.abs(np.log10(np.asarray(um) / np.asarray(us)))
    assert case("d", phase="initialisation").effect == pytest.approx(np.median(d), rel=1e-12, abs=1e-12)
    # (c) from the steps table: the first logged step at the data set's target, per seed, in a
    # cell where both arms reach it (relu at depth 2: all five pairs)
    steps = res.steps
    reach = pr[(pr.activation == "relu") & (pr.depth == 2)]
    runs = {arm: g.sort_values("seed").run_id.tolist() for arm, g in reach.groupby("optimiser")}
    target = reach.target.iloc[0]

    def first(run_id):
        s = steps[(steps.run_id == run_id) & (steps.test_accuracy >= target)].step
        return s.min() if len(s) else pr.loc[run_id, "beyond"]

    adam, sgd = np.array([first(r) for r in runs["adam"]]), np.array([first(r) for r in runs["sgd"]])
    beyond = pr.loc[runs["sgd"][0], "beyond"]
    e = np.log10(sgd / adam)
    e = e[~((adam >= beyond) & (sgd >= beyond))]
    got = c[(c.claim == "c") & (c.activation == "relu") & (c.depth == 2) & (c.versus == "sgd")]
    assert len(e) == 5 and len(got) == 1
    assert got.effect.iloc[0] == pytest.approx(np.median(e), rel=1e-12, abs=1e-12)
    assert set(STAT_COLUMNS) <= set(c.columns)


def test_the_target_is_a_fraction_of_the_best_median_final_accuracy_of_the_data_set(folder):
    pr = compare.per_run(folder)
    ok = pr[pr.status == "ok"]
    best = ok.groupby(["activation", "depth", "optimiser"]).final_test_accuracy.median().max()
    assert (pr.target == round(0.9 * float(best), 4)).all()


def test_verdicts_are_per_claim_and_data_set_and_the_answer_states_them(folder):
    v = compare.verdicts(folder)
    assert list(zip(v.claim, v.dataset)) == [(k, "blobs") for k in compare.CLAIMS]
    cells = compare.verdict_cells(folder)
    assert len(cells) == 4 and set(cells.column) == {"blobs"}
    text = sections.answer(load(folder))
    assert text.startswith("**Answer:") and "Claims per data set: (a) " in text
    # the cells split into where adam's steps are level and it reaches the target, level but not
    # reached, and not level: recomputed here from the per-run table and the steps table
    pr, t = compare.per_run(folder), compare.steps_table(folder)
    adam = pr[pr.optimiser == "adam"]
    level = adam.groupby(["dataset", "activation", "depth"]).u_end.apply(lambda u: np.median(np.abs(np.log10(u))) <= 1)
    reached = t[t.optimiser == "adam"].set_index(["dataset", "activation", "depth"])["median"].map(np.isfinite)
    n_cured, n_hidden = int((level & reached).sum()), int((~level).sum())
    if n_cured:
        assert f"It cures them in {n_cured} of {len(level)} cells" in text
    assert ("In the remaining" in text) == (n_hidden > 0)
    assert text.startswith("**Answer: " + sections.PROSE("headline_cures" if not n_hidden else "headline_hidden"))


def test_the_study_applies_to_a_folder_with_sgd_and_an_adaptive_optimiser(folder, tmp_path):
    assert STUDIES["optimisers"].applies(load(folder))
    run = Runner(tmp_path, "t", False)
    for optim in ("sgd", "momentum"):
        run(RunSpec(depth=1, width=4, n_samples=60, epochs=1, optim=optim, lr=0.05))
    assert not STUDIES["optimisers"].applies(load(tmp_path))


def test_the_figures_are_drawn_readable(folder, tmp_path):
    made = figures.make_figures(folder, tmp_path)
    assert set(made) == {"opt_profiles", "opt_steps"}
    for png, svg in made.values():
        assert png.stat().st_size > 10_000 and svg.is_file()
        assert text_px_in_report(png) >= 9


def test_the_charts_carry_the_tables_numbers(folder):
    out = charts.charts(load(folder))
    assert set(out) == {"opt_profiles", "opt_steps"}
    vl, rows = checked(out["opt_profiles"])
    res = load(folder)
    pr = compare.per_run(folder)
    # one point: sgd's median gradient norm at layer 1 at step 0 in the relu depth-2 cell
    sel = pr[(pr.optimiser == "sgd") & (pr.activation == "relu") & (pr.depth == 2)].index
    lay = res.layers[res.layers.run_id.isin(sel) & (res.layers.step == 0) & (res.layers.layer == 1)]
    want = lay.grad_w_norm.median()
    got = rows[
        (rows.optimiser == "sgd")
        & (rows.activation == "relu")
        & (rows.depth == 2)
        & (rows.layer == 1)
        & (rows.phase == "initialisation")
        & (rows.measure == charts.MEASURES["grad_w_norm"])
    ]
    assert len(got) == 1 and got.value.iloc[0] == pytest.approx(want, rel=1e-4)
    vl, rows = checked(out["opt_steps"])
    alt.TopLevelSpec.validate(spec(out["opt_steps"]))
    assert len(embedded_rows(vl)) == len(compare.steps_table(folder))


def test_the_report_has_the_optimisers_section_with_its_answer(folder):
    written = report_mod.write_report(folder)
    md = written["md"].read_text(encoding="utf-8")
    assert STUDIES["optimisers"].title in md and md.count("**Answer:") == 1
    # the answer is on the first screen: under the verdict map, before the figures
    assert md.index("verdict_map_optimisers") < md.index("**Answer:") < md.index("## Figures")
    assert "O1. Gradient norm and update ratio per layer" in md and "O2. Steps to the test-accuracy target" in md
    cases = pd.read_csv(folder / "report_optimisers_cases.csv")
    assert len(cases) == len(compare.cases(folder)) and set(cases.claim) == set(compare.CLAIMS)

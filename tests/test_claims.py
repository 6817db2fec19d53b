"""The blog post's claims (mlplab.analysis.studies.blog) on synthetic tables with known answers, and on
a tiny real sweep."""

import math

import numpy as np
import pandas as pd
import pytest
from synthetic import BASE, LOG_EVERY, accuracy_curve, make_results

import mlplab
from mlplab.analysis import load, measures, select
from mlplab.analysis.studies.blog import claims, summaries, table, wording
from mlplab.analysis.verdicts import MIN_SEEDS

SEEDS = range(MIN_SEEDS)


def claim(v: pd.DataFrame, cid: str) -> str:
    return v.set_index("claim").loc[cid, "verdict"]


def evidence(v: pd.DataFrame, cid: str) -> str:
    return v.set_index("claim").loc[cid, "evidence"]


# -- claim 1 ------------------------------------------------------------------------------------
def convergence_data(speed: dict, depths=(1, 4), seeds=SEEDS, datasets=("blobs",)):
    """Sigmoid runs whose accuracy rises 0.1 every ``speed[(loss, depth)]`` logged steps (a
    little slower for higher seeds), to 0.95."""
    runs, curves = [], {}
    for ds in datasets:
        for depth in depths:
            for loss in ("mse", "bce", "softmax_ce"):
                for seed in seeds:
                    rid = f"{ds}-{loss}-{depth}-{seed}"
                    runs.append({"run_id": rid, "dataset": ds, "depth": depth, "loss": loss, "seed": seed})
                    curves[rid] = accuracy_curve(speed[(ds, loss, depth)] * (1 + 0.02 * seed), n=60)
    return make_results(runs, curves)


def speeds(mse, ce, depths=(1, 4), datasets=("blobs",)):
    return {
        (ds, l, d): (mse if l == "mse" else ce) for ds in datasets for l in ("mse", "bce", "softmax_ce") for d in depths
    }


def test_accuracy_target_and_steps_to_it():
    res = convergence_data(speeds(6, 2))
    pr = claims.per_run(res).set_index("run_id")
    # best median final accuracy is 0.95 for every loss: target 0.9 × 0.95
    assert pr["target_test_accuracy"].unique().tolist() == [round(measures.ACC_FRAC * 0.95, 4)]
    # 0.2 + k/6 · 0.1 ≥ 0.855 first at k = 40 (seed 0): step 400; cross-entropy at k = 14
    assert pr.loc["blobs-mse-1-0", "steps_test_accuracy"] == 40 * LOG_EVERY
    assert pr.loc["blobs-bce-1-0", "steps_test_accuracy"] == 14 * LOG_EVERY


def test_a_run_that_never_reaches_the_target_counts_one_log_past_its_end():
    res = convergence_data(speeds(6, 2))
    res.steps.loc[res.steps["run_id"] == "blobs-mse-1-0", "test_accuracy"] = 0.3  # flat
    pr = claims.per_run(res).set_index("run_id")
    assert pr.loc["blobs-mse-1-0", "steps_test_accuracy"] == pr.loc["blobs-mse-1-0", "n_steps"] + LOG_EVERY
    conv = summaries.claim_convergence(res)
    row = conv[(conv["target"] == "test accuracy") & (conv["loss"] == "mse") & (conv["depth"] == 1)].iloc[0]
    assert (row["n"], row["n_reached"]) == (MIN_SEEDS, MIN_SEEDS - 1)


def test_a_target_met_at_initialisation_is_no_target():
    res = convergence_data(speeds(6, 2))
    res.steps.loc[res.steps["step"] == 0, "test_accuracy"] = 0.99
    pr = claims.per_run(res)
    assert pr["target_test_accuracy"].isna().all() and pr["steps_test_accuracy"].isna().all()
    assert claim(wording.verdicts(res), "1a").startswith("not tested")


def mse_over_ce(speed: dict, depth: int, ce: str, ds: str = "blobs") -> np.ndarray:
    """Per seed: log10 of MSE's steps to the accuracy target over the cross-entropy twin's, from
    the curves ``convergence_data`` draws (target: 0.9 × the best median final accuracy)."""
    curves = {
        l: [accuracy_curve(speed[(ds, l, depth)] * (1 + 0.02 * s), n=60) for s in SEEDS]
        for l in ("mse", "bce", "softmax_ce")
    }
    target = round(0.9 * max(np.median([c[-1] for c in cs]) for cs in curves.values()), 4)
    steps = {
        l: np.array([LOG_EVERY * np.argmax(c >= target) if (c >= target).any() else np.nan for c in cs])
        for l, cs in curves.items()
    }
    return np.log10(steps["mse"] / steps[ce])


def test_convergence_verdict_follows_the_data():
    sp = speeds(6, 2)
    v = wording.verdicts(convergence_data(sp))
    assert claim(v, "1a") == "reproduced" and claim(v, "1b") == "reproduced"
    # the numbers and the decision rule are stated: each case's median effect over seeds and
    # its interval (five seeds: their range)
    cases = []
    for depth in (1, 4):
        for ce in ("bce", "softmax_ce"):
            e = mse_over_ce(sp, depth, ce)
            assert (e > 0).all(), (depth, ce, e)
            cases.append(f"depth {depth}, loss {ce}: {np.median(e):.3g} [{e.min():.3g}, {e.max():.3g}] (n={MIN_SEEDS})")
    assert evidence(v, "1a") == "median log10 steps ratio [interval] per case — " + "; ".join(cases)
    assert "90 %" in v.set_index("claim").loc["1a", "check"]

    assert claim(wording.verdicts(convergence_data(speeds(2, 6))), "1a") == "not reproduced"

    mixed = {**speeds(6, 2), ("blobs", "bce", 4): 8, ("blobs", "softmax_ce", 4): 8}
    assert claim(wording.verdicts(convergence_data(mixed)), "1a") == "reproduced only when depth = 1"


def test_three_seeds_are_not_enough():
    v = wording.verdicts(convergence_data(speeds(6, 2), seeds=range(3)))
    assert claim(v, "1a") == f"not enough data (3 seeds in a case; a case needs ≥ {MIN_SEEDS})"


def test_twins_pair_only_exact_matches():
    """A run with no twin (another learning rate) is left out, not compared."""
    pr = claims.per_run(convergence_data(speeds(6, 2)))
    lonely = pr[pr["loss"] == "mse"].assign(lr=0.1, run_id=lambda d: d["run_id"] + "-lr")
    p = select.twins(pd.concat([pr, lonely], ignore_index=True), "loss", "mse", "bce")
    assert len(p) == 2 * MIN_SEEDS  # two depths x seeds; the lr=0.1 runs have no bce twin
    assert set(p["lr"]) == {BASE["lr"]}
    assert (p["run_id_a"].str.contains("mse") & p["run_id_b"].str.contains("bce")).all()
    assert (p["run_id_a"].str[-1] == p["run_id_b"].str[-1]).all()  # paired by seed


def test_verdict_per_dataset_and_where_they_disagree():
    sp = {
        **speeds(6, 2, datasets=("blobs", "digits")),
        **{("digits", l, d): (2 if l == "mse" else 6) for l in ("mse", "bce", "softmax_ce") for d in (1, 4)},
    }
    v = wording.verdicts(convergence_data(sp, datasets=("blobs", "digits")), by_dataset=True)
    one = v[v["claim"] == "1a"].set_index("dataset")["verdict"]
    assert one["blobs"] == "reproduced" and one["digits"] == "not reproduced"
    assert one["all"] == "reproduced only when dataset = blobs"
    notes = wording.disagreements(convergence_data(sp, datasets=("blobs", "digits")))
    assert len(notes) == 2 and notes[0].startswith("**Claim 1a**: the data sets disagree in 4 case(s)")
    assert "depth 1, loss bce: holds on blobs, fails on digits" in notes[0]
    assert "blobs target 0.855, steps bce 140, mse 410" in notes[0]  # the numbers behind it
    assert "not marginal" in notes[0]


# -- claims 2 and 4a --------------------------------------------------------------------------------
def vanishing_data(factor: dict, depths=(1, 3, 6), diverged=()):
    """Per-layer gradients shrinking by ``factor[activation]`` per layer toward the input; the
    runs ``diverged`` diverge (after their last logged step)."""
    runs, curves, profiles = [], {}, {}
    for act in factor:
        for depth in depths:
            for seed in SEEDS:
                rid = f"{act}-{depth}-{seed}"
                runs.append(
                    {
                        "run_id": rid,
                        "activation": act,
                        "depth": depth,
                        "seed": seed,
                        "status": "diverged" if rid in diverged else "ok",
                    }
                )
                curves[rid] = accuracy_curve(2)
                g = (factor[act] * (1 + 0.01 * seed)) ** np.arange(depth, -1, -1.0)  # layer 1 .. L = depth + 1
                profiles[rid] = {0: g, LOG_EVERY * 29: g}
    return make_results(runs, curves, profiles)


def test_vanishing_ratio_and_verdicts():
    res = vanishing_data({"sigmoid": 0.2, "relu": 0.9})
    van = summaries.claim_vanishing(res)
    sig0 = van[(van["activation"] == "sigmoid") & (van["phase"] == "initialisation")].set_index("depth")
    assert sig0.loc[3, "median"] == pytest.approx((0.2 * 1.02) ** 3)
    assert sig0.loc[6, "per_layer"] == pytest.approx(0.2 * 1.02)
    v = wording.verdicts(res)
    assert claim(v, "2") == "reproduced only when depth ≥ 3"  # 0.2 > 0.1 at depth 1
    assert claim(v, "4a") == "reproduced"

    v = wording.verdicts(vanishing_data({"sigmoid": 0.9, "relu": 0.2}))
    assert claim(v, "2") == "not reproduced"
    assert claim(v, "4a") == "not reproduced"


def test_after_training_ratio_is_read_from_ok_runs_only():
    """A diverged run has a ratio at initialisation, none after training."""
    res = vanishing_data({"sigmoid": 0.2}, diverged={"sigmoid-3-0"})
    ratios = measures.gradient_ratios(res.layers).set_index(["phase", "run_id"])["ratio"]
    assert ratios[("initialisation", "sigmoid-3-0")] == pytest.approx(0.2**3)
    assert ("after training", "sigmoid-3-0") not in ratios.index
    assert ratios[("after training", "sigmoid-3-1")] == pytest.approx((0.2 * 1.01) ** 3)
    van = summaries.claim_vanishing(res).set_index(["phase", "depth"])["n"]
    assert (van[("initialisation", 3)], van[("after training", 3)], van[("after training", 6)]) == (
        MIN_SEEDS,
        MIN_SEEDS - 1,
        MIN_SEEDS,
    )


def mean_field_ratio(activation: str, sigma_w: float, sigma_b: float, depth: int) -> float:
    """∏ √χ^l over the hidden layers, χ^l = σ_w² E[φ'(√q^l z)²], q^1 = σ_w² + σ_b² (an input of
    mean square 1), q^(l+1) = σ_w² E[φ(√q^l z)²] + σ_b², by adaptive quadrature (scipy)."""
    from scipy import integrate

    phi, dphi = {
        "sigmoid": (lambda u: 1 / (1 + math.exp(-u)), lambda u: math.exp(-u) / (1 + math.exp(-u)) ** 2),
        "tanh": (math.tanh, lambda u: 1 - math.tanh(u) ** 2),
    }[activation]

    def mean(f, q):
        return integrate.quad(
            lambda z: f(math.sqrt(q) * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
            -40,
            40,
            limit=200,
            epsabs=1e-13,
        )[0]

    q, ratio = sigma_w**2 + sigma_b**2, 1.0
    for _ in range(depth):
        ratio *= math.sqrt(sigma_w**2 * mean(lambda u: dphi(u) ** 2, q))
        q = sigma_w**2 * mean(lambda u: phi(u) ** 2, q) + sigma_b**2
    return ratio


@pytest.mark.parametrize(
    "activation, sigma_w, sigma_b, depth, expected",
    [
        ("sigmoid", 1.0, 1.0, 6, None),
        ("sigmoid", 2.0, 0.5, 3, None),
        ("tanh", 1.5, 0.5, 4, None),
        ("relu", 2.0, 1.0, 4, 4.0),  # χ = σ_w²/2 = 2 at every layer: √2⁴
        ("relu", 1.0, 0.0, 5, 2**-2.5),
    ],
)
def test_vanishing_prediction_from_theory(activation, sigma_w, sigma_b, depth, expected):
    expected = mean_field_ratio(activation, sigma_w, sigma_b, depth) if expected is None else expected
    got = measures.predicted_ratio(activation, "normal", sigma_w, sigma_b, 32, depth)
    assert got == pytest.approx(expected, rel=1e-6), (activation, sigma_w, sigma_b, depth)


def test_vanishing_table_predicts_each_depth():
    van = summaries.claim_vanishing(vanishing_data({"sigmoid": 0.2}))
    pred = van[van["phase"] == "initialisation"].set_index("depth")
    for depth in (1, 3, 6):
        p = mean_field_ratio("sigmoid", 1.0, 1.0, depth)
        assert pred.loc[depth, "predicted"] == pytest.approx(p, rel=1e-6), depth
        assert pred.loc[depth, "predicted_per_layer"] == pytest.approx(p ** (1 / depth), rel=1e-6), depth


# -- claims 3 and 4b --------------------------------------------------------------------------------
def exploding_data(clipped_diverges: bool, unclipped_diverges: bool = True, sigma_w: float = 2.0):
    """relu, σ_w = 2 (√χ1 = √2 > 1), depth 4: gradients growing 1.4× per layer toward the input;
    unclipped and norm-clipped twins; plus a σ_w = 1 setting without a clipped twin."""
    runs, curves, profiles = [], {}, {}
    for sw, clips in ((sigma_w, ("none", "norm")), (1.0, ("none",))):
        for clip in clips:
            for seed in SEEDS:
                rid = f"{sw}-{clip}-{seed}"
                diverged = (clip == "none" and unclipped_diverges or clip == "norm" and clipped_diverges) and sw > 1
                runs.append(
                    {
                        "run_id": rid,
                        "activation": "relu",
                        "depth": 4,
                        "loss": "softmax_ce",
                        "seed": seed,
                        "sigma_w": sw,
                        "clip": clip,
                        "status": "diverged" if diverged else "ok",
                        "diverged_step": 20.0 if diverged else math.nan,
                        "final_loss": math.nan if diverged else 0.2 + 0.01 * seed + 0.1 * (clip == "none"),
                    }
                )
                curves[rid] = accuracy_curve(2, n=3)
                profiles[rid] = {0: (1.4 if sw > 1 else 0.9) ** np.arange(4, -1, -1.0)}
    return make_results(runs, curves, profiles)


def test_exploding_and_clipping_verdicts_follow_the_data():
    v = wording.verdicts(exploding_data(clipped_diverges=False))
    assert claim(v, "3") == "reproduced"  # ratio 1.4^4 > 1 in the one setting with √χ1 > 1
    assert claim(v, "4b") == "reproduced"
    # divergence counted over the exploding setting only (not the σ_w = 1 runs), and where it happened
    assert f"clip=none: {MIN_SEEDS}/{MIN_SEEDS} runs diverged, non-finite at step 20 (median)" in evidence(v, "4b")
    assert f"clip=norm: 0/{MIN_SEEDS} runs diverged" in evidence(v, "4b")
    assert (
        claim(wording.verdicts(exploding_data(clipped_diverges=True, unclipped_diverges=False)), "4b")
        == "not reproduced"
    )
    # both ok: the clipped runs end at a lower training loss
    assert (
        claim(wording.verdicts(exploding_data(clipped_diverges=False, unclipped_diverges=False)), "4b") == "reproduced"
    )
    # both diverge: no effect either way
    assert claim(wording.verdicts(exploding_data(clipped_diverges=True)), "4b").startswith("not enough data")


def test_exploding_is_not_tested_where_nothing_can_explode():
    v = wording.verdicts(vanishing_data({"sigmoid": 0.2}))
    assert claim(v, "3").startswith("not tested (no setting has a per-layer factor above 1")
    assert claim(v, "4b").startswith("not tested")
    assert summaries.claim_exploding(vanishing_data({"sigmoid": 0.2}))["exploding"].sum() == 0


def test_a_setting_that_grows_without_diverging_counts_as_exploding():
    """The mechanism, not the divergence: √χ1 > 1 and a gradient growing toward the input make
    an exploding setting even when no run goes non-finite; √χ1 < 1 does not."""
    res = exploding_data(clipped_diverges=False, unclipped_diverges=False)
    t = summaries.claim_exploding(res)
    hot, cold = t[t["exploding"]], t[~t["exploding"]]
    assert len(hot) == 2 and (hot["n_diverged"] == 0).all() and (hot["ratio_step0"] > 1).all()
    assert len(cold) == 1 and (cold["factor"] < 1).all() and (cold["ratio_step0"] < 1).all()
    assert claim(wording.verdicts(res), "3") == "reproduced"


def test_claim_exploding_table_names_the_activation_and_the_factor():
    t = summaries.claim_exploding(exploding_data(clipped_diverges=False))
    hot = t[t["exploding"]]
    assert set(hot["clip"]) == {"none", "norm"} and set(hot["activation"]) == {"relu"}
    assert hot["factor"].iloc[0] == pytest.approx(math.sqrt(2), rel=1e-6)  # relu: χ1 = σ_w²/2
    assert hot.set_index("clip").loc["none", "n_diverged"] == MIN_SEEDS


def test_missing_data_gives_not_tested():
    res = convergence_data(speeds(3, 3))
    only_mse = res.runs[res.runs["loss"] == "mse"]
    from mlplab.results import Results

    v = wording.verdicts(
        Results(
            only_mse, res.steps[res.steps["run_id"].isin(only_mse["run_id"])], res.layers, res.path, for_analysis=True
        )
    )
    assert list(v["claim"]) == ["1a", "1b", "2", "3", "4a", "4b"]
    # each names what its claim would need: an mse run without its cross-entropy twin, no
    # gradient norms, no relu, no exploding setting
    needs = {
        "1a": "differ only in loss (mse against bce or softmax_ce)",
        "1b": "differ only in loss (mse against bce or softmax_ce)",
        "2": "sigmoid network with a hidden layer",
        "3": "no setting has a per-layer factor above 1",
        "4a": "no relu run with a sigmoid twin",
        "4b": "no setting with √χ1 > 1 has runs with and without norm clipping",
    }
    for cid, verdict in zip(v["claim"], v["verdict"]):
        assert verdict.startswith("not tested (") and needs[cid] in verdict, (cid, verdict)
    assert (v["n_cases"] == 0).all() and v["evidence"].str.endswith("no case").all()


# -- the blog table's claim rows ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "slow, verdict, counts",
    [
        ({("bce", 4), ("softmax_ce", 4)}, "reproduced only when depth = 1", (2, 2)),
        ({("bce", 1), ("softmax_ce", 1)}, "reproduced only when depth = 4", (2, 2)),
        ({("bce", 4)}, None, (3, 1)),
        ({("bce", 1), ("softmax_ce", 1), ("softmax_ce", 4)}, None, (1, 3)),
    ],
)
def test_blog_table_claim_rows_count_the_cases_that_hold_and_fail(slow, verdict, counts):
    """Claim 1a where cross-entropy is slower than MSE in the ``slow`` (loss, depth) cases:
    the table's counts and range are those of the four cases' effects, computed here from the
    curves."""
    sp = {**speeds(6, 2), **{("blobs", ce, d): 8 for ce, d in slow}}
    rows = table.claim_rows(convergence_data(sp)).set_index("item")
    effects = {(ce, d): np.median(mse_over_ce(sp, d, ce)) for d in (1, 4) for ce in ("bce", "softmax_ce")}
    assert {k for k, e in effects.items() if e < 0} == slow, effects
    r = rows.loc["1a"]
    assert r["verdict"] == verdict if verdict else r["verdict"].startswith("reproduced only when "), r["verdict"]
    assert (r["n_cases"], r["n_holds"], r["n_fails"], r["n_undecided"], r["min_seeds"]) == (4, *counts, 0, MIN_SEEDS)
    assert r["effect_min"] == pytest.approx(min(effects.values())) and r["effect_max"] == pytest.approx(
        max(effects.values())
    )
    assert (
        list(rows.index) == ["1a", "1b", "2", "3", "4a", "4b"]
        and (rows["post_says"] == [wording.POST[c] for c in rows.index]).all()
    )
    assert rows.loc["2", "n_cases"] == 0 and rows.loc["2", "verdict"] == f"not tested ({wording.UNTESTED['2']})"


# -- a real sweep -----------------------------------------------------------------------------------
def test_verdicts_on_a_tiny_real_sweep(tmp_path):
    root = tmp_path / "sweep"
    for loss in ("mse", "softmax_ce"):
        for seed in (0, 1):
            mlplab.run(mlplab.RunSpec(depth=3, width=8, loss=loss, seed=seed, epochs=2, n_samples=200), root, sweep="x")
    for res in (load(root), load(mlplab.load_results(root)), load(mlplab.load_results(root, join=False))):
        assert {"train_loss", "loss", "activation"} <= set(res.steps.columns)
        assert set(res.steps["loss"]) == {"mse", "softmax_ce"}
    v = wording.verdicts(root)
    assert list(v["claim"]) == ["1a", "1b", "2", "3", "4a", "4b"]
    two = f"not enough data (2 seeds in a case; a case needs ≥ {MIN_SEEDS})"  # two seeds never decide
    for cid in ("1a", "1b"):  # whether a pair reaches its target depends on the training
        assert claim(v, cid) in (two, f"not tested ({wording.UNTESTED[cid]})"), claim(v, cid)
    assert claim(v, "2") == two
    for cid in ("3", "4a", "4b"):  # sigmoid at σ_w = 1 cannot explode; no relu, no clipping
        assert claim(v, cid) == f"not tested ({wording.UNTESTED[cid]})", cid
    # the first-to-last ratios, from the layers table: the median over the four runs per phase
    raw = mlplab.load_results(root, join=False)
    lay = raw.layers
    phases = {"initialisation": lay[lay["step"] == 0], "after training": lay[lay["step"] == lay["step"].max()]}
    van = summaries.claim_vanishing(root).set_index("phase")
    for phase, d in phases.items():
        d = d.set_index(["run_id", "layer"])["grad_b_norm"].unstack()
        ratio = d[1] / d[4]  # depth 3: layer 4 is the output layer
        assert len(ratio) == 4 and van.loc[phase, "n"] == 4
        assert van.loc[phase, "median"] == pytest.approx(ratio.median(), rel=1e-12), phase
        assert ratio.median() < 1  # sigmoid at σ_w = 1: the first layer is slower than the last

"""Claims and verdicts of mlplab.analysis.claims on synthetic tables (and on a tiny real sweep)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlplab
from mlplab.analysis import claims, load
from mlplab.results import Results

BASE = {"residual": False, "norm": "none", "init": "normal", "sigma_w": 1.0, "sigma_b": 1.0, "lr": 0.5, "width": 32, "clip": "none", "clip_threshold": 1.0, "status": "ok", "final_test_accuracy": 0.9}


def make_results(runs: list[dict], curves: dict, profiles: dict) -> Results:
    """Synthetic Results: ``curves[run_id]`` = (train_loss, test_accuracy) arrays over steps
    0, 10, 20...; ``profiles[run_id]`` = {step: grad_b_norm per layer 1..L}."""
    r = pd.DataFrame([{**BASE, "final_loss": 0.1, **x} for x in runs])
    cfg = r.drop(columns=["final_loss"])
    steps, layers = [], []
    for rid, (loss, acc) in curves.items():
        n = len(loss)
        steps.append(pd.DataFrame({"run_id": rid, "step": np.arange(n) * 10, "train_loss": loss, "test_accuracy": acc, "grad_norm": 1.0}))
    for rid, prof in profiles.items():
        for step, g in prof.items():
            layers.append(pd.DataFrame({"run_id": rid, "step": step, "layer": np.arange(1, len(g) + 1), "grad_b_norm": g}))
    st = pd.concat(steps, ignore_index=True).merge(cfg, on="run_id")
    lay = pd.concat(layers, ignore_index=True).merge(cfg, on="run_id") if layers else pd.DataFrame(columns=["step", "layer", "grad_b_norm"] + list(cfg.columns))
    return Results(r, st, lay, Path("synthetic"), for_analysis=True)


def convergence_data(speed: dict, depths=(1, 4), seeds=(0, 1, 2)) -> Results:
    """Sigmoid runs whose training loss halves every ``speed[(loss, depth)]`` logged steps."""
    runs, curves = [], {}
    for depth in depths:
        for loss in ("mse", "bce", "softmax_ce"):
            for seed in seeds:
                rid = f"{loss}-{depth}-{seed}"
                runs.append({"run_id": rid, "activation": "sigmoid", "depth": depth, "loss": loss, "seed": seed})
                k = np.arange(30)
                curves[rid] = (2.0 ** (-k / speed[(loss, depth)]), np.minimum(0.3 + k / speed[(loss, depth)] * 0.3, 0.95))
    return make_results(runs, curves, {})


def claim(v: pd.DataFrame, cid: str) -> str:
    return v.set_index("claim").loc[cid, "verdict"]


# -- the verdict function -----------------------------------------------------------------------
def test_verdict_all_none_some_and_undecided():
    cases = pd.DataFrame({"depth": [1, 2, 4, 8], "holds": [True, True, True, True]})
    assert claims.verdict(cases, ["depth"]) == "reproduced"
    assert claims.verdict(cases.assign(holds=False), ["depth"]) == "not reproduced"
    assert claims.verdict(cases.assign(holds=[True, True, False, False]), ["depth"]) == "reproduced only when depth ≤ 2"
    assert claims.verdict(cases.assign(holds=[False, False, True, True]), ["depth"]) == "reproduced only when depth ≥ 4"
    # undecided cases are left out: here only depth 1 is decided
    assert claims.verdict(cases.assign(holds=[True, None, None, None]), ["depth"]) == "reproduced (undecided when depth ≥ 2)"
    assert claims.verdict(cases.assign(holds=None), ["depth"]) == claims.NOT_ENOUGH
    assert claims.verdict(pd.DataFrame(), []) == claims.NOT_ENOUGH


def test_verdict_names_the_conditions_across_two_columns():
    cases = pd.DataFrame({"phase": ["a", "a", "b", "b"], "depth": [1, 8, 1, 8], "holds": [True, True, False, True]})
    assert claims.verdict(cases, ["phase", "depth"]) == "reproduced only when phase = a; or phase = b and depth = 8"


# -- claim 1 ----------------------------------------------------------------------------------------
def test_convergence_verdict_follows_the_data():
    fast_ce = {(l, d): (6 if l == "mse" else 2) for l in ("mse", "bce", "softmax_ce") for d in (1, 4)}
    v = claims.verdicts(convergence_data(fast_ce))
    assert claim(v, "1a") == "reproduced"
    assert claim(v, "1b") == "reproduced"
    assert "depth 1: mse 60, bce 20, softmax_ce 20" in v.set_index("claim").loc["1a", "evidence"]

    fast_mse = {(l, d): (2 if l == "mse" else 6) for l in ("mse", "bce", "softmax_ce") for d in (1, 4)}
    assert claim(claims.verdicts(convergence_data(fast_mse)), "1a") == "not reproduced"

    mixed = {**fast_ce, ("bce", 4): 8, ("softmax_ce", 4): 8}
    assert claim(claims.verdicts(convergence_data(mixed)), "1a") == "reproduced only when depth = 1"


def test_steps_to_target_is_inf_when_never_reached():
    res = convergence_data({(l, d): 3 for l in ("mse", "bce", "softmax_ce") for d in (1,)}, depths=(1,))
    st = res.steps.copy()
    st.loc[st["run_id"] == "mse-1-0", "train_loss"] = 1.0  # flat: never halves
    reach = claims.steps_to_target(st, 0.5, 0.9).set_index("run_id")
    assert math.isinf(reach.loc["mse-1-0", "steps_loss"])
    assert reach.loc["bce-1-0", "steps_loss"] == 30  # 2^(-k/3) <= 1/2 first at k = 3, step 30
    conv = claims.claim_convergence(Results(res.runs, st, res.layers, res.path, for_analysis=True))
    row = conv[(conv["target"] == "train loss") & (conv["loss"] == "mse")].iloc[0]
    assert (row["n"], row["n_reached"]) == (3, 2)


# -- claim 2 ----------------------------------------------------------------------------------------
def vanishing_data(factor: dict, depths=(1, 3, 6)) -> Results:
    """Per-layer gradients shrinking by ``factor[activation]`` per layer toward the input."""
    runs, curves, profiles = [], {}, {}
    for act in factor:
        for depth in depths:
            for seed in (0, 1):
                rid = f"{act}-{depth}-{seed}"
                runs.append({"run_id": rid, "activation": act, "depth": depth, "loss": "bce", "seed": seed})
                curves[rid] = (np.linspace(1, 0.2, 5), np.linspace(0.3, 0.9, 5))
                g = factor[act] ** np.arange(depth, -1, -1.0)  # layer 1 .. L = depth + 1
                profiles[rid] = {0: g, 40: g}
    return make_results(runs, curves, profiles)


def test_vanishing_ratio_and_verdicts():
    res = vanishing_data({"sigmoid": 0.2, "relu": 0.9})
    van = claims.claim_vanishing(res)
    sig0 = van[(van["activation"] == "sigmoid") & (van["phase"] == "initialisation")].set_index("depth")
    assert sig0.loc[3, "median"] == pytest.approx(0.2**3)
    assert sig0.loc[6, "per_layer"] == pytest.approx(0.2)
    v = claims.verdicts(res)
    assert claim(v, "2") == "reproduced only when depth ≥ 3"  # 0.2 > 0.1 at depth 1
    assert claim(v, "4a") == "reproduced"

    v = claims.verdicts(vanishing_data({"sigmoid": 0.9, "relu": 0.2}))
    assert claim(v, "2") == "not reproduced"
    assert claim(v, "4a") == "not reproduced"


def test_vanishing_prediction_from_theory_when_available():
    pytest.importorskip("mlplab.theory")
    van = claims.claim_vanishing(vanishing_data({"sigmoid": 0.2}))
    pred = van.set_index(["phase", "depth"]).loc[("initialisation", 6), "predicted"]
    assert 1e-6 < pred < 1e-2  # sigmoid, σ_w = σ_b = 1: about 0.2 per layer


# -- claims 3 and 4b ---------------------------------------------------------------------------------
def exploding_data(norm_diverges: bool) -> Results:
    runs, curves, profiles = [], {}, {}
    for clip in ("none", "norm"):
        for seed in (0, 1, 2):
            rid = f"{clip}-{seed}"
            diverged = clip == "none" or norm_diverges
            runs.append({"run_id": rid, "activation": "relu", "depth": 4, "loss": "softmax_ce", "seed": seed, "sigma_w": 2.0,
                         "clip": clip, "status": "diverged" if diverged else "ok", "final_loss": math.nan if diverged else 0.2})
            curves[rid] = (np.array([1.0, 0.5]), np.array([0.3, 0.6]))
            profiles[rid] = {0: 1.4 ** np.arange(4, -1, -1.0)}
    return make_results(runs, curves, profiles)


def test_clipping_verdict_follows_divergence():
    v = claims.verdicts(exploding_data(norm_diverges=False))
    assert claim(v, "3") == "reproduced"  # ratio 1.4^4 > 1
    assert claim(v, "4b") == "reproduced"
    assert "clip=none: 3/3 runs diverge" in v.set_index("claim").loc["4b", "evidence"]
    assert claim(claims.verdicts(exploding_data(norm_diverges=True)), "4b") == "not reproduced"


def test_missing_data_gives_not_enough_data():
    # only mse runs, no relu, nothing explodes: no error, and the claims that need more say so
    res = convergence_data({(l, d): 3 for l in ("mse", "bce", "softmax_ce") for d in (1, 4)})
    runs = res.runs[res.runs["loss"] == "mse"]
    only_mse = Results(runs, res.steps[res.steps["run_id"].isin(runs["run_id"])], res.layers, res.path, for_analysis=True)
    v = claims.verdicts(only_mse)
    assert list(v["claim"]) == ["1a", "1b", "2", "3", "4a", "4b"]
    assert set(v["verdict"]) == {claims.NOT_ENOUGH}


def test_verdicts_on_a_tiny_real_sweep(tmp_path):
    root = tmp_path / "sweep"
    for loss in ("mse", "softmax_ce"):
        for seed in (0, 1):
            mlplab.run(mlplab.RunSpec(depth=3, width=8, loss=loss, seed=seed, epochs=2, n_samples=200), root, sweep="x")
    for res in (load(root), load(mlplab.load_results(root)), load(mlplab.load_results(root, join=False))):
        assert {"train_loss", "loss", "activation"} <= set(res.steps.columns)
        assert res.steps["train_loss"].dtype.kind == "f"
        assert set(res.steps["loss"]) == {"mse", "softmax_ce"}
    v = claims.verdicts(root)
    assert len(v) == 6 and v["verdict"].str.len().gt(0).all()
    van = claims.claim_vanishing(root)
    assert (van["median"] < 1).all()  # sigmoid at σ_w = 1: the first layer is slower than the last

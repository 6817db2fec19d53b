"""The edge-of-chaos study: the correlation map and depth scales of mlplab.theory against
independent computations, the analysis on a tiny real sweep, its figures, report section,
command line, and the two sweep files."""

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import mlplab
from mlplab import theory
from mlplab.activations import get_activation
from mlplab.analysis import load, report
from mlplab.analysis.__main__ import main as analysis
from mlplab.analysis.plots import MIN_TEXT_PX, text_px_in_report
from mlplab.analysis.studies import chaos
from mlplab.analysis.studies.chaos import sections
from mlplab.cli import CONF_DIR
from mlplab.config import to_spec
from mlplab.train import prepare

SB2 = 0.05  # the bias variance of the paper's trainability figure
SB = math.sqrt(SB2)

# an independent reference: a fine trapezoid grid on the standard normal density
U = np.linspace(-30.0, 30.0, 60_001)
PDF = np.exp(-0.5 * U * U) / math.sqrt(2.0 * math.pi)


def trapezoid(f, q):
    """E_z[f(√q z)] on the trapezoid grid."""
    return float(np.trapezoid(f(math.sqrt(q) * U) * PDF, U))


def reference_chi1_tanh(sigma_w2, sigma_b2):
    """χ1 of tanh from a fixed-point iteration of the length map on the trapezoid grid."""
    q = 1.0
    for _ in range(5000):
        q_new = sigma_w2 * trapezoid(lambda u: np.tanh(u) ** 2, q) + sigma_b2
        if abs(q_new - q) < 1e-13:
            break
        q = q_new
    return sigma_w2 * trapezoid(lambda u: 1.0 / np.cosh(u) ** 4, q)


# -- theory: quadrature ---------------------------------------------------------------------------
@pytest.mark.parametrize("q", [0.3, 1.0, 2.5, 9.0])
def test_gaussian_nodes_are_the_rule_of_gaussian_expectation(q):
    u, w = theory.gaussian_nodes(q)
    f = lambda x: np.tanh(x) ** 2 + 0.1 * x  # noqa: E731
    assert float(w @ f(u)) == pytest.approx(theory.gaussian_expectation(f, q), rel=1e-13)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("q,c", [(0.5, 0.3), (2.0, 0.8), (3.0, -0.4), (1.2, 0.97)])
def test_two_point_expectation_against_monte_carlo(q, c):
    rng = np.random.default_rng(12)
    z1, z2 = rng.standard_normal((2, 400_000))
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
    for f in (lambda a, b: np.tanh(a) * np.tanh(b), lambda a, b: (1 - np.tanh(a) ** 2) * (1 - np.tanh(b) ** 2)):
        samples = f(u1, u2)
        se = samples.std() / math.sqrt(len(samples))
        assert abs(theory.gaussian_expectation2(f, q, c) - samples.mean()) < 4 * se


def test_two_point_expectation_limits():
    sig = get_activation("sigmoid").fn
    # c = 0: independent, E[σ(u1) σ(u2)] = E[σ(u)]² = 1/4 (σ(u) − 1/2 is odd)
    assert theory.gaussian_expectation2(lambda a, b: sig(a) * sig(b), 2.0, 0.0) == pytest.approx(0.25, abs=1e-12)
    # c = 1: u2 = u1
    for q in (0.4, 3.0):
        one = theory.gaussian_expectation(lambda u: np.tanh(u) ** 2, q)
        assert theory.gaussian_expectation2(lambda a, b: np.tanh(a) * np.tanh(b), q, 1.0) == pytest.approx(
            one, rel=1e-12
        )


# -- theory: the correlation map ------------------------------------------------------------------
@pytest.mark.parametrize("sigma_w2", [1.0, 2.5, 4.0])
def test_correlation_map_fixes_one_and_its_slope_is_chi(sigma_w2):
    sw = math.sqrt(sigma_w2)
    assert theory.correlation_map(1.0, "tanh", sw, SB) == pytest.approx(1.0, abs=1e-9)
    assert theory.chi_c(1.0, "tanh", sw, SB) == pytest.approx(theory.chi1("tanh", sw, SB), rel=1e-10)
    # Price's theorem: dc'/dc = σ_w² E[φ'(u1) φ'(u2)], against a central difference
    h = 1e-4
    slope = (theory.correlation_map(0.5 + h, "tanh", sw, SB) - theory.correlation_map(0.5 - h, "tanh", sw, SB)) / (
        2 * h
    )
    assert theory.chi_c(0.5, "tanh", sw, SB) == pytest.approx(slope, rel=1e-6)


def test_critical_line_of_tanh():
    """σ_b = 0: the edge of chaos is σ_w² = 1; σ_b² = 0.05: about 1.76 (Schoenholz et al.), where
    an independent trapezoid χ1 crosses 1 too."""
    assert theory.critical_sigma_w("tanh", 0.0) ** 2 == pytest.approx(1.0, abs=1e-9)
    assert theory.chi1("tanh", 0.999, 0.0) < 1 < theory.chi1("tanh", 1.001, 0.0)
    crit = theory.critical_sigma_w("tanh", SB) ** 2
    assert crit == pytest.approx(1.76, abs=0.01)
    assert reference_chi1_tanh(crit - 1e-4, SB2) < 1 < reference_chi1_tanh(crit + 1e-4, SB2)


@pytest.mark.parametrize("sigma_w2,sigma_b2", [(0.8, 0.0), (1.3, 0.1), (3.0, 0.05)])
def test_chi1_against_the_trapezoid_reference(sigma_w2, sigma_b2):
    assert theory.chi1("tanh", math.sqrt(sigma_w2), math.sqrt(sigma_b2)) == pytest.approx(
        reference_chi1_tanh(sigma_w2, sigma_b2), rel=1e-7
    )


def test_c_star_is_where_iterating_the_map_goes():
    assert theory.c_star("tanh", 1.0, SB) == 1.0  # ordered: every pair of inputs ends up identical
    sw = math.sqrt(2.5)
    c, q = 0.3, theory.q_star("tanh", sw, SB)
    for _ in range(400):  # the definition: iterate the map (at q*, which each call would compute again)
        c = theory.correlation_map(c, "tanh", sw, SB, q=q)
    assert theory.c_star("tanh", sw, SB) == pytest.approx(c, abs=1e-8)
    assert 0.2 < c < 0.8
    # odd φ, no bias: c = 0 is the stable point. The map at 0 is a quadrature sum over nodes
    # symmetric about 0 that cancels to 0 or to a residue of ~1e-33 of either sign, as the order
    # of the BLAS sum decides; on a positive residue the bisection runs, and it stops within its
    # tolerance (1e-12) of the root (the residue / (1 − slope 0.955), ~1e-32)
    assert 0.0 <= theory.c_star("tanh", math.sqrt(2.0), 0.0) <= 1e-12


@pytest.mark.parametrize("sigma_w2", [2.5, 4.0])
def test_c_star_against_wide_random_networks(sigma_w2):
    """Pairs of inputs through 400-wide, 80-deep tanh nets, one pair starting above c* (c = 0.9)
    and one below (independent inputs): over layers 50–80 their pre-activations' correlation
    sits at c* (4 nets; the distance to c* has shrunk by e^(−50/ξ_c) < 1/50 by then)."""
    sw, width, depth = math.sqrt(sigma_w2), 400, 80
    assert 50 / theory.xi_c("tanh", sw, SB) > math.log(50)
    means = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((3, width))
        x[1] = 0.9 * x[0] + math.sqrt(1 - 0.81) * x[1]
        a, corr = x, []
        for l in range(depth):
            W = rng.standard_normal((width, width)) * (sw / math.sqrt(width))
            z = a @ W.T + rng.standard_normal(width) * SB
            a = np.tanh(z)
            if l >= 50:
                n = np.sqrt((z * z).sum(axis=1))
                corr += [(z[0] @ z[1]) / (n[0] * n[1]), (z[0] @ z[2]) / (n[0] * n[2])]
        means.append(np.mean(corr))
    assert np.mean(means) == pytest.approx(theory.c_star("tanh", sw, SB), abs=0.04)


def test_depth_scales_signs_and_divergence():
    crit = theory.critical_sigma_w("tanh", SB) ** 2
    ordered, chaotic = math.sqrt(1.2), math.sqrt(3.0)
    assert theory.xi_grad("tanh", ordered, SB) > 0 > theory.xi_grad("tanh", chaotic, SB)
    assert theory.xi_c("tanh", ordered, SB) == pytest.approx(theory.xi_grad("tanh", ordered, SB), rel=1e-12)
    assert theory.xi_c("tanh", chaotic, SB) > 0
    # ξ_c grows toward the critical line from both sides
    left = [theory.xi_c("tanh", math.sqrt(crit - d), SB) for d in (0.6, 0.2, 0.02)]
    right = [theory.xi_c("tanh", math.sqrt(crit + d), SB) for d in (1.5, 0.5, 0.05)]
    assert left == sorted(left) and right == sorted(right) and min(left[-1], right[-1]) > 50


def test_chaos_grid():
    g = theory.chaos_grid("tanh", [0.5, 1.0, 3.0], [0.0, SB2])
    assert len(g) == 6 and list(g.columns[:2]) == ["sigma_w2", "sigma_b2"]
    crit = g[(g.sigma_w2 == 1.0) & (g.sigma_b2 == 0.0)].iloc[0]  # the edge of chaos at σ_b = 0
    assert crit.chi1 == pytest.approx(1.0, abs=1e-12) and abs(crit.xi_grad) > 1e10
    # crit's χ1 is the sum of the quadrature weights, 1 to rounding (LAPACK's eigenvalues, a BLAS
    # sum): whether it is 'critical', 'ordered' or 'chaotic' is rounding's call, so it is in
    # neither phase below
    rest = g.drop(index=crit.name)
    assert list(rest.phase) == ["ordered", "ordered", "ordered", "chaotic", "chaotic"]
    o = rest[rest.phase == "ordered"]
    assert (o.c_star == 1.0).all() and np.allclose(o.xi_c, o.xi_grad)
    c = rest[rest.phase == "chaotic"]
    assert (c.c_star < 1).all() and (c.xi_grad < 0).all() and (c.xi_c > 0).all()
    assert np.allclose(g.log_chi1, np.log(g.chi1))


@pytest.mark.parametrize("sigma_w2", [1.0, 2.5])
def test_gradient_decay_of_a_wide_random_network(sigma_w2):
    """Backprop by hand through 500-wide tanh nets: ln ‖δ^l‖² changes by ln χ1 per layer."""
    sw, width, depth = math.sqrt(sigma_w2), 500, 30
    rates = []
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        a, Ws, zs = rng.standard_normal(width), [], []
        for _ in range(depth + 1):
            W = rng.standard_normal((width, width)) * (sw / math.sqrt(width))
            z = W @ a + rng.standard_normal(width) * SB
            Ws.append(W)
            zs.append(z)
            a = np.tanh(z)
        delta = rng.standard_normal(width)  # the top layer's δ: any vector independent of the weights below
        log_sq = {}
        for l in range(depth - 1, -1, -1):  # δ^l = (W^(l+1))^T δ^(l+1) ⊙ φ'(z^l)
            delta = (Ws[l + 1].T @ delta) * (1 - np.tanh(zs[l]) ** 2)
            log_sq[l] = math.log(delta @ delta)
        ls = np.arange(6, depth - 1)
        rates.append(-np.polyfit(ls, [log_sq[l] for l in ls], 1)[0])
    assert np.mean(rates) == pytest.approx(math.log(theory.chi1("tanh", sw, SB)), abs=0.03)


# -- the analysis on a tiny real sweep ------------------------------------------------------------
INIT = dict(
    depth=12,
    width=128,
    activation="tanh",
    loss="softmax_ce",
    init="normal",
    dataset="digits",
    n_samples=2,
    test_fraction=0.5,
    standardise=False,
    batch_size=1,
    epochs=1,
    log_every=1,
)
TRAIN = dict(
    width=16,
    activation="tanh",
    loss="softmax_ce",
    init="normal",
    dataset="digits",
    n_samples=300,
    standardise=False,
    batch_size=40,
    epochs=3,
    lr=0.05,
    sigma_b=SB,
)
INIT_GRID = [(sw2, sb2) for sw2 in (0.5, 4.0) for sb2 in (0.0, 0.1)]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "chaos"
    for sw2, sb2 in INIT_GRID:
        for seed in (0, 1):
            mlplab.run(
                mlplab.RunSpec(sigma_w=math.sqrt(sw2), sigma_b=math.sqrt(sb2), seed=seed, **INIT), root, sweep="chaos"
            )
    for depth in (1, 6):
        for sw2 in (1.0, 4.0):
            for seed in (0, 1):
                mlplab.run(mlplab.RunSpec(depth=depth, sigma_w=math.sqrt(sw2), seed=seed, **TRAIN), root, sweep="chaos")
    return root


def test_run_rates_are_least_squares_fits_of_the_logged_norms(sweep):
    res = load(sweep)
    rates = chaos.run_rates(res)
    assert len(rates) == len(INIT_GRID) * 2 and not rates.nonfinite.any()
    first, last = chaos.fit_layers(12)
    assert (first, last) == (chaos.SKIP_INPUT + 1, 12 - chaos.SKIP_OUTPUT)
    r = rates.iloc[0]
    lay = res.layers[(res.layers.run_id == r.run_id) & (res.layers.step == 0)].sort_values("layer")
    lay = lay[(lay.layer >= first) & (lay.layer <= last)]
    slope = np.polyfit(lay.layer, 2 * np.log(lay.grad_b_norm), 1)[0]
    assert r.rate == pytest.approx(-slope, rel=1e-12)
    # the mean-field path from the measured second layer: q2 = σ_w² E[(a^1)²] + σ_b²
    a1 = res.layers[(res.layers.run_id == r.run_id) & (res.layers.step == 0) & (res.layers.layer == 1)].iloc[0]
    assert r.q2 == pytest.approx(r.sigma_w**2 * (a1.act_mean**2 + a1.act_std**2) + r.sigma_b**2, rel=1e-6)


def test_decay_table_against_theory(sweep):
    t = chaos.decay_table(load(sweep))
    assert len(t) == len(INIT_GRID) and (t.n == 2).all()
    assert np.allclose(sorted(set(t.sigma_w2)), [0.5, 4.0]) and np.allclose(sorted(set(t.sigma_b2)), [0.0, 0.1])
    assert np.allclose(t.log_chi1, [math.log(theory.chi1("tanh", sw, sb)) for sw, sb in zip(t.sigma_w, t.sigma_b)])
    assert ((t.rate_min <= t.rate) & (t.rate <= t.rate_max)).all()
    # vanishing in the ordered corner, exploding in the chaotic one, and close to ln χ1
    assert (t[t.sigma_w2 < 1].rate < -0.4).all() and (t[t.sigma_w2 > 1].rate > 0.1).all()
    assert np.abs(t["diff"]).max() < 0.25
    assert np.allclose(t.xi_measured, -1 / t.rate) and np.allclose(t.xi_grad, -1 / t.log_chi1)


def test_trainability_table_counts_the_runs(sweep):
    res = load(sweep)
    tt = chaos.trainability_table(res)
    assert len(tt) == 4 and (tt.n == 2).all() and np.allclose(tt.sigma_b2, SB2)
    runs = res.runs[res.runs.batch_size == 40]
    for row in tt.itertuples():
        g = runs[(runs.depth == row.depth) & np.isclose(runs.sigma_w, row.sigma_w)]
        k = ((g.status == "ok") & (g.final_accuracy >= chaos.ACC_TARGET)).sum()
        assert row.n_trainable == k and row.fraction == k / 2
        assert row.xi_c == pytest.approx(theory.xi_c("tanh", row.sigma_w, SB), rel=1e-12)
        assert row.predicted == (row.depth <= chaos.TRAIN_MULTIPLE * row.xi_c)
    d = chaos.trainable_depths(tt)
    assert len(d) == 2 and set(d.deepest) <= {0, 1, 6}


@pytest.fixture(scope="module")
def command(sweep):
    """``python -m mlplab.analysis chaos <sweep>`` (its ``main``), once: (its exit code, what it
    printed, the figures it wrote as ``make_figures`` returned them to it, what it asked
    ``make_figures`` for)."""
    original, made, asked, out = chaos.make_figures, [], [], io.StringIO()

    def recorded(*args, **kwargs):
        asked.append((args, kwargs))
        made.append(original(*args, **kwargs))
        return made[-1]

    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(sections, "make_figures", recorded)
        code = analysis(["chaos", str(sweep)])
    return code, out.getvalue(), made, asked


def test_figures_are_written(sweep, command):
    (made,) = command[2]
    for name in ("chaos_heatmap", "chaos_trainability"):
        png, svg = made[name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg.read_text()[:2000]
    import matplotlib.pyplot as plt

    fig = chaos.fig_chaos_heatmap(load(sweep))
    assert fig.get_size_inches()[0] <= 10
    plt.close(fig)


original_decay = chaos.decay_table


def test_report_blocks(sweep, command, monkeypatch):
    """The report's section asks make_figures for the command's figures (the same data), and
    shows them; they are not drawn a second time here."""
    ((args, kwargs),), (made,) = command[3], command[2]

    def same_figures(res, **kw):
        assert Path(res.path) == Path(args[0].path) and kw.keys() == kwargs.keys()
        for k in kw:
            pd.testing.assert_frame_equal(kw[k], kwargs[k])
        return made

    monkeypatch.setattr(sections, "make_figures", same_figures)
    blocks = chaos.report_blocks(sweep)
    assert (blocks[0].kind, blocks[0].body) == ("h2", "Edge of chaos")
    figs = [b for b in blocks if b.kind == "figure"]
    assert len(figs) == 2 and all(b.caption for b in figs)
    assert all(Path(b.body).exists() and Path(b.body).suffix == ".png" for b in figs)
    assert all(text_px_in_report(b.body) >= MIN_TEXT_PX for b in figs)  # legible at the report's width
    assert sum(b.kind == "table" for b in blocks) == 2
    text = " ".join(" ".join(b.body) if b.kind == "list" else str(b.body) for b in blocks if b.kind in ("p", "list"))
    # the same section through the Study protocol, its runs fitted once for tables, figures, sections
    fitted = []
    monkeypatch.setattr(chaos, "decay_table", lambda res: fitted.append(res) or original_decay(res))
    monkeypatch.setattr(chaos, "make_figures", lambda res, outdir, **kw: made)
    res = load(sweep)
    assert chaos.STUDY.applies(res) and chaos.STUDY.title == blocks[0].body
    tables = chaos.STUDY.tables(res)
    assert list(tables) == ["chaos_table", "chaos_train_table"]
    for name, table in tables.items():  # what the command wrote
        pd.testing.assert_frame_equal(pd.read_csv(sweep / f"{name}.csv"), table, check_dtype=False)
    t = tables["chaos_table"]
    assert f"Over {len(t)} (σ_w², σ_b²) cells" in text
    assert "6 ξ_c" in text and "has not been checked" in text
    figs = chaos.STUDY.figures(res, sweep / "figures")
    assert figs == made
    again = chaos.STUDY.sections(res, figs)
    assert len(fitted) == 1
    assert [b.kind for b in again] == [b.kind for b in blocks]
    assert report.to_markdown(again, sweep) == report.to_markdown(blocks, sweep)  # what the report writes


def test_report_blocks_without_chaos_runs(tmp_path):
    root = tmp_path / "other"
    mlplab.run(mlplab.RunSpec(depth=2, width=8, epochs=1, n_samples=100, activation="relu"), root, sweep="other")
    assert chaos.report_blocks(root) == []
    assert not chaos.present(root)
    assert not chaos.STUDY.applies(load(root)) and chaos.STUDY.sections(load(root), {}) == []


def test_command_line(sweep, command, tmp_path):
    assert command[0] == 0
    md = (sweep / "chaos_table.md").read_text()
    assert md.startswith("# Edge of chaos") and command[1].startswith("# Edge of chaos")
    assert len(pd.read_csv(sweep / "chaos_table.csv")) == len(INIT_GRID)
    assert analysis(["chaos", str(tmp_path / "missing")]) == 2


# -- the sweep files ------------------------------------------------------------------------------
def compose_sweep(name):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[f"sweep={name}"], return_hydra_config=True)


def _values(text):
    return [float(v) for v in str(text).split(",")]


def test_chaos_sweep_composes():
    cfg = compose_sweep("chaos")
    spec = prepare(to_spec(cfg))
    assert cfg.sweep_name == "chaos" and spec.activation == "tanh" and spec.init == "normal"
    assert spec.width >= 256 and 30 <= spec.depth <= 50
    assert spec.batch_size == 1 and spec.epochs == 1 and spec.n_samples == 2  # one step, one input
    params = cfg.hydra.sweeper.params
    sw2 = np.square(_values(params["init.sigma_w"]))
    sb2 = np.square(_values(params["init.sigma_b"]))
    assert sw2.min() == pytest.approx(0.5, abs=1e-6) and sw2.max() == pytest.approx(4.0, abs=1e-6)
    assert sb2.min() == 0.0 and sb2.max() == pytest.approx(0.3, abs=1e-6)
    assert params["seed"] == "range(0,4)"


def test_chaos_train_sweep_composes():
    cfg = compose_sweep("chaos_train")
    spec = prepare(to_spec(cfg))
    assert cfg.sweep_name == "chaos" and spec.activation == "tanh" and spec.dataset == "digits"
    assert spec.sigma_b**2 == pytest.approx(SB2, abs=1e-6) and spec.n_samples == 1797  # every digit
    assert spec.epochs >= 1 and spec.batch_size != "full" and spec.log_every is not None
    params = cfg.hydra.sweeper.params
    assert len(_values(params["depth"])) >= 4 and params["seed"] == "range(0,3)"
    sw2 = np.square(_values(params["init.sigma_w"]))
    crit = theory.critical_sigma_w("tanh", SB) ** 2
    assert sw2.min() < crit < sw2.max()

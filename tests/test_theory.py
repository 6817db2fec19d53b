"""Mean-field theory: exact cases, quadrature against an independent integral, fixed points, and
the predicted per-layer shrinkage of ‖δ^l‖ against wide random networks."""

import math

import numpy as np
import pytest

from mlplab import MLP, jacobian, theory
from mlplab.activations import ACTIVATIONS, get_activation
from mlplab.init import INITS

# a fine trapezoid grid on the Gaussian density: the reference for the quadrature
U = np.linspace(-60.0, 60.0, 600_001)
PDF = np.exp(-0.5 * U * U) / math.sqrt(2.0 * math.pi)


def trapezoid_expectation(f, q):
    """E_z[f(√q z)] = ∫ f(√q u) N(u; 0, 1) du on a fine grid (independent of the module)."""
    return float(np.trapezoid(f(math.sqrt(q) * U) * PDF, U))


@pytest.mark.parametrize("sigma_b", [0.0, 0.7])
@pytest.mark.parametrize("sigma_w", [0.5, 1.0, math.sqrt(2.0), 2.0, 3.0])
def test_relu_chi1_is_half_sigma_w_squared(sigma_w, sigma_b):
    assert theory.chi1("relu", sigma_w, sigma_b) == pytest.approx(sigma_w**2 / 2, rel=1e-13)
    alpha = get_activation("leaky_relu").alpha
    assert theory.chi1("leaky_relu", sigma_w, sigma_b) == pytest.approx(sigma_w**2 * (1 + alpha**2) / 2, rel=1e-13)


def test_he_init_is_critical_for_relu():
    sw, sb = theory.effective_sigmas("he_normal", 100, 100)
    assert theory.chi1("relu", sw, sb) == pytest.approx(1.0, rel=1e-13)


def test_sigmoid_chi1_value():
    c = theory.chi1("sigmoid", 1.0, 0.0)
    assert c == pytest.approx(0.0557, abs=5e-5)
    assert 1 / math.sqrt(c) == pytest.approx(4.24, abs=0.01)  # ‖δ‖ shrinks ≈ 4.2× per layer


@pytest.mark.parametrize("q", [0.05, 0.5, 1.0, 1.7, 4.0, 20.0, 300.0])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_quadrature_matches_trapezoid(activation, q):
    act = get_activation(activation)
    for f in (lambda u: act.fn(u) ** 2, lambda u: act.grad(u) ** 2):
        assert theory.gaussian_expectation(f, q) == pytest.approx(trapezoid_expectation(f, q), rel=1e-9)
    sw, sb = 1.3, 0.4
    ref_len = sw**2 * trapezoid_expectation(lambda u: act.fn(u) ** 2, q) + sb**2
    assert theory.length_map(q, activation, sw, sb) == pytest.approx(ref_len, rel=1e-9)
    ref_chi = sw**2 * trapezoid_expectation(lambda u: act.grad(u) ** 2, q)
    assert theory.chi(q, activation, sw) == pytest.approx(ref_chi, rel=1e-9)


@pytest.mark.parametrize("q", [0.01, 1.0, 50.0])
def test_relu_length_map_is_exact(q):
    """E[relu(√q z)²] = q/2, E[leaky(√q z)²] = q(1 + α²)/2."""
    alpha = get_activation("leaky_relu").alpha
    assert theory.length_map(q, "relu", 1.5, 0.3) == pytest.approx(1.5**2 * q / 2 + 0.09, rel=1e-13)
    assert theory.length_map(q, "leaky_relu", 1.0, 0.0) == pytest.approx(q * (1 + alpha**2) / 2, rel=1e-13)


@pytest.mark.parametrize(
    "activation,sigma_w,sigma_b",
    [
        ("sigmoid", 1.0, 0.0),
        ("sigmoid", 4.0, 1.0),
        ("tanh", 1.0, 1.0),
        ("tanh", 2.5, 0.2),
        ("tanh", 1.0, 0.0),
        ("relu", 1.0, 1.0),
        ("leaky_relu", 1.2, 0.3),
    ],
)
def test_q_star_is_a_fixed_point(activation, sigma_w, sigma_b):
    q = theory.q_star(activation, sigma_w, sigma_b)
    assert math.isfinite(q) and q >= 0
    assert theory.length_map(q, activation, sigma_w, sigma_b) == pytest.approx(q, rel=1e-9, abs=1e-12)
    # reached from either side
    for q0 in (0.01, 25.0):
        assert theory.q_star(activation, sigma_w, sigma_b, q0=q0) == pytest.approx(q, rel=1e-7, abs=1e-12)
    assert theory.chi1(activation, sigma_w, sigma_b) == pytest.approx(theory.chi(q, activation, sigma_w), rel=1e-12)


def test_relu_q_star_closed_form():
    assert theory.q_star("relu", 1.0, 1.0) == pytest.approx(1.0 / (1 - 0.5), rel=1e-13)
    assert theory.q_star("relu", 1.2, 0.5) == pytest.approx(0.25 / (1 - 0.72), rel=1e-13)
    assert theory.q_star("relu", 1.6, 0.5) == math.inf  # σ_w²/2 = 1.28 > 1: lengths grow without bound
    assert theory.q_star("relu", math.sqrt(2.0), 0.0, q0=3.0) == pytest.approx(3.0)  # critical: every q is fixed


@pytest.mark.parametrize("sigma_b", [0.0, 0.7])
@pytest.mark.parametrize("sigma_w", [0.5, 0.9, 1.0, 1.5])
def test_linear_closed_forms(sigma_w, sigma_b):
    """σ(z) = z: the length map is q ↦ σ_w² q + σ_b², so q* = σ_b²/(1 − σ_w²) for σ_w < 1 (none,
    ``inf``, above; every q is fixed at σ_w = 1, σ_b = 0), and χ = σ_w² at every q."""
    assert theory.length_map(0.8, "linear", sigma_w, sigma_b) == pytest.approx(sigma_w**2 * 0.8 + sigma_b**2, rel=1e-13)
    assert theory.chi1("linear", sigma_w, sigma_b) == pytest.approx(sigma_w**2, rel=1e-13)
    q = theory.q_star("linear", sigma_w, sigma_b, q0=2.0)
    if sigma_w < 1.0:
        assert q == pytest.approx(sigma_b**2 / (1.0 - sigma_w**2), rel=1e-12, abs=1e-15)
    elif sigma_w == 1.0 and sigma_b == 0.0:
        assert q == pytest.approx(2.0)
    else:
        assert q == math.inf
    assert theory.phase(theory.chi1("linear", sigma_w, sigma_b)) == (
        "ordered" if sigma_w < 1 else "critical" if sigma_w == 1 else "chaotic"
    )


def test_linear_critical_sigma_w_is_one():
    assert theory.critical_sigma_w("linear", 0.3) == pytest.approx(1.0, abs=1e-8)


def test_tanh_critical_line():
    """tanh with σ_b = 0: q* = 0 and χ1 = σ_w² (ordered for σ_w < 1); σ_w > 1 gives q* > 0."""
    assert theory.q_star("tanh", 0.8, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert theory.chi1("tanh", 0.8, 0.0) == pytest.approx(0.64, rel=1e-12)
    assert theory.q_star("tanh", 1.5, 0.0) > 0.1
    assert theory.chi1("tanh", 1.0, 1.0) < 1 < theory.chi1("tanh", 2.5, 0.2)


def test_profile_follows_the_length_map():
    p = theory.profile("sigmoid", 1.2, 0.5, depth=5, q0=0.7)
    assert list(p.layer) == [1, 2, 3, 4, 5]
    assert p.q.iloc[0] == pytest.approx(1.2**2 * 0.7 + 0.25)
    for l in range(1, 5):
        assert p.q.iloc[l] == pytest.approx(theory.length_map(p.q.iloc[l - 1], "sigmoid", 1.2, 0.5))
    assert np.allclose(p.chi, [theory.chi(q, "sigmoid", 1.2) for q in p.q])
    assert np.allclose(p.ratio, np.sqrt(p.chi))
    assert p.rel_to_last.iloc[-1] == 1.0
    assert p.rel_to_last.iloc[0] == pytest.approx(np.prod(p.ratio.iloc[:-1]))
    assert p.q.iloc[-1] == pytest.approx(theory.q_star("sigmoid", 1.2, 0.5), rel=1e-3)


@pytest.mark.parametrize("init", sorted(INITS))
def test_effective_sigmas_match_the_initialisers(init):
    """Var W^l = σ_w²/fan_in and Var b^l = σ_b² of the draws of mlplab.init."""
    fan_in, fan_out = 300, 200
    sw, sb = theory.effective_sigmas(init, fan_in, fan_out, sigma_w=1.7, sigma_b=0.6)
    W, b = INITS[init](np.random.default_rng(7), fan_in, fan_out, 1.7, 0.6)
    assert W.var() * fan_in == pytest.approx(sw**2, rel=0.02)
    b_big = np.concatenate([INITS[init](np.random.default_rng(s), 2, 2000, 1.7, 0.6)[1] for s in range(5)])
    assert b_big.var() == pytest.approx(sb**2, rel=0.05, abs=1e-12)


def test_every_activation_has_a_chi1():
    table = theory.chi1_table(width=30)
    assert set(table.activation) == set(ACTIVATIONS)
    assert set(table.init) == set(INITS)
    assert (table.chi1 > 0).all() and np.isfinite(table.chi1).all()


# -- measured: wide random networks at initialisation ------------------------------------------
def measured_ratios(activation, sigma_w, sigma_b, width=384, depth=6, m=64, seeds=6):
    """√(mean ‖δ^l_x‖² / mean ‖δ^(l+1)_x‖²) over single samples x and seeds, hidden l = 1..depth−1.

    δ^l_x = ∂C_x/∂b^l is one sample's bias gradient (a row of Gradients.delta, up to the common
    factor 1/m). Inputs are N(0, 1) in n_0 = width dimensions, so q^0 ≈ 1.
    """
    sq = np.zeros(depth)
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        sizes = [width] * (depth + 1) + [10]
        net = MLP(sizes, activation, "mse", "normal", seed=seed, sigma_w=sigma_w, sigma_b=sigma_b)
        X = rng.standard_normal((m, width))
        Y = np.eye(10)[rng.integers(0, 10, m)]
        g = net.gradients(X, Y)
        sq += [(g.delta[l] ** 2).sum() for l in range(depth)]
    return np.sqrt(sq[:-1] / sq[1:])


@pytest.mark.parametrize(
    "activation,sigma_w,sigma_b",
    [
        ("sigmoid", 1.0, 0.0),
        ("sigmoid", 1.0, 1.0),
        ("tanh", 1.0, 0.0),
        ("tanh", 1.5, 0.5),
        ("relu", math.sqrt(2.0), 0.0),
        ("relu", 1.0, 1.0),
        ("leaky_relu", 1.2, 0.3),
    ],
)
def test_measured_layer_ratios_match_sqrt_chi(activation, sigma_w, sigma_b):
    """Tolerance: 6% per consecutive-layer ratio, 3% on average (finite width 384, 384 samples)."""
    depth = 6
    measured = measured_ratios(activation, sigma_w, sigma_b, depth=depth)
    predicted = theory.profile(activation, sigma_w, sigma_b, depth, q0=1.0).ratio.to_numpy()[:-1]
    rel = np.abs(measured / predicted - 1)
    assert rel.max() < 0.06, (measured, predicted)
    assert rel.mean() < 0.03, (measured, predicted)


# -- the spectrum of a deep linear network's Jacobian ------------------------------------------------
def test_fuss_catalan_numbers_are_the_catalan_numbers_for_one_layer_and_grow_with_depth():
    assert [theory.fuss_catalan(1, k) for k in range(7)] == [1, 1, 2, 5, 14, 42, 132]  # Catalan
    assert [theory.fuss_catalan(2, k) for k in range(5)] == [1, 1, 3, 12, 55]  # OEIS A001764
    assert [theory.fuss_catalan(L, 1) for L in range(6)] == [1] * 6  # the mean is σ_w^(2L) at any depth
    assert [theory.fuss_catalan(L, 2) for L in range(6)] == [1, 2, 3, 4, 5, 6]  # variance L σ_w^(4L)
    with pytest.raises(ValueError, match="L=-1, k=2"):
        theory.fuss_catalan(-1, 2)


@pytest.mark.parametrize("depth,sigma_w", [(1, 1.0), (3, 1.1), (6, 0.9)])
def test_a_wide_gaussian_linear_networks_jjt_moments_are_the_fuss_catalan_ones(depth, sigma_w):
    """Sampled: J = W^depth ⋯ W^1 with W ~ N(0, σ_w²/n), n = 600, eight draws; the mean of JJᵀ's
    eigenvalues within 2 % of σ_w^(2 depth), the second moment within 10 % of its wide limit (the
    finite-width gap, which grows with depth/n)."""
    rng = np.random.default_rng(depth)
    n, draws = 600, 8
    m1, m2 = [], []
    for _ in range(draws):
        J = np.eye(n)
        for _ in range(depth):
            J = rng.normal(0.0, sigma_w / np.sqrt(n), (n, n)) @ J
        lam = np.linalg.svd(J, compute_uv=False) ** 2
        m1.append(lam.mean())
        m2.append((lam**2).mean())
    want = theory.linear_jjt_moments(depth, sigma_w, "normal", k_max=2)
    assert np.mean(m1) == pytest.approx(want[0], rel=0.02)
    assert np.mean(m2) == pytest.approx(want[1], rel=0.10)
    assert want[1] / want[0] ** 2 == pytest.approx(depth + 1, rel=1e-12)  # the spread, L + 1, grows with depth


@pytest.mark.parametrize("sigma_w", [0.8, 1.0, 1.2])
def test_an_orthogonal_linear_networks_singular_values_are_all_sigma_w_to_the_depth(sigma_w, rng):
    depth, width = 5, 24
    net = MLP([width] * (depth + 1) + [3], activation="linear", init="orthogonal", sigma_w=sigma_w, seed=rng)
    J = jacobian(net, rng.normal(size=(4, width)), upto=depth)
    s2 = np.linalg.svd(J, compute_uv=False) ** 2  # per sample
    m1, m2 = theory.linear_jjt_moments(depth, sigma_w, "orthogonal")
    np.testing.assert_allclose(s2, m1, rtol=1e-12)
    assert m2 == pytest.approx(m1**2, rel=1e-15)  # no spread
    with pytest.raises(ValueError, match="init='he_normal'"):
        theory.linear_jjt_moments(depth, sigma_w, "he_normal")


# -- the spectrum of a deep nonlinear network's Jacobian: free probability -------------------------
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_mu_k_closed_forms(k):
    """μ_k = E[φ'(h)^(2k)]: ReLU 1/2 (1 at k = 0), leaky ReLU (1 + α^(2k))/2, linear 1, at any q."""
    alpha = get_activation("leaky_relu").alpha
    for q in (0.01, 1.0, 40.0):
        # to the last bit (the quadrature's sum is the BLAS's, whose order depends on the CPU's kernels)
        assert theory.mu_k("relu", q, k) == pytest.approx(1.0 if k == 0 else 0.5, rel=1e-15)
        assert theory.mu_k("leaky_relu", q, k) == pytest.approx((1 + alpha ** (2 * k)) / 2, rel=1e-14)
        assert theory.mu_k("linear", q, k) == 1.0


@pytest.mark.parametrize("q", [0.05, 1.0, 4.0, 300.0])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_mu_k_matches_trapezoid_and_chi(activation, q):
    act = get_activation(activation)
    for k in (1, 2):
        want = trapezoid_expectation(lambda u, k=k: act.grad(u) ** (2 * k), q)
        assert theory.mu_k(activation, q, k) == pytest.approx(want, rel=1e-9)
    assert 1.3**2 * theory.mu_k(activation, q, 1) == pytest.approx(theory.chi(q, activation, 1.3), rel=1e-14)
    assert theory.mu_k(activation, q, 2) < theory.mu_k(activation, q, 1)  # 0 < φ' < 1: the moments fall with k
    with pytest.raises(ValueError, match="k=-1"):
        theory.mu_k(activation, q, -1)


@pytest.mark.parametrize("q0", [None, 0.6])
@pytest.mark.parametrize("init", ["normal", "orthogonal"])
@pytest.mark.parametrize("depth,sigma_w", [(1, 1.0), (3, 1.1), (6, 0.9), (12, 1.05)])
def test_linear_jjt_moments_are_the_deep_linear_ones(depth, sigma_w, init, q0):
    """φ(z) = z: μ_k = 1, so m1 = σ_w^(2L) and var/m1² = L (Gaussian, Fuss–Catalan) or 0 (orthogonal),
    whatever q0 and σ_b."""
    got = theory.jjt_moments("linear", sigma_w, 0.4, depth, init, q0=q0)
    m1, m2 = theory.linear_jjt_moments(depth, sigma_w, init)
    assert got.m1 == pytest.approx(m1, rel=1e-12)
    assert got.m2 == pytest.approx(m2, rel=1e-12)
    assert got.var == pytest.approx(m2 - m1**2, rel=1e-12, abs=1e-12 * m1**2)
    assert got.spread == (depth if init == "normal" else 0.0)


@pytest.mark.parametrize("init", sorted(INITS))
@pytest.mark.parametrize("depth", [1, 4, 10])
def test_relu_spread_at_he_scale_is_2L_for_iid_weights_and_L_for_orthogonal(depth, init):
    """ReLU: μ1 = μ2 = 1/2 exactly, so per layer μ2/μ1² − 1 − s1 = 1 − s1: 2 for iid weights
    (s1 = −1), 1 for orthogonal (s1 = 0). At σ_w = √2 (χ1 = 1) m1 = 1 and var = spread; at any
    σ_w, m1 = (σ_w²/2)^L. These are the closed forms of Pennington et al. 2017, section 2.5, with
    p = 1/2: Gaussian m2 = m1²(1 + L/p), orthogonal σ² = L(1 − p)/p at χ = 1."""
    p = 0.5
    per_layer = 1.0 if init == "orthogonal" else 2.0
    got = theory.jjt_moments("relu", math.sqrt(2.0), 0.0, depth, init)
    assert got.m1 == pytest.approx(1.0, rel=1e-13)
    assert got.spread == pytest.approx(per_layer * depth, rel=1e-13)
    assert got.var == pytest.approx(per_layer * depth, rel=1e-12)
    paper = 1 + depth / p if init != "orthogonal" else 1 + depth * (1 - p) / p
    assert got.m2 == pytest.approx(paper, rel=1e-12)
    off = theory.jjt_moments("relu", 1.2, 0.5, depth, init, q0=2.0)  # off-critical, q^l growing: no change in μ_k
    assert off.m1 == pytest.approx(0.72**depth, rel=1e-13)
    assert off.var == pytest.approx(per_layer * depth * 0.72 ** (2 * depth), rel=1e-12)


@pytest.mark.parametrize("init", ["normal", "orthogonal"])
@pytest.mark.parametrize("activation,sigma_b", [("tanh", 0.3), ("sigmoid", 0.5), ("tanh", 1.0)])
def test_jjt_moments_at_the_fixed_point_and_from_an_input(activation, sigma_b, init):
    """q0=None: every layer at q*, so m1 = χ1^L and var/m1² = L (μ2/μ1² − 1 − s1). q0 given: the
    layers follow ``profile`` and approach the fixed point's per-layer factors with depth."""
    sw, depth = 1.3, 10
    fixed = theory.jjt_moments(activation, sw, sigma_b, depth, init)
    q = theory.q_star(activation, sw, sigma_b)
    mu1, mu2 = theory.mu_k(activation, q, 1), theory.mu_k(activation, q, 2)
    s1 = 0.0 if init == "orthogonal" else -1.0
    assert fixed.q == pytest.approx([q] * depth, rel=1e-12)
    assert fixed.m1 == pytest.approx(theory.chi1(activation, sw, sigma_b) ** depth, rel=1e-12)
    assert fixed.spread == pytest.approx(depth * (mu2 / mu1**2 - 1 - s1), rel=1e-12)
    assert fixed.var == pytest.approx(fixed.m1**2 * fixed.spread, rel=1e-12)
    assert fixed.m2 == pytest.approx(fixed.var + fixed.m1**2, rel=1e-14)
    walk = theory.jjt_moments(activation, sw, sigma_b, depth, init, q0=3.0)
    prof = theory.profile(activation, sw, sigma_b, depth, q0=3.0)
    assert walk.q == pytest.approx(list(prof.q), rel=1e-14)
    assert walk.m1 == pytest.approx(np.prod(prof.chi), rel=1e-12)
    assert walk.spread_per_layer[-1] == pytest.approx(fixed.spread_per_layer[0], rel=1e-2)
    assert abs(walk.spread_per_layer[0] / fixed.spread_per_layer[0] - 1) > 0.01  # the first layer is not at q* yet
    assert walk.m1 != pytest.approx(fixed.m1, rel=1e-3)


def test_jjt_moments_refuses_an_unknown_init_and_a_bad_depth():
    with pytest.raises(ValueError, match=r"init='kaiming'.*'he_normal'.*'orthogonal'"):
        theory.jjt_moments("tanh", 1.0, 0.3, 4, init="kaiming")
    with pytest.raises(ValueError, match="depth=0"):
        theory.jjt_moments("tanh", 1.0, 0.3, 0)
    assert set(theory.WEIGHT_S1) == set(INITS)  # every registered initialiser has a weight spectrum


def sampled_jjt_moments(activation, init, sigma_w, sigma_b, q0, width=400, depth=6, nets=6, m=2, seed0=2000):
    """Per sample x, the mean m1, variance and var/m1² of the eigenvalues of J Jᵀ (J's squared
    singular values, J = mlplab.jacobian to the last hidden layer) of square ``width``-wide
    networks; each x rescaled to ‖x‖²/n_0 = q0 exactly. Averaged over m samples × ``nets`` draws."""
    m1, var, spread = [], [], []
    for seed in range(nets):
        rng = np.random.default_rng(seed0 + seed)
        net = MLP([width] * (depth + 1) + [3], activation, "mse", init, seed=rng, sigma_w=sigma_w, sigma_b=sigma_b)
        X = rng.standard_normal((m, width))
        X *= np.sqrt(q0 / (X**2).mean(axis=1, keepdims=True))
        lam = np.linalg.svd(jacobian(net, X, upto=depth), compute_uv=False) ** 2  # (m, width)
        mean, v = lam.mean(axis=1), lam.var(axis=1)
        m1 += list(mean)
        var += list(v)
        spread += list(v / mean**2)
    return np.mean(m1), np.mean(var), np.mean(spread)


@pytest.mark.parametrize("init", ["normal", "orthogonal"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_sampled_wide_networks_jjt_moments_match_free_probability(activation, init):
    """Width 400, depth 6, critical σ_w at σ_b = 0.3, q0 = 1.3; 6 networks × 2 inputs.

    Tolerances, from 40 networks per case at this size: the per-network m1 scatters by ~10 % (the
    log-normal fluctuation of ‖J‖ at finite width, ~√(depth/width)) and var by ~20 %, so their
    means over 6 networks have a standard error of ~4 % and ~9 %: 15 % on m1, 30 % on var. The
    scale-free spread var/m1² scatters by only ~3 % per network and sits 0–2 % above the wide
    limit (the finite-width gap, of order depth/width = 1.5 %): 6 %. The spread still tells the
    weights apart (iid and orthogonal differ by ≥ 1.8×) and the profile from the fixed point."""
    sb, q0 = 0.3, 1.3
    sw = theory.critical_sigma_w(activation, sb)
    m1, var, spread = sampled_jjt_moments(activation, init, sw, sb, q0)
    want = theory.jjt_moments(activation, sw, sb, 6, init, q0=q0)
    assert m1 == pytest.approx(want.m1, rel=0.15)
    assert var == pytest.approx(want.var, rel=0.30)
    assert spread == pytest.approx(want.spread, rel=0.06)
    other = theory.jjt_moments(activation, sw, sb, 6, "orthogonal" if init == "normal" else "normal", q0=q0)
    assert spread != pytest.approx(other.spread, rel=0.3)


def test_jjt_density_of_a_linear_gaussian_network_is_marchenko_pastur_then_fuss_catalan():
    """Depth 1: ρ(x) = √(4u − u²)/(2πu)/σ_w², u = x/σ_w² (Marchenko–Pastur of ratio 1), away from
    the edges 0 and 4σ_w² where the Cauchy smoothing of width eps·s shows. Depth 2 and 3: the
    moments ∫ρ x^k = σ_w^(2Lk) FC_L(k), on a grid fine near the x^(−L/(L+1)) divergence at 0."""
    sw = 1.2
    x = np.linspace(0.05, 3.95, 400) * sw**2
    u = x / sw**2
    mp = np.sqrt(4 * u - u**2) / (2 * math.pi * u) / sw**2
    np.testing.assert_allclose(theory.jjt_density("linear", sw, 0.0, 1, x=x), mp, rtol=1e-8)
    sw = 1.3
    for L in (2, 3):
        top = (L + 1) ** (L + 1) / L**L * sw ** (2 * L)
        x = np.concatenate([np.geomspace(1e-9, 1e-2, 300), np.linspace(1e-2, 1.05 * top, 1500)[1:]])
        rho = theory.jjt_density("linear", sw, 0.0, L, x=x)
        for k in (1, 2, 3):
            want = sw ** (2 * L * k) * theory.fuss_catalan(L, k)
            assert np.trapezoid(rho * x**k, x) == pytest.approx(want, rel=5e-4)


@pytest.mark.parametrize("init", ["normal", "orthogonal"])
@pytest.mark.parametrize("activation,sigma_b", [("relu", 0.0), ("tanh", 0.3)])
def test_jjt_density_has_the_moments_of_jjt_moments(activation, sigma_b, init):
    """The density's first two moments (trapezoid on 400 points up to 8 m2/m1) are jjt_moments'
    to 3e-3 (measured ≤ 1.5e-3: the grid's quadrature error); it is finite and positive. 64
    quadrature nodes for the law of φ'(h)² (q* < 1: Gauss–Hermite), the same in both."""
    sw, depth, n = theory.critical_sigma_w(activation, sigma_b), 6, 64
    mom = theory.jjt_moments(activation, sw, sigma_b, depth, init, n=n)
    x = np.concatenate([np.geomspace(1e-10, 1e-2, 100), np.linspace(1e-2, 8 * mom.m2 / mom.m1, 300)[1:]])
    rho = theory.jjt_density(activation, sw, sigma_b, depth, init, x=x, n=n)
    assert np.isfinite(rho).all() and (rho > 0).all()
    assert np.trapezoid(rho * x, x) == pytest.approx(mom.m1, rel=3e-3)
    assert np.trapezoid(rho * x**2, x) == pytest.approx(mom.m2, rel=3e-3)


@pytest.mark.parametrize("init", ["normal", "orthogonal"])
def test_jjt_density_matches_the_spectrum_of_sampled_tanh_networks(init):
    """Width 400, depth 6, critical tanh (σ_b = 0.3), inputs with σ_w² q0 + σ_b² = q* so every
    layer sits at the fixed point; 4 networks × 2 inputs. The CDF of the sampled eigenvalues of
    JJᵀ against 1 − ∫_x^top ρ (from the top, away from the mass piled up near 0), on 40 points
    from 0.01 up: within 0.03 (measured 0.001–0.007 over five sets of seeds; the other init's
    density is 0.28 away)."""
    sb, depth = 0.3, 6
    sw = theory.critical_sigma_w("tanh", sb)
    q0 = (theory.q_star("tanh", sw, sb) - sb**2) / sw**2
    mom = theory.jjt_moments("tanh", sw, sb, depth, init, q0=q0)
    assert mom.q == pytest.approx([theory.q_star("tanh", sw, sb)] * depth, rel=1e-9)
    top = 8 * mom.m2 / mom.m1
    x = np.geomspace(0.01, top, 300)  # log-spaced: ρ falls steeply from the pile-up near 0
    rho = theory.jjt_density("tanh", sw, sb, depth, init, q0=q0, x=x, n=64)
    tail = np.concatenate([np.cumsum((rho[1:] + rho[:-1])[::-1] * np.diff(x)[::-1] / 2)[::-1], [0.0]])
    lam = []
    for seed in range(4):
        rng = np.random.default_rng(3000 + seed)
        net = MLP([400] * (depth + 1) + [3], "tanh", "mse", init, seed=rng, sigma_w=sw, sigma_b=sb)
        X = rng.standard_normal((2, 400))
        X *= np.sqrt(q0 / (X**2).mean(axis=1, keepdims=True))
        lam.append(np.linalg.svd(jacobian(net, X, upto=depth), compute_uv=False).ravel() ** 2)
    lam = np.concatenate(lam)
    points = x[::7][:40]
    empirical = np.array([(lam <= p).mean() for p in points])
    assert np.abs(empirical - (1.0 - np.interp(points, x, tail))).max() < 0.03

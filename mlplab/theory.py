"""Mean-field signal propagation through a wide random MLP (Poole et al. 2016; Schoenholz et al. 2017).

For W^l ~ N(0, σ_w²/n_(l-1)) and b^l ~ N(0, σ_b²), in the limit of wide layers, the
pre-activations z^l_i of one input are Gaussian with variance q^l, given by the *length map*

    q^1 = σ_w² q^0 + σ_b²,                q^0 = ‖x‖²/n_0   (the input's mean square)
    q^l = σ_w² E_z[φ(√q^(l-1) z)²] + σ_b²,                  z ~ N(0, 1),

whose fixed point q* = σ_w² E_z[φ(√q* z)²] + σ_b² the layers approach with depth. Backwards,
δ^l = (W^(l+1))^T δ^(l+1) ⊙ φ'(z^l) gives, in expectation over the weights,

    E‖δ^l‖² = χ^l E‖δ^(l+1)‖²,            χ^l = σ_w² E_z[φ'(√q^l z)²],

and at the fixed point χ1 = σ_w² E_z[φ'(√q* z)²]. χ1 < 1: ‖δ‖ shrinks by √χ1 per layer towards
the input (vanishing gradients); χ1 > 1: it grows (exploding). Examples: ReLU has χ1 = σ_w²/2
exactly (He init, σ_w² = 2: χ1 = 1); the sigmoid with σ_w = 1, σ_b = 0 has χ1 ≈ 0.0557, i.e.
‖δ‖ shrinks ≈ 4.2× per layer.

Expectations over z ~ N(0, 1) use Gauss–Hermite quadrature (probabilists' weight e^(−z²/2),
``numpy.polynomial.hermite_e``) with an even number of nodes, so z = 0 is never a node and the
kink of ReLU sits between nodes: E[1(z > 0)] = 1/2 and E[relu(z)²] = 1/2 come out exact (to the
last bit, which depends on the order in which the BLAS sums). ReLU and leaky ReLU are
positively homogeneous, so their expectations are taken at q = 1 and scaled exactly. For the
saturating sigmoid and tanh at q > 1 the transition of φ at z = 0 (width ~1/√q) is resolved by
fewer and fewer nodes (256 nodes lose ~1e−7 for tanh at q = 4, 2% for the sigmoid at q = 100), so
``gaussian_expectation`` integrates in u = √q z with a fine midpoint rule instead (agreement with
an independent trapezoid integral: ~1e−10 or better, see the tests).

The predictions are for one input x: ‖δ^l_x‖ = ‖∂C_x/∂b^l‖. The gradient of a batch-mean cost
sums δ^l_x over correlated samples, which the single-input theory does not describe exactly.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss

from mlplab.activations import ACTIVATIONS, Activation, get_activation

N_NODES = 256  # Gauss–Hermite nodes (even)
Q_TINY = 1e-300  # q = 0 is evaluated as the limit q -> 0⁺ (φ'(0) is a convention for ReLU)
Q_GH = 1.0  # above this q, expectations switch from Gauss–Hermite to a fine midpoint rule in u = √q z
H_MID = 0.125  # step of that midpoint rule


@lru_cache(maxsize=8)
def gauss_hermite(n: int = N_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z_k and weights w_k with Σ_k w_k f(z_k) ≈ E_z[f(z)], z ~ N(0, 1) (Σ_k w_k = 1)."""
    if n < 2 or n % 2:
        raise ValueError(f"n={n!r}: need an even number of nodes >= 2")
    z, w = hermegauss(n)
    z.setflags(write=False)
    w = w / math.sqrt(2.0 * math.pi)
    w.setflags(write=False)
    return z, w


def gaussian_expectation(f, q: float = 1.0, n: int = N_NODES) -> float:
    """E_z[f(√q z)], z ~ N(0, 1).

    For q <= Q_GH: n-node Gauss–Hermite quadrature, Σ_k w_k f(√q z_k). For larger q the
    transition of a saturating φ at z = 0 is O(1/√q) wide, too narrow for the nodes there, so the
    same integral is taken in u = √q z, ∫ f(u) N(u; 0, q) du, by the midpoint rule with step
    H_MID (nodes (k + ½) H_MID, never 0) out to 12√q: spectrally accurate for the analytic
    integrands of sigmoid and tanh.
    """
    q = max(float(q), Q_TINY)
    with np.errstate(over="ignore"):
        if q <= Q_GH:
            z, w = gauss_hermite(n)
            return float(w @ f(math.sqrt(q) * z))
        s = math.sqrt(q)
        k = math.ceil(12.0 * s / H_MID)
        u = (np.arange(-k, k) + 0.5) * H_MID
        p = np.exp(-0.5 * u * u / q) * (H_MID / math.sqrt(2.0 * math.pi * q))
        return float(p @ f(u))


def _act(activation: str | Activation) -> Activation:
    return get_activation(activation)


_HOMOGENEOUS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # activation -> _is_homogeneous


def _is_homogeneous(act: Activation) -> bool:
    """φ(c z) = c φ(z) for c > 0 (ReLU, leaky ReLU): then E[φ(√q z)²] = q E[φ(z)²] and
    E[φ'(√q z)²] = E[φ'(z)²], evaluated exactly at q = 1. Tested once per activation object
    (the maps ask at every layer they iterate)."""
    h = _HOMOGENEOUS.get(act)
    if h is None:
        z = np.linspace(-3.0, 3.0, 13)
        h = _HOMOGENEOUS[act] = bool(np.allclose(act.fn(2.0 * z), 2.0 * act.fn(z), rtol=1e-12, atol=1e-12))
    return h


def length_map(q: float, activation: str | Activation, sigma_w: float, sigma_b: float, n: int = N_NODES) -> float:
    """One layer of the length map: q^l = σ_w² E_z[φ(√q^(l-1) z)²] + σ_b²."""
    act = _act(activation)
    if _is_homogeneous(act):
        return sigma_w**2 * q * gaussian_expectation(lambda u: act.fn(u) ** 2, 1.0, n) + sigma_b**2
    return sigma_w**2 * gaussian_expectation(lambda u: act.fn(u) ** 2, q, n) + sigma_b**2


def chi(q: float, activation: str | Activation, sigma_w: float, n: int = N_NODES) -> float:
    """χ(q) = σ_w² E_z[φ'(√q z)²]: the factor by which E‖δ‖² shrinks through a layer whose
    pre-activations have variance q (χ1 is χ at q = q*)."""
    act = _act(activation)
    if _is_homogeneous(act):
        q = 1.0
    return sigma_w**2 * gaussian_expectation(lambda u: act.grad(u) ** 2, q, n)


def q_star(
    activation: str | Activation,
    sigma_w: float,
    sigma_b: float,
    q0: float = 1.0,
    tol: float = 1e-13,
    max_iter: int = 2000,
    n: int = N_NODES,
) -> float:
    """The fixed point q* = σ_w² E_z[φ(√q* z)²] + σ_b² of the length map, reached by iterating
    it from q0 (the layers of an infinitely deep network).

    Bounded φ (sigmoid, tanh) always have a finite q*. For positively homogeneous φ (ReLU,
    leaky ReLU with slope α) the map is linear, q ↦ c q + σ_b² with c = σ_w² E[φ(z)²]
    (= σ_w²/2 for ReLU, σ_w²(1 + α²)/2 for leaky ReLU): q* = σ_b²/(1 − c) for c < 1, ``inf`` for
    c > 1 (and for c = 1 with σ_b > 0); c = 1, σ_b = 0 keeps every q, so q* = q0.
    """
    act = _act(activation)
    if _is_homogeneous(act):
        c = length_map(1.0, act, sigma_w, 0.0, n)
        if abs(c - 1.0) < 1e-12:
            return float(q0) if sigma_b == 0 else math.inf
        return sigma_b**2 / (1.0 - c) if c < 1.0 else math.inf
    g = lambda q: length_map(q, act, sigma_w, sigma_b, n) - q  # noqa: E731
    q = float(q0)
    for _ in range(max_iter):
        q_new = length_map(q, act, sigma_w, sigma_b, n)
        if abs(q_new - q) <= tol * max(1.0, q_new):
            return q_new
        q = q_new
    # slow (algebraic) approach, e.g. tanh with σ_w = 1, σ_b = 0 where q^l ~ 1/(2l) -> 0:
    # the map is increasing, so bracket the fixed point on the side it is approached from
    if g(q) < 0:
        lo, hi = 0.0, q
        if g(lo) < 0:  # pragma: no cover - φ(0)² σ_w² + σ_b² >= 0 always
            raise RuntimeError("no fixed point below q0")
    else:
        lo, hi = q, 2.0 * q + 1.0
        while g(hi) > 0:
            lo, hi = hi, 2.0 * hi
            if hi > 1e300:
                return math.inf
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if hi - lo <= tol * max(1.0, hi) or mid in (lo, hi):
            break
        if g(mid) >= 0:
            lo = mid
        else:
            hi = mid
    return 0.0 if lo == 0.0 else 0.5 * (lo + hi)


def chi1(activation: str | Activation, sigma_w: float, sigma_b: float, n: int = N_NODES) -> float:
    """χ1 = σ_w² E_z[φ'(√q* z)²] at the fixed point q*; ‖δ^l‖/‖δ^(l+1)‖ → √χ1 with depth.

    For ReLU-like φ, χ does not depend on q, so χ1 is defined even when q* is 0 (the limit
    q → 0⁺) or infinite.
    """
    act = _act(activation)
    q = q_star(act, sigma_w, sigma_b, n=n)
    if not math.isfinite(q):
        q = 1.0  # only reached by homogeneous φ, whose χ is the same for every q > 0
    return chi(q, act, sigma_w, n)


def profile(
    activation: str | Activation,
    sigma_w: float,
    sigma_b: float,
    depth: int,
    q0: float = 1.0,
    n: int = N_NODES,
) -> pd.DataFrame:
    """The predicted per-layer profile of a network with ``depth`` hidden layers (L = depth + 1).

    One row per hidden layer l = 1..depth with
      * ``q``          q^l (q^1 = σ_w² q^0 + σ_b², then the length map);
      * ``chi``        χ^l = σ_w² E[φ'(√q^l z)²], so E‖δ^l‖² = χ^l E‖δ^(l+1)‖²;
      * ``ratio``      √χ^l, the predicted ‖δ^l‖/‖δ^(l+1)‖ (‖∂C_x/∂b^l‖/‖∂C_x/∂b^(l+1)‖);
      * ``rel_to_last``  ∏_(k=l)^(depth−1) √χ^k: predicted ‖δ^l‖/‖δ^depth‖ (1 at the last
        hidden layer); the product of all ``ratio`` is ‖δ^1‖/‖δ^L‖.
    χ^l couples layer l to W^(l+1): for l = depth that is the output layer's W^L, which has the
    same fan-in n_l, so the rule holds there too.
    """
    act = _act(activation)
    qs = [sigma_w**2 * float(q0) + sigma_b**2]
    for _ in range(1, depth):
        qs.append(length_map(qs[-1], act, sigma_w, sigma_b, n))
    chis = np.array([chi(q, act, sigma_w, n) for q in qs])
    ratio = np.sqrt(chis)
    rel = np.ones(depth)
    for l in range(depth - 2, -1, -1):
        rel[l] = rel[l + 1] * ratio[l]
    return pd.DataFrame({"layer": np.arange(1, depth + 1), "q": qs, "chi": chis, "ratio": ratio, "rel_to_last": rel})


def input_q0(X) -> float:
    """q^0 of a data set: the mean over samples of ‖x‖²/n_0."""
    X = np.asarray(X, dtype=np.float64)
    return float((X**2).mean())


# -- initialisers in the mean-field parametrisation ---------------------------------------------
def _sig_normal(fan_in, fan_out, sigma_w, sigma_b):
    return sigma_w, sigma_b


def _sig_xavier(fan_in, fan_out, sigma_w, sigma_b):
    return math.sqrt(2.0 * fan_in / (fan_in + fan_out)), 0.0


def _sig_he(fan_in, fan_out, sigma_w, sigma_b):
    return math.sqrt(2.0), 0.0


def _sig_large(fan_in, fan_out, sigma_w, sigma_b):
    return math.sqrt(fan_in), 1.0


def _sig_orthogonal(fan_in, fan_out, sigma_w, sigma_b):
    # σ_w Q: unit columns (Var = σ_w²/fan_out) when fan_out ≥ fan_in, unit rows (σ_w²/fan_in) otherwise
    return sigma_w * math.sqrt(min(1.0, fan_in / fan_out)), sigma_b


# init name -> (fan_in, fan_out, sigma_w, sigma_b) -> effective (σ_w, σ_b); only Var(W) matters
# in the mean-field limit (the uniform Xavier draw has the same variance as the normal one).
EFFECTIVE_SIGMAS = {
    "normal": _sig_normal,  # Var W = σ_w²/fan_in, Var b = σ_b²
    "xavier_uniform": _sig_xavier,  # Var W = r²/3 = 2/(fan_in + fan_out), b = 0
    "xavier_normal": _sig_xavier,  # Var W = 2/(fan_in + fan_out), b = 0
    "he_normal": _sig_he,  # Var W = 2/fan_in, b = 0
    "large": _sig_large,  # Var W = 1 = fan_in/fan_in, Var b = 1
    # Var W = σ_w²/max(fan_in, fan_out), Var b = σ_b²; the mean field sees only the variance, not
    # the orthogonality (its spectrum matters beyond the mean field: Pennington et al. 2017)
    "orthogonal": _sig_orthogonal,
}


def effective_sigmas(
    init: str, fan_in: int, fan_out: int | None = None, sigma_w: float = 1.0, sigma_b: float = 1.0
) -> tuple[float, float]:
    """The (σ_w, σ_b) with Var W = σ_w²/fan_in, Var b = σ_b² that the initialiser ``init``
    (mlplab.init) draws, for a layer of the given fans (fan_out defaults to fan_in: a hidden
    layer of constant width). ``sigma_w``, ``sigma_b`` are passed through by ``normal`` only:

    normal σ_w, σ_b;  xavier_* √(2 fan_in/(fan_in + fan_out)), 0;  he_normal √2, 0;  large √fan_in, 1;
    orthogonal σ_w √min(1, fan_in/fan_out), σ_b.
    """
    try:
        f = EFFECTIVE_SIGMAS[init]
    except KeyError:
        raise ValueError(f"init={init!r} has no mean-field mapping; choose one of {sorted(EFFECTIVE_SIGMAS)}") from None
    fan_out = fan_in if fan_out is None else fan_out
    return f(int(fan_in), int(fan_out), float(sigma_w), float(sigma_b))


def chi1_table(width: int = 32, sigma_w: float = 1.0, sigma_b: float = 1.0) -> pd.DataFrame:
    """q*, χ1 and √χ1 for every registered activation × initialiser, for hidden layers of
    ``width`` units (``sigma_w``, ``sigma_b`` are those of the ``normal`` initialiser)."""
    rows = []
    for init in EFFECTIVE_SIGMAS:
        sw, sb = effective_sigmas(init, width, width, sigma_w, sigma_b)
        for name in ACTIVATIONS:
            c = chi1(name, sw, sb)
            rows.append(
                {
                    "activation": name,
                    "init": init,
                    "sigma_w": sw,
                    "sigma_b": sb,
                    "q_star": q_star(name, sw, sb),
                    "chi1": c,
                    "ratio": math.sqrt(c),
                }
            )
    return pd.DataFrame(rows)


# -- two inputs: the correlation map and the depth scales (Schoenholz et al. 2017) -------------
#
# Two inputs x, x' give pre-activations (z_i, z'_i) that are jointly Gaussian in the wide limit,
# with variance q each and correlation c. At the fixed point q* the *correlation map* is
#
#     c^(l+1) = [σ_w² E[φ(u1) φ(u2)] + σ_b²] / q*,
#     u1 = √q* z1,  u2 = √q* (c z1 + √(1 − c²) z2),  z1, z2 ~ N(0, 1) independent,
#
# with slope dc^(l+1)/dc^l = σ_w² E[φ'(u1) φ'(u2)] (Price's theorem), which is χ1 at c = 1.
# χ1 < 1 (ordered): c = 1 is the stable fixed point, c* = 1, every pair of inputs ends up
# identical. χ1 > 1 (chaotic): c = 1 is unstable and the map has a second, stable fixed point
# c* < 1 (the map is convex on [0, 1], with c ↦ c crossed at most twice). The distance to the
# fixed point shrinks per layer by χ_c = σ_w² E[φ'(u1) φ'(u2)] at c*, i.e. as exp(−l/ξ_c) with
#
#     ξ_c = −1/ln χ_c        (= −1/ln χ1 in the ordered phase, where c* = 1),
#
# which diverges on the critical line χ1 = 1 from both sides. Backwards, E‖δ^l‖² = χ1 E‖δ^(l+1)‖²,
# so ‖δ^l‖² ∝ exp(−(L − l)/ξ_∇) with ξ_∇ = −1/ln χ1.

PHASES = ("ordered", "critical", "chaotic")


def gaussian_nodes(q: float, n: int = N_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Points u_k and weights w_k with Σ_k w_k f(u_k) ≈ E_z[f(√q z)], z ~ N(0, 1): the rule of
    ``gaussian_expectation`` (Gauss–Hermite for q <= Q_GH, the midpoint rule in u = √q z with
    step H_MID out to 12√q above), as arrays, so that one rule can be nested in another."""
    q = max(float(q), Q_TINY)
    if q <= Q_GH:
        z, w = gauss_hermite(n)
        return math.sqrt(q) * z, np.asarray(w)
    k = math.ceil(12.0 * math.sqrt(q) / H_MID)
    u = (np.arange(-k, k) + 0.5) * H_MID
    return u, np.exp(-0.5 * u * u / q) * (H_MID / math.sqrt(2.0 * math.pi * q))


def gaussian_expectation2(f, q: float, c: float, n: int = N_NODES) -> float:
    """E[f(u1, u2)] for (u1, u2) Gaussian with variances q and correlation c:
    u1 = √q z1, u2 = c u1 + √(q (1 − c²)) z2. The outer integral over u1 and the inner one over
    v = u2 − c u1 (variance q(1 − c²)) each use the rule of ``gaussian_nodes``."""
    c = float(np.clip(c, -1.0, 1.0))
    u1, w1 = gaussian_nodes(q, n)
    v, w2 = gaussian_nodes(q * (1.0 - c * c), n)
    with np.errstate(over="ignore"):
        values = f(u1[:, None], c * u1[:, None] + v[None, :])
    return float(w1 @ values @ w2)


def _bounded_q_star(act: Activation, sigma_w: float, sigma_b: float, n: int) -> float:
    """q* of a bounded φ; NaN for ReLU-like φ whose q* is 0 or infinite (no correlation map)."""
    q = q_star(act, sigma_w, sigma_b, n=n)
    if _is_homogeneous(act) and not (0.0 < q < math.inf):
        return math.nan
    return q


def correlation_map(
    c: float, activation: str | Activation, sigma_w: float, sigma_b: float, q: float | None = None, n: int = N_NODES
) -> float:
    """One layer of the correlation map, c ↦ [σ_w² E[φ(u1) φ(u2)] + σ_b²] / q at the fixed point
    q = q* (or the given q, where it is then q' = q the next layer's variance only if q = q*)."""
    act = _act(activation)
    q = _bounded_q_star(act, sigma_w, sigma_b, n) if q is None else float(q)
    if not q > 0.0:
        return math.nan
    return (sigma_w**2 * gaussian_expectation2(lambda a, b: act.fn(a) * act.fn(b), q, c, n) + sigma_b**2) / q


def chi_c(
    c: float, activation: str | Activation, sigma_w: float, sigma_b: float, q: float | None = None, n: int = N_NODES
) -> float:
    """The slope of the correlation map at c, σ_w² E[φ'(u1) φ'(u2)] (at q*, or the given q);
    at c = 1 it is χ1."""
    act = _act(activation)
    q = _bounded_q_star(act, sigma_w, sigma_b, n) if q is None else float(q)
    if math.isnan(q):
        return math.nan
    return sigma_w**2 * gaussian_expectation2(lambda a, b: act.grad(a) * act.grad(b), q, c, n)


def c_star(activation: str | Activation, sigma_w: float, sigma_b: float, tol: float = 1e-12, n: int = N_NODES) -> float:
    """The stable fixed point c* in [0, 1] of the correlation map, the correlation that any two
    (non-identical, non-anticorrelated) inputs approach with depth.

    Ordered phase (χ1 <= 1): c* = 1. Chaotic phase: the root of g(c) = c_map(c) − c in
    [0, 1), where g(0) = c_map(0) >= 0 and g < 0 just below 1 (slope χ1 > 1 there); the map is
    convex, so that root is unique and is what iterating the map converges to. It is found by
    bisection to ``tol``. NaN where q* is 0 or infinite (ReLU-like φ with σ_w²E[φ²] >= 1).
    """
    act = _act(activation)
    q = _bounded_q_star(act, sigma_w, sigma_b, n)
    if math.isnan(q):
        return math.nan
    if chi(q, act, sigma_w, n) <= 1.0 or q == 0.0:
        return 1.0
    g = lambda c: correlation_map(c, act, sigma_w, sigma_b, q, n) - c  # noqa: E731
    lo, hi = 0.0, 1.0
    if g(lo) <= 0.0:
        return 0.0  # e.g. an odd φ with σ_b = 0: c = 0 is the fixed point
    # g(1) = 0 up to rounding; step below 1 until g is clearly negative
    step = 1e-6
    while g(1.0 - step) >= 0.0:
        step *= 4.0
        if step >= 1.0:  # pragma: no cover - only if χ1 is 1 to rounding
            return 1.0
    hi = 1.0 - step
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if g(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _depth_scale(slope: float) -> float:
    """−1/ln(slope): the number of layers over which a deviation shrinks by e (inf at slope 1;
    negative for slope > 1, where −ξ is the number of layers over which it grows by e)."""
    if not slope > 0.0:
        return 0.0 if slope == 0.0 else math.nan
    if slope == 1.0:
        return math.inf
    return -1.0 / math.log(slope)


def xi_grad(activation: str | Activation, sigma_w: float, sigma_b: float, n: int = N_NODES) -> float:
    """ξ_∇ = −1/ln χ1: E‖δ^l‖² ∝ exp(−(L − l)/ξ_∇), counting layers down from the output.

    Signed: positive in the ordered phase (χ1 < 1, the gradient shrinks by e every ξ_∇ layers
    toward the input), ``inf`` on the critical line, negative in the chaotic phase (χ1 > 1, it
    grows by e every |ξ_∇| layers)."""
    return _depth_scale(chi1(activation, sigma_w, sigma_b, n))


def xi_c(activation: str | Activation, sigma_w: float, sigma_b: float, n: int = N_NODES) -> float:
    """ξ_c = −1/ln(σ_w² E[φ'(u1) φ'(u2)]) at the fixed point (q*, c*): the depth over which the
    correlation of two inputs approaches c*. Positive in both phases, ``inf`` on the critical
    line; in the ordered phase (c* = 1) it equals ξ_∇."""
    act = _act(activation)
    c = c_star(act, sigma_w, sigma_b, n=n)
    if math.isnan(c):
        return math.nan
    slope = chi1(act, sigma_w, sigma_b, n) if c == 1.0 else chi_c(c, act, sigma_w, sigma_b, n=n)
    return _depth_scale(slope)


def phase(chi_1: float) -> str:
    """'ordered' (χ1 < 1), 'critical' (χ1 = 1) or 'chaotic' (χ1 > 1); NaN gives 'unknown'."""
    if math.isnan(chi_1):
        return "unknown"
    return PHASES[0] if chi_1 < 1.0 else PHASES[2] if chi_1 > 1.0 else PHASES[1]


def critical_sigma_w(
    activation: str | Activation, sigma_b: float, lo: float = 0.5, hi: float = 4.0, tol: float = 1e-10, n: int = N_NODES
) -> float:
    """The σ_w with χ1(σ_w, σ_b) = 1 (the edge of chaos at this σ_b), by bisection on
    [lo, hi] (χ1 grows with σ_w); NaN when χ1 − 1 has the same sign at both ends.

    With σ_b = 0 and φ(0) = 0 (tanh), q* = 0 while σ_w |φ'(0)| <= 1, where χ1 = σ_w² φ'(0)²:
    the edge is σ_w = 1/|φ'(0)| if χ1 crosses 1 there (checked 0.1% to either side), which
    avoids the slow, algebraic approach of q^l to 0 right at it."""
    act = _act(activation)
    f = lambda s: chi1(act, s, sigma_b, n) - 1.0  # noqa: E731
    slope0 = abs(float(act.grad(np.zeros(1))[0]))
    if sigma_b == 0.0 and float(act.fn(np.zeros(1))[0]) == 0.0 and slope0 > 0.0 and not _is_homogeneous(act):
        s = 1.0 / slope0
        if lo < s < hi and f(s * 0.999) < 0.0 < f(s * 1.001):
            return s
    f_lo, f_hi = f(lo), f(hi)
    if f_lo == 0.0:
        return lo
    if f_lo > 0.0 or f_hi < 0.0:
        return math.nan
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if f(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def chaos_grid(activation: str | Activation, sigma_w2, sigma_b2, n: int = N_NODES) -> pd.DataFrame:
    """The mean-field quantities over a grid of σ_w² × σ_b², one row per pair, with columns
    sigma_w2, sigma_b2, sigma_w, sigma_b, q_star, chi1, log_chi1 (ln χ1, the predicted change
    of ln‖δ‖² per layer toward the input), xi_grad, c_star, chi_c (the correlation map's slope
    at c*), xi_c and phase."""
    act = _act(activation)
    rows = []
    for sw2 in np.atleast_1d(np.asarray(sigma_w2, float)):
        for sb2 in np.atleast_1d(np.asarray(sigma_b2, float)):
            sw, sb = math.sqrt(sw2), math.sqrt(sb2)
            q = q_star(act, sw, sb, n=n)
            c1 = chi1(act, sw, sb, n)
            cs = c_star(act, sw, sb, n=n)
            slope = c1 if cs == 1.0 else chi_c(cs, act, sw, sb, n=n) if not math.isnan(cs) else math.nan
            rows.append(
                {
                    "sigma_w2": sw2,
                    "sigma_b2": sb2,
                    "sigma_w": sw,
                    "sigma_b": sb,
                    "q_star": q,
                    "chi1": c1,
                    "log_chi1": math.log(c1) if c1 > 0 else -math.inf,
                    "xi_grad": _depth_scale(c1),
                    "c_star": cs,
                    "chi_c": slope,
                    "xi_c": _depth_scale(slope),
                    "phase": phase(c1),
                }
            )
    return pd.DataFrame(rows)


# -- the spectrum of a deep linear network's input–output Jacobian ------------------------------
# J = W^L ⋯ W^1 of square n × n layers. Orthogonal W^l = σ_w Q^l: every singular value of J is
# σ_w^L exactly, at any width. Gaussian W^l ~ N(0, σ_w²/n): as n → ∞, the eigenvalues of JJᵀ/σ_w^(2L)
# follow the L-fold free multiplicative convolution of the Marchenko–Pastur law of ratio 1, whose
# k-th moment is the Fuss–Catalan number  FC_L(k) = C((L + 1) k, k) / (L k + 1)
# (L = 1: the Catalan numbers 1, 2, 5, 14, ...; Mlotkowski 2010; Pennington, Schoenholz & Ganguli
# 2017 use these products as the linear baseline). So the mean squared singular value is σ_w^(2L)
# for both, and the variance of JJᵀ's eigenvalues σ_w^(4L) (FC_L(2) − 1) = L σ_w^(4L): it grows
# linearly with depth for Gaussian weights and is 0 for orthogonal ones.
def fuss_catalan(L: int, k: int) -> int:
    """FC_L(k) = C((L + 1) k, k) / (L k + 1): the k-th moment of the eigenvalues of JJᵀ for a
    product of L square Gaussian matrices of variance 1/n, as n → ∞ (an integer)."""
    if L < 0 or k < 0:
        raise ValueError(f"fuss_catalan: L={L}, k={k}: both must be integers >= 0")
    return math.comb((L + 1) * k, k) // (L * k + 1)


def linear_jjt_moments(depth: int, sigma_w: float, init: str = "normal", k_max: int = 2) -> list[float]:
    """The moments m_1..m_k_max of the eigenvalues of JJᵀ (the squared singular values of J) for a
    deep linear network of ``depth`` square layers: σ_w^(2 depth k) × FC_depth(k) for Gaussian
    weights (``init="normal"``, wide layers), σ_w^(2 depth k) for orthogonal ones (any width)."""
    if init not in ("normal", "orthogonal"):
        raise ValueError(f"init={init!r}: the linear moments are known for 'normal' and 'orthogonal'")
    scale = float(sigma_w) ** (2 * depth)
    return [scale**k * (fuss_catalan(depth, k) if init == "normal" else 1) for k in range(1, k_max + 1)]


# -- the spectrum of a deep nonlinear network's input–output Jacobian: free probability --------
# J = D_L W_L ⋯ D_1 W_1 with D_l = diag(φ'(z^l)) (L = ``depth`` square layers here, as in
# ``mlplab.jacobian(net, X, upto=depth)``). Pennington, Schoenholz & Ganguli, "Resurrecting the
# sigmoid in deep learning through dynamical isometry: theory and practice" (NeurIPS 2017), treat
# the W_l W_lᵀ and D_l² of a wide network as freely independent, so that the S-transforms of their
# spectra multiply (their eq. 12):
#
#     S_JJᵀ(z) = ∏_l S_(W_l W_lᵀ)(z) S_(D_l²)(z),     S(z) = (1 + z)/(z M⁻¹(z))  (their eq. 10),
#
# M(z) = Σ_(k≥1) m_k/z^k the moment generating function of a spectrum with moments m_k. A spectrum
# with mean m1 and variance σ² has S(z) = (1/m1)(1 − (σ²/m1²) z + O(z²)), so to this order
#
#     S_(D_l²)(z)    = (1/μ1)(1 − (μ2/μ1² − 1) z + ⋯),   μ_k = E_h[φ'(h)^(2k)], h ~ N(0, q^l),
#     S_(W Wᵀ)(z)    = σ_w⁻² (1 + s1 z + ⋯),            s1 = −1 (iid Gaussian: Marchenko–Pastur of
#                                                      ratio 1, S = σ_w⁻²/(1 + z)), 0 (orthogonal:
#                                                      W Wᵀ = σ_w² I, S = σ_w⁻²),
#
# and multiplying gives the first two moments of JJᵀ's eigenvalues (J's squared singular values):
#
#     m1 = ∏_l σ_w² μ1(q^l)                     (= χ^L at the fixed point q*),
#     σ²/m1² = Σ_l [μ2(q^l)/μ1(q^l)² − 1 − s1]   (= L (μ2/μ1² − 1 − s1) at q*).
#
# At q* and χ1 = 1 this is the papers' σ²_JJᵀ = L(μ2/μ1² − 1 − s1); checked against the worked
# ReLU and hard-tanh cases of section 2.5 (Gaussian: m2 = m1²(1 + L/p), orthogonal:
# σ² = L(1 − p)/p at χ = 1, p the probability that φ' = 1), which this reproduces with μ1 = μ2 = p.
# The general form is also the one of Pennington, Schoenholz & Ganguli, "The emergence of
# spectral universality in deep networks" (AISTATS 2018); its equation number there is not checked.
# The 2017 equation numbers (eq. 10: the S-transform, section 2.3; eq. 12: the product) and the
# section 2.5 cases are as the Depth First Learning course on the paper quotes them
# (depthfirstlearning.com, "Resurrecting the Sigmoid", problem set 4).
# Linear φ (μ_k = 1) gives back ``linear_jjt_moments``: Gaussian σ²/m1² = L, orthogonal 0.

# init name -> s1, the first-order coefficient of σ_w² S_(WWᵀ)(z): iid entries of any law give
# Marchenko–Pastur's S = σ_w⁻²/(1 + z) in the wide limit (universality), orthogonal W gives σ_w⁻²
WEIGHT_S1 = {
    "normal": -1.0,
    "xavier_normal": -1.0,
    "xavier_uniform": -1.0,
    "he_normal": -1.0,
    "large": -1.0,
    "orthogonal": 0.0,
}


def mu_k(activation: str | Activation, q: float, k: int, n: int = N_NODES) -> float:
    """μ_k(q) = E_h[φ'(h)^(2k)], h ~ N(0, q): the k-th moment of the spectrum of D² = diag(φ'(z))²
    for pre-activations of variance q, whose S-transform enters ``jjt_moments``.

    Same quadrature as ``gaussian_expectation``; for ReLU-like φ, φ' does not depend on the scale
    of z, so μ_k is taken at q = 1 and is exact: ReLU μ_k = 1/2, leaky ReLU (1 + α^(2k))/2, linear 1.
    χ(q) = σ_w² μ_1(q).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k={k!r}: need an integer >= 0")
    act = _act(activation)
    if _is_homogeneous(act):
        q = 1.0
    return gaussian_expectation(lambda u: act.grad(u) ** (2 * int(k)), q, n)


@dataclass(frozen=True)
class JJtMoments:
    """The first two moments of the eigenvalues λ of JJᵀ (λ = J's squared singular values).

    m1 = E λ, m2 = E λ², var = m2 − m1², spread = var/m1² (the scale-free width of the spectrum,
    the sum over layers of spread_per_layer); q and chi: q^l and χ^l = σ_w² μ1(q^l) per layer;
    s1: the weights' S-transform coefficient (−1 iid, 0 orthogonal)."""

    m1: float
    m2: float
    var: float
    spread: float
    depth: int
    s1: float
    q: tuple[float, ...]
    chi: tuple[float, ...]
    spread_per_layer: tuple[float, ...]


def jjt_moments(
    activation: str | Activation,
    sigma_w: float,
    sigma_b: float,
    depth: int,
    init: str = "normal",
    q0: float | None = None,
    n: int = N_NODES,
) -> JJtMoments:
    """m1, m2 and the variance of the eigenvalues of JJᵀ, J = D_L W_L ⋯ D_1 W_1 (L = ``depth``
    square layers, wide), by free probability (Pennington, Schoenholz & Ganguli 2017, eqs. 10
    and 12; section 2.5; see the comment above ``WEIGHT_S1``):

        m1 = ∏_l σ_w² μ1(q^l),     var/m1² = Σ_l [μ2(q^l)/μ1(q^l)² − 1 − s1],

    μ_k = ``mu_k``; s1 = −1 for iid weights (``normal``, ``xavier_normal``, ``xavier_uniform``,
    ``he_normal``, ``large``), 0 for ``orthogonal``. At the fixed point this is the papers'
    m1 = χ1^L, σ²_JJᵀ = χ1^(2L) L (μ2/μ1² − 1 − s1).

    ``sigma_w``, ``sigma_b``: the effective values, Var W = σ_w²/n, Var b = σ_b² (for a named
    initialiser's own scale use ``effective_sigmas(init, n)``); ``init`` picks only the shape of
    W's spectrum. ``q0=None``: every layer at the fixed point q* (the papers' setting; ReLU-like φ,
    whose μ_k do not depend on q, are fine at any q*, even 0 or infinite). ``q0`` given: the
    finite-depth profile q^1 = σ_w² q0 + σ_b², then the length map (``profile``) — an extension
    of the papers' fixed-point result, the same free product taken layer by layer with each
    layer's own D_l².
    """
    try:
        s1 = WEIGHT_S1[init]
    except KeyError:
        raise ValueError(f"init={init!r} has no known weight spectrum; choose one of {sorted(WEIGHT_S1)}") from None
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth={depth!r}: need an integer >= 1")
    act = _act(activation)
    if q0 is None:
        q = q_star(act, sigma_w, sigma_b, n=n)
        if not math.isfinite(q):
            if not _is_homogeneous(act):  # pragma: no cover - bounded φ have a finite q*
                raise ValueError(f"q* is infinite for {act!r} at sigma_w={sigma_w}, sigma_b={sigma_b}")
            q = 1.0  # μ_k of ReLU-like φ are the same at every q
        qs = [q] * int(depth)
    else:
        qs = list(profile(act, sigma_w, sigma_b, int(depth), q0=q0, n=n).q)
    mu1 = np.array([mu_k(act, q, 1, n) for q in qs])
    mu2 = np.array([mu_k(act, q, 2, n) for q in qs])
    chis = float(sigma_w) ** 2 * mu1
    per_layer = mu2 / mu1**2 - 1.0 - s1
    m1 = float(np.prod(chis))
    spread = float(per_layer.sum())
    var = spread * m1**2
    return JJtMoments(
        m1=m1,
        m2=var + m1**2,
        var=var,
        spread=spread,
        depth=int(depth),
        s1=s1,
        q=tuple(float(v) for v in qs),
        chi=tuple(float(v) for v in chis),
        spread_per_layer=tuple(float(v) for v in per_layer),
    )


def _d2_law(act: Activation, q: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The law of d = φ'(h)², h ~ N(0, q), as atoms d_j with weights p_j (the rule of
    ``gaussian_nodes``; equal values merged, so ReLU's law is 2 atoms and the linear one 1)."""
    if _is_homogeneous(act):
        q = 1.0
    u, w = gaussian_nodes(q, n)
    d, where = np.unique(act.grad(u) ** 2, return_inverse=True)
    return d, np.bincount(where, weights=w)


def jjt_density(
    activation: str | Activation,
    sigma_w: float,
    sigma_b: float,
    depth: int,
    init: str = "normal",
    q0: float | None = None,
    x=None,
    eps: float = 1e-7,
    steps: int = 40,
    n: int = N_NODES,
) -> np.ndarray:
    """The spectral density ρ(x) of JJᵀ (wide layers) at the points ``x``: the product of
    S-transforms of ``jjt_moments`` taken whole rather than to first order, and the moment
    generating function inverted through it (Pennington et al. 2017, eqs. 10 and 12).

    With M(z) = Σ_k m_k/z^k = z G(z) − 1, S(m) = (1 + m)/(m M⁻¹(m)) and S_(W Wᵀ)(m) =
    σ_w⁻² (1 + m)^s1 (s1 = −1 iid: Marchenko–Pastur; 0 orthogonal), m = M_JJᵀ(z) solves

        z m = (1 + m) ∏_l σ_w² (1 + m)^(−1−s1) m w_l,       M_(D_l²)(w_l) = m   (l = 1..L),

    where M_(D_l²)(w) = E[d/(w − d)], d = φ'(h)², h ~ N(0, q^l) (the quadrature's atoms, ``n``).
    Newton's method solves it at z = x + iy, y going down geometrically (``steps`` steps) from
    10 s to ``eps`` × s, s = m1 (1 + var/m1²) the spectrum's scale, from the large-z branch
    m ≈ m1/z, w_l ≈ μ1(q^l)/m, with each update capped at 25 % of |m| and |w_l| so that the
    continuation stays on that branch. Then ρ(x) = −Im G(x + i eps s)/π, G = (1 + m)/z: the
    density smoothed by a Cauchy kernel of half-width eps × s, so an atom (ReLU's JJᵀ has one at
    0) shows as a spike of that width. Points where Newton did not converge are NaN.

    ``q0`` as in ``jjt_moments`` (None: every layer at q*). A linear network with Gaussian
    weights gives the Fuss–Catalan density (Marchenko–Pastur at depth 1). The cost grows with
    the number of distinct q^l (one at the fixed point) times the number of atoms of φ'(h)².
    """
    act = _act(activation)
    mom = jjt_moments(act, sigma_w, sigma_b, depth, init, q0, n)
    layers = sorted(set(mom.q))
    counts = [mom.q.count(q) for q in layers]
    laws = [_d2_law(act, q, n) for q in layers]
    x = np.atleast_1d(np.asarray(x, float))
    L, e = mom.depth, -1.0 - mom.s1
    scale = mom.m1 * (1.0 + mom.spread)

    def m_d2(k, w):  # M_(D_k²)(w) and its derivative, at every point
        d, p = laws[k]
        r = d / (w[:, None] - d)
        return r @ p, -(r / (w[:, None] - d)) @ p

    def product(m, w):  # ∏_l σ_w² (1 + m)^e m w_l
        logs = L * (2.0 * math.log(sigma_w) + e * np.log1p(m) + np.log(m))
        return np.exp(logs + sum(c * np.log(wk) for c, wk in zip(counts, w)))

    m = mom.m1 / (x + 10j * scale)
    w = [mu_k(act, q, 1, n) / m for q in layers]
    with np.errstate(all="ignore"):
        for y in scale * np.geomspace(10.0, eps, steps):
            z = x + 1j * y
            for _ in range(100):
                md = [m_d2(k, wk) for k, wk in enumerate(w)]
                P = product(m, w)
                F = (1.0 + m) * P / z - m
                dF_dm = (P + (1.0 + m) * P * (L * e / (1.0 + m) + L / m)) / z - 1.0
                dF_dw = [(1.0 + m) * P * c / (wk * z) for c, wk in zip(counts, w)]
                f = [mk - m for mk, _ in md]
                # linearised: M'_k δw_k = δm − f_k; substituted, one equation for δm
                a = dF_dm + sum(g / dk for g, (_, dk) in zip(dF_dw, md))
                dm = (-F + sum(g * fk / dk for g, fk, (_, dk) in zip(dF_dw, f, md))) / a
                dw = [(dm - fk) / dk for fk, (_, dk) in zip(f, md)]
                rel = np.maximum(np.abs(dm / m), np.max(np.abs(np.array(dw) / np.array(w)), axis=0))
                t = np.minimum(1.0, 0.25 / np.maximum(rel, 1e-300))
                m = m + t * dm
                w = [wk + t * d for wk, d in zip(w, dw)]
                if not np.any(rel > 1e-12):
                    break
        resid = np.abs((1.0 + m) * product(m, w) / z - m) / np.abs(m)
        resid_w = np.max([np.abs(m_d2(k, wk)[0] - m) / np.abs(m) for k, wk in enumerate(w)], axis=0)
        rho = -((1.0 + m) / z).imag / math.pi
    return np.where(np.isfinite(rho) & (resid < 1e-9) & (resid_w < 1e-9), rho, np.nan)

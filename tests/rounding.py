"""How far rounding can move the gradients of a plain network: a bound that holds whichever BLAS
kernels (AVX-512, AVX2, AVX, Accelerate, MKL...) and whichever ``exp``/``tanh`` compute them.

``rounding_bound(net, X, Y)`` gives, entry by entry, a bound E on |computed − exact| of every
δ^l, ∂C/∂W^l, ∂C/∂b^l and of C, for a plain float64 network (no residual layers, no normalisation), where
"exact" is the real-number result for the network's float64 parameters and inputs. Two machines
then agree within 2E: each is within E of the same exact number.

The bound is a first-order running error analysis (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., ch. 3), with u = 2^-53 and γ(n) = n·u / (1 − n·u):

* a dot product of n terms, in any order, with or without fused multiply-adds, as any BLAS
  kernel computes it, is within γ(n)·Σ|x_k y_k| of the exact one (Higham, (3.5)); one more
  term (z = a Wᵀ + b, the bias added after the product) makes it γ(n + 1);
* an input that is already off by E_x carries that error through: |x̂ − x|·|y| in a product,
  L·E_z through a function of Lipschitz constant L (σ: 1/4, tanh, ReLU, leaky ReLU, linear: 1);
* one ``exp``, ``tanh`` or ``log1p`` is within 4 ulps, 8u relative: glibc's manual lists 1 to 2
  ulps for them on x86-64, NumPy's SIMD versions (SVML, AVX-512) are within 4 (numpy/numpy#19478);
  σ(z) = 1/(1 + e^-z) adds a rounding for the sum and one for the division: 10u;
* an elementwise +, −, × or ÷ rounds once: u relative;
* σ'(z) is computed from h = σ(z): h(1 − h) (slope |1 − 2h| ≤ 1 in h, two roundings), 1 − h²
  (slope 2|h|, two roundings), 1 for linear (exact; its σ is an exact copy), and for ReLU and
  leaky ReLU a step that is exact unless z is within its own error of 0, where the step may flip
  (1, or 1 − α).

Products of errors (u², E·E) are left out: they are below u times the terms kept, ~1e-16 of
them. The loss C is bounded as the same first-order change through z^L (Σ |∂C/∂z^L|·E_z^L), plus
the rounding of the formula that evaluates it: a mean of m per-sample sums of at most n_L + 2
terms, each within two function evaluations and a rounded exponent of the exact value (today's
formulas are sums of terms ≥ 0; the earlier ones, softplus(z) − y·z and logsumexp(z) − y·z,
subtract terms below |z| + 2; both are covered by γ(n_L + m + 24 + max(M − z))·T, T = C +
Σ_x Σ_j (2|z_xj| + 2)/m).

``plain_backprop(net, X, Y, dtype)`` is the same network evaluated from the definitions in any
NumPy dtype: in float64 it gives the magnitudes the bound needs, in ``np.longdouble`` (64-bit
significand on x86) an evaluation 2048 times more accurate than float64's, which the tests use as
the exact value.
"""

from __future__ import annotations

import numpy as np

U = 2.0**-53  # unit roundoff of float64
FN = 8 * U  # one exp, tanh or log1p: within 4 ulps


def gamma(n, u: float = U) -> float:
    """γ(n) = n u / (1 − n u): the relative error bound of n roundings (Higham, Lemma 3.1)."""
    return n * u / (1 - n * u)


def plain_backprop(net, X, Y, dtype=np.float64) -> dict:
    """z^l, a^l (a[0] = X), δ^l of the batch-mean loss, ∂C/∂W^l, ∂C/∂b^l and C of the plain
    network ``net`` from the definitions, every number in ``dtype`` (lists indexed l − 1)."""
    if net.residual or net.normalised:
        raise ValueError("plain networks only")
    W = [np.asarray(w, dtype) for w in net.weights]
    b = [np.asarray(c, dtype) for c in net.biases]
    X, Y = np.asarray(X, dtype), np.asarray(Y, dtype)
    act, loss, m, L = net.activation.name, net.loss.name, len(X), net.L
    one, alpha = dtype(1), dtype(getattr(net.activation, "alpha", 0.0))
    sigma = {
        "sigmoid": lambda v: one / (one + np.exp(-v)),
        "tanh": np.tanh,
        "relu": lambda v: np.where(v > 0, v, 0 * v),
        "leaky_relu": lambda v: np.where(v > 0, v, alpha * v),
        "linear": lambda v: v,
    }[act]
    a, z = [X], []
    for l in range(L):
        z.append(a[l] @ W[l].T + b[l])
        if l < L - 1:
            a.append(sigma(z[l]))
        elif loss == "softmax_ce":
            e = np.exp(z[l] - z[l].max(axis=1, keepdims=True))
            a.append(e / e.sum(axis=1, keepdims=True))
        else:
            a.append(one / (one + np.exp(-z[l])))
    aL, zL = a[-1], z[-1]
    if loss == "mse":  # ½ Σ_j (a_j − y_j)²,  δ = (a − y) a (1 − a)
        C = (np.square(aL - Y).sum(axis=1) / 2).mean()
        d = (aL - Y) * aL * (one - aL)
    elif loss == "bce":  # Σ_j (1 − y_j) softplus(z_j) + y_j softplus(−z_j),  δ = a − y
        softplus = lambda v: np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))  # noqa: E731
        C = ((one - Y) * softplus(zL) + Y * softplus(-zL)).sum(axis=1).mean()
        d = aL - Y
    else:  # logsumexp(z) − y·z,  δ = a − y
        M = zL.max(axis=1, keepdims=True)
        C = (M[:, 0] + np.log(np.exp(zL - M).sum(axis=1)) - (Y * zL).sum(axis=1)).mean()
        d = aL - Y
    delta = [None] * L
    delta[-1] = d / m
    for l in range(L - 2, -1, -1):
        h = a[l + 1]
        s = {
            "sigmoid": h * (one - h),
            "tanh": one - h * h,
            "relu": (z[l] > 0).astype(dtype),
            "leaky_relu": np.where(z[l] > 0, one, alpha),
            "linear": np.ones_like(h),
        }[act]
        delta[l] = (delta[l + 1] @ W[l + 1]) * s
    return dict(
        z=z,
        a=a,
        delta=delta,
        dW=[delta[l].T @ a[l] for l in range(L)],
        db=[delta[l].sum(axis=0) for l in range(L)],
        loss=C,
    )


def rounding_bound(net, X, Y) -> dict:
    """E for ``delta``, ``dW``, ``db`` (lists of arrays of their shapes) and ``loss`` (a float):
    |computed − exact| ≤ E entry by entry, for the float64 plain network ``net`` on (X, Y),
    whichever kernels compute it (the module's docstring derives each term)."""
    f = plain_backprop(net, X, Y)
    z, a, delta = f["z"], f["a"], f["delta"]
    W = [np.asarray(w) for w in net.weights]
    act, loss, m, L = net.activation.name, net.loss.name, len(X), net.L
    alpha = getattr(net.activation, "alpha", 0.0)
    Ea, Ez = [np.zeros_like(a[0])], []  # X is exact
    for l in range(L):
        A = np.abs(W[l])  # z = a Wᵀ + b: the error a brings, and n_(l-1) + 1 roundings
        Ez.append(Ea[l] @ A.T + gamma(A.shape[1] + 1) * (np.abs(a[l]) @ A.T + np.abs(net.biases[l])))
        e, h = Ez[l], np.abs(a[l + 1])
        if l < L - 1:
            Ea.append(
                {
                    "sigmoid": 0.25 * e + (FN + 2 * U) * h,
                    "tanh": e + FN * h,
                    "relu": e,
                    "leaky_relu": e + U * h,
                    "linear": e,  # a = z, copied exactly
                }[act]
            )
        elif loss == "softmax_ce":
            # ∂a_j/∂z_k = a_j (δ_jk − a_k); each e^(z_j − M) is off by u|z_j − M| (the rounded
            # exponent) and 4 ulps, their sum by the largest of those and n_L roundings, a ÷ by one
            rho = U * (z[l].max(axis=1, keepdims=True) - z[l]) + FN
            Ea.append(
                h * (e + (h * e).sum(axis=1, keepdims=True))
                + h * (rho + rho.max(axis=1, keepdims=True) + gamma(h.shape[1]) + U)
            )
        else:
            Ea.append(0.25 * e + (FN + 2 * U) * h)
    aL, EaL, Y = a[-1], Ea[-1], np.asarray(Y, float)
    if loss == "mse":  # d = (a − y) a (1 − a): slope a(1 − a) + (a − y)(1 − 2a), four roundings
        d = (aL - Y) * aL * (1 - aL)
        Ed = EaL * (np.abs(aL * (1 - aL)) + np.abs(aL - Y) * np.abs(1 - 2 * aL)) + 4 * U * np.abs(d)
    else:  # d = a − y
        Ed = EaL + U * np.abs(aL - Y)
    Edelta = [None] * L
    Edelta[-1] = Ed / m + 2 * U * np.abs(delta[-1])  # × fl(1/m): the constant and the product round
    for l in range(L - 2, -1, -1):
        A = np.abs(W[l + 1])  # g = δ^(l+1) W^(l+1): n_(l+1) terms
        g = delta[l + 1] @ W[l + 1]
        Eg = Edelta[l + 1] @ A + gamma(A.shape[0]) * (np.abs(delta[l + 1]) @ A)
        h, Eh = a[l + 1], Ea[l + 1]
        flip = (np.abs(z[l]) <= Ez[l]).astype(float)  # the sign of z, hence the step, may differ
        s, Es = {
            "sigmoid": (h * (1 - h), np.abs(1 - 2 * h) * Eh + 2 * U * np.abs(h * (1 - h))),
            "tanh": (1 - h * h, 2 * np.abs(h) * Eh + 2 * U),
            "relu": ((z[l] > 0).astype(float), flip),
            "leaky_relu": (np.where(z[l] > 0, 1.0, alpha), 2 * U + (1 - alpha) * flip),  # 1 as (1 − α) + α
            "linear": (np.ones_like(h), np.zeros_like(h)),  # σ' = 1, exactly
        }[act]
        Edelta[l] = Eg * np.abs(s) + np.abs(g) * Es + U * np.abs(delta[l])  # δ = g ⊙ s
    absd = [np.abs(d) for d in delta]
    EdW = [Edelta[l].T @ np.abs(a[l]) + absd[l].T @ Ea[l] + gamma(m) * (absd[l].T @ np.abs(a[l])) for l in range(L)]
    Edb = [Edelta[l].sum(axis=0) + gamma(m) * absd[l].sum(axis=0) for l in range(L)]
    zL = z[-1]
    T = f["loss"] + (2 * np.abs(zL) + 2).sum() / m
    EC = (absd[-1] * Ez[-1]).sum() + gamma(zL.shape[1] + m + 24 + (zL.max(axis=1, keepdims=True) - zL).max()) * T
    return dict(delta=Edelta, dW=EdW, db=Edb, loss=float(EC))


def extended_precision() -> bool:
    """Whether ``np.longdouble`` carries at least 11 bits more than float64 (x86's 80-bit format,
    or IEEE quad): enough for ``plain_backprop`` in it to stand for the exact values."""
    return np.finfo(np.longdouble).nmant >= 63

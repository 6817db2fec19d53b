"""Weight initialisers: a registry of name -> function(rng, fan_in, fan_out, sigma_w, sigma_b).

Each returns ``(W, b)`` with the post's shapes ``W: (fan_out, fan_in)``, ``b: (fan_out,)``,
drawn in float64 (so a float32 network starts from the same numbers, rounded). Those whose
scale their fans fix (``xavier_*``, ``he_normal``, ``large``) take σ_w and σ_b and ignore them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Init = Callable[[np.random.Generator, int, int, float, float], tuple[np.ndarray, np.ndarray]]


def normal(rng, fan_in, fan_out, sigma_w=1.0, sigma_b=1.0):
    """W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²). σ_w = σ_b = 1 is Nielsen's default initializer."""
    W = rng.standard_normal((fan_out, fan_in)) * (sigma_w / np.sqrt(fan_in))
    b = rng.standard_normal(fan_out) * sigma_b
    return W, b


def xavier_uniform(rng, fan_in, fan_out, *_sigmas):
    """W ~ U(−r, r), r = √(6/(fan_in + fan_out)) (Glorot & Bengio 2010); b = 0."""
    r = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, (fan_out, fan_in)), np.zeros(fan_out)


def xavier_normal(rng, fan_in, fan_out, *_sigmas):
    """W ~ N(0, 2/(fan_in + fan_out)); b = 0."""
    return rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / (fan_in + fan_out)), np.zeros(fan_out)


def he_normal(rng, fan_in, fan_out, *_sigmas):
    """W ~ N(0, 2/fan_in) (He et al. 2015, for ReLU); b = 0."""
    return rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in), np.zeros(fan_out)


def large(rng, fan_in, fan_out, *_sigmas):
    """W ~ N(0, 1), b ~ N(0, 1): Nielsen's ``large_weight_initializer`` (no 1/√fan_in)."""
    return rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out)


def orthogonal(rng, fan_in, fan_out, sigma_w=1.0, sigma_b=1.0):
    """W = σ_w Q with Q orthogonal (Saxe et al. 2014) — semi-orthogonal when fan_out ≠ fan_in:
    orthonormal columns (QᵀQ = I) when fan_out > fan_in, orthonormal rows (QQᵀ = I) when
    fan_out < fan_in — and b ~ N(0, σ_b²). Q comes from the QR decomposition of a Gaussian
    matrix with the signs of R's diagonal folded in, which makes it uniformly (Haar) distributed
    (Mezzadri 2007). Every singular value of W is σ_w: the start of dynamical isometry
    (Pennington et al. 2017). Square layers have E[W_ij²] = σ_w²/fan_in, as ``normal``."""
    A = rng.standard_normal((max(fan_in, fan_out), min(fan_in, fan_out)))
    Q, R = np.linalg.qr(A)  # Q: orthonormal columns
    Q *= np.where(np.diag(R) < 0, -1.0, 1.0)
    W = Q if fan_out >= fan_in else Q.T
    return sigma_w * W, rng.standard_normal(fan_out) * sigma_b


INITS: dict[str, Init] = {f.__name__: f for f in (normal, xavier_uniform, xavier_normal, he_normal, large, orthogonal)}


def get_init(name: str) -> Init:
    try:
        return INITS[name]
    except KeyError:
        raise ValueError(f"init={name!r} is not registered; choose one of {sorted(INITS)}") from None

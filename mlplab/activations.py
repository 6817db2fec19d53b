"""Hidden-layer activations: a registry of name -> class with ``fn`` and ``grad``.

Each activation gives
  * ``fn(z)``          a = σ(z)
  * ``grad(z)``        σ'(z), in terms of z (used by theory and tests)
  * ``grad_a(a)``      σ'(z) expressed through the stored output a = σ(z), which is what the
                       backward pass uses: no second transcendental call per layer
  * ``saturated(a)``   boolean mask of saturated units (the ``sat_frac`` metric)

The ``*_`` variants write into a caller-owned buffer (``out=``) and are the hot path of training.
Overflow of ``exp`` in the sigmoid is expected and harmless (1/(1+inf) = 0 exactly, the right
limit); callers of the raw ``fn_`` wrap the whole step in ``np.errstate(over="ignore")`` once.
"""

from __future__ import annotations

import functools

import numpy as np

SAT_EPS = 0.01  # a unit is saturated when its output is within 0.01 of an asymptote


class Constants:
    """Read-only arrays of one value, by value, shape and dtype, made on first use and kept.

    NumPy's SIMD loops for two contiguous arrays are several times faster than the ones for an
    array and a Python scalar in ``maximum`` and ``divide`` (same results, bit for bit), so the
    hot path passes a constant array instead of a scalar there. Each activation and loss owns
    its constants (``constants``), so a network's live as long as the network does."""

    def __init__(self):
        self.arrays: dict = {}

    def full_like(self, value: float, x: np.ndarray) -> np.ndarray:
        """The read-only array of ``value`` with the shape and dtype of ``x``."""
        key = (value, x.shape, x.dtype.char)
        c = self.arrays.get(key)
        if c is None:
            if len(self.arrays) > 64:  # many batch sizes (e.g. tests): keep the cache small
                self.arrays.clear()
            c = self.arrays[key] = np.full(x.shape, value, x.dtype)
            c.flags.writeable = False
        return c


def as_float(z) -> np.ndarray:
    """``z`` as an array of its own floating dtype; integers become float64."""
    z = np.asarray(z)
    return z if np.issubdtype(z.dtype, np.floating) else z.astype(np.float64)


class Activation:
    name: str = ""

    @functools.cached_property
    def constants(self) -> Constants:
        """This activation's constant arrays (made on first use)."""
        return Constants()

    def fn_(self, z: np.ndarray, out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def grad_a_(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def grad(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def saturated(self, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fn(self, z: np.ndarray) -> np.ndarray:
        z = as_float(z)
        with np.errstate(over="ignore"):
            return self.fn_(z, np.empty_like(z))

    def grad_a(self, a: np.ndarray) -> np.ndarray:
        return self.grad_a_(a, np.empty_like(a))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sigmoid(Activation):
    r"""σ(z) = 1 / (1 + e^{-z});  σ'(z) = σ(z)(1 − σ(z)) ≤ 1/4.

    Computed as ``1/(1+exp(-z))``: relatively accurate for every z; for z < −709 ``exp``
    overflows to inf and the result is exactly 0, the correct limit (no NaN is ever produced).
    σ' = a(1−a) from the stored output has absolute error ≤ 2⁻⁵³.
    """

    name = "sigmoid"

    def fn_(self, z, out):
        np.negative(z, out=out)
        np.exp(out, out=out)
        out += 1.0
        return np.divide(self.constants.full_like(1.0, out), out, out=out)

    def grad_a_(self, a, out):
        np.subtract(1.0, a, out=out)
        return np.multiply(out, a, out=out)

    def grad(self, z):
        a = self.fn(z)
        return a * (1.0 - a)

    def saturated(self, a):
        return (a < SAT_EPS) | (a > 1.0 - SAT_EPS)


class Tanh(Activation):
    r"""tanh(z);  tanh'(z) = 1 − tanh(z)² ≤ 1."""

    name = "tanh"

    def fn_(self, z, out):
        return np.tanh(z, out=out)

    def grad_a_(self, a, out):
        np.multiply(a, a, out=out)
        return np.subtract(1.0, out, out=out)

    def grad(self, z):
        return 1.0 - np.tanh(z) ** 2

    def saturated(self, a):
        return np.abs(a) > 1.0 - SAT_EPS


class ReLU(Activation):
    r"""max(0, z);  relu'(z) = 1[z > 0]  (a unit with z ≤ 0 counts as saturated: it passes no gradient)."""

    name = "relu"

    def fn_(self, z, out):
        return np.maximum(z, self.constants.full_like(0.0, z), out=out)

    def grad_a_(self, a, out):
        return np.greater(a, 0.0, out=out)  # a > 0  <=>  z > 0

    def grad(self, z):
        z = as_float(z)
        return (z > 0).astype(z.dtype)

    def saturated(self, a):
        return a <= 0.0


class LeakyReLU(Activation):
    r"""z for z > 0, αz otherwise (α = 0.01);  derivative 1 or α.  z ≤ 0 counts as saturated."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01):
        self.alpha = float(alpha)

    def fn_(self, z, out):
        # max(z, αz) for 0 < α < 1, without a temporary: z, scaled by α where negative (out may be z)
        if out is not z:
            np.copyto(out, z)
        return np.multiply(out, self.alpha, out=out, where=out < 0.0)

    def grad_a_(self, a, out):
        np.greater(a, 0.0, out=out)  # αz has the sign of z
        out *= 1.0 - self.alpha
        out += self.alpha
        return out

    def grad(self, z):
        z = as_float(z)
        return np.where(z > 0, 1.0, self.alpha).astype(z.dtype)

    def saturated(self, a):
        return a <= 0.0

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha})"


class Linear(Activation):
    r"""σ(z) = z;  σ'(z) = 1: the linear baseline (a deep linear network, Saxe et al. 2014).
    Never saturated: every unit passes its gradient on unchanged."""

    name = "linear"

    def fn_(self, z, out):
        if out is not z:
            np.copyto(out, z)
        return out

    def grad_a_(self, a, out):
        out.fill(1.0)
        return out

    def grad(self, z):
        return np.ones_like(as_float(z))

    def saturated(self, a):
        return np.zeros(np.shape(a), bool)


ACTIVATIONS: dict[str, type[Activation]] = {cls.name: cls for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Linear)}


def get_activation(name: str | Activation, **kwargs) -> Activation:
    """Look an activation up by name (or pass an instance through)."""
    if isinstance(name, Activation):
        return name
    try:
        cls = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation={name!r} is not registered; choose one of {sorted(ACTIVATIONS)}") from None
    return cls(**kwargs)

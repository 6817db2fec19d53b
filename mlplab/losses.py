"""Losses paired with their output layer: a registry of name -> class.

One signature for all: ``output_(z, out)`` gives a^L, ``fn(z, a, y)`` the per-sample loss C_x,
``delta_(z, a, y, out)`` the per-sample output error δ^L = ∂C_x/∂z^L. The network averages
over the batch (C = mean_x C_x), so its gradients are those of the batch-mean loss.

The post's table (Nielsen's notation), with the corrections checked in the tests:

=============  ===============================  ======================  ========================
loss           C_x                              output a^L              δ^L
=============  ===============================  ======================  ========================
mse            ½ Σ_j (a_j − y_j)²               sigmoid                 (a − y) ⊙ σ(1 − σ)
bce            −Σ_j y_j log a_j + (1−y_j)       sigmoid                 a − y
               log(1 − a_j)
softmax_ce     −Σ_j y_j log softmax(z)_j        softmax                 a − y   (y one-hot)
=============  ===============================  ======================  ========================

Every loss is evaluated from z in a form whose terms are all ≥ 0, so that it is relatively
accurate at every z, confidently right outputs included (where 1 − a rounds to 0 long before
the loss does): BCE as (1 − y)·softplus(z) + y·softplus(−z), softmax-CE as a log-sum-exp
relative to the largest logit with log1p, MSE with σ(z) − 1 written as −σ(−z).
"""

from __future__ import annotations

import functools

import numpy as np

from mlplab.activations import SAT_EPS, Constants, Sigmoid


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z), stable for any z: max(z, 0) + log1p(e^{−|z|})."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid_minus(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """σ(z) − y, relatively accurate for y ∈ {0, 1}: as (1 − y) − σ(−z) where z > 0 (so that
    σ(z) − 1 = −σ(−z) is never the difference of two numbers near 1). At z = 0 this is 0.5 − y,
    one rounding for any y. (Off the training step's path: a σ of its own.)"""
    sigmoid = Sigmoid()
    return np.where(z > 0, (1.0 - y) - sigmoid.fn(-z), sigmoid.fn(z) - y)


class Loss:
    name: str = ""
    target_kind: str = "any"  # what y must be: 'binary' (0/1 entries) or 'one_hot'

    @functools.cached_property
    def constants(self) -> Constants:
        """This loss's constant arrays (made on first use)."""
        return Constants()

    @functools.cached_property
    def sigmoid(self) -> Sigmoid:
        """The σ of a sigmoid output layer, this loss's own (with its constants)."""
        return Sigmoid()

    def output_(self, z, out):
        raise NotImplementedError

    def fn(self, z, a, y) -> np.ndarray:
        raise NotImplementedError

    def delta_(self, z, a, y, out):
        raise NotImplementedError

    def output(self, z):
        with np.errstate(over="ignore"):
            return self.output_(z, np.empty_like(z))

    def delta(self, z, a, y):
        return self.delta_(z, a, y, np.empty_like(z))

    def saturated(self, a):
        return (a < SAT_EPS) | (a > 1.0 - SAT_EPS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    r"""C_x = ½ Σ_j (a_j − y_j)², a = σ(z);  δ^L = (a − y) ⊙ σ'(z) = (a − y) ⊙ a(1 − a)."""

    name = "mse"

    def output_(self, z, out):
        return self.sigmoid.fn_(z, out)

    def fn(self, z, a, y):
        d = sigmoid_minus(z, y)  # a − y, from z
        return 0.5 * np.einsum("ij,ij->i", d, d)

    def delta_(self, z, a, y, out):
        np.subtract(a, y, out=out)
        out *= a
        out *= 1.0 - a
        return out


class BCE(Loss):
    r"""C_x = −Σ_j [y_j log a_j + (1 − y_j) log(1 − a_j)], a = σ(z);  δ^L = a − y.

    Evaluated as Σ_j (1 − y_j) softplus(z_j) + y_j softplus(−z_j) (−log a = softplus(−z),
    −log(1 − a) = softplus(z)): two terms ≥ 0, relatively accurate at every z.
    """

    name = "bce"
    target_kind = "binary"

    def output_(self, z, out):
        return self.sigmoid.fn_(z, out)

    def fn(self, z, a, y):
        return ((1.0 - y) * softplus(z) + y * softplus(-z)).sum(axis=1)

    def delta_(self, z, a, y, out):
        return np.subtract(a, y, out=out)


class SoftmaxCE(Loss):
    r"""C_x = −Σ_j y_j log softmax(z)_j (fused with the softmax);  δ^L = a − y for one-hot y.

    With M = max_j z_j (at j = m), −log softmax(z)_j = (M − z_j) + log1p(Σ_(k≠m) e^{z_k − M}),
    so for Σ_j y_j = 1:  C_x = y·(M − z) + log1p(Σ_(k≠m) e^{z_k − M}) — two terms ≥ 0, and the
    log1p keeps a confidently right output (true class m, the others far below) relatively
    accurate instead of rounding it to log(1) = 0.
    """

    name = "softmax_ce"
    target_kind = "one_hot"

    def output_(self, z, out):
        np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
        np.exp(out, out=out)
        # Σ_j e^{z_j − max z} as a matrix-vector product: one BLAS call (per run, in a stack of
        # runs), much cheaper than a row-wise reduction over a few columns
        ones = self.constants.full_like(1.0, out[(0,) * (out.ndim - 1)])
        out /= (np.dot if out.ndim == 2 else np.matmul)(out, ones)[..., None]
        return out

    def fn(self, z, a, y):
        rows, m = np.arange(len(z)), z.argmax(axis=1)
        d = z[rows, m][:, None] - z  # M − z ≥ 0
        e = np.exp(np.negative(d))  # e^{z − M}
        e[rows, m] = 0.0  # Σ over k ≠ m
        return np.einsum("ij,ij->i", y, d) + np.log1p(e.sum(axis=1))

    def delta_(self, z, a, y, out):
        return np.subtract(a, y, out=out)

    def saturated(self, a):
        return (a < SAT_EPS) | (a > 1.0 - SAT_EPS)


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (MSE, BCE, SoftmaxCE)}


def get_loss(name: str | Loss) -> Loss:
    if isinstance(name, Loss):
        return name
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"loss={name!r} is not registered; choose one of {sorted(LOSSES)}") from None


def check_targets(loss: Loss, y: np.ndarray) -> None:
    """Raise ValueError when ``y`` is not the kind of target ``loss`` is defined for."""
    y = np.asarray(y)
    if loss.target_kind == "any":
        return
    binary = np.isin(y, (0, 1)).all()
    if not binary:
        raise ValueError(f"targets for loss={loss.name!r} must be 0/1 (one-hot), got values outside {{0, 1}}")
    if loss.target_kind == "one_hot" and not (y.sum(axis=-1) == 1).all():
        raise ValueError(f"targets for loss={loss.name!r} must be one-hot: every row must sum to 1")

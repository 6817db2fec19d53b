"""The input–output Jacobian of a network, exact: J^l = ∂a^l/∂a^0 for each sample.

Its singular values say how the network stretches a small change of its input on the way to
layer l, the backward pass's gradients being Jᵀ applied to ∂C/∂a^l: *dynamical isometry*
(Saxe et al. 2014; Pennington et al. 2017) is all of them near 1. For one sample x the chain
rule runs forward, layer by layer, from J^0 = I (n_0 × n_0):

    Dense        z = W a^(l-1) + b,   a^l = σ(z)          J^l = D W J^(l-1),   D = diag(σ'(z))
    Layer norm   ẑ = (z − μ) r,  r = 1/√(v + ε),  u = γ ⊙ ẑ + β,  a^l = σ(u)
                 J^l = diag(σ'(u) ⊙ γ) r (I − 11ᵀ/n − ẑẑᵀ/n) W J^(l-1)      (n = n_l)
    Residual(f)  a^l = a^(l-1) + f(a^(l-1))               J^l = J^(l-1) + J_f
    Output       z = W a^(L-1) + b,   a^L = out(z)        J^L = D W J^(L-1),
                 D = diag(a(1 − a)) for a sigmoid output (mse, bce), diag(a) − aaᵀ for softmax

(μ, v: the mean and biased variance of z over its n units, ε = ``mlplab.layers.EPS``; with
x = z − μ, ∂r/∂z = −r³ x/n, so ∂ẑ/∂z = r (I − 11ᵀ/n − ẑẑᵀ/n) exactly, ε included — the same
maths as the layer's backward pass).

Batch norm is refused: in the training-mode forward a sample's a^l depends on every other
sample of the batch through μ and v, so there is no per-sample Jacobian to give.

The products are carried transposed, K = (J^l)ᵀ per sample, shape (m, n_0, n_l): row i of K is
the image of the input direction e_i, so the rule of each layer is its forward pass applied to n_0
tangent vectors at once, and W acts on all m n_0 of them in one matrix product (K Wᵀ).

Its cost is that of a forward pass at batch m n_0, not m: one (m n_0 × n_(l-1))·(n_(l-1) × n_l)
product per layer, plus elementwise work of the same size. So the products go to two buffers
allocated once and used in turn (a fresh array of m n_0 n_l numbers per layer costs its page
faults every time), and the first layer's product is skipped: K = I there, so K Wᵀ is Wᵀ itself,
copied to every sample.
"""

from __future__ import annotations

import numpy as np

from mlplab.layers import LayerNormalised, Output, Residual
from mlplab.losses import BCE, MSE, SoftmaxCE
from mlplab.network import MLP

dot = np.dot  # every product of K by a weight matrix (the benchmark records them, as the layers' ``dot``)
SIGMOID_OUTPUTS = (MSE, BCE)  # the losses whose output map is a^L = sigmoid(z^L); SoftmaxCE's is softmax


def jacobian(net: MLP, X, upto: int | None = None) -> np.ndarray:
    """∂a^l/∂a^0 for each sample of ``X``, l = ``upto``: an array (m, n_l, n_0) whose entry
    [x, j, i] is ∂a^l_j/∂a^0_i at sample x.

    ``upto``: 0 (the identity), 1..depth (the hidden layers; default ``depth``, the last one) or
    L = depth + 1 (the output a^L, after the loss's output map: sigmoid or softmax). Computed by
    forward-mode products along the network's own forward pass (see the module's docstring);
    the parameters are left alone, but like ``forward`` it replaces the buffers of the last
    ``forward_``. A network that overflows gives a J that is not finite, without a warning (it is
    data: ``singular_values`` turns it into NaN). Batch norm is refused (ValueError): its a^l of one
    sample depends on the others.
    """
    if net.norm == "batch":
        raise ValueError(
            "norm='batch' has no per-sample Jacobian: a sample's a^l depends on the other samples "
            "of the batch through its mean and variance; use norm='none' or 'layer'"
        )
    L = net.L
    if upto is None:
        upto = net.depth
    if isinstance(upto, bool) or not isinstance(upto, (int, np.integer)) or not 0 <= upto <= L:
        raise ValueError(
            f"upto={upto!r}: choose an integer layer 0..{L} (0: the input, {net.depth}: the last hidden "
            f"layer, the default; {L}: the output)"
        )
    if upto == L and not isinstance(net.loss, (*SIGMOID_OUTPUTS, SoftmaxCE)):
        raise ValueError(
            f"upto={upto!r}: loss={net.loss.name!r} has an output map with no Jacobian rule here; "
            f"choose upto 0..{net.depth}, or a loss of {sorted(c.name for c in (*SIGMOID_OUTPUTS, SoftmaxCE))}"
        )
    X = net.as_input(X)
    m, n0 = X.shape
    eye = np.broadcast_to(np.eye(n0, dtype=net.dtype), (m, n0, n0))  # K = (J^0)ᵀ = I per sample
    if upto == 0:
        return eye.copy()
    size = m * n0 * max(net.sizes[1 : upto + 1])
    buffers = (np.empty(size, net.dtype), np.empty(size, net.dtype))  # layer l writes to buffers[l % 2]
    K = None  # the identity: the first layer's product is Wᵀ itself
    # an exploding network overflows (inf, then inf − inf): its J is returned as it is, not finite
    with np.errstate(over="ignore", invalid="ignore"):
        net.forward_(X)
        for l, (layer, c) in enumerate(net.last_workspace.forward[:upto], 1):
            K = _layer_rule(layer, c, K, eye, buffers[l % 2])
    return np.ascontiguousarray(K.transpose(0, 2, 1))


def _layer_rule(layer, c, K: np.ndarray | None, eye: np.ndarray, out: np.ndarray) -> np.ndarray:
    """K = (J^(l-1))ᵀ of shape (m, n_0, n_(l-1)) through layer ``layer`` (its buffers ``c`` hold
    the last forward pass): (J^l)ᵀ of shape (m, n_0, n_l), written into the flat buffer ``out``
    (which K does not share). K None stands for the identity ``eye`` (the first layer)."""
    if isinstance(layer, Residual):  # hidden layers l >= 2 only: K is never the identity here
        Kf = _layer_rule(layer.f, c, K, eye, out)
        Kf += K  # J^l = J^(l-1) + J_f
        return Kf
    m, n0 = eye.shape[:2]
    Kz = out[: m * n0 * layer.n_out].reshape(m, n0, layer.n_out)
    if K is None:
        Kz[...] = layer.WT  # I Wᵀ = Wᵀ, exactly, per sample
    else:
        dot(K.reshape(m * n0, K.shape[2]), layer.WT, out=Kz.reshape(m * n0, layer.n_out))  # (W J)ᵀ = Kᵀ Wᵀ
    if isinstance(layer, Output):
        a = c.a[:, None, :]  # a^L, broadcast over the n_0 directions
        if isinstance(layer.loss, SoftmaxCE):  # (diag(a) − aaᵀ) W J
            Kz -= np.matmul(Kz, c.a[:, :, None])
            Kz *= a
        else:  # sigmoid output: diag(a(1 − a)) W J
            Kz *= a * (1.0 - a)
        return Kz
    D = layer.act.grad_a(c.h)[:, None, :]  # σ'(z), or σ'(u) under layer norm, from h = σ(·)
    if isinstance(layer, LayerNormalised):
        zhat, n = c.z[:, None, :], layer.n_out  # c.z holds ẑ, c.r holds r (m, 1)
        t = np.matmul(Kz, c.z[:, :, None]) * (zhat / n)  # the one temporary of Kz's size
        t += Kz.mean(axis=2, keepdims=True)
        Kz -= t  # Kz − (mean + (Kz ẑ) ẑᵀ/n)
        Kz *= D * layer.gamma * c.r[:, :, None]  # diag(σ'(u) ⊙ γ) r (I − 11ᵀ/n − ẑẑᵀ/n) W J
        return Kz
    Kz *= D  # D W J
    return Kz


def singular_values(J: np.ndarray) -> np.ndarray:
    """The singular values of each Jacobian of ``J`` (m, n_l, n_0), largest first: (m, min(n_l, n_0)),
    by the SVD (LAPACK's gesdd: every value to a relative accuracy of the largest, the smallest
    ones too, where eigenvalues of JJᵀ would lose those below √ε of the largest). A sample whose J
    is not finite (an overflowed forward pass) gets NaN."""
    m, n_l, n_0 = J.shape
    out = np.full((m, min(n_l, n_0)), np.nan)
    finite = np.isfinite(J).all(axis=(1, 2))
    if finite.any():
        out[finite] = np.linalg.svd(J[finite], compute_uv=False)
    return out

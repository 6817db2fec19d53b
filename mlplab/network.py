"""The multilayer perceptron: one forward/backward pair, in the post's notation.

Layers are numbered l = 1..L; ``weights[l-1]`` is W^l with shape (n_l, n_(l-1)) and
``biases[l-1]`` is b^l with shape (n_l,). A mini-batch is batch-first: row x of ``X`` is the
sample x, so for the whole batch

    z^l = a^(l-1) (W^l)^T + b^l,        a^l = σ(z^l)            (forward)
    δ^L = C'(a^L) ⊙ σ'(z^L) / m                                   (the loss's fused δ^L)
    δ^l = δ^(l+1) W^(l+1) ⊙ σ'(z^l)                               (backward)
    ∂C/∂W^l = (δ^l)^T a^(l-1),          ∂C/∂b^l = 1^T δ^l         (sums over the batch)

with C the batch **mean** of the per-sample loss (the 1/m sits in δ^L). Each row of these
equations is the post's column-vector formula for one sample.

Buffers are preallocated per batch size (a ``_Workspace``): the activations a^l, the output
pre-activation z^L, two alternating δ buffers and one scratch buffer for σ', with every
layer's views into them made once. σ' is computed from the stored a^l, so z^l is never kept
for hidden layers (every registered activation's derivative is a function of its output).
Parameters and gradients each live in one flat array (see ``MLP``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from mlplab.activations import Activation, get_activation
from mlplab.init import get_init
from mlplab.losses import Loss, get_loss


@dataclass
class Gradients:
    """What ``MLP.gradients`` returns; lists are indexed l-1 for layer l."""

    loss: float  # batch-mean loss C
    dW: list[np.ndarray]  # ∂C/∂W^l
    db: list[np.ndarray]  # ∂C/∂b^l
    delta: list[np.ndarray]  # δ^l = ∂C/∂z^l, per sample (rows), of the batch-mean loss


FLAT_NORMS_MAX = 16384  # gradients up to this many numbers: norms from the flat array (faster)


class _Workspace:
    """Preallocated arrays for one batch size m, with the views each layer uses made once."""

    def __init__(self, sizes: list[int], m: int, dtype):
        n_max = max(sizes[1:])
        L = len(sizes) - 1
        self.m = m
        self.a = [np.empty((m, n), dtype) for n in sizes[1:]]  # a^1..a^L
        self.zL = np.empty((m, sizes[-1]), dtype)
        d = [np.empty(m * n_max, dtype), np.empty(m * n_max, dtype)]
        s = np.empty(m * n_max, dtype)
        # δ^l (index l-1) in buffer (L - l) % 2: δ^L in 0, δ^(L-1) in 1, δ^(L-2) in 0, ...
        self.delta = [d[(L - 1 - i) % 2][: m * n].reshape(m, n) for i, n in enumerate(sizes[1:])]
        self.scratch = [s[: m * n].reshape(m, n) for n in sizes[1:]]
        self.ones = np.ones(m, dtype)


def _views(buf: np.ndarray, shapes: list[tuple], align: int) -> list[np.ndarray]:
    """Consecutive views of the given shapes into ``buf``, each starting on a multiple of
    ``align`` elements."""
    out, o = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(buf[o : o + n].reshape(shape))
        o += -(-n // align) * align
    return out


def _flat_size(shapes: list[tuple], align: int) -> int:
    return sum(-(-int(np.prod(s)) // align) * align for s in shapes)


class MLP:
    """A fully connected network trained by exact backprop.

    >>> net = MLP([2, 8, 3], activation="sigmoid", loss="softmax_ce", init="normal", seed=0)
    >>> g = net.gradients(X, Y)      # g.loss, g.dW[l-1], g.db[l-1]

    ``sizes`` = [n_0, n_1, ..., n_L]; ``depth`` (hidden layers) = len(sizes) - 2.

    The parameters live in one flat array, [W^1, ..., W^L, b^1, ..., b^L] (each starting on a
    64-byte boundary, zeros in between), and so do their gradients: ``weights[l-1]``,
    ``biases[l-1]``, ``dW[l-1]`` and ``db[l-1]`` are views into them, so the SGD update is two
    array operations whatever the depth. Write into the views (``net.weights[0][:] = W``); a
    list entry replaced by a new array is still used, through a slower per-layer update.
    """

    def __init__(
        self,
        sizes,
        activation: str | Activation = "sigmoid",
        loss: str | Loss = "softmax_ce",
        init: str = "normal",
        seed: int | np.random.Generator = 0,
        *,
        sigma_w: float = 1.0,
        sigma_b: float = 1.0,
        dtype="float64",
        alpha: float = 0.01,
    ):
        self.sizes = [int(n) for n in sizes]
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes={sizes!r}: need at least [n_0, n_L], every size >= 1")
        self.L = len(self.sizes) - 1
        kwargs = {"alpha": alpha} if activation == "leaky_relu" else {}
        self.activation = get_activation(activation, **kwargs)
        self.loss = get_loss(loss)
        self.dtype = np.dtype(dtype)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        initf = get_init(init)
        shapes = [(n_out, n_in) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]
        shapes += [(n_out,) for n_out in self.sizes[1:]]
        align = max(1, 64 // self.dtype.itemsize)
        self._n_w = _flat_size(shapes[: self.L], align)  # weights are params[:_n_w]
        self.params = np.zeros(_flat_size(shapes, align), self.dtype)
        self.grads = np.zeros_like(self.params)
        p, g = _views(self.params, shapes, align), _views(self.grads, shapes, align)
        self.weights: list[np.ndarray] = p[: self.L]
        self.biases: list[np.ndarray] = p[self.L :]
        self.dW: list[np.ndarray] = g[: self.L]
        self.db: list[np.ndarray] = g[self.L :]
        self._own = (list(self.weights), list(self.biases), list(self.dW), list(self.db))
        # small networks: all per-layer squared gradient norms in two array operations over the
        # flat gradient (squares in the network's dtype, sums accumulated in float64) instead of
        # 2L vdot calls
        self._sq_flat = self.grads.size <= FLAT_NORMS_MAX
        if self._sq_flat:
            # each gradient's sum runs from its start to the next one's: the alignment gaps in
            # between hold zeros, so one segment per gradient (no gap segments to skip)
            base = self.grads.__array_interface__["data"][0]
            starts = [(v.__array_interface__["data"][0] - base) // v.itemsize for v in g]
            self._sq_starts = np.array(starts, np.intp)  # W^1..W^L, then b^1..b^L
            sq = np.zeros(self.grads.size, self.dtype)  # squares
            sums = np.empty(2 * self.L)  # float64: reduceat accumulates in the dtype of its out
            self._sq = (sq, sums, sums[: self.L], sums[self.L :])
        for W, b in zip(self.weights, self.biases):
            W[...], b[...] = initf(rng, W.shape[1], W.shape[0], sigma_w, sigma_b)
        self._workspaces: dict[int, _Workspace] = {}

    @property
    def depth(self) -> int:
        return self.L - 1

    def _workspace(self, m: int) -> _Workspace:
        ws = self._workspaces.get(m)
        if ws is None:
            ws = self._workspaces[m] = _Workspace(self.sizes, m, self.dtype)
        return ws

    def _flat(self) -> bool:
        """True while every parameter and gradient in the lists is still a view of the flat arrays."""
        return all(
            len(new) == len(own) and all(map(operator.is_, new, own))
            for new, own in zip((self.weights, self.biases, self.dW, self.db), self._own)
        )

    # -- the core pair (no allocation, no errstate: callers wrap a whole step) ------------------
    def _forward(self, X: np.ndarray, ws: _Workspace) -> None:
        """z^l = a^(l-1) W^lᵀ + b^l, a^l = σ(z^l); fills ws.a[l-1] and ws.zL."""
        a = X
        fn_ = self.activation.fn_
        dot = np.dot
        last = self.L - 1
        for l, (W, b, z) in enumerate(zip(self.weights, self.biases, ws.a)):
            if l == last:
                z = ws.zL
            dot(a, W.T, out=z)
            z += b
            a = self.loss.output_(z, ws.a[l]) if l == last else fn_(z, z)

    def _backward(
        self, X: np.ndarray, Y: np.ndarray, ws: _Workspace, sq_w: np.ndarray | None, sq_b: np.ndarray | None,
        keep: list | None = None,
    ) -> None:
        """δ^L from the loss, then δ^l = δ^(l+1) W^(l+1) ⊙ σ'(z^l); fills self.dW, self.db and
        the squared norms ‖∂C/∂W^l‖², ‖∂C/∂b^l‖² into sq_w[l-1], sq_b[l-1] (skipped when
        ``sq_w`` is None). With ``keep``, a copy of every δ^l goes into keep[l-1] (the hot path
        keeps only two alternating δ buffers)."""
        L = self.L
        A, D, S = ws.a, ws.delta, ws.scratch
        Ws, dWs, dbs, ones = self.weights, self.dW, self.db, ws.ones
        grad_a_ = self.activation.grad_a_
        dot, vdot = np.dot, np.vdot
        per_layer = sq_w is not None and not (self._sq_flat and self._flat())
        delta = self.loss.delta_(ws.zL, A[L - 1], Y, D[L - 1])
        delta *= 1.0 / ws.m
        for l in range(L - 1, -1, -1):  # l is the 0-based index of layer l+1
            if keep is not None:
                keep[l] = delta.copy()
            a_prev = A[l - 1] if l > 0 else X
            dW, db = dWs[l], dbs[l]
            dot(delta.T, a_prev, out=dW)
            dot(ones, delta, out=db)
            if per_layer:
                sq_w[l] = vdot(dW, dW)
                sq_b[l] = vdot(db, db)
            if l > 0:
                new = dot(delta, Ws[l], out=D[l - 1])
                new *= grad_a_(a_prev, S[l - 1])
                delta = new
        if sq_w is not None and not per_layer:
            self._sq_norms(sq_w, sq_b)

    def _sq_norms(self, sq_w: np.ndarray, sq_b: np.ndarray) -> None:
        """‖∂C/∂W^l‖² and ‖∂C/∂b^l‖² of every layer from the flat gradient (small networks)."""
        g = self.grads
        sq, sums, w, b = self._sq
        np.multiply(g, g, out=sq)
        np.add.reduceat(sq, self._sq_starts, out=sums)
        sq_w[:] = w
        sq_b[:] = b

    def _sgd_update(self, lr: float, scale: float = 1.0, weight_decay: float = 0.0) -> None:
        """W ← (1 − ηλ) W − η·scale·∂C/∂W,  b ← b − η·scale·∂C/∂b, in place (η = lr, λ = weight
        decay); ``scale`` is the clipping factor. Overwrites the gradients."""
        eta = -lr * scale
        if self._flat():
            if weight_decay:
                self.params[: self._n_w] *= 1.0 - lr * weight_decay
            g = self.grads
            g *= eta
            self.params += g
            return
        for W, b, dW, db in zip(self.weights, self.biases, self.dW, self.db):
            if weight_decay:
                W *= 1.0 - lr * weight_decay
            dW *= eta
            W += dW
            db *= eta
            b += db

    # -- public API ----------------------------------------------------------------------------
    def _as_input(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"X has shape {X.shape}; expected (batch, {self.sizes[0]})")
        return X

    def forward(self, X) -> list[np.ndarray]:
        """Activations [a^0 = X, a^1, ..., a^L] for the batch X (copies)."""
        X = self._as_input(X)
        ws = self._workspace(X.shape[0])
        with np.errstate(over="ignore"):
            self._forward(X, ws)
        return [X] + [a.copy() for a in ws.a]

    def predict(self, X) -> np.ndarray:
        """Output a^L for the batch X."""
        return self.forward(X)[-1]

    def loss_value(self, X, Y) -> float:
        """Batch-mean loss C on (X, Y)."""
        X = self._as_input(X)
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        ws = self._workspace(X.shape[0])
        with np.errstate(over="ignore"):
            self._forward(X, ws)
            return float(self.loss.fn(ws.zL, ws.a[-1], Y).mean())

    def gradients(self, X, Y) -> Gradients:
        """Exact gradients of the batch-mean loss C = (1/m) Σ_x C_x, layer by layer.

        Returns ``Gradients(loss, dW, db, delta)`` with dW[l-1] = ∂C/∂W^l (shape of W^l),
        db[l-1] = ∂C/∂b^l and delta[l-1] = δ^l = ∂C/∂z^l (batch, n_l). The arrays are copies.
        """
        X = self._as_input(X)
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        if Y.shape != (X.shape[0], self.sizes[-1]):
            raise ValueError(f"Y has shape {Y.shape}; expected ({X.shape[0]}, {self.sizes[-1]})")
        ws = self._workspace(X.shape[0])
        deltas: list[np.ndarray] = [None] * self.L  # type: ignore[list-item]
        with np.errstate(over="ignore"):
            self._forward(X, ws)
            loss = float(self.loss.fn(ws.zL, ws.a[-1], Y).mean())
            self._backward(X, Y, ws, None, None, keep=deltas)
        return Gradients(loss, [g.copy() for g in self.dW], [g.copy() for g in self.db], deltas)

    def __repr__(self) -> str:
        return (
            f"MLP(sizes={self.sizes}, activation={self.activation.name!r}, "
            f"loss={self.loss.name!r}, dtype={self.dtype.name!r})"
        )

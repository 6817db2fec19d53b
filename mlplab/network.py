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
pre-activation z^L, two alternating δ buffers and one scratch buffer for σ'. σ' is computed
from the stored a^l, so z^l is never kept for hidden layers (every registered activation's
derivative is a function of its output).
"""

from __future__ import annotations

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


class _Workspace:
    """Preallocated arrays for one batch size m."""

    def __init__(self, sizes: list[int], m: int, dtype):
        n_max = max(sizes[1:])
        self.m = m
        self.a = [np.empty((m, n), dtype) for n in sizes[1:]]  # a^1..a^L
        self.zL = np.empty((m, sizes[-1]), dtype)
        self._d = [np.empty(m * n_max, dtype), np.empty(m * n_max, dtype)]
        self._s = np.empty(m * n_max, dtype)
        self.ones = np.ones(m, dtype)

    def delta(self, k: int, n: int) -> np.ndarray:
        """δ buffer k (0 or 1), viewed as (m, n)."""
        return self._d[k][: self.m * n].reshape(self.m, n)

    def scratch(self, n: int) -> np.ndarray:
        return self._s[: self.m * n].reshape(self.m, n)


class MLP:
    """A fully connected network trained by exact backprop.

    >>> net = MLP([2, 8, 3], activation="sigmoid", loss="softmax_ce", init="normal", seed=0)
    >>> g = net.gradients(X, Y)      # g.loss, g.dW[l-1], g.db[l-1]

    ``sizes`` = [n_0, n_1, ..., n_L]; ``depth`` (hidden layers) = len(sizes) - 2.
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
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            W, b = initf(rng, fan_in, fan_out, sigma_w, sigma_b)
            self.weights.append(np.ascontiguousarray(W, dtype=self.dtype))
            self.biases.append(np.ascontiguousarray(b, dtype=self.dtype))
        self.dW = [np.empty_like(W) for W in self.weights]
        self.db = [np.empty_like(b) for b in self.biases]
        self._workspaces: dict[int, _Workspace] = {}

    @property
    def depth(self) -> int:
        return self.L - 1

    def _workspace(self, m: int) -> _Workspace:
        ws = self._workspaces.get(m)
        if ws is None:
            ws = self._workspaces[m] = _Workspace(self.sizes, m, self.dtype)
        return ws

    # -- the core pair (no allocation, no errstate: callers wrap a whole step) ------------------
    def _forward(self, X: np.ndarray, ws: _Workspace) -> None:
        """z^l = a^(l-1) W^lᵀ + b^l, a^l = σ(z^l); fills ws.a[l-1] and ws.zL."""
        a = X
        act = self.activation
        last = self.L - 1
        for l in range(self.L):
            z = ws.zL if l == last else ws.a[l]
            np.dot(a, self.weights[l].T, out=z)
            z += self.biases[l]
            if l == last:
                a = self.loss.output_(z, ws.a[l])
            else:
                a = act.fn_(z, z)

    def _backward(self, X: np.ndarray, Y: np.ndarray, ws: _Workspace, sq_w: np.ndarray, sq_b: np.ndarray) -> None:
        """δ^L from the loss, then δ^l = δ^(l+1) W^(l+1) ⊙ σ'(z^l); fills self.dW, self.db and
        the squared norms ‖∂C/∂W^l‖², ‖∂C/∂b^l‖² into sq_w[l-1], sq_b[l-1]."""
        L = self.L
        k = 0
        delta = self.loss.delta_(ws.zL, ws.a[L - 1], Y, ws.delta(k, self.sizes[L]))
        delta *= 1.0 / ws.m
        for l in range(L - 1, -1, -1):  # l is the 0-based index of layer l+1
            a_prev = ws.a[l - 1] if l > 0 else X
            dW, db = self.dW[l], self.db[l]
            np.dot(delta.T, a_prev, out=dW)
            np.dot(ws.ones, delta, out=db)
            sq_w[l] = np.vdot(dW, dW)
            sq_b[l] = np.vdot(db, db)
            if l > 0:
                k ^= 1
                n = self.sizes[l]
                new = np.dot(delta, self.weights[l], out=ws.delta(k, n))
                new *= self.activation.grad_a_(a_prev, ws.scratch(n))
                delta = new

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
        sq_w = np.empty(self.L)
        sq_b = np.empty(self.L)
        deltas: list[np.ndarray] = [None] * self.L  # type: ignore[list-item]
        with np.errstate(over="ignore"):
            self._forward(X, ws)
            loss = float(self.loss.fn(ws.zL, ws.a[-1], Y).mean())
            # δ^l for every layer (the hot path keeps only two buffers, so recompute here)
            delta = self.loss.delta(ws.zL, ws.a[-1], Y) / X.shape[0]
            deltas[-1] = delta
            for l in range(self.L - 1, 0, -1):
                delta = (delta @ self.weights[l]) * self.activation.grad_a(ws.a[l - 1])
                deltas[l - 1] = delta
            self._backward(X, Y, ws, sq_w, sq_b)
        return Gradients(loss, [g.copy() for g in self.dW], [g.copy() for g in self.db], deltas)

    def __repr__(self) -> str:
        return (
            f"MLP(sizes={self.sizes}, activation={self.activation.name!r}, "
            f"loss={self.loss.name!r}, dtype={self.dtype.name!r})"
        )

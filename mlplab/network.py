"""The multilayer perceptron: a stack of layers (``mlplab.layers``) trained by exact backprop.

Layers are numbered l = 1..L: hidden layers 1..depth, then the output layer L = depth + 1.
``weights[l-1]`` is W^l with shape (n_l, n_(l-1)) and ``biases[l-1]`` is b^l with shape (n_l,).
A mini-batch is batch-first (row x of ``X`` is sample x), C is the batch **mean** of the
per-sample loss, and for a plain network

    z^l = a^(l-1) (W^l)ᵀ + b^l,     a^l = σ(z^l)                       (forward)
    δ^L = ∂C/∂z^L  (fused per loss),     δ^l = δ^(l+1) W^(l+1) ⊙ σ'(z^l)   (backward)
    ∂C/∂W^l = (δ^l)ᵀ a^(l-1),       ∂C/∂b^l = 1ᵀ δ^l                    (sums over the batch)

each row being the post's column-vector formula for one sample. With ``residual=True`` a hidden
layer l ≥ 2 of unchanged width adds its input, a^l = a^(l-1) + σ(z^l); with ``norm`` each hidden
layer normalises z^l before σ (``mlplab.layers`` has every layer's equations).

Two ways in:

* the copying API — ``gradients(X, Y)``, ``forward(X)``, ``predict(X)``, ``loss_value(X, Y)``,
  ``evaluate(X, Y)`` — checks its inputs and returns fresh arrays;
* the in-place step API — ``forward_(X)``, ``backward_(Y, norms=True)``, then an optimiser's
  ``step`` (``mlplab.optim``) — is what training, the benchmark and the tests use: no checks, no
  allocation; results live in
  the network's buffers (``net.grads`` and its views ``net.dW``…, ``net.sq``), valid until the
  next call.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from mlplab.activations import Activation, get_activation
from mlplab.init import get_init
from mlplab.layers import NO_NORM, NORMS, Buffers, Dense, Output, Residual
from mlplab.layout import FlatLayout, SquaredNorms
from mlplab.losses import Loss, get_loss

STATS = ("batch", "running")


@dataclass
class Gradients:
    """What ``MLP.gradients`` returns; lists are indexed l-1 for layer l (γ, β: hidden layers)."""

    loss: float  # batch-mean loss C
    dW: list[np.ndarray]  # ∂C/∂W^l
    db: list[np.ndarray]  # ∂C/∂b^l
    delta: list[np.ndarray]  # δ^l = ∂C/∂z^l, per sample (rows), of the batch-mean loss
    dgamma: list[np.ndarray] | None = None  # ∂C/∂γ^l (norm set)
    dbeta: list[np.ndarray] | None = None  # ∂C/∂β^l (norm set)


class Views(list):
    """A list of views into the network's flat parameter (or gradient) array. Write into an
    entry (``net.weights[0][:] = W``) or assign one (``net.weights[0] = W``): either copies the
    values into the view, so the network keeps using them."""

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            raise ValueError(
                "assign one entry at a time (net.weights[l] = W): a slice of the list is not the network's"
            )
        view, value = list.__getitem__(self, i), np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(f"cannot replace an entry of shape {view.shape} by one of shape {value.shape}")
        view[...] = value


class Workspace:
    """The buffers of one batch size m: each layer's ``Buffers``; every layer's output a^l in
    one block (``outputs``, layer after layer, for statistics over all layers in a few calls);
    ∂C/∂a^l and δ^l in two alternating arrays (layer l writes ∂C/∂a^(l-1) into the one layer
    l+1 did not use); two scratch arrays shared by all layers."""

    def __init__(self, layers: list, m: int, dtype, runs: int | None = None):
        n = [layer.n_out for layer in layers]
        L, size = len(layers), m * max(n)
        lead = () if runs is None else (runs,)  # a stack of runs: every array has a row per run

        def empty(k):
            return np.empty(lead + (k,), dtype)

        def shaped(x, k):  # the first m·k numbers (of each run's row) as (…, m, k)
            return x[..., : m * k].reshape(lead + (m, k))

        d, s, t = [empty(size), empty(size)], empty(size), empty(size)
        self.m = m
        self.counts = np.array([m * k for k in n])  # numbers in each a^l (of a run)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.intp)
        self.outputs = empty(int(self.counts.sum()))
        out = [shaped(self.outputs[..., i:], k) for i, k in zip(self.starts, n)]
        self.buffers: list[Buffers] = [
            layer.buffers(m, shaped(s, k), shaped(t, k), a) for layer, k, a in zip(layers, n, out)
        ]
        self.residuals = [i for i, c in enumerate(self.buffers) if c.h is not c.a]  # residual layers: h apart from a^l
        # g[l-1] holds ∂C/∂a^l, then δ^l in place: buffer (L − l) % 2
        self.g = [shaped(d[(L - 1 - i) % 2], k) for i, k in enumerate(n)]
        self.buffers[-1].delta = self.g[-1]  # δ^L
        self.inputs = [None] + [c.a for c in self.buffers[:-1]]  # a^(l-1) of layer l; [0] is X
        self.forward = list(zip(layers, self.buffers))
        self.backward = [
            (layers[i].backward_, i, self.buffers[i], self.g[i - 1] if i else None) for i in reversed(range(L))
        ]


class MLP:
    """A fully connected network trained by exact backprop.

    >>> net = MLP([2, 8, 3], activation="sigmoid", loss="softmax_ce", init="normal", seed=0)
    >>> g = net.gradients(X, Y)      # g.loss, g.dW[l-1], g.db[l-1]

    ``sizes`` = [n_0, n_1, ..., n_L]; ``depth`` (hidden layers) = len(sizes) - 2.
    ``residual``: a^l = a^(l-1) + σ(·) in hidden layers l ≥ 2 whose width equals the previous one.
    ``norm``: "none", "batch" or "layer": normalise every hidden layer's z^l, with a learned scale
    γ^l (``net.gamma[l-1]``, starts at 1) and shift β^l (``net.beta[l-1]``, starts at 0).

    Parameters live in one flat array (``net.params``, laid out by ``mlplab.layout``) and so do
    their gradients (``net.grads``); ``weights``, ``biases``, ``gamma``, ``beta`` and ``dW``, ``db``,
    ``dgamma``, ``dbeta`` are lists of views into them.
    """

    def __init__(
        self,
        sizes,
        activation: str | Activation = "sigmoid",
        loss: str | Loss = "softmax_ce",
        init: str = "normal",
        seed: int | np.random.Generator = 0,
        residual: bool = False,
        norm: str = NO_NORM,
        *,
        sigma_w: float = 1.0,
        sigma_b: float = 1.0,
        dtype="float64",
        alpha: float = 0.01,
        runs: int | None = None,
    ):
        self.sizes = [int(n) for n in sizes]
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes={sizes!r}: need at least [n_0, n_L], every size >= 1")
        norm = NO_NORM if norm is None else norm  # None: the old spelling of "none"
        if norm != NO_NORM and norm not in NORMS:
            raise ValueError(f"norm={norm!r} is not registered; choose {NO_NORM!r} or one of {sorted(NORMS)}")
        self.L = len(self.sizes) - 1
        self.activation = get_activation(activation, **({"alpha": alpha} if activation == "leaky_relu" else {}))
        self.loss = get_loss(loss)
        self.dtype = np.dtype(dtype)
        self.residual, self.norm = bool(residual), norm
        self.layers = [self._hidden(l) for l in range(1, self.L)]
        self.layers.append(Output(self.sizes[-2], self.sizes[-1], self.loss))
        if runs is not None and self.normalised:
            raise ValueError(f"norm={norm!r}: a stack of runs holds plain and residual layers only")
        self._lay_out(runs)
        rng = np.random.default_rng(seed)  # a Generator is returned as it is: the caller's draws
        initf = get_init(init)
        for W, b in zip(self.weights, self.biases):
            W[...], b[...] = initf(rng, W.shape[-1], W.shape[-2], sigma_w, sigma_b)
        self._workspaces: dict[int, Workspace] = {}
        self._last: tuple[Workspace, str] | None = None  # the last forward_'s workspace and statistics

    def _lay_out(self, runs: int | None = None, memory: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Lay the parameters and gradients out (``mlplab.layout``) and bind every layer to its
        views; in ``memory`` (a row of a stack's parameters and gradients) when given."""
        self.layout = FlatLayout([layer.shapes() for layer in self.layers], self.dtype, runs, memory)
        for i, layer in enumerate(self.layers):
            layer.bind(self.layout.views(i), self.layout.grad_views(i))
        self.params, self.grads = self.layout.params, self.layout.grads
        p, g = self.layout.by_kind, self.layout.grads_by_kind
        self.weights, self.biases, self.dW, self.db = Views(p["W"]), Views(p["b"]), Views(g["W"]), Views(g["b"])
        self.gamma = self.beta = self.dgamma = self.dbeta = self.running_mean = self.running_var = None
        if self.normalised:
            self.gamma, self.beta, self.dgamma, self.dbeta = (
                Views(p["gamma"]),
                Views(p["beta"]),
                Views(g["gamma"]),
                Views(g["beta"]),
            )
        if self.norm == "batch":
            self.running_mean = [layer.running_mean for layer in self.layers[:-1]]
            self.running_var = [layer.running_var for layer in self.layers[:-1]]
        self.sq = SquaredNorms(self.layout, self.L)  # ‖∂C/∂θ‖² per array, filled by backward_(norms=True)
        self._results = {}  # gradients()' arrays per batch size (two), reused once let go

    @classmethod
    def stack(cls, nets: list[MLP]) -> MLP:
        """The networks ``nets`` as one stack of runs trained together: one network whose arrays
        carry a leading axis of runs (``mlplab.layout``, ``mlplab.layers``), starting from the
        parameters of each. ``forward_``, ``backward_`` and an optimiser then serve every run in
        each call, each run's numbers bit for bit its own network's. Each network then keeps its
        parameters in its row of the stack's (``params[r]``), so it is the stack's run r at every
        moment, for whatever one network does best (an evaluation, its Jacobian). The networks
        must differ in their parameters only (the same sizes, activation, loss, residual and
        dtype), and be plain or residual (ValueError otherwise)."""
        first = nets[0]
        key = (first.sizes, first.activation.name, first.loss.name, first.residual, first.norm, first.dtype)
        for net in nets[1:]:
            other = (net.sizes, net.activation.name, net.loss.name, net.residual, net.norm, net.dtype)
            if other != key:
                raise ValueError(f"cannot stack {net!r} with {first!r}: only their parameters may differ")
        out = cls(
            first.sizes,
            first.activation,
            first.loss,
            residual=first.residual,
            norm=first.norm,
            dtype=first.dtype,
            runs=len(nets),
        )
        for r, net in enumerate(nets):
            out.params[r] = net.params
            net._lay_out(memory=(out.params[r], out.grads[r]))
        return out

    @property
    def runs(self) -> int | None:
        """The number of runs of a stack (``stack``); None for one network."""
        return self.layout.runs

    def _hidden(self, l: int):
        """Hidden layer l: plain or normalised; residual (adds its input) when ``residual``, l ≥ 2
        and the width is unchanged."""
        n_in, n_out = self.sizes[l - 1], self.sizes[l]
        block = (NORMS[self.norm] if self.normalised else Dense)(n_in, n_out, self.activation)
        return Residual(block) if self.residual and l >= 2 and n_in == n_out else block

    @property
    def normalised(self) -> bool:
        """Every hidden layer normalises its z (``norm`` is "batch" or "layer")."""
        return self.norm != NO_NORM

    @property
    def depth(self) -> int:
        return self.L - 1

    def workspace(self, m: int) -> Workspace:
        """The buffers for mini-batches of m samples (made on first use, then kept)."""
        ws = self._workspaces.get(m)
        if ws is None:
            ws = self._workspaces[m] = Workspace(self.layers, m, self.dtype, self.runs)
        return ws

    # -- the in-place step API (no input checks, no allocation; wrap a step in np.errstate) -----
    def forward_(self, X: np.ndarray, stats: str = "batch", track: bool = False) -> np.ndarray:
        """Forward pass of the batch X (C-contiguous, the network's dtype; (runs, m, n_0) for a
        stack of runs); returns a^L (a buffer).

        ``stats="batch"``: batch norm uses the mini-batch's statistics (training, gradients);
        ``"running"``: its running estimates (evaluation). ``track``: update those estimates (a
        training step). Plain and layer-normalised networks ignore both.
        """
        ws = self.workspace(X.shape[-2])
        ws.inputs[0] = a = X
        for layer, c in ws.forward:
            a = layer.forward_(a, c, stats, track)
        self._last = (ws, stats)
        return a

    def backward_(self, Y: np.ndarray, norms: bool = False, keep: list | None = None) -> None:
        """Backward pass for the targets Y of the last ``forward_``: fills ``net.grads`` (the
        views ``dW``, ``db``, ``dgamma``, ``dbeta``) and, with ``norms``, the squared norm of
        every gradient array in ``net.sq``. With ``keep`` (arrays of the shapes of δ^1..δ^L),
        every δ^l is copied into keep[l-1] (the hot path keeps only two alternating δ buffers)."""
        ws, stats = self._last
        if stats != "batch" and self.norm == "batch":
            raise ValueError("backward_ needs a forward_ with stats='batch' (the running estimates have no gradient)")
        sq = self.sq
        per_layer = norms and not sq.flat
        inputs, g = ws.inputs, Y
        vdot = np.vdot
        for backward, i, c, out in ws.backward:
            g = backward(g, inputs[i], c, out)
            if keep is not None:
                np.copyto(keep[i], c.delta)
            if per_layer:
                for grad, j in sq.slots[i]:
                    sq.sums[j] = vdot(grad, grad)
        if norms and sq.flat:
            sq.from_flat_()

    def loss_(self, Y: np.ndarray) -> float:
        """Mean loss C of the last ``forward_`` against the targets Y."""
        c = self._last[0].buffers[-1]
        return float(self.loss.fn(c.z, c.a, Y).mean())

    @property
    def last_workspace(self) -> Workspace:
        """The workspace (buffers) of the last ``forward_``."""
        return self._last[0]

    def layer_outputs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(a^l, h^l) of every layer l = 1..L in the last ``forward_`` (buffers): the layer's
        output, and σ's output h^l (= a^l but where a residual layer adds a^(l-1))."""
        return [(c.a, c.h) for c in self._last[0].buffers]

    # -- the copying API ------------------------------------------------------------------------
    def as_input(self, X) -> np.ndarray:
        """X as the in-place API wants it (C-contiguous, the network's dtype); ValueError for
        a shape that is not (batch, n_0). The copying API's input check."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"X has shape {X.shape}; expected (batch, {self.sizes[0]})")
        return X

    def as_targets(self, X, Y) -> np.ndarray:
        """Y likewise, checked against the batch X: shape (batch, n_L)."""
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        if Y.shape != (X.shape[0], self.sizes[-1]):
            raise ValueError(f"Y has shape {Y.shape}; expected ({X.shape[0]}, {self.sizes[-1]})")
        return Y

    def forward(self, X, stats: str = "batch") -> list[np.ndarray]:
        """Activations [a^0 = X, a^1, ..., a^L] for the batch X (copies)."""
        if stats not in STATS:
            raise ValueError(f"stats={stats!r}: choose one of {list(STATS)}")
        X = self.as_input(X)
        with np.errstate(over="ignore"):
            self.forward_(X, stats)
        return [X] + [a.copy() for a, _ in self.layer_outputs()]

    def predict(self, X) -> np.ndarray:
        """Output a^L for the batch X, in evaluation mode (batch norm: running estimates)."""
        return self.forward(X, "running")[-1]

    def loss_value(self, X, Y) -> float:
        """Batch-mean loss C on (X, Y), with the mini-batch's statistics: the C whose gradient
        ``gradients`` returns."""
        X = self.as_input(X)
        Y = self.as_targets(X, Y)
        with np.errstate(over="ignore"):
            self.forward_(X)
            return self.loss_(Y)

    def evaluate(self, X, Y) -> tuple[float, float]:
        """(mean loss, accuracy) on (X, Y) in evaluation mode (batch norm: running estimates);
        accuracy is argmax of a^L against argmax of Y. NaN, NaN for an empty set."""
        if len(X) == 0:
            return float("nan"), float("nan")
        X = self.as_input(X)
        Y = self.as_targets(X, Y)
        with np.errstate(over="ignore"):
            aL = self.forward_(X, "running")
            return self.loss_(Y), float((aL.argmax(axis=1) == Y.argmax(axis=1)).mean())

    def gradients(self, X, Y) -> Gradients:
        """Exact gradients of the batch-mean loss C = (1/m) Σ_x C_x, layer by layer.

        Returns ``Gradients(loss, dW, db, delta, dgamma, dbeta)``: dW[l-1] = ∂C/∂W^l (shape of
        W^l), db[l-1] = ∂C/∂b^l, delta[l-1] = δ^l = ∂C/∂z^l (batch, n_l), and with ``norm`` set
        dgamma[l-1] = ∂C/∂γ^l, dbeta[l-1] = ∂C/∂β^l for the hidden layers. The arrays are the
        caller's: no later call changes them. (Their memory is reused by a later call once
        nothing refers to them any more, so a loop over batches allocates nothing.) Batch norm
        uses the mini-batch's statistics and leaves the running estimates alone.
        """
        X = self.as_input(X)
        Y = self.as_targets(X, Y)
        pool = self._results.setdefault(len(X), [])
        out = next((r for r in pool if not r.held()), None)
        if out is None:  # two: `g = net.gradients(...)` in a loop holds the last result during the call
            out = _ResultArrays(self, len(X))
            pool[:] = pool[-1:] + [out]
        with np.errstate(over="ignore"):
            self.forward_(X)
            loss = self.loss_(Y)
            self.backward_(Y, keep=out.delta)
        np.copyto(out.grads, self.grads)
        return out.result(loss)

    def __repr__(self) -> str:
        extra = (", residual=True" if self.residual else "") + (f", norm={self.norm!r}" if self.normalised else "")
        return (
            f"MLP(sizes={self.sizes}, activation={self.activation.name!r}, "
            f"loss={self.loss.name!r}{extra}, dtype={self.dtype.name!r})"
        )


class _ResultArrays:
    """The arrays of one ``gradients`` result: one block laid out as the network's flat
    gradient, then δ^1..δ^L, and views of it. ``held()`` tells whether anything outside still
    refers to them (a returned list or array, or a view of one): CPython's reference counts
    of the block and of every view are then above what they were when the views were made."""

    def __init__(self, net: MLP, m: int):
        n_grads = net.grads.size
        self.block = np.empty(n_grads + m * sum(net.sizes[1:]), net.dtype)
        self.grads = self.block[:n_grads]
        lay, views = net.layout, {k: [] for k in ("W", "b", "gamma", "beta")}
        for kind, i, start in lay.segments:  # the network's gradient layout, in this block
            shape = lay.grad_views(i)[kind].shape
            views[kind].append(self.grads[start : start + int(np.prod(shape))].reshape(shape))
        self.dW, self.db, self.dgamma, self.dbeta = views["W"], views["b"], views["gamma"], views["beta"]
        at, self.delta = n_grads, []
        for n in net.sizes[1:]:
            self.delta.append(self.block[at : at + m * n].reshape(m, n))
            at += m * n
        self.norm = net.normalised
        self._all = (self.block, *self.dW, *self.db, *self.dgamma, *self.dbeta, *self.delta)
        self._counts = self._refcounts()

    def _refcounts(self) -> tuple[int, ...]:
        return tuple(map(sys.getrefcount, self._all))

    def held(self) -> bool:
        return self._refcounts() != self._counts

    def result(self, loss: float) -> Gradients:
        norm = self.norm
        return Gradients(
            loss,
            list(self.dW),
            list(self.db),
            list(self.delta),
            list(self.dgamma) if norm else None,
            list(self.dbeta) if norm else None,
        )

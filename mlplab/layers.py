"""The layers of an MLP, each with its forward and backward pass next to its equations.

Batch-first: row x of ``a`` is one sample, so for a mini-batch of m samples a layer l maps
a^(l-1) (m, n_(l-1)) to a^l (m, n_l). Names follow the post: z is the pre-activation, δ = ∂C/∂z,
and g = ∂C/∂a^l is what a layer's backward pass receives from the layer above; it returns
∂C/∂a^(l-1) for the layer below, having written the gradients of its own parameters.

    Dense        z = a^(l-1) Wᵀ + b,   h = σ(z),   a^l = h
                 δ = g ⊙ σ'(z)
    Normalised   z = a^(l-1) Wᵀ + b,   ẑ = (z − μ)/√(v + ε),   u = γ ⊙ ẑ + β,   h = σ(u),   a^l = h
                 δ = (g_ẑ − mean(g_ẑ) − ẑ ⊙ mean(g_ẑ ⊙ ẑ))/√(v + ε),   g_ẑ = g ⊙ σ'(u) ⊙ γ
                 (μ, v: mean and biased variance per unit over the batch — batch norm — or per
                 sample over the units — layer norm; the means in δ run over the same axis)
    Residual(f)  a^l = a^(l-1) + f(a^(l-1))         ∂C/∂a^(l-1) = (f's backward of g) + g
    Output       z = a^(L-1) Wᵀ + b,   a^L = the loss's output(z),   δ^L = ∂C/∂z^L from the loss

and in every layer  ∂C/∂W = δᵀ a^(l-1),  ∂C/∂b = 1ᵀ δ,  ∂C/∂a^(l-1) = δ W.

A stack of runs trained together (``mlplab.network.MLP.stack``) runs the same code on arrays
with a leading axis of runs: a^l is (runs, m, n_l), W^l (runs, n_l, n_(l-1)), b^l a row
(runs, 1, n_l), and the matrix products are ``np.matmul``'s, one BLAS call per run as a lone
run's ``np.dot`` makes, so each run's numbers are its own, bit for bit.

Every array is written in place into buffers made once per batch size (``Buffers``), so a
training step allocates nothing; σ' is computed from h = σ(·) (each registered activation's
derivative is a function of its output), so no pre-activation is kept for plain layers.
Callers wrap whole steps in ``np.errstate`` (overflow in a saturating sigmoid is expected).
"""

from __future__ import annotations

import numpy as np

from mlplab.activations import Activation
from mlplab.losses import Loss

EPS = 1e-5  # ε of batch and layer normalisation
MOMENTUM = 0.1  # running estimates: r ← (1 − 0.1) r + 0.1 · (this batch's value), PyTorch's convention

dot, multiply = np.dot, np.multiply


def mm(c: Buffers):
    """The matrix product for a layer's buffers: ``dot`` for one run (the cheaper call; looked up
    when called, so that the bench can note its calls), ``np.matmul`` for a stack of runs."""
    return np.matmul if c.stack else dot


class Buffers:
    """One layer's arrays for a mini-batch of m samples: ``z``, ``h``, ``a`` (the same array
    where the maths allows), ``r`` = 1/√(v + ε), shared scratch ``s`` and ``t`` (views into
    buffers of the network's workspace, reused by every layer), ``ones`` (m,) for sums over the
    batch ((1, m) in a stack: one row of sums per run), ``delta``, the δ of the last backward
    pass, and ``stack``: the arrays have a leading axis of runs."""

    __slots__ = ("z", "h", "a", "r", "s", "t", "ones", "ones_n", "delta", "stack")

    def __init__(self, **arrays):
        for k in self.__slots__:
            setattr(self, k, arrays.get(k))


class Dense:
    """Hidden layer  z = a^(l-1) Wᵀ + b,  h = σ(z),  a^l = h."""

    def __init__(self, n_in: int, n_out: int, activation: Activation):
        self.n_in, self.n_out, self.act = n_in, n_out, activation

    # parameters: declared here, stored by mlplab.layout, bound as views
    def shapes(self) -> dict[str, tuple]:
        return {"W": (self.n_out, self.n_in), "b": (self.n_out,)}

    def bind(self, params: dict, grads: dict) -> None:
        self.W, self.b, self.WT = params["W"], params["b"], params["W"].mT
        self.dW, self.db = grads["W"], grads["b"]

    def buffers(self, m: int, s: np.ndarray, t: np.ndarray, a: np.ndarray) -> Buffers:
        """``a``: the (m, n_out) array the layer's output goes to (the workspace lays every
        layer's output out in one block, for statistics over all layers at once); (runs, m,
        n_out) in a stack of runs."""
        stack = a.ndim == 3
        ones = np.ones((1, m) if stack else m, a.dtype)
        return Buffers(z=a, h=a, a=a, s=s, t=t, ones=ones, stack=stack)

    def forward_(self, a_prev, c: Buffers, stats: str, track: bool):
        z = mm(c)(a_prev, self.WT, out=c.z)
        z += self.b  # z = a^(l-1) Wᵀ + b
        return self.act.fn_(z, c.h)  # a^l = h = σ(z), over z in place

    def backward_(self, g, a_prev, c: Buffers, out, keep_g: bool = False):
        s = self.act.grad_a_(c.h, c.s)  # σ'(z), from h = σ(z)
        delta = multiply(g, s, out=s if keep_g else g)  # δ = g ⊙ σ'(z)
        return self.backward_z_(delta, a_prev, c, out)

    def backward_z_(self, delta, a_prev, c: Buffers, out):
        """Given δ = ∂C/∂z: ∂C/∂W = δᵀ a^(l-1), ∂C/∂b = 1ᵀ δ; returns ∂C/∂a^(l-1) = δ W into
        ``out`` (None: the layer below is the input, nothing to return)."""
        c.delta, product = delta, mm(c)
        product(delta.mT, a_prev, out=self.dW)
        product(c.ones, delta, out=self.db)
        return None if out is None else product(delta, self.W, out=out)


class Normalised(Dense):
    """Hidden layer with normalisation between the affine map and σ (Ioffe & Szegedy 2015;
    Ba et al. 2016):

        z = a^(l-1) Wᵀ + b,   x = z − μ,   ẑ = x r,  r = 1/√(v + ε),   u = γ ⊙ ẑ + β,   h = σ(u),   a^l = h

    μ and v = mean(x²) (biased) are taken over ``axis`` (0: per unit over the batch; 1: per
    sample over the units). The backward pass is exact through μ and v:

        g_u = g ⊙ σ'(u),   ∂C/∂γ = 1ᵀ (g_u ⊙ ẑ),   ∂C/∂β = 1ᵀ g_u,   g_ẑ = g_u ⊙ γ,
        δ = ∂C/∂z = r ⊙ (g_ẑ − mean(g_ẑ) − ẑ ⊙ mean(g_ẑ ⊙ ẑ))

    (the subclasses evaluate it in the fewest passes their axis allows).
    """

    axis = 0

    def shapes(self):
        return {**super().shapes(), "gamma": (self.n_out,), "beta": (self.n_out,)}

    def bind(self, params, grads):
        super().bind(params, grads)
        self.gamma, self.beta = params["gamma"], params["beta"]
        self.dgamma, self.dbeta = grads["gamma"], grads["beta"]
        self.gamma[...], self.beta[...] = 1.0, 0.0  # γ starts at 1, β at 0

    def buffers(self, m, s, t, a):
        c = super().buffers(m, s, t, a)
        c.z = np.empty_like(c.h)  # z, then x or ẑ in place; h = σ(u) apart
        c.r = np.empty(self.n_out if self.axis == 0 else (m, 1), c.h.dtype)
        c.ones_n = np.ones(self.n_out, c.h.dtype)
        return c


class BatchNormalised(Normalised):
    """Batch normalisation: μ, v per unit over the mini-batch (``stats="batch"``, training and
    ``gradients``), or the running estimates (``stats="running"``, evaluation). A training step
    (``track=True``) updates them, PyTorch's convention:

        running_mean ← 0.9 running_mean + 0.1 μ,   running_var ← 0.9 running_var + 0.1 v m/(m − 1)

    r, γ and β are per unit, so they factor out of the batch means: with S = 1ᵀ (g_u ⊙ x),

        ∂C/∂γ = r ⊙ S,   ∂C/∂β = 1ᵀ g_u,   δ = γ r ⊙ (g_u − ∂C/∂β / m − x ⊙ r² S / m)

    and c.z keeps x = z − μ (ẑ = x r is never stored).
    """

    axis = 0

    def bind(self, params, grads):
        super().bind(params, grads)
        self.running_mean = np.zeros(self.n_out, self.W.dtype)
        self.running_var = np.ones(self.n_out, self.W.dtype)

    def forward_(self, a_prev, c, stats, track):
        z = dot(a_prev, self.WT, out=c.z)
        z += self.b  # z = a^(l-1) Wᵀ + b
        m = z.shape[0]
        if stats == "running":
            z -= self.running_mean
            v = self.running_var
        else:
            if m < 2:
                raise ValueError(
                    f"batch norm needs a mini-batch of at least 2 samples, got {m} "
                    "(one sample has no variance to normalise by)"
                )
            mu = dot(c.ones, z) / m  # μ = 1ᵀ z / m
            z -= mu  # x = z − μ, over z in place
            v = dot(c.ones, multiply(z, z, out=c.t)) / m  # v = 1ᵀ (x ⊙ x) / m
            if track:
                self.running_mean *= 1.0 - MOMENTUM
                self.running_mean += MOMENTUM * mu
                self.running_var *= 1.0 - MOMENTUM
                self.running_var += MOMENTUM * v * (m / (m - 1))
        r = np.divide(1.0, np.sqrt(v + EPS), out=c.r)
        u = multiply(z, self.gamma * r, out=c.h)
        u += self.beta  # u = γ ⊙ x r + β
        return self.act.fn_(u, c.h)  # a^l = h = σ(u)

    def backward_(self, g, a_prev, c, out, keep_g=False):
        x, t, r, m = c.z, c.t, c.r, len(c.z)
        s = self.act.grad_a_(c.h, c.s)  # σ'(u), from h = σ(u)
        gu = multiply(g, s, out=s if keep_g else g)  # g_u = g ⊙ σ'(u)
        S = dot(c.ones, multiply(gu, x, out=t))  # S = 1ᵀ (g_u ⊙ x)
        multiply(r, S, out=self.dgamma)  # ∂C/∂γ = r ⊙ S
        dot(c.ones, gu, out=self.dbeta)  # ∂C/∂β = 1ᵀ g_u
        gu -= multiply(x, r * r * S / m, out=t)
        gu -= self.dbeta / m
        delta = multiply(gu, self.gamma * r, out=gu)  # δ = γ r ⊙ (g_u − ∂C/∂β/m − x ⊙ r² S/m)
        return self.backward_z_(delta, a_prev, c, out)


class LayerNormalised(Normalised):
    """Layer normalisation: μ, v per sample over the layer's units; no running state, the same
    in training and evaluation. c.z keeps ẑ. γ is per unit, so the means over the units that
    the backward pass needs are matrix-vector products with γ:

        mean(g_ẑ) = (g_u γ) / n,   mean(g_ẑ ⊙ ẑ) = ((g_u ⊙ ẑ) γ) / n
    """

    axis = 1

    def forward_(self, a_prev, c, stats, track):
        z = dot(a_prev, self.WT, out=c.z)
        z += self.b  # z = a^(l-1) Wᵀ + b
        n = z.shape[1]
        mu = dot(z, c.ones_n)[:, None] / n  # μ = z 1 / n, per sample
        z -= mu  # x = z − μ
        v = dot(multiply(z, z, out=c.t), c.ones_n)[:, None] / n  # v = (x ⊙ x) 1 / n
        r = np.divide(1.0, np.sqrt(v + EPS), out=c.r)
        zhat = multiply(z, r, out=z)  # ẑ = x r, over z in place
        u = multiply(zhat, self.gamma, out=c.h)
        u += self.beta  # u = γ ⊙ ẑ + β
        return self.act.fn_(u, c.h)  # a^l = h = σ(u)

    def backward_(self, g, a_prev, c, out, keep_g=False):
        zhat, t, n = c.z, c.t, c.z.shape[1]
        s = self.act.grad_a_(c.h, c.s)  # σ'(u), from h = σ(u)
        gu = multiply(g, s, out=s if keep_g else g)  # g_u = g ⊙ σ'(u)
        guz = multiply(gu, zhat, out=t)
        dot(c.ones, guz, out=self.dgamma)  # ∂C/∂γ = 1ᵀ (g_u ⊙ ẑ)
        dot(c.ones, gu, out=self.dbeta)  # ∂C/∂β = 1ᵀ g_u
        mean_gz = dot(gu, self.gamma)[:, None] / n  # mean(g_ẑ), per sample
        mean_gzz = dot(guz, self.gamma)[:, None] / n  # mean(g_ẑ ⊙ ẑ)
        gz = multiply(gu, self.gamma, out=gu)  # g_ẑ = g_u ⊙ γ
        gz -= multiply(zhat, mean_gzz, out=t)
        gz -= mean_gz
        delta = multiply(gz, c.r, out=gz)  # δ = r ⊙ (g_ẑ − mean(g_ẑ) − ẑ ⊙ mean(g_ẑ ⊙ ẑ))
        return self.backward_z_(delta, a_prev, c, out)


NO_NORM = "none"  # the spelling of "no normalisation" everywhere: config, RunSpec, the runs table, the analysis
NORMS: dict[str, type[Normalised]] = {"batch": BatchNormalised, "layer": LayerNormalised}


class Residual:
    """Residual connection around a block f (He et al. 2016):

        a^l = a^(l-1) + h,  h = f(a^(l-1));     ∂C/∂a^(l-1) = ∂C/∂a^(l-1)|_f + g

    (g = ∂C/∂a^l reaches the layer below twice: through f and straight down the identity path)."""

    def __init__(self, f: Dense):
        self.f = f

    def __getattr__(self, name):  # parameters, shapes and activation are f's
        if name == "f":
            raise AttributeError(name)
        return getattr(self.f, name)

    def buffers(self, m, s, t, a):
        c = self.f.buffers(m, s, t, np.empty_like(a))  # h = f(a^(l-1)) apart from a^l
        c.a = a
        return c

    def forward_(self, a_prev, c, stats, track):
        h = self.f.forward_(a_prev, c, stats, track)
        return np.add(a_prev, h, out=c.a)  # a^l = a^(l-1) + h

    def backward_(self, g, a_prev, c, out, keep_g=False):
        g_prev = self.f.backward_(g, a_prev, c, out, keep_g=True)
        g_prev += g  # ∂C/∂a^(l-1) = δ W + g
        return g_prev


class Output(Dense):
    """Output layer  z^L = a^(L-1) Wᵀ + b,  a^L = output(z^L), paired with its loss:
    δ^L = ∂C/∂z^L = (1/m) ∂C_x/∂z^L per sample (fused per loss, see mlplab.losses), C the batch mean."""

    def __init__(self, n_in: int, n_out: int, loss: Loss):
        super().__init__(n_in, n_out, None)
        self.loss = loss

    def buffers(self, m, s, t, a):
        c = super().buffers(m, s, t, a)
        c.z = np.empty_like(c.h)  # z^L is kept: the losses are evaluated from it
        return c

    def forward_(self, a_prev, c, stats, track):
        z = mm(c)(a_prev, self.WT, out=c.z)
        z += self.b  # z^L = a^(L-1) Wᵀ + b
        return self.loss.output_(z, c.a)  # a^L

    def backward_(self, y, a_prev, c, out, keep_g=False):
        delta = self.loss.delta_(c.z, c.a, y, c.delta)  # δ^L per sample (c.delta: its buffer)
        delta *= 1.0 / delta.shape[-2]  # of the batch-mean loss (m samples)
        return self.backward_z_(delta, a_prev, c, out)

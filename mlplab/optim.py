"""The update rules: an optimiser bound to a network, stepping from the gradients in ``net.grads``.

    opt = make(net, "adam", lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)
    net.forward_(X); net.backward_(Y)     # fills net.grads
    opt.step(scale)                       # scale: the clipping factor s (1 without clipping)

The rules are PyTorch's (``torch.optim``), with its defaults: ``sgd``, ``momentum`` and
``nesterov`` (``SGD`` with momentum, dampening 0), ``adam``, ``adamw``, ``rmsprop`` (not centred,
no momentum). The gradient they see is the clipped one, s·∂C/∂θ (clipping acts before the
optimiser, as ``clip_grad_norm_`` before ``optimizer.step()``). Weight decay λ acts on the
weights W only (not b, γ, β): added to the gradient (*coupled*: g = s·∂C/∂W + λW) for every rule
but ``adamw``, whose decay is decoupled (W ← W − ηλW beside Adam's step).

An optimiser acts on the network's flat arrays (``net.params``, ``net.grads``, laid out by
``mlplab.layout``), so a step is a few array operations whatever the depth; the state it keeps (a
velocity, moments) is flat arrays like them, allocated once. Training applies it, and the record
asks it for the size of the step it is about to take (``weight_step_norms``): the rule lives
here once. ``LearningRate`` gives η per update: a linear warmup, then a schedule.

On a stack of runs (``mlplab.network.MLP.stack``: flat arrays of shape (runs, P)) the same
operations serve every run at once, ``scale`` being the (runs, 1) column of the runs' clipping
factors; ``weight_step_norms(..., run=r)`` gives run r's norms.
"""

from __future__ import annotations

import math

import numpy as np

from mlplab.layout import safe_norm


def checked(name: str, value, ok: bool, allowed: str) -> float:
    """``value`` as a float, or a one-line error naming the hyperparameter, its value and what is allowed."""
    if not ok:
        raise ValueError(f"{name}={value!r}: {allowed}")
    return float(value)


class SGD:
    """Plain SGD with weight decay on the weights only (not b, γ, β):

        W ← (1 − ηλ) W − η·s·∂C/∂W,     θ ← θ − η·s·∂C/∂θ   (θ = b, γ, β)

    η = ``lr``, λ = ``weight_decay``, s = ``scale`` of ``step``. Equivalently ΔW = −η (s·∂C/∂W + λ W)."""

    HYPER: tuple[str, ...] = ()  # its own hyperparameters, beside lr and weight_decay
    ARRAYS = 0  # the state it keeps: arrays the size of net.params (the memory estimate counts them)

    def __init__(self, net, lr: float, weight_decay: float = 0.0):
        self.net, self.lr, self.weight_decay = net, float(lr), float(weight_decay)

    def step(self, scale: float = 1.0) -> None:
        """One update in place from the gradients of the last ``backward_``; overwrites them."""
        net, lr, wd = self.net, self.lr, self.weight_decay
        if wd:
            net.params[..., net.layout.decayed] *= 1.0 - lr * wd
        g = net.grads
        g *= -lr * scale
        net.params += g

    def weight_step_norms(self, scale, grad_w_norms: np.ndarray | None = None, run: int | None = None) -> np.ndarray:
        """‖ΔW^l‖ of every layer for the next ``step(scale)``, from the gradients as they are now.
        ``grad_w_norms``: ‖∂C/∂W^l‖ when already known (not valid once clipping changed the
        gradients in place: pass None); with weight decay the two terms are summed array by
        array (no cancellation between them is lost). In a stack of runs, run ``run``'s (its
        ``grad_w_norms``; ``scale``: every run's column)."""
        lr, wd = self.lr, self.weight_decay
        if run is not None:
            scale = float(scale[run, 0])
        if wd or grad_w_norms is None:
            net = self.net
            pairs = zip(net.weights, net.dW) if run is None else ((W[run], g[run]) for W, g in zip(net.weights, net.dW))
            norms = np.array([safe_norm(scale * g + wd * W) for W, g in pairs])
        else:
            norms = scale * grad_w_norms
        return norms * lr


class _Stateful:
    """What the rules with a state share. The update Δθ is computed into ``d``, and the next
    state into spare arrays (``_delta``, defined by each rule); ``step`` then applies Δθ and makes
    the new state current. ``weight_step_norms`` computes Δθ first, so that the record reads
    ‖ΔW^l‖ of exactly the update that follows (the gradients must not change in between)."""

    HYPER: tuple[str, ...] = ()
    DECOUPLED = False  # weight decay beside the step (adamw), not in the gradient
    ARRAYS = 2  # Δθ and a scratch array, plus each rule's state (current and next)

    def __init__(self, net, lr: float, weight_decay: float):
        self.net = net
        self.lr = checked("lr", lr, lr > 0 and math.isfinite(lr), "must be a number > 0")
        self.weight_decay = checked(
            "weight_decay", weight_decay, weight_decay >= 0 and math.isfinite(weight_decay), "must be a number ≥ 0"
        )
        self.t = 0  # updates applied
        self.d = np.zeros_like(net.params)  # Δθ of the next update
        self._tmp = np.zeros_like(net.params)
        self._ready = math.nan  # the scale Δθ in ``d`` was computed for, until applied (NaN: none; a stack's column)
        layout = net.layout
        W = [seg for seg in layout.segments if seg[0] == "W"]
        self._w = [slice(start, start + w.shape[-2] * w.shape[-1]) for (_, _, start), w in zip(W, layout.by_kind["W"])]

    def _state(self) -> np.ndarray:
        return np.zeros_like(self.net.params)

    def _gradient(self, scale: float) -> np.ndarray:
        """g = s·∂C/∂θ, plus λW on the weights under coupled decay: in ``net.grads``, in place."""
        g, net = self.net.grads, self.net
        g *= scale
        if self.weight_decay and not self.DECOUPLED:
            dec = net.layout.decayed
            np.multiply(net.params[..., dec], self.weight_decay, out=self._tmp[..., dec])
            g[..., dec] += self._tmp[..., dec]
        return g

    def _decoupled_decay(self) -> None:
        """Δθ += −ηλW (adamw): the decay beside the step."""
        if self.weight_decay and self.DECOUPLED:
            dec = self.net.layout.decayed
            np.multiply(self.net.params[..., dec], -self.lr * self.weight_decay, out=self._tmp[..., dec])
            self.d[..., dec] += self._tmp[..., dec]

    def _prepare(self, scale) -> None:
        if self._ready is not scale and (np.ndim(scale) or self._ready != scale):  # a stack's column: the same array
            self._delta(scale)
            self._decoupled_decay()
            self._ready = scale

    def step(self, scale: float = 1.0) -> None:
        """One update in place from the gradients of the last ``backward_``; overwrites them."""
        self._prepare(scale)
        self.net.params += self.d
        self._swap()
        self.t += 1
        self._ready = math.nan

    def weight_step_norms(self, scale, grad_w_norms: np.ndarray | None = None, run: int | None = None) -> np.ndarray:
        """‖ΔW^l‖ of every layer for the next ``step(scale)``: Δθ is computed now and applied by
        that step (``grad_w_norms`` is not needed: the rule's step is not a multiple of it). In
        a stack of runs, run ``run``'s (``scale``: every run's column)."""
        self._prepare(scale)
        d = self.d if run is None else self.d[run]
        return np.array([safe_norm(d[w]) for w in self._w])


class Momentum(_Stateful):
    """Heavy-ball momentum (``torch.optim.SGD``, dampening 0), or Nesterov's:

        v ← μ v + g,     θ ← θ − η v            (nesterov: θ ← θ − η (g + μ v))

    g = s·∂C/∂θ (+ λW, coupled); v starts at 0, so the first v is g, as PyTorch's first buffer."""

    HYPER = ("momentum",)
    ARRAYS = _Stateful.ARRAYS + 2  # v, v'

    def __init__(self, net, lr: float, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(net, lr, weight_decay)
        self.momentum = checked("momentum", momentum, momentum >= 0 and math.isfinite(momentum), "must be a number ≥ 0")
        self.nesterov = bool(nesterov)
        self.v, self._v = self._state(), self._state()

    def _delta(self, scale: float) -> None:
        g, mu = self._gradient(scale), self.momentum
        np.multiply(self.v, mu, out=self._v)
        self._v += g  # v' = μ v + g
        if self.nesterov:
            np.multiply(self._v, mu, out=self.d)
            self.d += g  # g + μ v'
            self.d *= -self.lr
        else:
            np.multiply(self._v, -self.lr, out=self.d)

    def _swap(self) -> None:
        self.v, self._v = self._v, self.v


def _beta(name: str, b) -> float:
    return checked(name, b, 0 <= b < 1, "must be a number in [0, 1)")


def _eps(e) -> float:
    return checked("eps", e, e > 0 and math.isfinite(e), "must be a number > 0")


class Adam(_Stateful):
    """Adam (``torch.optim.Adam``): bias-corrected moments, ε outside the square root,

        m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²,
        θ ← θ − η/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)

    at update t = 1, 2, …; g = s·∂C/∂θ (+ λW, coupled)."""

    HYPER = ("beta1", "beta2", "eps")
    ARRAYS = _Stateful.ARRAYS + 4  # m, m', v, v'

    def __init__(
        self, net, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay=0.0
    ):
        super().__init__(net, lr, weight_decay)
        self.beta1, self.beta2, self.eps = _beta("beta1", beta1), _beta("beta2", beta2), _eps(eps)
        self.m, self._m, self.v, self._v = self._state(), self._state(), self._state(), self._state()

    def _delta(self, scale: float) -> None:
        g, b1, b2, d = self._gradient(scale), self.beta1, self.beta2, self.d
        t = self.t + 1
        np.multiply(self.m, b1, out=self._m)
        np.multiply(g, 1 - b1, out=d)
        self._m += d  # m' = β1 m + (1 − β1) g
        np.multiply(self.v, b2, out=self._v)
        np.multiply(g, g, out=d)
        d *= 1 - b2
        self._v += d  # v' = β2 v + (1 − β2) g²
        np.sqrt(self._v, out=d)
        d /= math.sqrt(1 - b2**t)
        d += self.eps  # √v̂ + ε
        np.divide(self._m, d, out=d)
        d *= -self.lr / (1 - b1**t)

    def _swap(self) -> None:
        self.m, self._m, self.v, self._v = self._m, self.m, self._v, self.v


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam's step on s·∂C/∂θ, and the decay decoupled from it,
    W ← W − ηλW (PyTorch's W ← W (1 − ηλ) before the step; the same to rounding). Its default λ
    is PyTorch's, 0.01."""

    DECOUPLED = True

    def __init__(self, net, lr: float = 1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay: float = 0.01):
        super().__init__(net, lr, beta1, beta2, eps, weight_decay)


class RMSprop(_Stateful):
    """RMSProp (``torch.optim.RMSprop``, not centred, no momentum):

        v ← α v + (1 − α) g²,     θ ← θ − η g / (√v + ε)

    g = s·∂C/∂θ (+ λW, coupled)."""

    HYPER = ("alpha", "eps")
    ARRAYS = _Stateful.ARRAYS + 2  # v, v'

    def __init__(self, net, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(net, lr, weight_decay)
        self.alpha, self.eps = _beta("alpha", alpha), _eps(eps)
        self.v, self._v = self._state(), self._state()

    def _delta(self, scale: float) -> None:
        g, a, d = self._gradient(scale), self.alpha, self.d
        np.multiply(self.v, a, out=self._v)
        np.multiply(g, g, out=d)
        d *= 1 - a
        self._v += d  # v' = α v + (1 − α) g²
        np.sqrt(self._v, out=d)
        d += self.eps
        np.divide(g, d, out=d)
        d *= -self.lr

    def _swap(self) -> None:
        self.v, self._v = self._v, self.v


class Nesterov(Momentum):
    """Nesterov's momentum: ``Momentum`` with ``nesterov=True``."""

    def __init__(self, net, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(net, lr, momentum, True, weight_decay)


OPTIMISERS: dict = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
}


def make(net, name: str, **kw):
    """The optimiser ``name`` bound to ``net`` (``lr=``, ``weight_decay=``, and its own:
    ``momentum=``, ``nesterov=``; ``beta1=``, ``beta2=``, ``eps=``; ``alpha=``, ``eps=``)."""
    try:
        cls = OPTIMISERS[name]
    except KeyError:
        raise ValueError(f"optimiser {name!r} is not registered; choose one of {sorted(OPTIMISERS)}") from None
    return cls(net, **kw)

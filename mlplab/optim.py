"""The update rule: an optimiser bound to a network, stepping from the gradients in ``net.grads``.

    opt = make(net, "sgd", lr=0.5, weight_decay=1e-4)
    net.forward_(X); net.backward_(Y)     # fills net.grads
    opt.step(scale)                       # scale: the clipping factor s (1 without clipping)

An optimiser acts on the network's flat arrays (``net.params``, ``net.grads``, laid out by
``mlplab.layout``), so a step is a few array operations whatever the depth; any state it keeps
(a velocity, moments) is a flat array like them. Training applies it, and the record asks it
for the size of the step it is about to take (``weight_step_norms``): the rule lives here once.
"""

from __future__ import annotations

import numpy as np

from mlplab.layout import safe_norm


class SGD:
    """Plain SGD with weight decay on the weights only (not b, γ, β):

        W ← (1 − ηλ) W − η·s·∂C/∂W,     θ ← θ − η·s·∂C/∂θ   (θ = b, γ, β)

    η = ``lr``, λ = ``weight_decay``, s = ``scale`` of ``step``. Equivalently ΔW = −η (s·∂C/∂W + λ W)."""

    def __init__(self, net, lr: float, weight_decay: float = 0.0):
        self.net, self.lr, self.weight_decay = net, float(lr), float(weight_decay)

    def step(self, scale: float = 1.0) -> None:
        """One update in place from the gradients of the last ``backward_``; overwrites them."""
        net, lr, wd = self.net, self.lr, self.weight_decay
        if wd:
            net.params[net.layout.decayed] *= 1.0 - lr * wd
        g = net.grads
        g *= -lr * scale
        net.params += g

    def weight_step_norms(self, scale: float, grad_w_norms: np.ndarray | None = None) -> np.ndarray:
        """‖ΔW^l‖ of every layer for the next ``step(scale)``, from the gradients as they are now.
        ``grad_w_norms``: ‖∂C/∂W^l‖ when already known (not valid once clipping changed the
        gradients in place: pass None); with weight decay the two terms are summed array by
        array (no cancellation between them is lost)."""
        lr, wd = self.lr, self.weight_decay
        if wd or grad_w_norms is None:
            net = self.net
            norms = np.array([safe_norm(scale * g + wd * W) for W, g in zip(net.weights, net.dW)])
        else:
            norms = scale * grad_w_norms
        return norms * lr


OPTIMISERS: dict[str, type] = {"sgd": SGD}


def make(net, name: str, **kw):
    """The optimiser ``name`` bound to ``net`` (``lr=``, ``weight_decay=``, ...)."""
    try:
        cls = OPTIMISERS[name]
    except KeyError:
        raise ValueError(f"optimiser {name!r} is not registered; choose one of {sorted(OPTIMISERS)}") from None
    return cls(net, **kw)

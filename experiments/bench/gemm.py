"""The matrix products of a step, recorded from the step itself and replayed bare.

Every layer of ``mlplab.layers`` computes its products with the module's ``dot`` (z = a Wᵀ,
∂C/∂W = δᵀ a, ∂C/∂b = 1ᵀ δ, δ W, and the normalised layers' means). ``record`` swaps that
``dot`` for one that notes each call's arrays while it computes, runs the step once, and puts
it back: the replay is the step's own list of products, whatever layers the network has, so
it cannot drift from the code it measures.
"""

from __future__ import annotations

import numpy as np

import mlplab.layers


def record(step, module=mlplab.layers) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The ``dot`` calls of one call of ``step()``: (a, b, out) each, ``out`` a private array
    of the result's shape (replaying never writes into the network's buffers). ``module``: whose
    ``dot`` (the layers', or ``mlplab.jacobian``'s products)."""
    calls = []
    real = module.dot

    def noting(a, b, out=None):
        result = real(a, b, out=out)
        calls.append((a, b, np.empty_like(result)))
        return result

    module.dot = noting
    try:
        step()
    finally:
        module.dot = real
    return calls


def replay(calls):
    """A function that computes the recorded products again, bare."""
    dot = np.dot

    def bare():
        for a, b, out in calls:
            dot(a, b, out=out)

    return bare


def flops(calls) -> float:
    """Floating-point operations of the recorded products (2 per multiply-add)."""
    total = 0
    for a, b, _ in calls:
        k = a.shape[-1]
        total += 2 * k * (a.size // k) * (b.size // k)
    return float(total)

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def central_differences(net, X, Y, P, h=1e-6):
    """(C(θ+h) − C(θ−h)) / 2h of the batch-mean loss (mini-batch statistics) for every entry θ
    of the parameter array P, changed in place and restored."""
    G = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        old = P[i]
        P[i] = old + h
        up = net.loss_value(X, Y)
        P[i] = old - h
        down = net.loss_value(X, Y)
        P[i] = old
        G[i] = (up - down) / (2 * h)
    return G


@pytest.fixture
def numerical():
    """The finite-difference gradient of a parameter array: ``numerical(net, X, Y, P)``."""
    return central_differences


# ``python -c FAULTY ...`` is ``python -m mlplab ...`` with a fault injected into every run whose
# first hidden layer has 5 units: its 3rd backward pass raises. For runs in this process (a
# single run, or hydra/launcher=basic): a genuine failure inside a run, not bad input.
FAULTY = """
import mlplab.network as network
original = network.MLP.backward_
def faulty(self, *args, **kwargs):
    if self.sizes[1] == 5:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            raise FloatingPointError("injected fault")
    return original(self, *args, **kwargs)
network.MLP.backward_ = faulty
from mlplab.cli import entry
entry()
"""

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

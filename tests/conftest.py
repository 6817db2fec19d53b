from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

# One BLAS thread in each test process, as mlplab.run has in each run: the test run has a
# process per core already (pytest -n auto), and more threads only wait on each other (the
# tests' matrices are small; OpenBLAS's threads cost more than they save, many times more
# when the cores are busy).
threadpool_limits(limits=1, user_api="blas")

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


# ``python -c FAULTY ...`` is ``python -m mlplab ...`` with the fault of tests/faults/sitecustomize.py
# (MLPLAB_FAULT=backward: the 3rd backward pass of every run whose first hidden layer has 5 units
# raises) injected in this process. For runs in this process (a single run, or
# hydra/launcher=basic): a genuine failure inside a run, not bad input.
FAULTY = f"""
import os, runpy
os.environ["MLPLAB_FAULT"] = "backward"
runpy.run_path({str(Path(__file__).parent / "faults" / "sitecustomize.py")!r})
from mlplab.cli import entry
entry()
"""

"""Nielsen's published numbers and setting (*Neural Networks and Deep Learning*, ch. 5).

His speeds of learning ‖∂C/∂b^l‖ per hidden layer, at initialisation and during training, as
his repository keeps them (mnielsen/neural-networks-and-deep-learning), and the configuration
and training protocol they belong to, in mlplab's terms. Data, one number a line as the
formatter lays them out: the reason this module is long.
"""

from __future__ import annotations

import math

import numpy as np

# depth (hidden layers) -> ‖∂C/∂b^l‖ for l = 1..depth of [784, 30, ..., 30, 10] at initialisation:
# epoch 0 of fig/norms_during_training_{2,3,4}_layers.json in his repository
# (mnielsen/neural-networks-and-deep-learning), every digit the files hold.
NIELSEN: dict[int, tuple[float, ...]] = {
    2: (0.06574134326503182, 0.3092184942703712),
    3: (0.011838212272121293, 0.05996519457449515, 0.28314239285488185),
    4: (0.0029752663545292526, 0.017076665445425132, 0.06953924167660484, 0.28513893545173896),
}

# His curves during training, from the same files (4 significant digits): ‖∂C/∂b^l‖ at the start
# of each of these epochs (before its update), per depth one tuple per hidden layer.
NIELSEN_EPOCHS: tuple[int, ...] = (0, 5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 300, 400, 495)
NIELSEN_TRAINING: dict[int, tuple[tuple[float, ...], ...]] = {
    2: (
        (
            0.06574,
            0.01899,
            0.00893,
            0.002505,
            0.001109,
            0.0009498,
            0.001017,
            0.001114,
            0.00131,
            0.001488,
            0.001835,
            0.00208,
            0.002489,
            0.003026,
            0.003429,
        ),
        (
            0.3092,
            0.09027,
            0.04038,
            0.0107,
            0.003533,
            0.001693,
            0.001342,
            0.001358,
            0.001582,
            0.001857,
            0.002593,
            0.003368,
            0.005167,
            0.00753,
            0.009575,
        ),
    ),
    3: (
        (
            0.01184,
            0.005163,
            0.002004,
            0.0004555,
            0.0001525,
            9.516e-05,
            8.504e-05,
            8.257e-05,
            8.107e-05,
            8.053e-05,
            8.078e-05,
            8.215e-05,
            8.506e-05,
            8.632e-05,
            8.563e-05,
        ),
        (
            0.05997,
            0.02653,
            0.01042,
            0.002437,
            0.000799,
            0.0004167,
            0.0003255,
            0.0003013,
            0.0002879,
            0.0002809,
            0.0002672,
            0.0002565,
            0.0002407,
            0.0002285,
            0.0002186,
        ),
        (
            0.2831,
            0.1488,
            0.05962,
            0.01391,
            0.004472,
            0.002178,
            0.001601,
            0.001452,
            0.001396,
            0.001385,
            0.001365,
            0.001347,
            0.001315,
            0.001287,
            0.001262,
        ),
    ),
    4: (
        (
            0.002975,
            0.0006996,
            0.0002659,
            6.369e-05,
            2.867e-05,
            2.223e-05,
            2.065e-05,
            1.998e-05,
            1.91e-05,
            1.834e-05,
            1.657e-05,
            1.498e-05,
            1.225e-05,
            1.002e-05,
            8.279e-06,
        ),
        (
            0.01708,
            0.003957,
            0.001475,
            0.0003198,
            0.0001043,
            5.841e-05,
            4.803e-05,
            4.525e-05,
            4.35e-05,
            4.24e-05,
            3.985e-05,
            3.747e-05,
            3.315e-05,
            2.939e-05,
            2.627e-05,
        ),
        (
            0.06954,
            0.02175,
            0.008404,
            0.001838,
            0.0005854,
            0.0003102,
            0.0002466,
            0.0002309,
            0.0002242,
            0.0002215,
            0.0002157,
            0.0002102,
            0.0002,
            0.0001908,
            0.0001828,
        ),
        (
            0.2851,
            0.09496,
            0.03657,
            0.007906,
            0.002493,
            0.001312,
            0.001045,
            0.0009827,
            0.000963,
            0.00096,
            0.000955,
            0.0009503,
            0.0009413,
            0.0009328,
            0.000925,
        ),
    ),
}

# the configuration his numbers belong to (columns of the runs table); plain networks only
NIELSEN_CONFIG = {"activation": "sigmoid", "loss": "bce", "init": "normal", "sigma_w": 1.0, "sigma_b": 1.0, "width": 30}

# his training protocol in mlplab's terms (fig/generate_gradient.py: net.SGD(td, 1, 1000, 0.1,
# lmbda=5.0) once per epoch on 1,000 MNIST images): W ← (1 − ηλ/n) W − η mean ∂C/∂W is
# mlplab's weight decay λ/n
NIELSEN_PROTOCOL = {"dataset": "mnist", "lr": 0.1, "weight_decay": 5.0 / 1000, "batch_size": 1000, "epochs": 500}


# the data sets, as the report names them
DATASET_NAMES = {"mnist": "MNIST", "digits": "the 8×8 digits"}


def network_text(sizes) -> str:
    """Layer sizes as '[784, 30, 30, 10]'."""
    return "[" + ", ".join(str(int(n)) for n in sizes) + "]"


def nielsen_network(depth: int) -> str:
    """His network for ``depth`` hidden layers, e.g. '[784, 30, 30, 10]'."""
    return network_text([784] + [30] * depth + [10])


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def his_speed(depth: int, layer: int) -> float:
    """His ‖∂C/∂b^layer‖ at initialisation; NaN where he published none (other depth, layer)."""
    vals = NIELSEN.get(int(depth), ())
    return vals[layer - 1] if 1 <= layer <= len(vals) else math.nan


def is_his_protocol(protocol: tuple) -> bool:
    """Whether (dataset, lr, weight_decay, batch_size) is his training protocol (``NIELSEN_PROTOCOL``)."""
    p = NIELSEN_PROTOCOL
    dataset, lr, wd, bs = protocol
    return (
        dataset == p["dataset"]
        and np.isclose(lr, p["lr"])
        and np.isclose(wd, p["weight_decay"])
        and bs == p["batch_size"]
    )

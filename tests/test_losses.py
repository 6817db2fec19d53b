"""The post's table of output errors δ^L, checked against finite differences of C_x in z^L."""

import numpy as np
import pytest

from mlplab.activations import ACTIVATIONS, get_activation
from mlplab.losses import LOSSES, get_loss


def numerical_delta(loss, z, y, h=1e-6):
    d = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        d[i] = (loss.fn(zp, loss.output(zp), y) - loss.fn(zm, loss.output(zm), y))[i[0]] / (2 * h)
    return d


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


POST_TABLE = {  # δ^L as the post (corrected) gives it, from a = output(z) and one-hot y
    "mse": lambda z, y: (sigmoid(z) - y) * sigmoid(z) * (1 - sigmoid(z)),
    "bce": lambda z, y: sigmoid(z) - y,
    "softmax_ce": lambda z, y: softmax(z) - y,
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_delta_L_is_the_post_table_and_the_true_gradient(name, rng):
    loss = get_loss(name)
    z = rng.standard_normal((6, 4)) * 2
    y = np.eye(4)[rng.integers(0, 4, 6)]
    a = loss.output(z)
    delta = loss.delta(z, a, y)
    assert np.allclose(delta, POST_TABLE[name](z, y), rtol=1e-12, atol=1e-15)
    num = numerical_delta(loss, z, y)
    assert np.abs(delta - num).max() / np.abs(num).max() <= 1e-6


def test_post_softmax_entry_is_not_the_gradient(rng):
    """Erratum 3: the post's (0, …, a_i − 1, …, 0) drops a_j for every j ≠ i."""
    loss = get_loss("softmax_ce")
    z = rng.standard_normal((5, 4))
    y = np.eye(4)[rng.integers(0, 4, 5)]
    a = loss.output(z)
    post = y * (a - 1.0)  # only the true class's component
    true = numerical_delta(loss, z, y)
    assert np.allclose(loss.delta(z, a, y), true, atol=1e-8)
    assert np.abs(post - true).max() > 0.05
    assert np.allclose(post[y == 1], true[y == 1], atol=1e-8)  # right on the true class only


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_are_finite_and_exact_when_the_output_saturates(name):
    loss = get_loss(name)
    z = np.array([[800.0, -800.0, 0.0], [-1000.0, 1000.0, 30.0]])
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    with np.errstate(over="raise", invalid="raise"):
        a = loss.output(z) if name != "mse" else get_activation("sigmoid").fn(z)
        c = loss.fn(z, a, y)
    assert np.all(np.isfinite(c))
    if name == "bce":  # −log σ(−800) = 800, −log(1 − σ(800)) = 800, softplus(0) = log 2 ...
        assert np.isclose(c[0], 800 + 800 + np.log(2))
    if name == "softmax_ce":  # logsumexp([800, -800, 0]) − (−800) = 1600
        assert np.isclose(c[0], 1600.0)


def test_sigmoid_is_stable_and_accurate_for_any_z():
    act = get_activation("sigmoid")
    z = np.array([-1e6, -745.0, -40.0, -30.0, 0.0, 30.0, 40.0, 1e6])
    a = act.fn(z)  # no warning escapes: pytest runs with warnings as errors
    assert np.all(np.isfinite(a)) and np.all((a >= 0) & (a <= 1))
    assert a[0] == 0.0 and a[-1] == 1.0 and a[4] == 0.5
    exact = np.exp(-30.0) / (1 + np.exp(-30.0))
    assert abs(a[3] - exact) / exact < 1e-14  # relative accuracy deep in saturation
    assert a[1] >= 0.0


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_from_output_matches_derivative_in_z(name, rng):
    act = get_activation(name)
    z = rng.standard_normal(200) * 3
    z = z[np.abs(z) > 1e-3]  # away from the kink of relu/leaky_relu
    assert np.allclose(act.grad_a(act.fn(z)), act.grad(z), rtol=1e-12, atol=1e-15)
    h = 1e-6
    assert np.allclose(act.grad(z), (act.fn(z + h) - act.fn(z - h)) / (2 * h), rtol=1e-6, atol=1e-9)


def test_sigmoid_derivative_is_at_most_a_quarter(rng):
    z = np.linspace(-20, 20, 4001)
    g = get_activation("sigmoid").grad(z)
    assert g.max() == pytest.approx(0.25) and np.all(g <= 0.25)


@pytest.mark.parametrize(
    "name,a,sat",
    [
        ("sigmoid", [0.005, 0.5, 0.995, 0.98], [True, False, True, False]),
        ("tanh", [-0.995, 0.0, 0.999, 0.9], [True, False, True, False]),
        ("relu", [0.0, 0.1, 0.0, 3.0], [True, False, True, False]),
        ("leaky_relu", [-0.01, 0.1, -3.0, 3.0], [True, False, True, False]),
    ],
)
def test_saturation_rules(name, a, sat):
    assert list(get_activation(name).saturated(np.array(a))) == sat

"""mlplab.jacobian: ∂a^l/∂a^0 per sample, checked against central finite differences of the
network's own forward pass, and against its own backward pass (Jᵀv is v backpropagated to the
input), for every activation, residual on and off, layer norm on and off, every layer."""

import re

import numpy as np
import pytest

import mlplab
from mlplab.activations import ACTIVATIONS
from mlplab.jacobian import singular_values
from mlplab.losses import LOSSES, Loss

SIZES = [5, 7, 7, 6, 3]  # layer 2 is residual when residual=True (7 → 7), layer 3 changes width
L = len(SIZES) - 1
DEPTH = L - 1


def make_net(activation, residual=False, norm="none", loss="softmax_ce", seed=3, **kw):
    net = mlplab.MLP(SIZES, activation, loss, seed=seed, residual=residual, norm=norm, **kw)
    if net.normalised:  # γ and β away from 1 and 0, so that their terms count
        rng = np.random.default_rng(seed + 100)
        for g, b in zip(net.gamma, net.beta):
            g[:] = rng.uniform(0.5, 1.5, g.shape)
            b[:] = rng.uniform(-0.5, 0.5, b.shape)
    return net


def finite_differences(net, X, upto, h=1e-6):
    """(a^l(X + h e_i) − a^l(X − h e_i)) / 2h for every input coordinate i, all samples at once
    (without batch norm a sample's a^l depends on its own input only): (m, n_l, n_0)."""
    m, n0 = X.shape
    J = np.empty((m, net.sizes[upto], n0))
    for i in range(n0):
        E = np.zeros_like(X)
        E[:, i] = h
        J[:, :, i] = (net.forward(X + E)[upto] - net.forward(X - E)[upto]) / (2 * h)
    return J


def backprop(net, X, upto, v):
    """∂(Σ_j v_j a^l_j)/∂a^0 per sample, by the network's backward pass: v enters at a^l as the
    upstream gradient g = ∂C/∂a^l of the layers' own ``backward_``, down to a^0 (the first layer
    writes ∂C/∂a^0 into the array it is given). At the output (l = L) v first goes through the
    output map's vector–Jacobian product written from its definition — sigmoid: v ⊙ a(1 − a);
    softmax: a ⊙ (v − v·a) — and then the output layer's ``backward_z_``."""
    with np.errstate(over="ignore"):
        net.forward_(X)
    ws = net.last_workspace
    g = v.copy()
    for i in reversed(range(upto)):
        layer, c = ws.forward[i]
        out = np.empty((len(X), net.sizes[i]))
        if i == net.L - 1:
            a = c.a
            if net.loss.name == "softmax_ce":
                delta = a * (g - (g * a).sum(axis=1, keepdims=True))
            else:
                delta = g * a * (1.0 - a)
            g = layer.backward_z_(delta, ws.inputs[i], c, out)
        else:
            g = layer.backward_(g, ws.inputs[i], c, out)
    return g


CASES = [
    pytest.param(act, residual, norm, id=f"{act}-{'res' if residual else 'plain'}-{norm}")
    for act in sorted(ACTIVATIONS)
    for residual in (False, True)
    for norm in ("none", "layer")
]


@pytest.mark.parametrize("upto", [None, *range(L + 1)])
@pytest.mark.parametrize("activation,residual,norm", CASES)
def test_jacobian_matches_central_finite_differences(activation, residual, norm, upto):
    rng = np.random.default_rng(7)
    net = make_net(activation, residual, norm)
    X = rng.standard_normal((4, SIZES[0]))
    J = mlplab.jacobian(net, X, upto)
    fd = finite_differences(net, X, DEPTH if upto is None else upto)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation,residual,norm", CASES)
def test_output_jacobian_matches_finite_differences_for_every_output_map(activation, residual, norm, loss):
    rng = np.random.default_rng(8)
    net = make_net(activation, residual, norm, loss=loss)
    X = rng.standard_normal((4, SIZES[0]))
    np.testing.assert_allclose(mlplab.jacobian(net, X, L), finite_differences(net, X, L), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("upto", range(1, L + 1))
@pytest.mark.parametrize("activation,residual,norm", CASES)
def test_jacobian_transpose_is_the_backward_pass(activation, residual, norm, upto, loss):
    """For random v, Jᵀv per sample equals v backpropagated from a^l to a^0."""
    rng = np.random.default_rng(9)
    net = make_net(activation, residual, norm, loss=loss)
    X = rng.standard_normal((6, SIZES[0]))
    v = rng.standard_normal((6, SIZES[upto]))
    J = mlplab.jacobian(net, X, upto)
    JTv = np.einsum("xji,xj->xi", J, v)
    np.testing.assert_allclose(JTv, backprop(net, X, upto, v), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("s", [0.5, 1.0, 1.3])
def test_linear_orthogonal_network_is_an_exact_isometry_up_to_scale(s):
    """σ(z) = z and W^l = s Q^l (square, Q orthogonal): J^l = s^l Q^l ⋯ Q^1, every singular
    value s^l, whatever the biases."""
    n = 8
    net = mlplab.MLP([n] * 5 + [3], "linear", "mse", init="orthogonal", seed=4, sigma_w=s, sigma_b=0.7)
    X = np.random.default_rng(1).standard_normal((3, n))
    for l in range(net.depth + 1):
        sv = np.linalg.svd(mlplab.jacobian(net, X, l), compute_uv=False)
        np.testing.assert_allclose(sv, np.full((3, n), s**l), rtol=1e-13)


def test_the_default_layer_is_the_last_hidden_one_and_the_shapes_are_m_n_l_n_0():
    net = make_net("tanh", residual=True, norm="layer")
    X = np.random.default_rng(2).standard_normal((4, SIZES[0]))
    assert mlplab.jacobian(net, X).shape == (4, SIZES[DEPTH], SIZES[0])
    np.testing.assert_array_equal(mlplab.jacobian(net, X), mlplab.jacobian(net, X, DEPTH))
    for upto in range(L + 1):
        J = mlplab.jacobian(net, X, upto)
        assert J.shape == (4, SIZES[upto], SIZES[0]) and J.dtype == np.float64 and J.flags.c_contiguous
    np.testing.assert_array_equal(mlplab.jacobian(net, X, 0), np.broadcast_to(np.eye(SIZES[0]), (4, 5, 5)))
    assert mlplab.jacobian(net, X[:1], np.int64(2)).shape == (1, SIZES[2], SIZES[0])


def test_a_float32_network_gives_a_float32_jacobian_close_to_float64():
    X = np.random.default_rng(3).standard_normal((4, SIZES[0]))
    J64 = mlplab.jacobian(make_net("sigmoid"), X, L)
    J32 = mlplab.jacobian(make_net("sigmoid", dtype="float32"), X, L)
    assert J32.dtype == np.float32
    assert mlplab.jacobian(make_net("sigmoid", dtype="float32"), X, 0).dtype == np.float32  # the identity too
    np.testing.assert_allclose(J32, J64, rtol=1e-3, atol=1e-5)


def test_the_parameters_and_the_input_are_left_alone():
    net = make_net("relu", residual=True, norm="layer")
    X = np.random.default_rng(4).standard_normal((4, SIZES[0]))
    params, X0 = net.params.copy(), X.copy()
    mlplab.jacobian(net, X, L)
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(X, X0)


def test_batch_norm_is_refused_in_one_line():
    net = mlplab.MLP(SIZES, "tanh", norm="batch", seed=0)
    with pytest.raises(ValueError) as e:
        mlplab.jacobian(net, np.zeros((4, SIZES[0])))
    assert str(e.value) == (
        "norm='batch' has no per-sample Jacobian: a sample's a^l depends on the other samples of the batch "
        "through its mean and variance; use norm='none' or 'layer'"
    )


@pytest.mark.parametrize("upto", [-1, L + 1, 1.5, "2", True])
def test_a_bad_upto_is_refused_naming_it_and_the_range(upto):
    net = make_net("tanh")
    with pytest.raises(ValueError, match=rf"^{re.escape(f'upto={upto!r}')}: choose an integer layer 0\.\.{L} ") as e:
        mlplab.jacobian(net, np.zeros((2, SIZES[0])), upto)
    assert "\n" not in str(e.value)


def test_a_bad_input_is_refused_as_by_forward():
    with pytest.raises(ValueError, match=r"X has shape \(2, 4\); expected \(batch, 5\)"):
        mlplab.jacobian(make_net("tanh"), np.zeros((2, 4)))


def test_an_output_map_without_a_rule_is_refused_at_the_output_only():
    class TanhOutput(Loss):  # a loss of one's own, whose output map jacobian has no rule for
        name = "tanh_out"

        def output_(self, z, out):
            return np.tanh(z, out=out)

    net = mlplab.MLP(SIZES, "tanh", TanhOutput(), seed=0)
    X = np.zeros((2, SIZES[0]))
    assert mlplab.jacobian(net, X, DEPTH).shape == (2, SIZES[DEPTH], SIZES[0])
    with pytest.raises(ValueError, match=rf"^upto={L}: loss='tanh_out' has an output map with no Jacobian rule"):
        mlplab.jacobian(net, X, L)


def test_the_first_layer_gives_d_w_exactly_without_a_product():
    """J^1 = diag(σ'(z^1)) W^1: the identity's product is skipped (I Wᵀ = Wᵀ), bit for bit."""
    net = make_net("tanh")
    X = np.random.default_rng(5).standard_normal((4, SIZES[0]))
    D = net.activation.grad(X @ net.weights[0].T + net.biases[0])
    np.testing.assert_allclose(mlplab.jacobian(net, X, 1), D[:, :, None] * net.weights[0], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(
        mlplab.jacobian(net, X, 1), net.activation.grad_a(net.forward(X)[1])[:, :, None] * net.weights[0]
    )


@pytest.mark.parametrize("residual", [False, True])
def test_a_deeper_net_of_changing_widths_is_the_product_of_its_layers(residual):
    """The products go to two buffers in turn, sized for the widest layer: on a net whose widths
    rise and fall, every J^l equals D^l W^l ⋯ D^1 W^1 (+ I for a residual layer) multiplied out
    per sample, and a later call leaves the arrays of an earlier one alone."""
    sizes = [5, 9, 4, 7, 7, 7, 3, 6]
    net = mlplab.MLP(sizes, "tanh", "mse", seed=6, residual=residual)
    X = np.random.default_rng(6).standard_normal((3, sizes[0]))
    a = net.forward(X)
    J = np.broadcast_to(np.eye(sizes[0]), (3, sizes[0], sizes[0]))
    first = mlplab.jacobian(net, X, 1)
    for l in range(1, net.depth + 1):
        W = net.weights[l - 1]
        if residual and sizes[l] == sizes[l - 1]:  # a^l = a^(l-1) + σ(z^l)
            Jl = J + net.activation.grad(a[l - 1] @ W.T + net.biases[l - 1])[:, :, None] * np.matmul(W, J)
        else:
            Jl = net.activation.grad_a(a[l])[:, :, None] * np.matmul(W, J)
        J = Jl
        np.testing.assert_allclose(mlplab.jacobian(net, X, l), J, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(first, mlplab.jacobian(net, X, 1))


def test_an_overflowing_forward_pass_gives_a_non_finite_jacobian_silently_and_nan_singular_values():
    """Overflow is data here: weights of 1e200 overflow z in a linear net; the Jacobian says so
    (inf or NaN) without a warning (the tests turn warnings into errors), and its singular
    values are NaN for each sample, as the spectra table records them."""
    net = mlplab.MLP([3, 4, 4, 2], "linear", seed=0)
    for W in net.weights:
        W *= 1e200
    J = mlplab.jacobian(net, np.ones((2, 3)), 2)
    assert not np.isfinite(J).all()
    assert np.isnan(singular_values(J)).all()

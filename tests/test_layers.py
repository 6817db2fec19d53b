"""Residual and normalised layers: exact gradients, the forward maths against an independent
NumPy reference, batch-norm invariants, training vs evaluation mode, running statistics."""

import numpy as np
import pytest

from mlplab import MLP
from mlplab.activations import ACTIVATIONS
from mlplab.layers import EPS, NORMS, Buffers, Normalised, Residual
from mlplab.losses import LOSSES
from mlplab.train import Step

SIZES = [3, 4, 4, 6, 6, 2]  # a width change mid-network: residual layers at 2 and 4 only


def make(activation, loss, residual, norm, rng, sizes=SIZES, m=None, dtype="float64"):
    m = int(rng.integers(2, 17)) if m is None else m
    net = MLP(
        sizes,
        activation,
        loss,
        "normal",
        seed=int(rng.integers(1000)),
        residual=residual,
        norm=norm,
        sigma_b=0.5,
        dtype=dtype,
    )
    if norm:  # γ and β away from their starting values 1 and 0
        for g, b in zip(net.gamma, net.beta):
            g[:] = rng.uniform(0.5, 1.5, g.shape)
            b[:] = rng.normal(0.0, 0.3, b.shape)
    X = rng.standard_normal((m, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    return net, X, Y


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_match_finite_differences(activation, loss, residual, norm, rng, numerical):
    net, X, Y = make(activation, loss, residual, norm, rng)
    g = net.gradients(X, Y)
    pairs = [("W", net.weights, g.dW), ("b", net.biases, g.db)]
    if norm:
        pairs += [("gamma", net.gamma, g.dgamma), ("beta", net.beta, g.dbeta)]
    else:
        assert g.dgamma is None and g.dbeta is None and net.gamma is None
    for kind, params, grads in pairs:
        assert len(params) == len(grads) == (net.L if kind in "Wb" else net.depth)
        for l, (P, G) in enumerate(zip(params, grads), start=1):
            assert G.shape == P.shape
            num = numerical(net, X, Y, P)
            scale = max(np.abs(num).max(), np.abs(G).max())
            # central differences: rounding ~1e-16/h = 1e-10 absolute, truncation ~h² relative
            assert np.abs(G - num).max() <= 1e-6 * scale + 1e-9, f"{kind}^{l}"


def reference_forward(net, X, stats="batch"):
    """[a^1, ..., a^L] computed afresh from the definitions (no buffers, no in-place)."""
    a, out = X, []
    for l in range(1, net.L + 1):
        W, b = net.weights[l - 1], net.biases[l - 1]
        z = a @ W.T + b
        if l == net.L:
            out.append(net.loss.output(z))
            break
        u = z
        if net.normalised:
            if net.norm == "batch" and stats == "running":
                mu, v = net.running_mean[l - 1], net.running_var[l - 1]
            else:
                axis = 0 if net.norm == "batch" else 1
                mu, v = z.mean(axis=axis, keepdims=True), z.var(axis=axis, keepdims=True)
            u = net.gamma[l - 1] * (z - mu) / np.sqrt(v + EPS) + net.beta[l - 1]
        h = net.activation.fn(u)
        skip = net.residual and l >= 2 and net.sizes[l] == net.sizes[l - 1]
        a = a + h if skip else h
        out.append(a)
    return out


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("residual", [False, True])
def test_forward_is_the_definition(residual, norm, rng):
    net, X, Y = make("tanh", "softmax_ce", residual, norm, rng, m=7)
    got = net.forward(X)[1:]
    for l, (a, ref) in enumerate(zip(got, reference_forward(net, X)), start=1):
        np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-14, err_msg=f"a^{l}")
    residuals = [isinstance(layer, Residual) for layer in net.layers]
    assert residuals == [False, residual, False, residual, False]  # l >= 2 and unchanged width only
    blocks = [layer.f if isinstance(layer, Residual) else layer for layer in net.layers[:-1]]
    assert all(isinstance(block, Normalised) == bool(norm) for block in blocks)


def test_a_skip_adds_its_input(rng):
    net, X, _ = make("relu", "mse", True, None, rng, sizes=[3, 5, 5, 2], m=4)
    a = net.forward(X)
    h2 = net.activation.fn(a[1] @ net.weights[1].T + net.biases[1])
    np.testing.assert_allclose(a[2], a[1] + h2, rtol=1e-14)


@pytest.mark.parametrize("residual", [False, True])
def test_batch_norm_invariants(residual, rng):
    """Σ over the batch of ∂C/∂z^l is 0 for every batch-normalised layer, so ∂C/∂b^l = 0, and
    shifting b^l does not change the output."""
    net, X, Y = make("sigmoid", "softmax_ce", residual, "batch", rng, m=9)
    g = net.gradients(X, Y)
    for l in range(net.depth):
        scale = np.abs(g.delta[l]).max()
        assert np.abs(g.delta[l].sum(axis=0)).max() <= 1e-13 * scale * len(X)
        assert np.abs(g.db[l]).max() <= 1e-13 * scale * len(X)
    assert np.abs(g.db[-1]).max() > 1e-3  # the output layer is plain
    before = net.loss_value(X, Y)
    net.biases[1] += 3.0
    assert net.loss_value(X, Y) == pytest.approx(before, rel=1e-12)


def test_layer_norm_invariants(rng):
    """Per sample, Σ over the units of ∂C/∂z^l is 0; the output is unchanged by adding a
    constant to every unit's bias of a layer."""
    net, X, Y = make("tanh", "bce", False, "layer", rng, m=5)
    g = net.gradients(X, Y)
    for l in range(net.depth):
        assert np.abs(g.delta[l].sum(axis=1)).max() <= 1e-13 * np.abs(g.delta[l]).max() * net.sizes[l + 1]
    before = net.loss_value(X, Y)
    net.biases[0] += 2.0
    assert net.loss_value(X, Y) == pytest.approx(before, rel=1e-12)


def test_batch_norm_train_and_eval_modes(rng):
    """gradients, loss_value and forward use the mini-batch's statistics; predict and evaluate
    use the running estimates (0 and 1 at the start); layer norm is the same in both."""
    net, X, Y = make("tanh", "softmax_ce", False, "batch", rng, m=8)
    train_out = net.forward(X)[-1]
    np.testing.assert_allclose(train_out, reference_forward(net, X, "batch")[-1], rtol=1e-12)
    eval_out = net.predict(X)
    np.testing.assert_allclose(eval_out, reference_forward(net, X, "running")[-1], rtol=1e-12)
    assert np.abs(train_out - eval_out).max() > 1e-3
    assert all((m == 0).all() for m in net.running_mean) and all((v == 1).all() for v in net.running_var)
    net.gradients(X, Y)  # a gradient query leaves the running estimates alone
    assert all((m == 0).all() for m in net.running_mean)
    loss, acc = net.evaluate(X, Y)
    ref = reference_forward(net, X, "running")[-1]
    assert loss == pytest.approx(float(-(Y * np.log(ref)).sum(axis=1).mean()), rel=1e-10)
    assert acc == (ref.argmax(1) == Y.argmax(1)).mean()
    ln, X, _ = make("tanh", "softmax_ce", False, "layer", rng, m=8)
    np.testing.assert_array_equal(ln.predict(X), ln.forward(X)[-1])
    assert ln.running_mean is None


def test_running_statistics_after_k_steps(rng):
    """running_mean ← 0.9 running_mean + 0.1 μ, running_var ← 0.9 running_var + 0.1 v m/(m−1),
    with μ, v of each step's mini-batch, against a replay from the definitions."""
    net, X, Y = make("sigmoid", "mse", True, "batch", rng, sizes=[3, 5, 5, 2], m=32)
    step = Step(net, "none", 1.0, 0.5, 0.0)
    mean = [np.zeros(n) for n in net.sizes[1:-1]]
    var = [np.ones(n) for n in net.sizes[1:-1]]
    for k in range(6):
        Xb, Yb = X[k * 5 : k * 5 + 6], Y[k * 5 : k * 5 + 6]  # 6 samples each
        a = Xb
        for l in range(net.depth):  # the hidden layers' z, from the parameters before the step
            z = a @ net.weights[l].T + net.biases[l]
            mu, v = z.mean(axis=0), z.var(axis=0)
            mean[l] = 0.9 * mean[l] + 0.1 * mu
            var[l] = 0.9 * var[l] + 0.1 * v * 6 / 5
            h = net.activation.fn(net.gamma[l] * (z - mu) / np.sqrt(v + EPS) + net.beta[l])
            a = a + h if l >= 1 else h
        step(Xb, Yb)
    for l in range(net.depth):
        np.testing.assert_allclose(net.running_mean[l], mean[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(net.running_var[l], var[l], rtol=1e-12)


def test_one_sample_batch_norm_is_a_clear_error(rng):
    net, X, Y = make("relu", "softmax_ce", False, "batch", rng, m=4)
    with pytest.raises(ValueError, match="batch norm needs a mini-batch of at least 2 samples, got 1"):
        net.gradients(X[:1], Y[:1])
    assert np.isfinite(net.predict(X[:1])).all()  # evaluation of one sample is fine
    layer, X, Y = make("relu", "softmax_ce", False, "layer", rng, m=4)
    assert np.isfinite(layer.gradients(X[:1], Y[:1]).loss)  # layer norm normalises each sample


def test_backward_needs_the_batch_statistics(rng):
    net, X, Y = make("tanh", "mse", False, "batch", rng, m=4)
    net.forward_(X, stats="running")
    with pytest.raises(ValueError) as e:
        net.backward_(Y)
    assert str(e.value) == "backward_ needs a forward_ with stats='batch' (the running estimates have no gradient)"


def test_parameters_start_at_one_and_zero_and_live_in_the_flat_array(rng):
    net = MLP([4, 6, 6, 3], "relu", "softmax_ce", seed=0, norm="layer")
    assert [g.shape for g in net.gamma] == [(6,), (6,)] and len(net.dgamma) == 2
    assert all((g == 1).all() for g in net.gamma) and all((b == 0).all() for b in net.beta)
    assert all(np.shares_memory(p, net.params) for p in net.gamma + net.beta)
    assert all(np.shares_memory(p, net.grads) for p in net.dgamma + net.dbeta)
    assert MLP([4, 3], norm="batch").gamma == []  # no hidden layer, nothing to normalise
    with pytest.raises(ValueError, match="norm='group'"):
        MLP([4, 3], norm="group")


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_float32_normalised_network_agrees_with_float64(norm, rng):
    seed = int(rng.integers(1000))
    X, Y = rng.standard_normal((8, 3)), np.eye(2)[rng.integers(0, 2, 8)]
    g32 = MLP(SIZES, "tanh", "softmax_ce", seed=seed, residual=True, norm=norm, dtype="float32").gradients(X, Y)
    g64 = MLP(SIZES, "tanh", "softmax_ce", seed=seed, residual=True, norm=norm).gradients(X, Y)
    assert g32.dW[0].dtype == np.float32 and g32.dgamma[0].dtype == np.float32
    for a, b in zip(g32.dW + g32.dgamma, g64.dW + g64.dgamma):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


@pytest.mark.parametrize("residual", [False, True])
def test_evaluation_normalises_by_the_running_estimates(residual, rng):
    """predict() with running estimates away from 0 and 1, and a width change so that only some
    layers have a skip: a^l against the definition with μ, v the running mean and variance."""
    net, X, _ = make("sigmoid", "softmax_ce", residual, "batch", rng, m=5)
    for mu, v in zip(net.running_mean, net.running_var):
        mu[:] = rng.normal(0.0, 1.0, mu.shape)
        v[:] = rng.uniform(0.2, 3.0, v.shape)
    np.testing.assert_allclose(net.predict(X), reference_forward(net, X, "running")[-1], rtol=1e-12)
    np.testing.assert_allclose(net.forward(X)[-1], reference_forward(net, X, "batch")[-1], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_running_estimates_start_at_zero_and_one_in_the_networks_dtype(dtype, rng):
    net, _, _ = make("tanh", "mse", False, "batch", rng, dtype=dtype)
    for mu, v in zip(net.running_mean, net.running_var):
        assert mu.dtype == v.dtype == np.dtype(dtype)
        assert (mu == 0).all() and (v == 1).all()


def test_batch_norm_trains_on_two_samples_and_refuses_one_with_the_reason(rng):
    net, X, Y = make("tanh", "softmax_ce", False, "batch", rng, m=2)
    assert np.isfinite(net.gradients(X, Y).loss)
    with pytest.raises(ValueError) as e:
        net.gradients(X[:1], Y[:1])
    assert str(e.value) == (
        "batch norm needs a mini-batch of at least 2 samples, got 1 (one sample has no variance to normalise by)"
    )


def test_a_skip_exposes_its_blocks_parameters_but_not_a_missing_block():
    from mlplab.activations import get_activation
    from mlplab.layers import Dense

    f = Dense(3, 3, get_activation("tanh"))
    s = Residual(f)
    assert s.n_in == 3 and s.n_out == 3 and s.act is f.act and s.shapes() == f.shapes()
    bare = Residual.__new__(Residual)  # no block yet (e.g. while unpickling): no endless lookup of f
    with pytest.raises(AttributeError) as e:
        _ = bare.n_out
    assert e.value.args == ("f",)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("residual", [False, True])
def test_a_float32_network_keeps_every_buffer_in_float32(norm, residual):
    """No array of a float32 network's workspace is float64: a float64 scratch array would
    promote (and slow) each operation it takes part in, though the outputs are cast back."""
    rng = np.random.default_rng(4)
    net = MLP([3, 5, 5, 2], "tanh", "softmax_ce", seed=0, norm=norm, residual=residual, dtype="float32")
    X, Y = rng.standard_normal((6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    # the values are checked, not the floating-point status flags after the BLAS calls: which
    # flags a kernel leaves set depends on the kernel (OpenBLAS's have set FE_INVALID on finite
    # data, numpy issue 24067; seen once here in a float32 sgemv of the layer-normalised backward)
    with np.errstate(invalid="ignore"):
        g = net.gradients(X, Y)
        net.evaluate(X, Y)
    assert all(np.isfinite(a).all() and a.dtype == np.float32 for a in (*g.dW, *g.db)), "finite float32 gradients"
    for l, c in enumerate(net.last_workspace.buffers, 1):
        for k in Buffers.__slots__:
            arr = getattr(c, k)
            if isinstance(arr, np.ndarray):
                assert arr.dtype == np.float32, (l, k, arr.dtype)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_each_layer_computes_its_delta_over_the_gradient_it_received(activation, norm, rng):
    """Without a skip, a hidden layer's backward pass writes δ^l over ∂C/∂a^l in place (the
    workspace's g[l-1]; the shared scratch only holds σ'). So the last backward pass leaves
    δ^1 and δ^2 in the two alternating arrays — the layers below write over nothing of theirs —
    each layer's ``delta`` naming them."""
    net, X, Y = make(activation, "softmax_ce", False, norm, rng, sizes=[3, 5, 5, 4, 2], m=6)
    g = net.gradients(X, Y)
    ws = net.last_workspace
    for l, c in enumerate(ws.buffers, 1):
        assert c.delta.shape == g.delta[l - 1].shape and np.shares_memory(c.delta, ws.g[l - 1]), f"δ^{l}"
    for l in (1, 2):
        np.testing.assert_array_equal(ws.buffers[l - 1].delta, g.delta[l - 1], err_msg=f"δ^{l}")


def test_batch_norms_running_variance_tends_to_the_unbiased_variance(rng):
    """The same mini-batch again and again, nothing learned (η = 0): the running estimates tend
    to its mean and its unbiased variance (numpy's ddof=1, the m/(m−1) of PyTorch's convention),
    and evaluation mode then normalises by them."""
    net, X, Y = make("sigmoid", "mse", False, "batch", rng, sizes=[3, 5, 2], m=7)
    step = Step(net, "none", 1.0, 0.0, 0.0)
    for _ in range(400):  # 0.9^400: the initial estimates are gone
        step(X, Y)
    z = X @ net.weights[0].T + net.biases[0]
    np.testing.assert_allclose(net.running_mean[0], z.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(net.running_var[0], z.var(axis=0, ddof=1), rtol=1e-10)
    h = net.activation.fn(net.gamma[0] * (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0, ddof=1) + EPS) + net.beta[0])
    np.testing.assert_allclose(net.forward(X, "running")[1], h, rtol=1e-10)

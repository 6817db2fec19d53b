"""Backprop against central finite differences in float64, and against the definitions evaluated
in extended precision, for every registry combination."""

import numpy as np
import pytest
from rounding import extended_precision, plain_backprop, rounding_bound

from mlplab import MLP
from mlplab.activations import ACTIVATIONS
from mlplab.init import INITS
from mlplab.losses import LOSSES, Loss
from mlplab.optim import SGD, make


def numerical_gradients(net, X, Y, numerical):
    """Central differences for every weight and bias: ([∂C/∂W^l], [∂C/∂b^l])."""
    return [[numerical(net, X, Y, P) for P in params] for params in (net.weights, net.biases)]


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-12)


@pytest.mark.parametrize("init", sorted(INITS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_match_finite_differences(activation, loss, init, rng, numerical):
    depth = int(rng.integers(0, 4))
    sizes = [int(rng.integers(1, 5))] + [int(rng.integers(2, 6)) for _ in range(depth)] + [int(rng.integers(2, 4))]
    m = int(rng.integers(1, 7))
    net = MLP(sizes, activation, loss, init, seed=int(rng.integers(1000)), sigma_w=1.0, sigma_b=0.5)
    if init == "large":  # keep z moderate so central differences are accurate
        for W in net.weights:
            W *= 0.5
    X = rng.standard_normal((m, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    g = net.gradients(X, Y)
    num_W, num_b = numerical_gradients(net, X, Y, numerical)
    for l in range(net.L):
        assert g.dW[l].shape == net.weights[l].shape == (sizes[l + 1], sizes[l])
        assert g.db[l].shape == (sizes[l + 1],)
        assert rel_err(g.dW[l], num_W[l]) <= 1e-6, f"dW^{l + 1}"
        assert rel_err(g.db[l], num_b[l]) <= 1e-6, f"db^{l + 1}"
    assert np.isclose(g.loss, net.loss_value(X, Y))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_depth_zero_is_a_single_layer(activation, rng, numerical):
    net = MLP([4, 3], activation, "softmax_ce", seed=1)
    X, Y = rng.standard_normal((5, 4)), np.eye(3)[rng.integers(0, 3, 5)]
    g = net.gradients(X, Y)
    num_W, num_b = numerical_gradients(net, X, Y, numerical)
    assert net.depth == 0 and net.L == 1
    assert rel_err(g.dW[0], num_W[0]) <= 1e-6 and rel_err(g.db[0], num_b[0]) <= 1e-6


def test_delta_recursion_and_weight_gradient_formula(rng):
    """∂C/∂W^l = Σ_x δ^l_x (a^(l-1)_x)^T and ∂C/∂b^l = Σ_x δ^l_x, with δ of the batch mean."""
    net = MLP([3, 4, 5, 2], "tanh", "mse", seed=3)
    X, Y = rng.standard_normal((6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    g = net.gradients(X, Y)
    a = net.forward(X)
    for l in range(net.L):
        manual = sum(np.outer(g.delta[l][x], a[l][x]) for x in range(6))
        assert np.allclose(g.dW[l], manual, rtol=1e-12, atol=0)
        assert np.allclose(g.db[l], g.delta[l].sum(axis=0), rtol=1e-12, atol=0)


@pytest.mark.skipif(not extended_precision(), reason="np.longdouble has no more precision than float64 here")
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_are_the_exact_ones_to_rounding(activation, loss, rng):
    """δ^l, ∂C/∂W^l, ∂C/∂b^l and C of a plain network against the definitions evaluated in
    np.longdouble (11 bits more than float64: 2048 times more accurate, the exact values for
    this purpose), entry by entry within the rounding bound E of tests/rounding.py: γ(n)·Σ|terms|
    per dot product of n terms in any order, the errors of its inputs carried through, 4 ulps per
    exp or tanh. Any BLAS kernel stays within E, and E is below 1e-12 of the largest entry: a change
    of the maths far below what finite differences resolve (σ' off by 1e-9 relative, a constant
    off in its tenth digit) is caught here."""
    net = MLP([4, 6, 5, 3], activation, loss, "normal", seed=int(rng.integers(100)), sigma_w=1.5, sigma_b=0.5)
    X, Y = rng.standard_normal((7, 4)), np.eye(3)[rng.integers(0, 3, 7)]
    g = net.gradients(X, Y)
    E, exact = rounding_bound(net, X, Y), plain_backprop(net, X, Y, np.longdouble)
    slack = 1 + 2.0**-10  # the longdouble values' own rounding: E scaled by 2^-11
    for kind in ("dW", "db", "delta"):
        for l, (got, want, e) in enumerate(zip(getattr(g, kind), exact[kind], E[kind]), start=1):
            err = np.abs(got - want).astype(np.float64)
            assert (err <= e * slack).all(), f"{kind}^{l}: off by {err.max():.3g}, bound {e.max():.3g}"
    assert abs(g.loss - exact["loss"]) <= E["loss"] * slack


def test_float32_network_runs_in_float32(rng):
    net = MLP([3, 4, 2], "sigmoid", "bce", seed=0, dtype="float32")
    X, Y = rng.standard_normal((5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    g = net.gradients(X, Y)
    assert all(w.dtype == np.float32 for w in net.weights)
    assert all(d.dtype == np.float32 for d in g.dW)
    ref = MLP([3, 4, 2], "sigmoid", "bce", seed=0, dtype="float64").gradients(X, Y)
    assert rel_err(g.dW[0].astype(float), ref.dW[0]) < 1e-4


def test_weights_are_writable_and_used(rng):
    net = MLP([2, 3, 2], "relu", "softmax_ce", seed=0)
    X, Y = rng.standard_normal((4, 2)), np.eye(2)[[0, 1, 0, 1]]
    before = net.gradients(X, Y).loss
    net.weights[0][:] = 0.0
    net.biases[0][:] = 0.0
    after = net.gradients(X, Y)
    assert after.loss != before
    assert np.all(after.dW[0] == 0)  # relu'(0) = 0: no gradient reaches layer 1


def test_assigning_a_parameter_copies_into_the_flat_array(rng):
    """``net.weights[l] = W`` and ``net.weights[l][:] = W`` are the same: the values go into the
    flat parameter array, which the network (and its optimiser) keeps using."""
    a = MLP([3, 5, 4, 2], "sigmoid", "softmax_ce", seed=7)
    b = MLP([3, 5, 4, 2], "sigmoid", "softmax_ce", seed=7)
    W = rng.standard_normal((4, 5))
    a.weights[1][:] = W
    b.weights[1] = W
    assert np.shares_memory(b.weights[1], b.params) and np.array_equal(b.weights[1], W)
    X, Y = rng.standard_normal((6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    for _ in range(5):
        for net in (a, b):
            net.gradients(X, Y)  # fills net.dW / net.db
            SGD(net, 0.3, weight_decay=0.01).step(0.5)
    for Pa, Pb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(Pa, Pb)
    assert not np.array_equal(a.weights[1], W)  # trained
    with pytest.raises(ValueError, match="shape"):
        b.weights[0] = np.zeros((2, 2))


def test_sgd_step_is_the_update_formula(rng):
    """W ← (1 − ηλ) W − η·s·∂C/∂W for weights, b ← b − η·s·∂C/∂b for biases (no decay)."""
    net = MLP([3, 4, 2], "tanh", "mse", seed=1)
    X, Y = rng.standard_normal((5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    g = net.gradients(X, Y)
    W0, b0 = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    lr, s, wd = 0.3, 0.5, 0.1
    make(net, "sgd", lr=lr, weight_decay=wd).step(scale=s)
    for l in range(net.L):
        np.testing.assert_allclose(net.weights[l], (1 - lr * wd) * W0[l] - lr * s * g.dW[l], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(net.biases[l], b0[l] - lr * s * g.db[l], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_weight_decay_shrinks_the_weights_only(norm):
    """With no gradient, an SGD step with decay scales every W by (1 − ηλ) and leaves the
    biases, γ and β exactly as they were."""
    net = MLP([3, 4, 4, 2], "tanh", "mse", seed=1, norm=norm, sigma_b=1.0)
    if norm:
        for g, b in zip(net.gamma, net.beta):
            g[...], b[...] = 1.5, -0.5
    before = net.params.copy()
    W0, b0 = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    net.grads[...] = 0.0
    SGD(net, 0.5, weight_decay=0.1).step()
    for W, w in zip(net.weights, W0):
        np.testing.assert_array_equal(W, 0.95 * w)
    for b, c in zip(net.biases, b0):
        np.testing.assert_array_equal(b, c)
        assert np.abs(c).min() > 0  # a bias that decay would have changed
    if norm:
        assert all((g == 1.5).all() and (b == -0.5).all() for g, b in zip(net.gamma, net.beta))
    changed = net.params != before
    assert changed[net.layout.decayed].any() and not changed[net.layout.decayed.stop :].any()


def test_gradients_belong_to_the_caller_and_their_memory_is_reused(rng):
    """A result is never changed by a later call; once let go, its memory serves the next one
    (a loop over batches allocates nothing after the first two calls)."""
    net = MLP([5, 7, 7, 4], "sigmoid", "softmax_ce", seed=1, norm="batch")
    X, Y = rng.standard_normal((9, 5)), np.eye(4)[rng.integers(0, 4, 9)]
    first = net.gradients(X, Y)
    kept = [a.copy() for a in first.dW + first.db + first.delta + first.dgamma]
    net.weights[0][...] *= 2.0
    second = net.gradients(X, Y)
    for a, b in zip(first.dW + first.db + first.delta + first.dgamma, kept):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(second.dW[0], first.dW[0])
    one_array, a_view = second.delta[1], second.dW[0].T  # the result object dropped, arrays kept
    del first, second
    blocks = set()
    for _ in range(6):
        g = net.gradients(X, Y)
        blocks.add(id(g.dW[0].base))
    assert len(blocks) <= 2
    assert one_array.base is not g.dW[0].base and a_view.base is not g.dW[0].base
    np.testing.assert_array_equal(a_view.T, net.gradients(X, Y).dW[0])  # same weights: the same numbers


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_float32_gradients_agree_with_float64_on_the_oracle_nets(activation, loss):
    """The gradient oracle's networks (tests/data/make_reference.py) in float32: every gradient
    array within 1e-4 of float64, relative to its norm."""
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((9, 5)), np.eye(4)[rng.integers(0, 4, 9)]

    def make(dtype):
        return MLP([5, 7, 7, 6, 4], activation, loss, "normal", seed=3, sigma_w=1.5, sigma_b=0.5, dtype=dtype)

    g64, g32 = make("float64").gradients(X, Y), make("float32").gradients(X, Y)
    for a, b in zip(g32.dW + g32.db + g32.delta, g64.dW + g64.db + g64.delta):
        assert a.dtype == np.float32
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(b)


# --- the in-place step allocates no batch-sized array --------------------------------------------

import tracemalloc  # noqa: E402

from mlplab.train import Step  # noqa: E402


def step_peak_bytes(net, X, Y, clip="norm"):
    """The most memory NumPy held at once during one training step (after a first one)."""
    step = Step(net, clip, 1.0, 0.1, 1e-4)
    step(X, Y)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        step(X, Y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_a_training_step_allocates_no_batch_sized_array(activation, residual, norm, rng):
    """layers.py: every array of a step goes into buffers made once per batch size. What NumPy
    still allocates (its 8,192-number ufunc buffer, boolean masks) stays well below one (m, n)
    array; a step computing any (m, n) array into a fresh one instead of its buffer would not."""
    m, n = 128, 512
    net = MLP([16, n, n, 4], activation, "softmax_ce", residual=residual, norm=norm)
    X, Y = rng.standard_normal((m, 16)), np.eye(4)[rng.integers(0, 4, m)]
    assert step_peak_bytes(net, X, Y) < m * n * 8 / 4


@pytest.mark.parametrize("clip", ["none", "norm", "value"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_output_layer_and_clipping_allocate_no_batch_sized_array(loss, clip, rng):
    m, n = 1024, 256  # a wide output layer: its (m, n_L) arrays are the large ones
    net = MLP([8, 16, n], "tanh", loss)
    X, Y = rng.standard_normal((m, 8)), np.eye(n)[rng.integers(0, n, m)]
    temporaries = {"mse": 1}.get(loss, 0)  # MSE's δ^L = (a − y) ⊙ a ⊙ (1 − a) makes 1 − a apart
    assert step_peak_bytes(net, X, Y, clip) < (temporaries + 1 / 4) * m * n * 8


@pytest.mark.parametrize("clip,threshold", [("none", 1.0), ("norm", 0.05), ("value", 0.01)])
def test_a_step_updates_every_parameter_by_the_clipped_gradient(clip, threshold, rng):
    """Step()(X, Y) = gradients, the clipping rule, then θ ← θ − η s ∂C/∂θ (W also decayed)."""
    from mlplab.clipping import clip_gradients

    net = MLP([4, 6, 3], "tanh", "softmax_ce", seed=3)
    X, Y = rng.standard_normal((10, 4)), np.eye(3)[rng.integers(0, 3, 10)]
    g = net.gradients(X, Y)
    grads = [w.copy() for w in g.dW] + [b.copy() for b in g.db]
    norm, clipped = clip_gradients(grads, clip, threshold)
    assert clipped == (clip != "none")
    lr, decay = 0.3, 0.01
    W = [w - lr * decay * w - lr * d for w, d in zip(net.weights, grads[:2])]
    b = [b - lr * d for b, d in zip(net.biases, grads[2:])]
    gnorm = Step(net, clip, threshold, lr, decay)(X, Y)
    assert gnorm == pytest.approx(norm, rel=1e-12)
    for got, want in zip([*net.weights, *net.biases], [*W, *b]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_a_step_with_a_non_finite_gradient_raises_diverged_with_the_norm(rng):
    from mlplab.train import Diverged

    net = MLP([2, 3, 2], "relu", "mse", seed=0)
    X, Y = np.array([[np.nan, 1.0]] * 4), np.eye(2)[[0, 1, 0, 1]]
    before = net.params.copy()
    with pytest.raises(Diverged, match=r"^gradient norm is nan$"):
        Step(net, "none", 1.0, 0.1, 0.0)(X, Y)
    assert np.array_equal(net.params, before)  # no update from a non-finite gradient


def test_a_parameter_list_entry_is_replaced_only_by_an_array_of_its_shape():
    net = MLP([3, 4, 2], seed=0)
    net.weights[0] = np.ones((4, 3))
    assert (net.params[:12] == 1).all() and (net.weights[0] == 1).all()  # written into the flat array
    with pytest.raises(ValueError, match=r"^cannot replace an entry of shape \(4, 3\) by one of shape \(3, 4\)$"):
        net.weights[0] = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"^assign one entry at a time \(net.weights\[l\] = W\)"):
        net.weights[0:1] = [np.ones((4, 3))]


def test_forward_names_the_allowed_statistics_and_overflows_quietly():
    net = MLP([2, 3, 2], "sigmoid", "softmax_ce", seed=0, sigma_w=1e3)
    with pytest.raises(ValueError, match=r"^stats='train': choose one of \['batch', 'running'\]$"):
        net.forward(np.ones((2, 2)), stats="train")
    a = net.forward(np.array([[1e3, -1e3], [-1e3, 1e3]]))  # σ(z) for z far below −709: exp overflows
    assert all(np.isfinite(x).all() for x in a)


@pytest.mark.parametrize(
    "residual,norm,text",
    [
        (False, None, "MLP(sizes=[3, 4, 2], activation='tanh', loss='mse', dtype='float32')"),
        (
            True,
            "layer",
            "MLP(sizes=[3, 4, 2], activation='tanh', loss='mse', residual=True, norm='layer', dtype='float32')",
        ),
    ],
)
def test_repr_names_what_makes_the_network(residual, norm, text):
    assert repr(MLP([3, 4, 2], "tanh", "mse", residual=residual, norm=norm, dtype="float32")) == text


def test_evaluate_an_empty_set_is_nan_and_a_single_sample_is_scored(rng):
    net = MLP([3, 4, 2], "tanh", "softmax_ce", seed=0)
    loss, acc = net.evaluate(np.zeros((0, 3)), np.zeros((0, 2)))
    assert np.isnan(loss) and np.isnan(acc)
    X, Y = rng.standard_normal((1, 3)), np.array([[0.0, 1.0]])
    loss, acc = net.evaluate(X, Y)
    a = net.predict(X)[0]
    assert loss == pytest.approx(-np.log(a[1]), rel=1e-12) and acc == float(a.argmax() == 1)


def test_the_public_methods_take_overflow_as_data():
    """Weights of 1e200 overflow exp and products inside the network: that is the behaviour
    under study, so forward, loss_value, evaluate and gradients ignore overflow even where the
    caller asks numpy to raise on it (they return inf and 0 where they arise)."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 3)), np.eye(2)[rng.integers(0, 2, 8)]
    for norm in (None, "batch"):
        net = MLP([3, 4, 2], "sigmoid", "mse", seed=1, norm=norm)
        for W in net.weights:
            W *= 1e200
        with np.errstate(over="raise"):
            net.forward(X)
            loss = net.loss_value(X, Y)
            net.evaluate(X, Y)
            g = net.gradients(X, Y)
        assert g.loss == loss


def test_gradients_results_are_kept_per_batch_size_and_at_most_two():
    """The arrays of ``gradients`` are reused once let go, but only for the same batch size;
    however many results the caller holds, at most two blocks per batch size are kept."""
    rng = np.random.default_rng(0)
    net = MLP([3, 4, 2], "tanh", "softmax_ce", seed=1)
    X, Y = rng.standard_normal((6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    assert [d.shape for d in net.gradients(X[:4], Y[:4]).delta] == [(4, 4), (4, 2)]  # let go at once
    assert [d.shape for d in net.gradients(X, Y).delta] == [(6, 4), (6, 2)]
    held = [net.gradients(X, Y) for _ in range(4)]
    assert len(net._results[6]) <= 2 and len(net._results[4]) == 1
    fresh = net.gradients(X[:5], Y[:5])
    assert fresh.delta[0].shape == (5, 4) and all(h.delta[0].shape == (6, 4) for h in held)


# --- the constructor's defaults and checks, the copying API's input checks ---------------------


def test_the_default_network_is_nielsens_initialiser_drawn_from_seed_0():
    """MLP(sizes) is the config's default network (seed 0, init.sigma_w = init.sigma_b = 1):
    W^l ~ N(0, 1/n_(l-1)), b^l ~ N(0, 1), drawn layer by layer from default_rng(0)."""
    net = MLP([5, 7, 3])
    rng = np.random.default_rng(0)
    for W, b in zip(net.weights, net.biases):
        n_out, n_in = W.shape
        np.testing.assert_allclose(W, rng.standard_normal((n_out, n_in)) / np.sqrt(n_in), rtol=1e-15, atol=0)
        np.testing.assert_allclose(b, rng.standard_normal(n_out), rtol=1e-15, atol=0)


def test_a_generator_seed_is_drawn_from_as_it_is():
    """seed= a Generator: the initial weights are the generator's next draws (it advances), the
    same as from the integer seed it was made with."""
    gen = np.random.default_rng(5)
    net = MLP([4, 6, 2], seed=gen)
    np.testing.assert_array_equal(net.params, MLP([4, 6, 2], seed=5).params)
    ref = np.random.default_rng(5)
    for n_out, n_in in [(6, 4), (2, 6)]:
        ref.standard_normal((n_out, n_in)), ref.standard_normal(n_out)
    assert gen.standard_normal() == ref.standard_normal()


@pytest.mark.parametrize("sizes", [[3], [], [3, 0, 2], [0, 2], [4, 3, -1]])
def test_sizes_need_an_input_and_an_output_of_at_least_one_unit(sizes):
    with pytest.raises(ValueError) as e:
        MLP(sizes)
    assert str(e.value) == f"sizes={sizes!r}: need at least [n_0, n_L], every size >= 1"


def test_leaky_relu_uses_the_networks_alpha(rng):
    """alpha= sets leaky_relu's slope for z < 0: a^1 = z^1 where z^1 > 0, alpha z^1 elsewhere."""
    net = MLP([3, 6, 2], "leaky_relu", "mse", seed=2, alpha=0.25)
    assert net.activation.alpha == 0.25
    X = rng.standard_normal((8, 3))
    z = X @ net.weights[0].T + net.biases[0]
    assert (z < 0).any() and (z > 0).any()
    np.testing.assert_allclose(net.forward(X)[1], np.where(z > 0, z, 0.25 * z), rtol=1e-14, atol=1e-15)
    assert MLP([3, 6, 2], "tanh", alpha=0.25).activation.name == "tanh"  # the other activations ignore it


@pytest.mark.parametrize("shape", [(3,), (4, 5), (4, 3, 1), (4, 2)])
def test_as_input_refuses_any_shape_but_batch_by_n0_naming_both(shape):
    net = MLP([3, 5, 2], seed=0)
    with pytest.raises(ValueError) as e:
        net.as_input(np.ones(shape))
    assert str(e.value) == f"X has shape {shape}; expected (batch, 3)"
    with pytest.raises(ValueError):
        net.gradients(np.ones(shape), np.ones((shape[0], 2)))


@pytest.mark.parametrize("shape", [(6,), (6, 4), (5, 2), (6, 2, 1), (2, 6)])
def test_as_targets_refuses_any_shape_but_batch_by_nL_naming_both(shape):
    net = MLP([3, 5, 4, 2], seed=0)
    X = net.as_input(np.ones((6, 3)))
    with pytest.raises(ValueError) as e:
        net.as_targets(X, np.ones(shape))
    assert str(e.value) == f"Y has shape {shape}; expected (6, 2)"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_as_targets_gives_a_contiguous_array_of_the_networks_dtype(dtype, rng):
    """Integer (or other-precision, or Fortran-ordered) targets become what the in-place API
    wants: C-contiguous, the network's dtype, the same values."""
    net = MLP([3, 4, 3], seed=0, dtype=dtype)
    X = net.as_input(rng.standard_normal((5, 3)))
    for Y in (np.eye(3, dtype=np.int64)[[0, 2, 1, 1, 0]], np.asfortranarray(np.eye(3)[[2, 2, 0, 1, 0]])):
        T = net.as_targets(X, Y)
        assert T.dtype == np.dtype(dtype) and T.flags.c_contiguous
        np.testing.assert_array_equal(T, Y)


# --- the in-place step API ---------------------------------------------------------------------


def test_sgd_step_defaults_to_plain_sgd(rng):
    """SGD(net, lr).step(): s = 1 (no clipping), λ = 0 (no decay): θ ← θ − η ∂C/∂θ for every parameter."""
    net = MLP([3, 4, 2], "tanh", "softmax_ce", seed=1)
    X, Y = rng.standard_normal((5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    g = net.gradients(X, Y)
    before = [p.copy() for p in net.weights + net.biases]
    SGD(net, 0.3).step()
    for p, p0, d in zip(net.weights + net.biases, before, g.dW + g.db):
        np.testing.assert_allclose(p, p0 - 0.3 * d, rtol=1e-15, atol=1e-17)


@pytest.mark.parametrize("sizes", [[4, 6, 3], [64, 128, 128, 4]], ids=["small", "large"])
def test_backward_fills_the_squared_norms_only_when_asked(sizes, rng):
    """backward_(Y, norms=True) puts ‖∂C/∂θ‖² of every array into net.sq — for a small network
    (one pass over the flat gradient) and a large one (layer by layer, during the pass);
    backward_(Y) leaves net.sq alone (the norms are work a step skips unless asked)."""
    net = MLP(sizes, "tanh", "softmax_ce", seed=0)
    X = rng.standard_normal((8, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 8)]
    g = net.gradients(X, Y)
    net.sq.sums[...] = -1.0
    net.forward_(X)
    net.backward_(Y)
    assert (net.sq.sums == -1.0).all()
    net.forward_(X)
    net.backward_(Y, norms=True)
    for kind, grads in (("W", g.dW), ("b", g.db)):
        want = [float(np.sum(d.astype(np.float64) ** 2)) for d in grads]
        np.testing.assert_allclose(net.sq.by_kind[kind], want, rtol=1e-12)
    assert net.sq.flat == (sizes[0] == 4)  # both ways of filling the norms are covered


class LinearMSE(Loss):
    """A loss of the caller's (``MLP(loss=Loss instance)``): identity output a = z,
    C_x = ½ ‖a − y‖², δ^L = z − y. Written to read a in ``fn`` and z in ``delta_``: the network
    must hand every loss method both z^L and a^L, as the losses' signature promises."""

    name = "linear_mse"

    def output_(self, z, out):
        np.copyto(out, z)
        return out

    def fn(self, z, a, y):
        return 0.5 * ((a - y) ** 2).sum(axis=1)

    def delta_(self, z, a, y, out):
        return np.subtract(z, y, out=out)


def test_a_callers_loss_gets_both_z_and_a(rng, numerical):
    net = MLP([3, 4, 2], "tanh", LinearMSE(), seed=3)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    z = np.tanh(X @ net.weights[0].T + net.biases[0]) @ net.weights[1].T + net.biases[1]
    assert net.loss_value(X, Y) == pytest.approx(0.5 * ((z - Y) ** 2).sum(axis=1).mean(), rel=1e-13)
    g = net.gradients(X, Y)
    np.testing.assert_allclose(g.delta[-1], (z - Y) / len(X), rtol=1e-12)
    for P, G in zip(net.weights + net.biases, g.dW + g.db):
        assert rel_err(G, numerical(net, X, Y, P)) <= 1e-6


def test_the_first_layer_computes_no_gradient_for_the_input(rng):
    """Layer 1's backward pass returns nothing (the layer below is the input): a step on a wide
    input allocates no (m, n_0) array for ∂C/∂X."""
    m, n0 = 128, 1024
    net = MLP([n0, 8, 4], "tanh", "softmax_ce")
    X, Y = rng.standard_normal((m, n0)), np.eye(4)[rng.integers(0, 4, m)]
    assert step_peak_bytes(net, X, Y) < m * n0 * 8 / 4


# --- the optimiser: mlplab.optim --------------------------------------------------------------------


def test_make_binds_a_registered_optimiser_and_refuses_an_unknown_one():
    net = MLP([3, 4, 2], "tanh", "mse", seed=1)
    opt = make(net, "sgd", lr=0.25, weight_decay=0.5)
    assert type(opt) is SGD and opt.net is net and (opt.lr, opt.weight_decay) == (0.25, 0.5)
    assert make(net, "sgd", lr=0.1).weight_decay == 0.0
    names = r"\['adam', 'adamw', 'momentum', 'nesterov', 'rmsprop', 'sgd'\]"
    with pytest.raises(ValueError, match=rf"optimiser 'lion' is not registered; choose one of {names}"):
        make(net, "lion", lr=0.1)


@pytest.mark.parametrize("wd,known", [(0.0, True), (0.0, False), (0.1, True), (0.1, False)])
def test_the_weight_step_norms_are_those_of_the_step_taken(wd, known, rng):
    """weight_step_norms(s) = η ‖s·∂C/∂W^l + λ W^l‖ per layer: the size of the next step(s), from
    the gradient norms passed in (without decay) or from the arrays."""
    net = MLP([3, 6, 5, 2], "tanh", "softmax_ce", seed=2, norm="layer")
    X, Y = rng.standard_normal((7, 3)), np.eye(2)[rng.integers(0, 2, 7)]
    net.forward_(net.as_input(X))
    net.backward_(net.as_targets(X, Y))
    opt, lr, s = SGD(net, 0.3, weight_decay=wd), 0.3, 0.4
    gw = np.array([np.linalg.norm(g) for g in net.dW])
    want = np.array([lr * np.linalg.norm(s * g + wd * W) for W, g in zip(net.weights, net.dW)])
    got = opt.weight_step_norms(s, gw.copy() if known else None)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    if known and not wd:  # from the norms given: the arrays are not read
        np.testing.assert_array_equal(opt.weight_step_norms(s, np.ones(3)), lr * s * np.ones(3))
    W0 = [W.copy() for W in net.weights]
    opt.step(s)
    np.testing.assert_allclose([np.linalg.norm(W - w) for W, w in zip(net.weights, W0)], want, rtol=1e-9)

"""Property-based tests (Hypothesis) of the core's invariants over random shapes, values and
dtypes: exact gradients, batch-mean scaling, clipping, the run id. Derandomised, so every run
of the suite checks the same examples (``same_examples_in_every_process``)."""

import dataclasses

import numpy as np
import pytest
from conftest import central_differences
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab import MLP
from mlplab.clipping import clip_gradients
from mlplab.spec import RunSpec

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
SMOOTH = ["sigmoid", "tanh"]  # finite differences need a derivative at every point
LOSSES = ["mse", "bce", "softmax_ce"]


@pytest.fixture(autouse=True)
def same_examples_in_every_process(monkeypatch):
    """Hypothesis (6.131 and later) now and then draws a number it found in the source of the
    local modules imported so far; which those are depends on the tests that a pytest-xdist
    worker happened to run before, so a derandomised test would not check the same examples in
    every run. Without those numbers the examples depend on the test alone."""
    from hypothesis.internal.conjecture import providers

    if hasattr(providers, "_get_local_constants"):
        empty = type(providers._local_constants)()
        monkeypatch.setattr(providers, "_get_local_constants", lambda: empty)
        providers.CONSTANTS_CACHE.cache.clear()
        yield
        providers.CONSTANTS_CACHE.cache.clear()
    else:
        yield


@st.composite
def networks(draw, norms=(None, "batch", "layer")):
    depth = draw(st.integers(0, 3))
    sizes = [draw(st.integers(1, 5))] + [draw(st.integers(1, 6)) for _ in range(depth)] + [draw(st.integers(2, 4))]
    norm = draw(st.sampled_from(norms)) if depth else None
    m = draw(st.integers(2 if norm == "batch" else 1, 6))
    net = MLP(
        sizes,
        draw(st.sampled_from(SMOOTH)),
        draw(st.sampled_from(LOSSES)),
        seed=draw(st.integers(0, 99)),
        residual=draw(st.booleans()),
        norm=norm,
        sigma_w=draw(st.floats(0.5, 2.0)),
        sigma_b=draw(st.floats(0.0, 1.0)),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.uniform(-2, 2, (m, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    return net, X, Y


@SETTINGS
@given(networks())
def test_every_gradient_is_the_finite_difference_of_the_loss(case):
    """Every entry of every parameter's gradient against a central difference of C, float64,
    to 1e-6 of the largest. Where C curves too sharply for the step h = 1e-6 (a norm over units
    whose pre-activations nearly coincide: ∂C/∂θ in the thousands), against the Richardson
    extrapolation of the steps h and h/10, (100 D(h/10) − D(h)) / 99, which cancels the error
    of order h² of both: h = 1e-6, then 1e-7. A wrong gradient is off by the same at any h."""
    net, X, Y = case
    g = net.gradients(X, Y)
    views = [*net.weights, *net.biases, *(net.gamma or []), *(net.beta or [])]
    analytic = np.concatenate([a.ravel() for a in g.dW + g.db + (g.dgamma or []) + (g.dbeta or [])])

    def numeric(h):
        return np.concatenate([central_differences(net, X, Y, v, h=h).ravel() for v in views])

    def mismatch(reference):
        return np.abs(analytic - reference).max() / max(np.abs(reference).max(), 1e-3)

    D = [numeric(1e-6)]
    errors = [mismatch(D[0])]
    for h in (1e-7, 1e-8):
        if errors[-1] <= 1e-6:
            break
        D.append(numeric(h))
        errors.append(mismatch((100 * D[-1] - D[-2]) / 99))
    assert errors[-1] <= 1e-6, errors


@SETTINGS
@given(networks(), st.integers(2, 3))
def test_repeating_the_batch_leaves_the_gradient_unchanged(case, times):
    """C is the batch mean: the same samples k times give the same C and the same ∂C/∂θ
    (batch norm too: its mean and biased variance do not change). Entries that are 0 in exact
    arithmetic (the bias of a layer that a batch norm follows) come out as rounding residue, up
    to ~3e-13 of the largest entry: the tolerance is 1e-11 of it."""
    net, X, Y = case
    one = net.gradients(X, Y)
    many = net.gradients(np.tile(X, (times, 1)), np.tile(Y, (times, 1)))
    assert np.isclose(many.loss, one.loss, rtol=1e-12, atol=1e-15)
    want = one.dW + one.db + (one.dgamma or [])
    scale = max(max(np.abs(b).max() for b in want), 1e-12)  # (a saturated network's are all ~0)
    for a, b in zip(many.dW + many.db + (many.dgamma or []), want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-11 * scale)


@SETTINGS
@given(networks(norms=(None,)))
def test_float32_gradients_follow_float64(case):
    net, X, Y = case
    sizes, act, loss = net.sizes, net.activation.name, net.loss.name
    w = [W.copy() for W in net.weights]
    b = [c.copy() for c in net.biases]
    twin = MLP(sizes, act, loss, residual=net.residual, dtype="float32")
    for l in range(net.L):
        twin.weights[l], twin.biases[l] = w[l].astype(np.float32), b[l].astype(np.float32)
        net.weights[l], net.biases[l] = twin.weights[l].astype(np.float64), twin.biases[l].astype(np.float64)
    g64, g32 = net.gradients(X, Y), twin.gradients(X, Y)
    scale = max(max(np.linalg.norm(c) for c in g64.dW + g64.db), 1e-6)
    for a, c in zip(g32.dW + g32.db, g64.dW + g64.db):
        assert a.dtype == np.float32
        assert np.linalg.norm(a - c) <= 1e-4 * scale  # of the largest: a small one is a difference of rounded terms


arrays = st.lists(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=6), min_size=1, max_size=4)


@SETTINGS
@given(arrays, st.floats(1e-3, 1e3), st.sampled_from(["norm", "value"]))
def test_clipping_never_increases_a_norm_and_leaves_small_ones_alone(values, threshold, rule):
    grads = [np.array(v) for v in values]
    before = [g.copy() for g in grads]
    norm, clipped = clip_gradients(grads, rule, threshold)
    total = np.sqrt(sum(float(np.vdot(g, g)) for g in before))
    assert np.isclose(norm, total, rtol=1e-12)
    after = np.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    assert after <= total * (1 + 1e-12)
    if rule == "norm":
        assert clipped == (total > threshold)
        assert after <= max(threshold, 0.0) * (1 + 1e-12) or not clipped
    else:
        assert all(np.abs(g).max() <= threshold for g in grads)
        assert clipped == any(np.abs(g).max() > threshold for g in before)
    if not clipped:  # nothing above the threshold: untouched, bit for bit
        for g, h in zip(grads, before):
            np.testing.assert_array_equal(g, h)


specs = st.builds(
    RunSpec,
    depth=st.integers(0, 3),
    width=st.integers(1, 4),
    lr=st.sampled_from([0.1, 0.5]),
    seed=st.integers(0, 2),
    clip=st.sampled_from(["none", "norm"]),
    clip_threshold=st.sampled_from([1.0, 2.0]),
    activation=st.sampled_from(["sigmoid", "relu"]),
    eval_every=st.sampled_from([None, "log", 5]),
)


@SETTINGS
@given(specs, specs)
def test_two_specs_share_a_run_id_exactly_when_they_are_equal(a, b):
    assert (a.run_id == b.run_id) == (a == b)
    assert dataclasses.replace(a).run_id == a.run_id

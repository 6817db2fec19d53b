"""The post's table of output errors δ^L, checked against finite differences of C_x in z^L;
the losses' values against closed forms."""

import math

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
        assert c[0] == pytest.approx(800 + 800 + np.log(2), rel=1e-15)
    if name == "softmax_ce":  # logsumexp([800, -800, 0]) − (−800) = 1600
        assert c[0] == pytest.approx(1600.0, rel=1e-15)


def softplus_exact(x: float) -> float:
    """log(1 + e^x) in closed form with math's correctly rounded exp and log1p."""
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def sigmoid_exact(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


Z_GRID = np.concatenate([np.linspace(0.0, 800.0, 1601), -np.linspace(0.0, 800.0, 1601)])
LOG2 = math.log(2.0)
# per z: the loss of one output (mse, bce: logit z; softmax_ce: logits (z, 0, 0)) with the
# target right when z is large (y = 1; softmax: class 0) and wrong when z is large (y = 0; class 1)
EXACT = {
    "mse": lambda z, right: 0.5 * (sigmoid_exact(-z) if right else sigmoid_exact(z)) ** 2,
    "bce": lambda z, right: softplus_exact(-z) if right else softplus_exact(z),
    # −log(e^z/(e^z + 2)) = log1p(2e^(−z)); −log(1/(e^z + 2)) = log 2 + softplus(z − log 2)
    "softmax_ce": lambda z, right: (
        (math.log1p(2 * math.exp(-z)) if z > -700 else LOG2 + softplus_exact(z - LOG2) - z)
        if right
        else LOG2 + softplus_exact(z - LOG2)
    ),
}


@pytest.mark.parametrize("right", [True, False], ids=["confidently right", "confidently wrong"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_relatively_accurate_at_every_z(name, right):
    """Against closed forms, for z in ±[0, 800]: relative error ≤ 4 ulp, including confidently
    right outputs (where the loss is ~e^(−z) and 1 − a rounds to 0 long before; the loss
    itself underflows to 0 only where its true value is below the smallest double)."""
    loss = get_loss(name)
    if name == "softmax_ce":
        z = np.column_stack([Z_GRID, np.zeros_like(Z_GRID), np.zeros_like(Z_GRID)])
        y = np.tile([1.0, 0.0, 0.0] if right else [0.0, 1.0, 0.0], (len(Z_GRID), 1))
    else:
        z, y = Z_GRID[:, None], np.full((len(Z_GRID), 1), 1.0 if right else 0.0)
    with np.errstate(over="ignore"):
        got = loss.fn(z, loss.output(z), y)
    exact = np.array([EXACT[name](float(v), right) for v in Z_GRID])
    representable = exact > 0
    assert (got[~representable] == 0).all()
    rel = np.abs(got[representable] - exact[representable]) / exact[representable]
    assert rel.max() <= 4 * np.finfo(float).eps, f"worst at z = {Z_GRID[representable][rel.argmax()]}"
    if right:  # deep in the confidently right regime the loss is e^(−z) (times K − 1), not 0
        far = np.abs(Z_GRID - 700.0).argmin()
        assert got[far] == pytest.approx(
            (2.0 if name == "softmax_ce" else 1.0)
            * math.exp(-700.0) ** (2 if name == "mse" else 1)
            / (2 if name == "mse" else 1),
            rel=1e-12,
        )


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
        ("linear", [-1e9, 0.0, 1e9, 3.0], [False, False, False, False]),
    ],
)
def test_saturation_rules(name, a, sat):
    assert list(get_activation(name).saturated(np.array(a))) == sat


# --- the registries' contracts: dtypes, in-place buffers, boundaries, error messages ---------

from mlplab.activations import SAT_EPS, Constants  # noqa: E402
from mlplab.losses import sigmoid_minus  # noqa: E402


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_keep_a_floating_dtype_and_turn_integers_into_float64(name):
    act = get_activation(name)
    zi = np.array([-3, -1, 0, 2, 5])
    for f in (act.fn, act.grad):
        assert f(zi).dtype == np.float64
        assert np.array_equal(f(zi), f(zi.astype(np.float64)))
        z32 = np.array([-3.5, -1.0, 0.25, 2.0], dtype=np.float32)
        assert f(z32).dtype == np.float32, f"{name}.{f.__name__} changed float32"
    a32 = act.fn(np.array([-3.5, 0.25, 2.0], dtype=np.float32))
    assert act.grad_a(a32).dtype == np.float32


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_in_place_activation_methods_write_into_out_and_return_it(name, rng):
    act = get_activation(name)
    z = rng.standard_normal((5, 4)) * 3
    out = np.empty_like(z)
    assert act.fn_(z, out) is out and np.array_equal(out, act.fn(z))
    a = act.fn(z)
    out = np.empty_like(z)
    assert act.grad_a_(a, out) is out and np.array_equal(out, act.grad_a(a))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_in_place_loss_methods_write_into_out_and_return_it(name, rng):
    loss = get_loss(name)
    z = rng.standard_normal((6, 3)) * 3
    y = np.eye(3)[rng.integers(0, 3, 6)]
    out = np.empty_like(z)
    assert loss.output_(z, out) is out and np.array_equal(out, loss.output(z))
    a = loss.output(z)
    out = np.empty_like(z)
    assert loss.delta_(z, a, y, out) is out and np.array_equal(out, loss.delta(z, a, y))


def test_kinks_take_the_documented_side():
    """relu'(0) = 0 and leaky_relu'(0) = α: z ≤ 0 is the flat side, and counts as saturated."""
    zero = np.zeros(1)
    assert get_activation("relu").grad(zero)[0] == 0.0
    assert get_activation("leaky_relu").grad(zero)[0] == 0.01
    assert get_activation("leaky_relu").saturated(zero)[0]


@pytest.mark.parametrize(
    "name,edge", [("sigmoid", SAT_EPS), ("sigmoid", 1.0 - SAT_EPS), ("tanh", 1.0 - SAT_EPS), ("tanh", -(1.0 - SAT_EPS))]
)
def test_saturation_is_strictly_within_the_margin(name, edge):
    """A unit exactly SAT_EPS from an asymptote is not saturated; one a hair closer is."""
    sat = get_activation(name).saturated
    inward = np.nextafter(edge, 0.5 if name == "sigmoid" else 0.0)
    outward = np.nextafter(edge, 2 * edge - inward)
    assert list(sat(np.array([inward, edge, outward]))) == [False, False, True]
    if name == "sigmoid":
        for loss in LOSSES.values():
            assert list(loss().saturated(np.array([inward, edge, outward]))) == [False, False, True]


def test_full_like_is_one_cached_read_only_array_of_the_same_shape_and_dtype():
    x = np.zeros((3, 7), dtype=np.float32)
    constants = Constants()
    c = constants.full_like(0.25, x)
    assert c.shape == x.shape and c.dtype == np.float32 and np.all(c == 0.25)
    assert constants.full_like(0.25, x) is c
    assert Constants().full_like(0.25, x) is not c  # each owner its own
    with pytest.raises(ValueError):
        c[0, 0] = 1.0


def test_each_network_owns_its_constants_and_keeps_few():
    """An activation's and a loss's constant arrays are theirs (a network's, not the process's),
    made on first use; many shapes (a test's many batch sizes) do not pile up."""
    from mlplab import MLP

    a, b = MLP([3, 4, 2], "relu", "softmax_ce", seed=0), MLP([3, 4, 2], "relu", "softmax_ce", seed=0)
    X = np.ones((5, 3))
    a.forward(X)
    assert a.activation.constants is not b.activation.constants and a.loss.constants is not b.loss.constants
    assert len(a.activation.constants.arrays) == 1 and len(b.activation.constants.arrays) == 0
    assert len(a.loss.constants.arrays) == 1
    constants = Constants()
    sizes = [len(constants.arrays) for n in range(1, 200) if constants.full_like(1.0, np.zeros(n)) is not None]
    assert sizes[:3] == [1, 2, 3] and max(sizes) <= 66


def test_sigmoid_minus_at_zero_is_one_rounding_for_any_target():
    y = np.array([0.0, 0.3, 1.0, 0.7])
    assert np.array_equal(sigmoid_minus(np.zeros(4), y), 0.5 - y)


@pytest.mark.parametrize("lookup,registry,bad", [(get_activation, ACTIVATIONS, "swish"), (get_loss, LOSSES, "hinge")])
def test_unknown_names_are_refused_with_the_choices(lookup, registry, bad):
    with pytest.raises(ValueError) as e:
        lookup(bad)
    assert repr(bad) in str(e.value) and str(sorted(registry)) in str(e.value)


def test_reprs_name_the_class_and_its_parameter():
    assert repr(get_activation("tanh")) == "Tanh()" and repr(get_loss("mse")) == "MSE()"
    assert repr(get_activation("leaky_relu", alpha=0.2)) == "LeakyReLU(alpha=0.2)"


def test_each_loss_checks_the_targets_it_is_defined_for():
    """MSE takes any real targets; BCE 0/1 entries (several 1s in a row allowed: independent
    outputs); softmax cross-entropy one-hot rows, a single target vector included."""
    from mlplab.losses import check_targets

    mse, bce, ce = (LOSSES[n]() for n in ("mse", "bce", "softmax_ce"))
    soft = np.array([[0.3, 1.7], [-1.0, 0.0]])
    check_targets(mse, soft)
    check_targets(bce, np.array([[1, 1, 0], [0, 0, 0]]))
    check_targets(ce, np.eye(3)[[2, 0, 1]])
    check_targets(ce, np.array([0.0, 1.0, 0.0]))
    for loss in (bce, ce):
        with pytest.raises(ValueError) as e:
            check_targets(loss, soft)
        assert str(e.value) == f"targets for loss={loss.name!r} must be 0/1 (one-hot), got values outside {{0, 1}}"
    for rows in ([[1, 1, 0], [0, 1, 0]], [[0, 0, 0], [0, 1, 0]]):
        with pytest.raises(ValueError) as e:
            check_targets(ce, np.array(rows))
        assert str(e.value) == "targets for loss='softmax_ce' must be one-hot: every row must sum to 1"

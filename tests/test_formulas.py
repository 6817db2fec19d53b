"""The post's table and errata, as checked by mlplab.analysis.studies.blog.formulas."""

import numpy as np
import pytest

from mlplab import MLP
from mlplab.analysis.studies.blog import formulas as F


@pytest.fixture(scope="module", params=[0, 1])
def table(request):
    return F.formula_table(seed=request.param, n_cases=12), F.errata_table(seed=request.param)


def test_helpers_against_known_derivatives():
    P = np.array([[0.3, -1.2], [2.0, 0.5]])
    G = F.central_difference(lambda: float((P**3).sum()), P)
    assert np.allclose(G, 3 * P**2, rtol=1e-8)
    assert F.rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert F.rel_error([1.0, 2.0], [1.0, 3.0]) == pytest.approx(1 / 3)
    assert F.rel_error(np.ones(2), np.ones(3)) == np.inf
    z = np.linspace(-5, 5, 11)
    assert np.allclose(F.sigmoid_as_posted(z), 1 - F.sigmoid(z))
    assert np.allclose(F.softmax(np.array([[0.0], [np.log(3.0)]]))[:, 0], [0.25, 0.75])


def test_formula_table_shape(table):
    ft = table[0]
    assert len(ft) == len(F.COLUMNS) * len(F.ENTRIES)
    want = {"column", "entry", "post_formula", "correct_formula", "holds", "max_rel_error", "n_cases", "note"}
    assert want <= set(ft.columns)
    assert (ft.n_cases == 12).all()
    # where the post is wrong about an entry, a correct formula is given
    assert (ft.post_formula != ft.correct_formula)[~ft.holds].all()


@pytest.mark.parametrize("column", ["MSE + sigmoid", "BCE + sigmoid"])
def test_sigmoid_output_columns_hold(table, column):
    ft = table[0]
    rows = ft[ft.column == column]
    assert rows.holds.all() and rows.chained_holds.all()
    assert (rows.max_rel_error < F.TOL).all()
    assert (rows.max_rel_error > 0).all()  # finite differences are never exact: the check ran


def test_softmax_column(table):
    ft = table[0]
    rows = ft[ft.column == "softmax CE"].set_index("entry")
    assert not rows.loc["δ^L", "holds"] and rows.loc["δ^L", "max_rel_error"] > 0.1
    assert rows.loc["δ^L", "correct_formula"] == "a^L − y"
    assert not rows.loc["a^L'(z^L)", "holds"]  # softmax's Jacobian is not diagonal
    for entry in ["∂C/∂W^L", "δ^l", "∂C/∂W^l", "∂C/∂b^l"]:
        assert rows.loc[entry, "holds"], entry  # the rules are right...
        assert not rows.loc[entry, "chained_holds"], entry  # ...but fed the post's δ^L they are not


def test_posted_softmax_delta_is_not_the_gradient(rng):
    """Independent of the module: mlplab's δ^L (checked by finite differences in test_network)
    against the post's (0, …, a_i − 1, …, 0) on a random network and batch."""
    net = MLP([3, 5, 4], "sigmoid", "softmax_ce", seed=2)
    X = rng.standard_normal((6, 3))
    labels = rng.integers(0, 4, 6)
    Y = np.eye(4)[labels]
    g = net.gradients(X, Y)
    true = g.delta[-1] * len(X)  # per-sample δ^L of C_x
    a = net.predict(X)
    post = np.zeros_like(a)
    post[np.arange(6), labels] = a[np.arange(6), labels] - 1
    assert np.allclose(true, a - Y, atol=1e-12)
    assert np.allclose(true.sum(axis=1), 0, atol=1e-12)
    assert np.all(post.sum(axis=1) < 0)
    assert F.rel_error(post, true) > 0.1
    assert np.allclose(post[np.arange(6), labels], true[np.arange(6), labels])


def test_errata(table):
    et = table[1].set_index("erratum")
    assert list(et.index) == [1, 2, 3, 4]
    assert not et.post_holds.any()
    assert et.correct_holds.all()
    assert et.loc[1, "max_rel_error"] == pytest.approx(2.0, rel=1e-6)  # σ' with the wrong sign
    assert et.loc[2, "max_rel_error"] > 0.5
    assert et.loc[3, "max_rel_error"] > 0.1
    assert et.loc[4, "max_rel_error"] == pytest.approx(1 - 1 / 64, rel=1e-6)  # step m times the mean's
    assert "ratio summed/mean = 1, 4, 16, 64 for m = 1, 4, 16, 64" in et.loc[4, "note"]  # measured, 4 digits
    assert (et.correct_max_rel_error < 0.05).all()

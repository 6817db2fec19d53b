"""The seed post's comparison table and its errata, checked against central finite differences.

Everything here is computed in the post's own notation, independently of ``mlplab.network``:
one sample is a column vector, a batch of m samples is the matrix whose columns they are,

    z^l = W^l a^(l−1) + b^l,   a^l = σ(z^l) (hidden: sigmoid),   a^L = output(z^L),
    C = (1/m) Σ_x C_x          (the batch mean, as mlplab uses; erratum 4 covers the sum),

and every formula is compared with the derivative of C taken by central differences
(f(θ + h) − f(θ − h))/2h, h = 1e−5, on small random networks and batches. The relative error of
a formula F against the reference R is max|F − R| / max(max|F|, max|R|) over the entries of
one case; tables report the largest over all cases.

``formula_table`` has one row per entry of the post's table and column (MSE + sigmoid,
BCE + sigmoid, softmax CE); ``errata_table`` one row per erratum. Both return tidy DataFrames.

Over 300 lines, on purpose: the post's nine formulas and four errata, each check written next
to the formula it checks (in the post's notation; mlplab's own network, losses and sigmoid
only where an erratum is compared with mlplab's convention).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplab.activations import Sigmoid
from mlplab.losses import get_loss
from mlplab.network import MLP

H = 1e-5  # central-difference step
TOL = 1e-5  # a formula "holds" when its relative error is below this (differences are good to ~1e-8)


# -- the post's building blocks, per sample (columns) ---------------------------------------------
def sigmoid(z):
    """σ(z) = 1/(1 + e^(−z))."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def sigmoid_as_posted(z):
    """The post's σ: 1/(1 + exp(Σ w_i x_i + b)) = 1/(1 + e^z) (erratum 1: the sign)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(z))


def softmax(z):
    """softmax(z)_j = e^(z_j)/Σ_k e^(z_k), per column."""
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


# column label -> (mlplab loss name, output activation, per-sample cost C_x(a, y) of each column)
COLUMNS = {
    "MSE + sigmoid": ("mse", sigmoid, lambda a, y: 0.5 * ((a - y) ** 2).sum(axis=0)),
    "BCE + sigmoid": ("bce", sigmoid, lambda a, y: -(y * np.log(a) + (1 - y) * np.log(1 - a)).sum(axis=0)),
    "softmax CE": ("softmax_ce", softmax, lambda a, y: -(y * np.log(a)).sum(axis=0)),
}


def rel_error(F, R) -> float:
    """max|F − R| / max(max|F|, max|R|, 1e−300)."""
    F, R = np.asarray(F, float), np.asarray(R, float)
    if F.shape != R.shape:
        return np.inf
    return float(np.abs(F - R).max() / max(np.abs(F).max(), np.abs(R).max(), 1e-300))


def central_difference(f, P: np.ndarray, h: float = H) -> np.ndarray:
    """∂f/∂P entry by entry: (f(P + h e_i) − f(P − h e_i)) / 2h (P is perturbed in place and restored)."""
    G = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        old = P[i]
        P[i] = old + h
        up = f()
        P[i] = old - h
        down = f()
        P[i] = old
        G[i] = (up - down) / (2 * h)
    return G


class Case:
    """A random network with sigmoid hidden layers, a batch (columns) and one-hot targets."""

    def __init__(self, rng: np.random.Generator, column: str, n_in: int | None = None, m: int | None = None):
        self.loss, self.output, self.cost_x = COLUMNS[column]
        depth = int(rng.integers(1, 4))
        hidden = [int(rng.integers(2, 6)) for _ in range(depth)]
        n = [n_in or int(rng.integers(2, 5))] + hidden + [int(rng.integers(2, 5))]
        self.n, self.L = n, depth + 1
        self.m = m or int(rng.integers(1, 6))
        self.W = [rng.standard_normal((n[l + 1], n[l])) * 1.5 / np.sqrt(n[l]) for l in range(self.L)]
        self.b = [rng.standard_normal((n[l + 1], 1)) * 0.5 for l in range(self.L)]
        self.X = rng.standard_normal((n[0], self.m))
        self.labels = rng.integers(0, n[-1], self.m)
        self.Y = np.eye(n[-1])[:, self.labels]

    def forward(self):
        """Lists z[l], a[l] for l = 0..L (z[0] unused, a[0] = X)."""
        z, a = [None], [self.X]
        for l in range(self.L):
            z.append(self.W[l] @ a[-1] + self.b[l])
            a.append(self.output(z[-1]) if l == self.L - 1 else sigmoid(z[-1]))
        return z, a

    def cost(self) -> float:
        """C = (1/m) Σ_x C_x."""
        return float(self.cost_x(self.forward()[1][-1], self.Y).mean())

    def cost_from(self, l: int, Z: np.ndarray) -> float:
        """C as a function of the pre-activation z^l (layers l+1..L recomputed from it)."""
        a = self.output(Z) if l == self.L else sigmoid(Z)
        for k in range(l, self.L):  # z^(k+1) = W^(k+1) a^k + b^(k+1)
            Z = self.W[k] @ a + self.b[k]
            a = self.output(Z) if k + 1 == self.L else sigmoid(Z)
        return float(self.cost_x(a, self.Y).mean())

    def true_delta(self, l: int, z) -> np.ndarray:
        """δ^l per sample (columns): m · ∂C/∂z^l by central differences (C is the batch mean)."""
        Z = z[l].copy()
        return self.m * central_difference(lambda: self.cost_from(l, Z), Z)

    def true_grads(self, scale: float = 1.0):
        """∂(scale·C)/∂W^l, ∂(scale·C)/∂b^l (l = 1..L) by central differences."""
        f = lambda: scale * self.cost()  # noqa: E731
        return [central_difference(f, W) for W in self.W], [central_difference(f, b) for b in self.b]


# -- the post's table -------------------------------------------------------------------------------
def _post_delta_L(column: str, aL, Y, labels):
    """δ^L as the post's table states it, per column."""
    s = aL * (1 - aL)
    if column == "MSE + sigmoid":
        return (aL - Y) * s
    if column == "BCE + sigmoid":
        return aL - Y
    d = np.zeros_like(aL)  # (0, ..., a_i − 1, ..., 0)^T, i the true class
    cols = np.arange(aL.shape[1])
    d[labels, cols] = aL[labels, cols] - 1.0
    return d


ENTRIES = {
    # entry: (post's formula per column or for all, correct formula per column or None if the same)
    "C'(a^L)": (
        {"MSE + sigmoid": "C' = y' − y", "BCE + sigmoid": "C' = (1−y)/(1−y') − y/y'", "softmax CE": "C'(a_i) = −1/a_i"},
        {"softmax CE": "∂C/∂a_j = −y_j/a_j: −1/a_i at the true class i, 0 elsewhere"},
    ),
    "a^L'(z^L)": (
        {"MSE + sigmoid": "σ' = σ(1−σ)", "BCE + sigmoid": "σ' = σ(1−σ)", "softmax CE": "softmax'(z_i) = a_i(1−a_i)"},
        {"softmax CE": "∂a_i/∂z_j = a_i(1[i=j] − a_j): the Jacobian is not diagonal"},
    ),
    "δ^L": (
        {"MSE + sigmoid": "(a^L − y) ⊙ σ(1−σ)", "BCE + sigmoid": "a^L − y", "softmax CE": "(0, …, a^L_i − 1, …, 0)^T"},
        {"softmax CE": "a^L − y"},
    ),
    "∂C/∂W^L": ("δ^L (a^(L−1))^T", None),
    "δ^l": ("(W^(l+1))^T δ^(l+1) ⊙ σ'(z^l)", None),
    "∂C/∂W^l": ("δ^l (a^(l−1))^T", None),
    "∂C/∂b^l": ("δ^l", None),
}


def _check_case(case: Case, column: str) -> dict[str, tuple[float, float]]:
    """entry -> (relative error of the entry's rule fed exact upstream quantities,
    relative error when the post's own δ^L is propagated down the column)."""
    z, a = case.forward()
    L, m, Y = case.L, case.m, case.Y
    zL, aL = z[L], a[L]
    out = {}

    # C'(a^L): the post's derivative vs ∂C_x/∂a^L by differences (C as a function of a^L)
    A = aL.copy()
    # (the step shrinks with the smallest output: log a and 1/a are steep near a = 0)
    h = H * min(1.0, float(A.min()), float(1 - A.max()))
    dC_da = m * central_difference(lambda: float(case.cost_x(A, Y).mean()), A, h)
    if column == "MSE + sigmoid":
        post_dC = aL - Y
    elif column == "BCE + sigmoid":
        post_dC = (1 - Y) / (1 - aL) - Y / aL
    else:
        post_dC = np.where(Y == 1, -1.0 / aL, 0.0)
    e = rel_error(post_dC, dC_da)
    out["C'(a^L)"] = (e, e)

    # a^L'(z^L): the post's (diagonal) derivative vs the Jacobian ∂a_i/∂z_j of the first sample
    z0 = zL[:, :1].copy()
    jac = np.stack([central_difference(lambda i=i: float(case.output(z0)[i, 0]), z0)[:, 0] for i in range(len(z0))])
    post_jac = np.diag(aL[:, 0] * (1 - aL[:, 0]))
    e = rel_error(post_jac, jac)
    out["a^L'(z^L)"] = (e, e)

    # δ^L
    deltas = [None] + [case.true_delta(l, z) for l in range(1, L + 1)]
    post_dL = _post_delta_L(column, aL, Y, case.labels)
    e = rel_error(post_dL, deltas[L])
    out["δ^L"] = (e, e)

    # the post's whole column, propagated from its δ^L
    chain = [None] * (L + 1)
    chain[L] = post_dL
    for l in range(L - 1, 0, -1):
        chain[l] = (case.W[l].T @ chain[l + 1]) * (a[l] * (1 - a[l]))

    dW, db = case.true_grads()
    # ∂C/∂W^l = (1/m) Σ_x δ^l_x (a^(l−1)_x)^T for the mean cost; ∂C/∂b^l = (1/m) Σ_x δ^l_x
    grad_W = lambda d, l: d @ a[l - 1].T / m  # noqa: E731
    grad_b = lambda d: d.sum(axis=1, keepdims=True) / m  # noqa: E731
    out["∂C/∂W^L"] = (rel_error(grad_W(deltas[L], L), dW[L - 1]), rel_error(grad_W(chain[L], L), dW[L - 1]))
    rec = [rel_error((case.W[l].T @ deltas[l + 1]) * (a[l] * (1 - a[l])), deltas[l]) for l in range(1, L)]
    rec_chain = [rel_error(chain[l], deltas[l]) for l in range(1, L)]
    out["δ^l"] = (max(rec), max(rec_chain))
    out["∂C/∂W^l"] = (
        max(rel_error(grad_W(deltas[l], l), dW[l - 1]) for l in range(1, L)),
        max(rel_error(grad_W(chain[l], l), dW[l - 1]) for l in range(1, L)),
    )
    out["∂C/∂b^l"] = (
        max(rel_error(grad_b(deltas[l]), db[l - 1]) for l in range(1, L + 1)),
        max(rel_error(grad_b(chain[l]), db[l - 1]) for l in range(1, L + 1)),
    )
    return out


_NOTES = {
    ("softmax CE", "C'(a^L)"): "right for one-hot y: the only non-zero component is −1/a_i",
    (
        "softmax CE",
        "a^L'(z^L)",
    ): "only the diagonal of the softmax Jacobian; the missing −a_i a_j terms cause erratum 3",
    ("softmax CE", "δ^L"): "the post keeps only the true-class component; off-class components a_j are dropped",
    ("softmax CE", "∂C/∂W^L"): "the rule holds; fed the post's δ^L (chained) it does not",
    ("softmax CE", "δ^l"): "the recursion holds; fed the post's δ^L (chained) every lower δ^l is wrong",
    ("softmax CE", "∂C/∂W^l"): "the rule holds; chained from the post's δ^L it does not",
    ("softmax CE", "∂C/∂b^l"): "the rule holds; chained from the post's δ^L it does not",
}


def formula_table(seed: int = 0, n_cases: int = 20) -> pd.DataFrame:
    """The post's comparison table, entry by entry, checked by central differences.

    One row per column × entry with: ``post_formula``, ``correct_formula`` (equal when the post
    is right), ``holds`` (the entry's rule, fed exact upstream quantities, matches the
    differences to ``TOL``), ``max_rel_error`` (largest over ``n_cases`` random networks with
    1–3 sigmoid hidden layers and batches of 1–5 samples), ``chained_holds`` and
    ``chained_max_rel_error`` (the same with the post's own δ^L propagated down the column, as
    someone following the table would compute), ``n_cases`` and ``note``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for column, (loss, _, _) in COLUMNS.items():
        errs: dict[str, list[tuple[float, float]]] = {k: [] for k in ENTRIES}
        for _ in range(n_cases):
            for k, v in _check_case(Case(rng, column), column).items():
                errs[k].append(v)
        for entry, (post, correct) in ENTRIES.items():
            post_f = post[column] if isinstance(post, dict) else post
            corr_f = (correct or {}).get(column, post_f)
            e = max(x[0] for x in errs[entry])
            ec = max(x[1] for x in errs[entry])
            rows.append(
                {
                    "column": column,
                    "loss": loss,
                    "entry": entry,
                    "post_formula": post_f,
                    "correct_formula": corr_f,
                    "holds": bool(e < TOL),
                    "max_rel_error": e,
                    "chained_holds": bool(ec < TOL),
                    "chained_max_rel_error": ec,
                    "n_cases": n_cases,
                    "note": _NOTES.get((column, entry), ""),
                }
            )
    return pd.DataFrame(rows)


# -- the errata -----------------------------------------------------------------------------------
def _errors(e_post: float, e_correct: float, tol_correct: float = TOL) -> dict:
    """An erratum's errors: the post's version and the corrected one, each with whether it holds."""
    return dict(
        post_holds=bool(e_post < TOL),
        max_rel_error=e_post,
        correct_holds=bool(e_correct < tol_correct),
        correct_max_rel_error=e_correct,
    )


def _erratum_sigmoid(rng, n_cases):
    """The post's σ = 1/(1 + e^z) against σ' = σ(1−σ), which the post also states."""

    z = np.concatenate([np.linspace(-8, 8, 33), rng.standard_normal(n_cases) * 3])
    fd = lambda f: (f(z + H) - f(z - H)) / (2 * H)  # noqa: E731
    post = sigmoid_as_posted(z)
    e_post = rel_error(post * (1 - post), fd(sigmoid_as_posted))
    s = sigmoid(z)
    e_corr = max(rel_error(s * (1 - s), fd(sigmoid)), rel_error(Sigmoid().fn(z), s))
    mirror = rel_error(post, sigmoid(-z))
    return dict(
        title="sigmoid sign",
        post_formula="σ(z) = 1/(1 + exp(z))",
        correct_formula="σ(z) = 1/(1 + exp(−z))",
        check="σ'(z) = σ(1−σ) against central differences of σ, on z in [−8, 8] and random z",
        **_errors(e_post, e_corr),
        n_cases=len(z),
        note=f"the post's σ is σ(−z) = 1 − σ(z) (rel. error {mirror:.1e}), decreasing: its derivative is "
        "−σ(1−σ), so the stated σ' has the wrong sign (rel. error 2); mlplab's Sigmoid is 1/(1+e^(−z))",
    )


def _erratum_bias_update(rng, n_cases, eta=1e-3):
    """b^l = W^l − η ∂C/∂b^l against the SGD step b^l = b^l − η ∂C/∂b^l."""
    e_post, e_corr, wrong_shape, n_layers, dC_post, dC_corr = 0.0, 0.0, 0, 0, [], []
    for _ in range(n_cases):
        case = Case(rng, "MSE + sigmoid", n_in=1)  # n_0 = 1: W^1 has b^1's shape, so the rule computes
        dW, db = case.true_grads()
        for l in range(case.L):
            n_layers += 1
            wrong_shape += (case.W[l] - eta * db[l]).shape != case.b[l].shape
        b1 = case.b[0].copy()
        step_post = (case.W[0] - eta * db[0]) - b1
        step_sgd = -eta * db[0]
        e_post = max(e_post, rel_error(step_post, step_sgd))
        c0 = case.cost()
        case.b[0] = b1 - eta * db[0]
        dC_corr.append(case.cost() - c0)
        # the correct step changes C by −η‖∂C/∂b‖² to first order
        e_corr = max(e_corr, abs(dC_corr[-1] + eta * float((db[0] ** 2).sum())) / max(abs(dC_corr[-1]), 1e-300))
        case.b[0] = case.W[0] - eta * db[0]
        dC_post.append(case.cost() - c0)
    return dict(
        title="bias update",
        post_formula="b^l = W^l − η ∂C/∂b^l",
        correct_formula="b^l = b^l − η ∂C/∂b^l",
        check="the bias change of one step against −η ∂C/∂b^1 (networks with n_0 = 1, where the post's rule "
        "at least has b^1's shape)",
        **_errors(e_post, e_corr, 0.05),
        n_cases=n_cases,
        note="the post's rule gives shape (n_l, n_(l−1)), not b^l's (n_l, 1), "
        f"in {wrong_shape} of {n_layers} layers; "
        f"with n_0 = 1 it moves C by {min(dC_post):+.3g}…{max(dC_post):+.3g} "
        f"vs {min(dC_corr):+.3g}…{max(dC_corr):+.3g} "
        f"for the SGD step (η = {eta}); correct_max_rel_error is the step's deviation from first order −η‖∂C/∂b‖²",
    )


def _erratum_softmax(rng, n_cases):

    e_post = e_corr = e_true_class = e_mlplab = 0.0
    for _ in range(n_cases):
        case = Case(rng, "softmax CE")
        z, a = case.forward()
        true = case.true_delta(case.L, z)
        post = _post_delta_L("softmax CE", a[-1], case.Y, case.labels)
        e_post = max(e_post, rel_error(post, true))
        e_corr = max(e_corr, rel_error(a[-1] - case.Y, true))
        cols = np.arange(case.m)
        e_true_class = max(e_true_class, rel_error(post[case.labels, cols], true[case.labels, cols]))
        e_mlplab = max(e_mlplab, rel_error(get_loss("softmax_ce").delta(z[-1].T, a[-1].T, case.Y.T).T, true))
    return dict(
        title="softmax δ^L",
        post_formula="δ^L = (0, …, a^L_i − 1, …, 0)^T",
        correct_formula="δ^L = a^L − y",
        check="δ^L against m · ∂C/∂z^L by central differences (C the batch mean of softmax cross-entropy)",
        **_errors(e_post, e_corr),
        n_cases=n_cases,
        note=f"the post's entry is right only at the true class i (rel. error {e_true_class:.1e}); the true δ^L has "
        f"a_j ≠ 0 at every j ≠ i and sums to 0; mlplab's softmax_ce δ^L = a − y (rel. error {e_mlplab:.1e})",
    )


def _erratum_batch_sum(rng, batch_sizes=(1, 4, 16, 64), eta=0.1):
    """The post's summed step against the step of the batch-mean cost, and mlplab's convention."""

    e_scale = e_post = e_mlplab = 0.0
    ratios = []
    for m in batch_sizes:
        case = Case(rng, "MSE + sigmoid", m=m)
        dW, db = case.true_grads()  # of the mean (1/m) Σ_x C_x
        # the post's Σ_x ∂C_x/∂W^l: one sample at a time
        sW = [np.zeros_like(W) for W in case.W]
        X, Y = case.X, case.Y
        for x in range(m):
            case.X, case.Y = X[:, [x]], Y[:, [x]]
            for S, W in zip(sW, case.W):
                S += central_difference(case.cost, W)
        case.X, case.Y = X, Y
        e_scale = max(e_scale, *(rel_error(s, m * g) for s, g in zip(sW, dW)))
        e_post = max(e_post, *(rel_error(eta * s, eta * g) for s, g in zip(sW, dW)))
        ratios.append(np.sqrt(sum((s**2).sum() for s in sW) / sum((g**2).sum() for g in dW)))
        net = MLP(case.n, "sigmoid", "mse", "normal", seed=0)
        for l in range(case.L):
            net.weights[l][...] = case.W[l]
            net.biases[l][...] = case.b[l][:, 0]
        g = net.gradients(X.T, Y.T)
        e_mlplab = max(e_mlplab, *(rel_error(g.dW[l], dW[l]) for l in range(case.L)))
        e_mlplab = max(e_mlplab, *(rel_error(g.db[l][:, None], db[l]) for l in range(case.L)))
    return dict(
        title="sum vs mean over the batch",
        post_formula="W^l = W^l − η Σ_x ∂C_x/∂W^l",
        correct_formula="W^l = W^l − η (1/m) Σ_x ∂C_x/∂W^l (mlplab: C is the batch mean)",
        check=f"the summed step (per-sample differences, summed) against the mean cost's step with the same η, "
        f"m in {list(batch_sizes)}; mlplab's gradients against differences of the mean cost",
        **_errors(e_post, e_mlplab),
        n_cases=len(batch_sizes),
        note=f"Σ_x ∂C_x/∂W = m · ∂C_mean/∂W (rel. error {e_scale:.1e}); step ratio summed/mean "
        f"= {', '.join(f'{r:.4g}' for r in ratios)} for m = {', '.join(map(str, batch_sizes))}: the effective "
        "learning rate of the summed rule is η·m, tied to the batch size. A valid rule, but a study must say "
        "which it uses; mlplab averages (δ^L carries 1/m)",
    )


def errata_table(seed: int = 0, n_cases: int = 10) -> pd.DataFrame:
    """The four errata of the post, each with a numerical check that shows it.

    Columns: ``erratum`` (1–4), ``title``, ``post_formula``, ``correct_formula``, ``check`` (what
    is compared), ``post_holds``/``max_rel_error`` (the post's version against the reference),
    ``correct_holds``/``correct_max_rel_error`` (the corrected version), ``n_cases``, ``note``.
    """
    rng = np.random.default_rng(seed)
    rows = [
        _erratum_sigmoid(rng, n_cases),
        _erratum_bias_update(rng, n_cases),
        _erratum_softmax(rng, n_cases),
        _erratum_batch_sum(rng),
    ]
    return pd.DataFrame([{"erratum": i + 1, **r} for i, r in enumerate(rows)])

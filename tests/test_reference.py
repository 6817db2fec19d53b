"""Plain networks give the numbers they gave before the core was rebuilt as a stack of layers.

``tests/data/plain_reference_*.parquet`` hold every metric of 25 small runs (every activation x
loss, clipping, weight decay, full batch, float32, a diverging run...) and the gradients of 12
networks, written by the earlier core (``tests/data/make_reference.py``) on one machine. Which
BLAS kernels compute a matrix product (AVX-512, AVX2, AVX, Accelerate, MKL...) decides its last
bits, so no comparison here is bit for bit; each allows what rounding can do, and no more:

* a gradient, entry by entry, twice the rounding bound of ``tests/rounding.py`` (each machine is
  within it of the exact value);
* a run's metric, what rounding can move it by along its trajectory: the run's own sensitivity,
  measured by running it again with perturbed matrix products, plus the rounding of the last
  sums that make the metric (``test_plain_runs_match_the_reference``).

A change of the maths (σ' off by 1e-9 relative, a wrong constant, a dropped term) moves these
numbers by far more: the gradients' bounds are 1e-14 to 2e-12 of the largest entry of each array,
the runs' 2e-13 to 2e-12 relative (float32 runs: ~1e-4).
"""

import re
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from rounding import gamma, rounding_bound

from mlplab import layers

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
import make_reference as ref  # noqa: E402

TABLES = ("runs", "steps", "layers")
SPECS = {label: {**ref.BASE, **over} for label, over in ref.CASES}
# sums of numbers of one sign (norms, losses, a standard deviation, a ratio of norms): rounding
# moves them relatively; act_mean is a signed sum, moved relative to the root mean square
ROUNDED = {
    "final_loss",
    "final_test_loss",
    "loss",
    "test_loss",
    "batch_loss",
    "grad_norm",
    "grad_w_norm",
    "grad_b_norm",
    "weight_norm",
    "update_ratio",
    "act_std",
}
PERTURBED_RUNS = 2  # runs of a case with perturbed products, to measure its sensitivity
SAFETY = 8  # how much more than the perturbed runs moved a number a kernel change may move it


@pytest.fixture(scope="module")
def fresh():
    return ref.sweep_metrics()


def perturbed_dot(seed: int):
    """``np.dot`` whose every result is moved by as much as a different kernel's rounding could
    move it, at random: n·u·(|A| |B|) entry by entry (n the length of the sums, u the unit
    roundoff of the result's dtype) times a uniform number in [−1, 1]."""
    rng = np.random.default_rng(seed)

    def dot(a, b, out=None):
        r = np.dot(a, b, out=out)
        with np.errstate(over="ignore", invalid="ignore"):
            e = (
                rng.uniform(-1.0, 1.0, np.shape(r))
                * np.dot(np.abs(a), np.abs(b))
                * (a.shape[-1] * np.finfo(r.dtype).eps / 2)
            )
        r += np.where(np.isfinite(e), e, 0.0).astype(r.dtype)
        return r

    return dot


def moved(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b|; 0 where neither is finite (inf and NaN alike), inf where only one is."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    fa, fb = np.isfinite(a), np.isfinite(b)
    d = np.full(a.shape, np.inf)
    both = fa & fb
    d[both] = np.abs(a[both] - b[both])
    d[~fa & ~fb] = 0.0
    return d


@pytest.fixture(scope="module")
def sensitivity(fresh):
    """``sensitivity(label)``: per table, how far the case's numbers moved when its matrix
    products were perturbed (``perturbed_dot``): the largest |perturbed − fresh| over
    ``PERTURBED_RUNS`` runs, cell by cell. Measured on first use, once per case."""
    cache = {}

    def measure(label: str) -> dict[str, pd.DataFrame]:
        if label not in cache:
            base = {t: fresh[t][fresh[t]["case"] == label].reset_index(drop=True) for t in TABLES}
            out = {t: pd.DataFrame(0.0, index=base[t].index, columns=numeric(base[t])) for t in TABLES}
            for k in range(PERTURBED_RUNS):
                with mock.patch.object(layers, "dot", perturbed_dot(k)):
                    other = ref.case_metrics(label, dict(ref.CASES)[label])
                for t in TABLES:
                    if len(other[t]) != len(base[t]):
                        pytest.fail(
                            f"{label}: perturbed products changed the number of {t} rows ({len(base[t])} -> "
                            f"{len(other[t])}); the run's course depends on rounding, so the reference cannot hold it"
                        )
                    for c in out[t].columns:
                        out[t][c] = np.maximum(out[t][c], moved(other[t][c].to_numpy(), base[t][c].to_numpy()))
            cache[label] = out
        return cache[label]

    return measure


def numeric(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype.kind in "fiub"]


def floor(label: str, want: pd.DataFrame, layers_table: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the last sums that make each number can move it by, given the run's state: a sum of
    at most N terms of one sign, each within 16u of its exact value (two function evaluations
    of 4 ulps; a softmax's exponent, rounded, adds u·|z − max z|, a few u at these runs'
    logits), in any order, is within γ(N + 16) of it relatively (Higham (3.5)), so two machines
    within 2γ(N + 16); u is the run's dtype's. Norms, losses, standard deviations (two passes:
    the mean's error moves them only to second order) and ratios of norms are such sums; a
    mean of signed outputs is within γ(N + 16) of their root mean square. N is the run's
    largest sum: its number of parameters (‖g‖), or its samples times its widest layer (a loss
    over a whole set, a layer's outputs over a full batch)."""
    spec = SPECS[label]
    u = np.finfo(np.dtype(spec.get("dtype", "float64"))).eps / 2
    first = layers_table[layers_table["step"] == layers_table["step"].iloc[0]]
    n = max(int(((first["fan_in"] + 1) * first["fan_out"]).sum()), spec["n_samples"] * int(first["fan_out"].max()))
    rel = 2 * gamma(n + 16, u)
    out = {}
    for c in numeric(want):
        v = want[c].to_numpy(np.float64)
        if c == "act_mean":
            v = np.hypot(v, want["act_std"].to_numpy(np.float64))  # root mean square ≥ mean |a|
        out[c] = rel * np.abs(v) if c in ROUNDED or c == "act_mean" else np.zeros(len(v))
    return out


def reason(text) -> str:
    """Whether an overflowing sum ends as inf or NaN (inf − inf) depends on the order of its terms."""
    return re.sub(r"-?\b(nan|inf)\b", "non-finite", str(text))


def mismatches(table: str, label: str, got: pd.DataFrame, want: pd.DataFrame, tol_floor: dict, sens=None) -> list[str]:
    """The cells of one case that differ by more than rounding can explain: more than
    ``tol_floor`` + SAFETY × ``sens`` (``sens`` None: the floor alone)."""
    bad = []
    overflowed = None
    if table == "layers":  # a layer whose outputs overflowed: its NaNs, hence its counts, depend on the order of sums
        overflowed = ~(np.isfinite(want["act_mean"].to_numpy(float)) & np.isfinite(want["act_std"].to_numpy(float)))
    for c in want.columns:
        if c == "case":
            continue
        if c not in tol_floor:  # status, reason
            a, b = [reason(v) for v in got[c]], [reason(v) for v in want[c]]
            bad += [f"{table}.{c} row {i}: {x!r}, the reference {y!r}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
            continue
        a, b = got[c].to_numpy(np.float64), want[c].to_numpy(np.float64)
        tol = tol_floor[c] + (0.0 if sens is None else SAFETY * sens[c].to_numpy())
        with np.errstate(invalid="ignore"):
            d = moved(a, b)
            both_non_finite = ~np.isfinite(a) & ~np.isfinite(b)  # inf and NaN alike: see reason()
            ok = both_non_finite | (d <= tol)
        if c == "sat_frac":
            ok |= overflowed
        for i in np.flatnonzero(~ok):
            at = f" (step {want['step'].iloc[i]})" if "step" in want else ""
            bad.append(
                f"{table}.{c} row {i}{at}: {float(a[i])!r}, the reference {float(b[i])!r}, allowed ±{tol[i]:.3g}"
            )
    return bad


@pytest.mark.parametrize("table", TABLES)
def test_plain_runs_match_the_reference(fresh, sensitivity, table):
    """Every number of every run within what rounding can move it by along the run:

        |today − reference| ≤ 2γ(N + 16)·|value| + 8 · max_k |perturbed_k − today|

    The first term is the rounding of the last sums that make the number, given the run's
    state (``floor``). The second is the run's sensitivity: each case runs twice more with every
    matrix product of its layers moved at random by up to n·u·(|A| |B|) — as far as any kernel's
    rounding may move it (Higham (3.5)) — and records how far each of its numbers moved. To first
    order a run carries a perturbation of its products along its steps the same way, whichever
    kernel made it; 8 covers a kernel change of twice the bound (two kernels, each within it of
    the exact product), against a perturbation of half of it on average, with a factor 2 to
    spare. Measured: where the perturbed runs moved a number, the reference's kernel, OpenBLAS's
    Haswell, Sandybridge and Nehalem kernels moved it at most twice as far, and never beyond the
    first term. A case is rerun only when some number is beyond the first term alone (the
    tolerance is their sum, so the order changes nothing). Counts (accuracies, saturated fractions,
    clipped) and steps have no first term: they are exact unless a perturbed run moved them.
    Where the reference is inf or NaN, today's number must not be finite either (an overflowing
    sum ends as inf or NaN by the order of its terms); a layer whose outputs overflowed has no
    comparable saturated fraction."""
    want_all = pd.read_parquet(DATA / f"plain_reference_{table}.parquet")
    got_all = fresh[table].reset_index(drop=True)
    assert list(got_all.columns) == list(want_all.columns), table
    assert got_all["case"].tolist() == want_all["case"].tolist(), f"{table}: the cases or their numbers of rows differ"
    layers_table = pd.read_parquet(DATA / "plain_reference_layers.parquet")
    for label, _ in ref.CASES:
        rows = (want_all["case"] == label).to_numpy()
        got, want = got_all[rows].reset_index(drop=True), want_all[rows].reset_index(drop=True)
        tol_floor = floor(label, want, layers_table[layers_table["case"] == label])
        bad = mismatches(table, label, got, want, tol_floor)
        if bad:
            bad = mismatches(table, label, got, want, tol_floor, sensitivity(label)[table])
        assert not bad, f"{label}: " + "; ".join(bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")


def test_perturbed_products_move_a_run_and_a_diverging_run_amplifies_them(sensitivity, fresh):
    """The sensitivity the reference test allows for is measured: perturbing the products moves
    the gradient norms from the first step (the hook reaches the layers), and a run on its way
    to overflow (lr = 1, large weights) carries the perturbation forward tenfold and more by its
    last finite step, while a plain run keeps it at rounding level."""
    for label, grows in (("diverges", True), ("sigmoid-mse", False)):
        lay = fresh["layers"][fresh["layers"]["case"] == label].reset_index(drop=True)
        rel = sensitivity(label)["layers"]["grad_w_norm"].to_numpy() / lay["grad_w_norm"].to_numpy()
        steps = lay["step"].to_numpy()
        first, last = rel[steps == 0].max(), rel[steps == 2].max()
        assert 0 < first < 1e-13, (label, first)
        assert (last > 10 * first) if grows else (last < 1e-13), (label, first, last)


def test_plain_gradients_match_the_reference():
    """δ^l, ∂C/∂W^l, ∂C/∂b^l and C of 12 networks (every activation x loss, sizes [5, 7, 7, 6, 4],
    σ_w = 1.5, a batch of 9), entry by entry within twice the rounding bound E of
    ``tests/rounding.py``: the machine that wrote the reference and the one running the test are
    each within E of the exact numbers, whichever kernels and ``exp``/``tanh`` each used. E is a
    first-order running error bound: γ(n)·Σ|terms| for every dot product of n terms in any order
    (Higham (3.5)), the errors of its inputs carried through, 4 ulps per function. It is 1e-14 to 2e-12 of the largest
    entry of each array; under OpenBLAS's Haswell, Sandybridge and Nehalem kernels the reference is within 3 %
    of 2E of today's numbers, and each machine within 10 % of E of the exact ones."""
    want = pd.read_parquet(DATA / "plain_reference_gradients.parquet")
    got = ref.gradient_table()
    keys = ["case", "kind", "layer"]
    assert list(got[keys].itertuples(index=False)) == list(want[keys].itertuples(index=False))
    bounds = {label: rounding_bound(net, X, Y) for label, net, X, Y in ref.gradient_cases()}
    for a, b, case, kind, layer in zip(got["values"], want["values"], want["case"], want["kind"], want["layer"]):
        a, b = np.asarray(a), np.asarray(b)
        E = bounds[case][kind] if kind == "loss" else bounds[case][kind][layer - 1].ravel()
        excess = np.abs(a - b) - 2 * E
        assert (excess <= 0).all(), (
            f"{case} {kind}^{layer}: off by {np.abs(a - b).max():.3g}, bound {np.max(2 * E):.3g}"
        )

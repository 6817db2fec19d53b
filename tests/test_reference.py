"""Plain networks give the numbers they gave before the core was rebuilt as a stack of layers.

``tests/data/plain_reference_*.parquet`` hold every metric of 25 small runs (every activation x
loss, clipping, weight decay, full batch, float32, a diverging run...) and the gradients of 12
networks, written by the earlier core (``tests/data/make_reference.py``). Today's code must
match them within 1e-12 relative, and bit for bit where the arithmetic is unchanged.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
import make_reference as ref  # noqa: E402

RTOL = 1e-12
# The loss values have been evaluated since by formulas that stay relatively accurate at
# saturation (the numbers move by rounding): 1e-12 in float64, float32's own precision there.
LOSS_COLUMNS = {"final_loss", "final_test_loss", "loss", "test_loss", "batch_loss"}
# A float32 run's activation statistics and update ratios are summed in float64 since (from the
# per-layer gradient norms, for the ratios): they move by float32's rounding.
FLOAT32_COLUMNS = LOSS_COLUMNS | {"act_mean", "act_std", "update_ratio"}
FLOAT32_RTOL = 1e-6


@pytest.fixture(scope="module")
def fresh():
    return ref.sweep_metrics()


def assert_close(got: pd.DataFrame, want: pd.DataFrame, what: str):
    assert list(got.columns) == list(want.columns), what
    assert len(got) == len(want), what
    f32 = (want["case"] == "float32").to_numpy()
    for c in want.columns:
        a, b = got[c].to_numpy(), want[c].to_numpy()
        if c in FLOAT32_COLUMNS and f32.any():  # these float32 numbers at float32 precision, the rest at RTOL
            np.testing.assert_allclose(a[f32], b[f32], rtol=FLOAT32_RTOL, err_msg=f"{what}.{c} (float32)")
            a, b = a[~f32], b[~f32]
        if np.issubdtype(b.dtype, np.floating):
            a, b = a.astype(np.float64), b.astype(np.float64)
            same_nan = np.isnan(a) == np.isnan(b)
            assert same_nan.all(), f"{what}.{c}: NaN where the reference has a number (or back)"
            ok = ~np.isnan(b) & (a != b)  # equal values (infinities included) are exact
            err = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300)
            assert err.max(initial=0.0) <= RTOL, f"{what}.{c}: relative error {err.max():.2e}"
        else:
            a, b = got[c].astype(object).where(got[c].notna(), None), want[c].astype(object).where(want[c].notna(), None)
            assert a.tolist() == b.tolist(), f"{what}.{c} differs"


@pytest.mark.parametrize("table", ["runs", "steps", "layers"])
def test_plain_runs_match_the_reference(fresh, table):
    want = pd.read_parquet(DATA / f"plain_reference_{table}.parquet")
    assert_close(fresh[table].reset_index(drop=True), want, table)


def test_plain_runs_are_bit_identical_to_the_reference(fresh):
    """The arithmetic of a plain network is unchanged, so the gradient norms agree exactly."""
    want = pd.read_parquet(DATA / "plain_reference_layers.parquet")
    got = fresh["layers"]
    for c in ("grad_w_norm", "grad_b_norm", "weight_norm"):
        np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy(), err_msg=c)


def test_plain_gradients_match_the_reference():
    want = pd.read_parquet(DATA / "plain_reference_gradients.parquet")
    got = ref.gradient_table()
    assert list(got[["case", "kind", "layer"]].itertuples(index=False)) == list(want[["case", "kind", "layer"]].itertuples(index=False))
    for a, b, case, kind in zip(got["values"], want["values"], want["case"], want["kind"]):
        if kind == "loss":  # evaluated by a more accurate formula since
            np.testing.assert_allclose(a, b, rtol=RTOL, err_msg=case)
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{case} {kind}")

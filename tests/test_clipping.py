import numpy as np
import pytest

from mlplab.clipping import CLIPS, clip_gradients


def grads(rng, scale):
    return [rng.standard_normal((4, 3)) * scale, rng.standard_normal(4) * scale]


def norm(gs):
    return np.sqrt(sum((g * g).sum() for g in gs))


def test_norm_clipping_leaves_small_gradients_untouched(rng):
    g = grads(rng, 0.01)
    before = [x.copy() for x in g]
    n, clipped = clip_gradients(g, "norm", threshold=1.0)
    assert not clipped and n == pytest.approx(norm(before))
    assert all(np.array_equal(a, b) for a, b in zip(g, before))


@pytest.mark.parametrize("threshold", [0.1, 1.0, 5.0])
def test_norm_clipping_scales_large_gradients_to_exactly_the_threshold(rng, threshold):
    g = grads(rng, 10.0)
    before = [x.copy() for x in g]
    n, clipped = clip_gradients(g, "norm", threshold=threshold)
    assert clipped and n == pytest.approx(norm(before))  # the pre-clip norm is reported
    assert norm(g) == pytest.approx(threshold, rel=1e-12)
    for a, b in zip(g, before):  # direction kept
        assert np.allclose(a, b * threshold / n)


def test_value_clipping_clamps_each_element(rng):
    g = grads(rng, 3.0)
    before = [x.copy() for x in g]
    _, clipped = clip_gradients(g, "value", threshold=0.5)
    assert clipped
    for a, b in zip(g, before):
        assert np.abs(a).max() <= 0.5
        assert np.array_equal(a, np.clip(b, -0.5, 0.5))
    small = grads(rng, 1e-3)
    assert clip_gradients(small, "value", threshold=0.5)[1] is False


def test_none_never_clips(rng):
    g = grads(rng, 1e6)
    before = [x.copy() for x in g]
    n, clipped = clip_gradients(g, "none", threshold=1.0)
    assert not clipped and all(np.array_equal(a, b) for a, b in zip(g, before))


def test_registry_names():
    assert set(CLIPS) == {"none", "norm", "value"}

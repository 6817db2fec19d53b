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


def test_a_norm_exactly_at_the_threshold_is_not_clipped():
    g = [np.array([[3.0, 4.0]]), np.zeros(2)]
    n, clipped = clip_gradients(g, "norm", threshold=5.0)
    assert n == 5.0 and clipped is False and np.array_equal(g[0], [[3.0, 4.0]])


def test_a_value_exactly_at_the_threshold_is_not_clipped():
    g = [np.array([[0.5, -0.5]]), np.zeros(0)]  # an empty array has no largest value
    assert clip_gradients(g, "value", threshold=0.5) == (np.sqrt(0.5), False)
    assert clip_gradients([np.zeros(0), np.array([0.75])], "value", threshold=0.5)[1] is True


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_a_rule_object_is_used_as_it_is(name, rng):
    from mlplab.clipping import get_clip

    g, h = grads(rng, 10.0), grads(rng, 10.0)
    for a, b in zip(g, h):
        b[...] = a
    assert clip_gradients(g, get_clip(name), 1.0) == clip_gradients(h, name, 1.0)
    assert all(np.array_equal(a, b) for a, b in zip(g, h))


def test_an_unknown_rule_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"clip='soft' is not registered; choose one of \['none', 'norm', 'value'\]"):
        clip_gradients([np.ones(2)], "soft", 1.0)

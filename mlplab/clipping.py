"""Gradient clipping rules: a registry of name -> class with ``clip_``.

``clip_(grads, norm, threshold)`` clips the list of gradient arrays in place, given their global
L2 norm ‖g‖ (over all parameters, computed before clipping), and returns ``(scale, clipped)``:
the factor the update is multiplied by (1 when nothing is scaled) and whether anything changed.
"""

from __future__ import annotations

import numpy as np


class ClipRule:
    name = ""
    scales = True  # True when clipping multiplies the whole gradient by one factor

    def clip_(self, grads: list[np.ndarray], norm: float, threshold: float) -> tuple[float, bool]:
        raise NotImplementedError


class NoClip(ClipRule):
    """Leave the gradient as it is."""

    name = "none"

    def clip_(self, grads, norm, threshold):
        return 1.0, False


class NormClip(ClipRule):
    """g ← g · threshold/‖g‖ when ‖g‖ > threshold (Pascanu et al. 2013), over all parameters.

    The scale is returned rather than applied, so that the SGD update folds it into the
    learning rate (one pass over the parameters instead of two).
    """

    name = "norm"

    def clip_(self, grads, norm, threshold):
        if norm > threshold:
            return threshold / norm, True
        return 1.0, False


class ValueClip(ClipRule):
    """g_i ← clamp(g_i, −threshold, threshold), element-wise."""

    name = "value"
    scales = False

    def clip_(self, grads, norm, threshold):
        clipped = False
        for g in grads:
            if not clipped and np.abs(g).max(initial=0.0) > threshold:
                clipped = True
            np.clip(g, -threshold, threshold, out=g)
        return 1.0, clipped


CLIPS: dict[str, type[ClipRule]] = {cls.name: cls for cls in (NoClip, NormClip, ValueClip)}


def get_clip(name: str) -> ClipRule:
    try:
        return CLIPS[name]()
    except KeyError:
        raise ValueError(f"clip={name!r} is not registered; choose one of {sorted(CLIPS)}") from None


def clip_gradients(grads: list[np.ndarray], rule: str | ClipRule, threshold: float):
    """Clip ``grads`` in place (scaling applied too); return (pre-clip global norm, clipped)."""
    rule = get_clip(rule) if isinstance(rule, str) else rule
    norm = float(np.sqrt(sum(np.vdot(g, g) for g in grads)))
    scale, clipped = rule.clip_(grads, norm, threshold)
    if scale != 1.0:
        for g in grads:
            g *= scale
    return norm, clipped

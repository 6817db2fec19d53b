"""The learning rate per update: a linear warmup, then a schedule, as PyTorch's schedulers chain.

    eta = LearningRate(0.1, "cosine", warmup_steps=50, n_steps=1000)
    opt.lr = eta(t)        # before update t = 0, 1, …, n_steps − 1

The schedules are a registry of factors (``SCHEDULES``: name → f(u, T, γ, step_size)).
"""

from __future__ import annotations

import math

from mlplab.optim import checked


def _constant(u: int, T: int, gamma: float, step_size: int) -> float:
    return 1.0


def _cosine(u: int, T: int, gamma: float, step_size: int) -> float:
    """CosineAnnealingLR to 0 over the T updates after the warmup: (1 + cos(π u/T))/2."""
    return 0.5 * (1.0 + math.cos(math.pi * min(u, T) / T)) if T > 0 else 1.0


def _step(u: int, T: int, gamma: float, step_size: int) -> float:
    """StepLR: ×γ every ``step_size`` updates after the warmup."""
    return gamma ** (u // step_size)


SCHEDULES = {"constant": _constant, "cosine": _cosine, "step": _step}


class LearningRate:
    """η_t of update t = 0, 1, …, n_steps − 1: a linear warmup from 0 (η t / w for t < w, as
    ``LinearLR`` from 0 to η over w updates), then the schedule on u = t − w of T = n_steps − w
    (``constant``; ``cosine`` to 0 at the end of training, ``CosineAnnealingLR(T)``; ``step``,
    ×γ every ``step_size`` updates, ``StepLR``), as PyTorch's ``SequentialLR`` chains them."""

    def __init__(
        self,
        lr: float,
        schedule: str = "constant",
        warmup_steps: int = 0,
        n_steps: int = 0,
        gamma: float = 0.1,
        step_size: int = 1,
    ):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule={schedule!r}: must be one of {sorted(SCHEDULES)}")
        self.lr, self.factor = float(lr), SCHEDULES[schedule]
        self.warmup = int(checked("warmup_steps", warmup_steps, warmup_steps >= 0, "must be an integer ≥ 0"))
        self.T = max(int(n_steps) - self.warmup, 0)
        self.gamma = checked("gamma", gamma, 0 < gamma <= 1, "must be a number in (0, 1]")
        self.step_size = int(checked("step_size", step_size, step_size >= 1, "must be an integer ≥ 1"))

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return self.lr * t / self.warmup
        return self.lr * self.factor(t - self.warmup, self.T, self.gamma, self.step_size)

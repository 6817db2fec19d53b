"""The flat description of one run, its validation and its stable id.

``RunSpec`` holds every value that decides a run's numbers, flat, as they appear as columns
of the ``runs`` table. It is plain data: the Hydra config (``mlplab.config``) is turned into a
``RunSpec`` at the edge, and everything else (training, results, tests) works on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from mlplab.activations import ACTIVATIONS
from mlplab.clipping import CLIPS
from mlplab.data import DATASETS
from mlplab.init import INITS
from mlplab.losses import LOSSES

SCHEMA_VERSION = 1  # of the result tables; part of every run id


# RunSpec field -> the config key a user types
CONFIG_KEYS = {
    "depth": "depth", "width": "width", "activation": "activation", "alpha": "activation.alpha",
    "loss": "loss", "init": "init", "sigma_w": "init.sigma_w", "sigma_b": "init.sigma_b",
    "lr": "train.lr", "batch_size": "train.batch_size", "epochs": "train.epochs",
    "weight_decay": "train.weight_decay", "log_every": "train.log_every", "clip": "clip",
    "clip_threshold": "clip.threshold", "dataset": "data", "n_samples": "data.n_samples",
    "n_features": "data.n_features", "n_classes": "data.n_classes", "noise": "data.noise",
    "test_fraction": "data.test_fraction", "standardise": "data.standardise",
    "data_path": "data.path", "seed": "seed", "dtype": "dtype",
}


class ConfigError(ValueError):
    """A bad input value. ``str(err)`` is the one-line message shown to the user."""

    def __init__(self, field: str, value, allowed: str):
        field = CONFIG_KEYS.get(field, field)
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"invalid config: {field}={value!r}: {allowed}")


@dataclass(frozen=True)
class RunSpec:
    # network
    depth: int = 2
    width: int = 32
    activation: str = "sigmoid"
    alpha: float = 0.01
    loss: str = "softmax_ce"
    init: str = "normal"
    sigma_w: float = 1.0
    sigma_b: float = 1.0
    # training
    lr: float = 0.5
    batch_size: int | str = 32
    epochs: int = 20
    weight_decay: float = 0.0
    clip: str = "none"
    clip_threshold: float = 1.0
    log_every: int | None = None
    # data
    dataset: str = "blobs"
    n_samples: int = 1000
    n_features: int = 8
    n_classes: int = 3
    noise: float = 1.0
    test_fraction: float = 0.2
    standardise: bool = True
    data_path: str | None = None
    # run
    seed: int = 0
    dtype: str = "float64"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_id(self) -> str:
        """sha256 of the canonical JSON of every field plus the result schema version."""
        blob = json.dumps({"schema": SCHEMA_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]




def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(ok: bool, field: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(field, value, allowed)


def validate(spec: RunSpec) -> RunSpec:
    """Check every value that needs no data; raise ``ConfigError`` on the first bad one."""
    s = spec

    def check(field, ok, allowed):
        _check(ok, field, getattr(s, field), allowed)

    def one_of(field, registry):
        check(field, getattr(s, field) in registry, f"must be one of {sorted(registry)}")

    check("depth", _is_int(s.depth) and s.depth >= 0, "must be an integer >= 0")
    check("width", _is_int(s.width) and s.width >= 1, "must be an integer >= 1")
    one_of("activation", ACTIVATIONS)
    check("alpha", _is_real(s.alpha) and 0 < s.alpha < 1, "must be a number in (0, 1)")
    one_of("loss", LOSSES)
    one_of("init", INITS)
    check("sigma_w", _is_real(s.sigma_w) and math.isfinite(s.sigma_w) and s.sigma_w > 0, "must be a finite number > 0")
    check("sigma_b", _is_real(s.sigma_b) and math.isfinite(s.sigma_b) and s.sigma_b >= 0, "must be a finite number >= 0")
    check("lr", _is_real(s.lr) and math.isfinite(s.lr) and s.lr > 0, "must be a finite number > 0")
    check(
        "batch_size",
        (_is_int(s.batch_size) and s.batch_size >= 1) or s.batch_size == "full",
        "must be an integer >= 1 or 'full'",
    )
    check("epochs", _is_int(s.epochs) and s.epochs >= 1, "must be an integer >= 1")
    check(
        "weight_decay",
        _is_real(s.weight_decay) and math.isfinite(s.weight_decay) and s.weight_decay >= 0,
        "must be a finite number >= 0",
    )
    one_of("clip", CLIPS)
    check(
        "clip_threshold",
        _is_real(s.clip_threshold) and math.isfinite(s.clip_threshold) and s.clip_threshold > 0,
        "must be a finite number > 0",
    )
    check("log_every", s.log_every is None or (_is_int(s.log_every) and s.log_every >= 1), "must be an integer >= 1 or null (auto: >= 50 points)")
    one_of("dataset", DATASETS)
    check("n_samples", _is_int(s.n_samples) and s.n_samples >= 2, "must be an integer >= 2")
    check("n_features", _is_int(s.n_features) and s.n_features >= 1, "must be an integer >= 1")
    check("n_classes", _is_int(s.n_classes) and s.n_classes >= 2, "must be an integer >= 2")
    check("noise", _is_real(s.noise) and math.isfinite(s.noise) and s.noise >= 0, "must be a finite number >= 0")
    check("test_fraction", _is_real(s.test_fraction) and 0 < s.test_fraction < 1, "must be a number in (0, 1)")
    check("data_path", s.dataset != "file" or bool(s.data_path), "must name an .npz file when dataset is 'file'")
    check("seed", _is_int(s.seed) and s.seed >= 0, "must be an integer >= 0")
    check("dtype", s.dtype in ("float32", "float64"), "must be one of ['float32', 'float64']")
    return spec

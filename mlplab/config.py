"""Typed Hydra configs (the schema), registered in the ConfigStore; values live in ``conf/``.

The primary config is ``Config``; each group (activation, loss, init, clip, data, train) has a
dataclass, and the YAML files under ``conf/<group>/`` fill it. ``to_spec`` turns a composed
config into the flat, validated ``RunSpec`` the rest of the library works with. Hydra is
imported here and in ``mlplab.cli`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mlplab.spec import RunSpec, validate


@dataclass
class ActivationConfig:
    name: str = MISSING
    alpha: float = 0.01  # leaky_relu's slope for z < 0


@dataclass
class LossConfig:
    name: str = MISSING


@dataclass
class InitConfig:
    name: str = MISSING
    sigma_w: float = 1.0  # normal: W ~ N(0, sigma_w²/fan_in)
    sigma_b: float = 1.0  # normal: b ~ N(0, sigma_b²)


@dataclass
class ClipConfig:
    name: str = MISSING
    threshold: float = 1.0


@dataclass
class DataConfig:
    name: str = MISSING
    n_samples: int = 1000
    n_features: int = 8
    n_classes: int = 3
    noise: float = 1.0
    test_fraction: float = 0.2
    standardise: bool = True
    path: Optional[str] = None  # dataset 'file': an .npz with X and Y (or labels)


@dataclass
class TrainConfig:
    lr: float = 0.5
    batch_size: Any = 32  # an integer >= 1, or 'full' (batch gradient descent)
    epochs: int = 20
    weight_decay: float = 0.0  # L2: W <- (1 - lr*weight_decay) W - lr*grad
    log_every: Optional[int] = None  # null: often enough for >= 50 logged points


@dataclass
class Config:
    activation: ActivationConfig = field(default_factory=ActivationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    init: InitConfig = field(default_factory=InitConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    depth: int = 2  # hidden layers; the network has L = depth + 1 weight layers
    width: int = 32  # units per hidden layer
    seed: int = 0
    dtype: str = "float64"
    sweep_name: str = "runs"  # results go to <results_dir>/<sweep_name>/
    results_dir: str = "results"
    force: bool = False  # rerun runs whose results already exist
    debug: bool = False  # show tracebacks instead of one-line errors


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)


def to_spec(cfg: DictConfig) -> RunSpec:
    """The composed config as a validated ``RunSpec`` (``ConfigError`` names the config key)."""
    keys = ["activation", "loss", "init", "clip", "data", "train", "depth", "width", "seed", "dtype"]
    c = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    spec = RunSpec(
        depth=c["depth"], width=c["width"], activation=c["activation"]["name"],
        alpha=c["activation"]["alpha"], loss=c["loss"]["name"], init=c["init"]["name"],
        sigma_w=c["init"]["sigma_w"], sigma_b=c["init"]["sigma_b"], lr=c["train"]["lr"],
        batch_size=c["train"]["batch_size"], epochs=c["train"]["epochs"],
        weight_decay=c["train"]["weight_decay"], log_every=c["train"]["log_every"],
        clip=c["clip"]["name"], clip_threshold=c["clip"]["threshold"], dataset=c["data"]["name"],
        n_samples=c["data"]["n_samples"], n_features=c["data"]["n_features"],
        n_classes=c["data"]["n_classes"], noise=c["data"]["noise"],
        test_fraction=c["data"]["test_fraction"], standardise=c["data"]["standardise"],
        data_path=c["data"]["path"], seed=c["seed"], dtype=c["dtype"],
    )
    return validate(spec)


register()

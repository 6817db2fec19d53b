"""The remedies, read from the configs: each file of ``conf/remedy/`` against ``remedy=plain``.

A remedy file changes one thing of the plain network: a config group (``defaults: - override
/init: he_normal``: the run field ``init`` becomes ``he_normal``) or one key (``norm: batch``,
``train.weight_decay``). ``REMEDIES`` holds, per remedy, that field, the remedy's value and the
plain twin's, composed from the same conf folder the command line uses (the installed package's
``mlplab/conf``, else the checkout's ``conf/``), with PyYAML: Hydra stays in the CLI. ReLU is
the one remedy that is not a remedy file: an activation (``activation=relu``) whose twins are
the saturating activations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

import mlplab
from mlplab.spec import FIELDS

# the report's name of each remedy, in the order the report lists them; a remedy file without
# one here is named after its file and listed last
LABELS = {
    "relu": "relu",
    "residual": "residual",
    "batch_norm": "batch norm",
    "layer_norm": "layer norm",
    "orthogonal": "orthogonal init",
    "he": "He init",
    "xavier": "Xavier init",
    "clipping": "norm clipping",
    "weight_decay": "weight decay",
}
RELU_TWINS = ("sigmoid", "tanh")  # the activations relu is compared with
# the run field behind each config path: 'depth', 'train.weight_decay', 'init.name' (a group's choice)
FIELD_AT = {f.metadata["key"] + (".name" if f.metadata["group"] else ""): f.name for f in FIELDS}


@dataclass(frozen=True)
class Remedy:
    """One change away from the plain network: ``field`` at ``value`` where the plain twin has
    one of the values ``twin``. A numeric ``value`` stands for any value other than the twin's
    (any positive weight decay)."""

    field: str
    value: object
    twin: tuple

    @property
    def any_value(self) -> bool:
        return isinstance(self.value, (int, float)) and not isinstance(self.value, bool)

    def carried_by(self, v) -> bool:
        """Whether a run whose ``field`` is ``v`` carries the remedy."""
        return v not in self.twin if self.any_value else v == self.value


def conf_folder() -> Path:
    """The configs: ``mlplab/conf`` of an installed package (the wheel maps the repository's
    ``conf/`` there), else ``conf/`` of the checkout mlplab runs from."""
    installed = Path(mlplab.__file__).resolve().parent / "conf"
    return installed if (installed / "config.yaml").is_file() else installed.parent.parent / "conf"


def _read(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _leaves(cfg: dict, prefix: str = "") -> dict:
    """{'train.weight_decay': 0.001, ...}: every value of a nested config by its dotted path."""
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out |= _leaves(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _plain_config(conf: Path) -> dict:
    """config.yaml with each default group's option (``remedy=plain`` adds nothing), as leaves."""
    cfg = _read(conf / "config.yaml")
    for entry in cfg.pop("defaults", []):
        if isinstance(entry, dict):
            (group, option), *_ = entry.items()
            if option is not None and (conf / group / f"{option}.yaml").is_file():
                cfg[group] = _read(conf / group / f"{option}.yaml")
    return _leaves(cfg)


def _changes(path: Path, conf: Path) -> dict:
    """The config paths a remedy file sets: a group it overrides (``init.name``) and the keys
    it sets outside those groups (a group's own keys are its parameters)."""
    cfg = _read(path)
    groups = {}
    for entry in cfg.pop("defaults", []):
        (key, option), *_ = entry.items()
        groups[key.removeprefix("override /")] = option
    out = {f"{g}.name": _read(conf / g / f"{o}.yaml").get("name", o) for g, o in groups.items()}
    return out | {k: v for k, v in _leaves(cfg).items() if k.split(".")[0] not in groups}


def _none(v):
    return "none" if v is None else v


@functools.cache
def remedies(conf: Path | None = None) -> dict[str, Remedy]:
    """Every remedy by its report name (``LABELS``): relu, then each ``conf/remedy/*.yaml`` but
    plain, the one field it changes and the plain twin's value of it."""
    conf = conf_folder() if conf is None else conf
    plain = _plain_config(conf)
    found = {"relu": Remedy("activation", "relu", RELU_TWINS)}
    for path in sorted((conf / "remedy").glob("*.yaml")):
        changes = _changes(path, conf)
        if path.stem == "plain" or not changes:
            continue
        if len(changes) != 1:
            raise ValueError(f"{path}: a remedy changes one field of the plain network, not {sorted(changes)}")
        (key, value), *_ = changes.items()
        found[path.stem] = Remedy(FIELD_AT[key], _none(value), (_none(plain.get(key)),))
    order = [s for s in LABELS if s in found] + [s for s in found if s not in LABELS]
    return {LABELS.get(s, s.replace("_", " ")): found[s] for s in order}


REMEDIES = remedies()

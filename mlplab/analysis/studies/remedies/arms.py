"""The remedies, read from the configs: each file of ``conf/remedy/`` against ``remedy=plain``.

A remedy file changes one thing of the plain network: a config group (``defaults: - override
/init: he_normal``: the run field ``init`` becomes ``he_normal``) or one key (``norm: batch``,
``train.weight_decay``). The option a remedy chooses may bring along keys it sets outside its
own group: ``optim=adam`` sets ``train.lr`` to Adam's default, so ``remedy=adam`` runs at
lr 0.001 where its plain twin keeps SGD's 0.5. ``REMEDIES`` holds, per remedy, that field, the
remedy's value, the plain twin's and the fields it brings along, composed from the same conf
folder the command line uses (the installed package's ``mlplab/conf``, else the checkout's
``conf/``), with PyYAML: Hydra stays in the CLI. ReLU is the one remedy that is not a remedy
file: an activation (``activation=relu``) whose twins are the saturating activations.
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
    "adam": "adam",
}
RELU_TWINS = ("sigmoid", "tanh")  # the activations relu is compared with
# the run field behind each config path: 'depth', 'train.weight_decay', 'init.name' (a group's choice)
FIELD_AT = {f.metadata["key"] + (".name" if f.metadata["group"] else ""): f.name for f in FIELDS}


@dataclass(frozen=True)
class Remedy:
    """One change away from the plain network: ``field`` at ``value`` where the plain twin has
    one of the values ``twin``. A numeric ``value`` stands for any value other than the twin's
    (any positive weight decay). ``along``: the run fields that come with the change and so
    differ from the twin's by design (Adam's own learning rate), left out of the pairing;
    ``along_at``: for each, (the remedy's value, the twin's), the only values the pairs take
    (adam at 0.001 against sgd at 0.5, not against sgd at every rate a folder holds)."""

    field: str
    value: object
    twin: tuple
    along: tuple[str, ...] = ()
    along_at: tuple[tuple, ...] = ()

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


def _package(path: Path) -> str:
    """The ``# @package`` a config file names in its header ('' for none: its group's)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# @package "):
            return line.removeprefix("# @package ").strip()
    return ""


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``, nested dicts key by key (as Hydra merges configs)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _leaves(cfg: dict, prefix: str = "") -> dict:
    """{'train.weight_decay': 0.001, ...}: every value of a nested config by its dotted path."""
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out |= _leaves(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _option(conf: Path, group: str, option: str) -> dict:
    """What ``group=option`` sets, from the root of the config: the file's keys under ``group``,
    or at the root for a ``# @package _global_`` file, on top of the options of its own group
    its defaults list names (``- sgd``; ``_self_`` where it says, else last)."""
    path = conf / group / f"{option}.yaml"
    cfg = _read(path)
    package = _package(path)
    if package not in ("", "_global_"):
        raise ValueError(f"{path}: @package {package}: a group option is in its group's package or _global_")
    entries = cfg.pop("defaults", None) or []
    own = cfg if package == "_global_" else {group: cfg}
    out = {}
    for entry in entries if "_self_" in entries else [*entries, "_self_"]:
        if not isinstance(entry, str):
            raise ValueError(f"{path}: defaults entry {entry!r}: an option's defaults name options of its group")
        out = _merge(out, own if entry == "_self_" else _option(conf, group, entry))
    return out


def _plain_config(conf: Path) -> dict:
    """config.yaml with each default group's option (``remedy=plain`` adds nothing), as leaves."""
    out = _read(conf / "config.yaml")
    for entry in out.pop("defaults", []):
        if isinstance(entry, dict):
            (group, option), *_ = entry.items()
            if option is not None and (conf / group / f"{option}.yaml").is_file():
                out = _merge(out, _option(conf, group, option))
    return _leaves(out)


def _field(path: Path, key: str) -> str:
    """The run field behind config path ``key``, or a one-line error naming the remedy file."""
    if key not in FIELD_AT:
        raise ValueError(f"{path}: {key}: a remedy changes run fields, one of {sorted(FIELD_AT)}")
    return FIELD_AT[key]


def _changes(path: Path, conf: Path, plain: dict) -> tuple[dict, dict]:
    """The config paths a remedy file sets: a group it overrides (``init.name``) and the keys
    it sets outside those groups (a group's own keys are its parameters); and the paths the
    chosen options bring along (keys they set outside their group, where they differ from
    ``plain``: ``optim=adam``'s ``train.lr``)."""
    cfg = _read(path)
    groups = {}
    for entry in cfg.pop("defaults", []):
        (key, option), *_ = entry.items()
        groups[key.removeprefix("override /")] = option
    chosen = {g: _option(conf, g, o) for g, o in groups.items()}
    changes = {f"{g}.name": chosen[g].get(g, {}).get("name", o) for g, o in groups.items()}
    changes |= {k: v for k, v in _leaves(cfg).items() if k.split(".")[0] not in groups}
    along = {
        k: v
        for g, option in chosen.items()
        for k, v in _leaves(option).items()
        if k.split(".")[0] != g and k not in changes and plain.get(k) != v
    }
    return changes, along


def _none(v):
    return "none" if v is None else v


@functools.cache
def remedies(conf: Path | None = None) -> dict[str, Remedy]:
    """Every remedy by its report name (``LABELS``): relu, then each ``conf/remedy/*.yaml`` but
    plain, the one field it changes, the plain twin's value of it and the fields its option
    brings along."""
    conf = conf_folder() if conf is None else conf
    plain = _plain_config(conf)
    found = {"relu": Remedy("activation", "relu", RELU_TWINS)}
    for path in sorted((conf / "remedy").glob("*.yaml")):
        changes, along = _changes(path, conf, plain)
        if path.stem == "plain" or not changes:
            continue
        if len(changes) != 1:
            raise ValueError(f"{path}: a remedy changes one field of the plain network, not {sorted(changes)}")
        (key, value), *_ = changes.items()
        twin = (_none(plain.get(key)),)
        found[path.stem] = Remedy(
            _field(path, key),
            _none(value),
            twin,
            tuple(_field(path, k) for k in along),
            tuple((v, plain.get(k)) for k, v in along.items()),
        )
    order = [s for s in LABELS if s in found] + [s for s in found if s not in LABELS]
    return {LABELS.get(s, s.replace("_", " ")): found[s] for s in order}


REMEDIES = remedies()

"""Typed Hydra configs (the schema), registered in the ConfigStore; values live in ``conf/``.

The schema is generated from ``RunSpec``'s field declarations (``mlplab.spec``): a field whose
config key is ``group.key`` becomes a key of that group's dataclass (``init.sigma_w``), a field
that is a group's choice becomes the group's ``name`` (``activation=relu``), and any other field
a top-level key (``depth``). The primary config ``Config`` adds the keys that steer the command
line rather than a run (``sweep_name``, ``results_dir``, ``force``, ``debug``). ``to_spec`` turns
a composed config into the flat, validated ``RunSpec``; ``sweep_root`` names its results folder.
Hydra is imported here and by the command line (``mlplab.cli``, ``mlplab.plan``, ``mlplab.usage``)
only.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mlplab.spec import FIELDS, ConfigError, RunSpec, validate


def conf_dir() -> str:
    """The configs: ``mlplab/conf`` of an installed package (the wheel maps the repository's
    ``conf/`` there), else ``conf/`` of the checkout this module runs from (an editable install)."""
    here = Path(__file__).resolve().parent
    installed = here / "conf"
    return str(installed if (installed / "config.yaml").is_file() else here.parent / "conf")


CONF_DIR = conf_dir()

# keys of the primary config that are not run fields: (name, type, default, doc)
CLI_KEYS = [
    ("sweep_name", str, "runs", "results go to <results_dir>/<sweep_name>/"),
    ("results_dir", str, "results", "the folder of all sweeps"),
    ("force", bool, False, "rerun runs whose results already exist"),
    ("debug", bool, False, "show tracebacks instead of one-line errors"),
]


def _omegaconf_type(hint):
    """OmegaConf's spelling of a field's type: X | None -> Optional[X]; other unions -> Any."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if not args:
        return hint
    if len(args) == 1:
        return Optional[args[0]]  # noqa: UP045 - a value for OmegaConf, which reads Optional
    return Any


def config_path(field: dataclasses.Field) -> str:
    """Where a RunSpec field sits in the composed config: 'depth', 'init.sigma_w', 'activation.name'."""
    key = field.metadata["key"]
    return f"{key}.name" if field.metadata["group"] else key


def _schema() -> type:
    hints = typing.get_type_hints(RunSpec)
    groups: dict[str, list] = {}
    top = []
    for f in CONFIGURED:
        path = config_path(f)
        typ = str if f.metadata["group"] else _omegaconf_type(hints[f.name])
        default = MISSING if f.metadata["group"] else f.default
        if "." in path:
            group, key = path.split(".")
            groups.setdefault(group, []).append((key, typ, dataclasses.field(default=default)))
        else:
            top.append((path, typ, dataclasses.field(default=default)))
    fields = []
    for group, members in groups.items():
        members.sort(key=lambda m: m[0] != "name")  # the group's name first
        cls = dataclasses.make_dataclass(f"{group.title()}Config", members)
        fields.append((group, cls, dataclasses.field(default_factory=cls)))
    fields += top + [(name, typ, dataclasses.field(default=default)) for name, typ, default, _ in CLI_KEYS]
    return dataclasses.make_dataclass("Config", fields)


CONFIGURED = [f for f in FIELDS if f.metadata["config"]]  # the fields a user sets
Config = _schema()


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)


def to_spec(cfg: DictConfig) -> RunSpec:
    """The composed config as a validated ``RunSpec`` (``ConfigError`` names the config key)."""
    return validate(spec_of(cfg))


def spec_of(cfg: DictConfig) -> RunSpec:
    """The composed config's values as a ``RunSpec``, not validated."""
    return RunSpec(**{f.name: OmegaConf.select(cfg, config_path(f)) for f in CONFIGURED})


def has_no_interpolations(cfg: DictConfig) -> bool:
    """True when no run field of ``cfg`` is an interpolation: setting one field then changes
    no other, so a value override can go straight into the RunSpec (``override_value``)."""
    for f in CONFIGURED:
        parent, _, key = config_path(f).rpartition(".")
        if OmegaConf.is_interpolation(OmegaConf.select(cfg, parent) if parent else cfg, key):
            return False
    return True


FIELD_AT = {config_path(f): f for f in CONFIGURED if not f.metadata["group"]}  # config key -> field
_HINTS = typing.get_type_hints(RunSpec)


def override_value(key: str, value) -> tuple[str, Any] | None:
    """(field name, value) of a value override ``key=value`` as OmegaConf would store it in the
    run's config, for the literal cases: None, a bool, an int (an int for a float field becomes a
    float), a float, a string, each where the field's type admits it. None otherwise (an
    unknown key, or a value OmegaConf would convert or refuse): the override is then applied to
    the config itself."""
    f = FIELD_AT.get(key)
    if f is None:
        return None
    types = typing.get_args(_HINTS[f.name]) or (_HINTS[f.name],)
    if value is None:
        return (f.name, None) if type(None) in types else None
    if isinstance(value, bool):
        return (f.name, value) if bool in types else None
    if isinstance(value, int):
        if int in types:
            return f.name, value
        return (f.name, float(value)) if float in types else None
    if isinstance(value, (float, str)) and type(value) in types:
        return f.name, value
    return None


# a sweep's folder is one plain name inside results_dir: no separator, no '.' or '..'
FOLDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def sweep_root(cfg: DictConfig) -> Path:
    """``<results_dir>/<sweep_name>``; ConfigError (exit 2) unless ``sweep_name`` is one plain
    folder name, so that nothing a sweep writes lands outside ``results_dir``."""
    name = cfg.sweep_name
    if not (isinstance(name, str) and FOLDER_NAME.fullmatch(name) and name not in (".", "..")):
        raise ConfigError(
            "sweep_name",
            name,
            "must be one plain folder name (letters, digits, '-', '_', '.'; "
            "not '.' or '..', no '/'), so that results stay inside results_dir",
        )
    return Path(cfg.results_dir) / name


def schema_has(key: str) -> bool:
    """Whether the dotted ``key`` (or group, ``a/b``) names a field of the config schema."""
    node = Config
    for part in key.replace("/", ".").split("."):
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            return part == "sweep" and node is Config  # the sweep group has no schema node
        f = fields[part]
        node = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
    return True


register()

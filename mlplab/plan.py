"""A sweep's plan: every job of a multirun composed, validated and checked before anything runs.

mlplab's sweeper (``hydra_plugins/mlplab_sweeps``) calls ``make_plan`` and hands the ``Plan`` to
its launcher: the jobs (each one's overrides and validated ``RunSpec``), the runs still to do
(the others are committed already: resuming a sweep runs what is missing) and the run ids the
sweep's summary counts. One bad job stops the sweep with a one-line error (``PlanError``, exit
code 2) before anything is trained.

Jobs are expanded as Hydra's basic sweeper expands them. Composing a config costs ~50 ms, so
each distinct choice of config groups (``loss=...``, ``activation=...``) is composed once and
the job's value overrides (``depth=...``, ``seed=...``) are applied to a copy, as Hydra applies
them after composition — or, where the composed config has no interpolations and a value maps
literally onto a RunSpec field, set on the choice's RunSpec directly, which gives the same spec
in microseconds. The RunSpec of each choice is kept in the sweep's folder
(``CompositionCache``): planning the same sweep again skips Hydra's composition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mlplab import results as res
from mlplab.config import CLI_KEYS, CONF_DIR, has_no_interpolations, override_value, spec_of, sweep_root
from mlplab.errors import PlanError, Tally, one_line
from mlplab.resources import MemoryProbe
from mlplab.spec import RunSpec
from mlplab.train import check_targets, make_data, prepare

PLAN = "plan.json"  # in the sweep's own Hydra folder: sweeps sharing a results folder each have theirs
CLI_NAMES = {name for name, *_ in CLI_KEYS}  # keys that steer the command, not a run


@dataclass(frozen=True)
class Plan:
    """A planned sweep: where its results go, every job (overrides, RunSpec), the jobs to run."""

    root: Path
    sweep_name: str
    force: bool
    jobs: list[tuple[list[str], RunSpec]]
    todo: list[tuple[list[str], RunSpec]]  # the jobs to run: one per run not committed (every one with force)
    done: int  # runs of the plan already committed (ok or diverged)
    seconds: float  # what planning took

    @property
    def run_ids(self) -> list[str]:
        return [spec.run_id for _, spec in self.jobs]

    def tally(self) -> Tally:
        return Tally(self.root, self.run_ids)

    def headline(self) -> str:
        return (
            f"mlplab: sweep '{self.sweep_name}': {len(self.run_ids)} runs, {self.done} already done, "
            f"{'all' if self.force else len(self.todo)} to run -> {self.root} (planned in {self.seconds:.1f}s)"
        )

    def record(self, folder: Path) -> None:
        """``plan.json`` in ``folder`` (the sweep's Hydra folder): its run ids, which the
        progress line of a run in a job of Hydra's own launchers counts (``planned_ids``)."""
        res.atomic_write_bytes(Path(folder) / PLAN, json.dumps({"run_ids": self.run_ids}).encode())


def planned_ids(folder: Path) -> list[str]:
    """The run ids of the plan recorded in ``folder`` (``Plan.record``)."""
    return json.loads((Path(folder) / PLAN).read_text())["run_ids"]


def make_plan(config: DictConfig) -> Plan:
    """The plan of the multirun ``config``: every job validated (``plan_jobs``), then the runs
    already committed left out (unless ``force``; a run two jobs share is run once)."""
    t0 = time.perf_counter()
    jobs = plan_jobs(config)
    root = sweep_root(config)
    status = res.completed_statuses(root)
    todo, seen = [], set()
    for overrides, spec in jobs:
        if spec.run_id in seen or (not config.force and status.get(spec.run_id) in ("ok", "diverged")):
            continue
        seen.add(spec.run_id)
        todo.append((overrides, spec))
    done = sum(status.get(r) in ("ok", "diverged") for r in {spec.run_id for _, spec in jobs})
    return Plan(root, config.sweep_name, bool(config.force), jobs, todo, done, time.perf_counter() - t0)


def plan_jobs(config: DictConfig) -> list[tuple[list[str], RunSpec]]:
    """Every job of the multirun ``config``: (its overrides, its validated RunSpec). Each job is
    ``prepare``d (validated, its data files read and digested, its sizes and memory checked);
    each distinct data set (``RunSpec.data_key``) is built once and its targets checked against
    every job's loss. Raises PlanError, naming the job, on the first bad one."""
    from hydra.core.global_hydra import GlobalHydra

    composer = Composer(GlobalHydra.instance().config_loader(), config)
    params = config.hydra.sweeper.get("params") or {}
    jobs = expand([f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task), composer.parser)
    datasets: dict[tuple, object] = {}
    memory = MemoryProbe()  # one reading of the free memory for the jobs of a second
    planned = []
    for overrides in jobs:
        try:
            spec = prepare(composer.spec(overrides), memory)
            key = spec.data_key()
            if key not in datasets:
                datasets[key] = make_data(spec)
            check_targets(spec, datasets[key])
        except Exception as e:  # noqa: BLE001 - any composition or validation error of any job
            raise PlanError(f"{one_line(e)} (in job {' '.join(overrides)})") from e
        planned.append((overrides, spec))
    composer.cache.save()
    return planned


def expand(args: list[str], parser) -> list[list[str]]:
    """Every job of a multirun as its list of overrides, expanded as Hydra's basic sweeper does:
    the cartesian product of each key's values (``depth=1,2``), in order of first appearance, a
    later override of a key replacing an earlier one."""
    values: dict[str, list[str]] = {}
    for o in parser.parse_overrides(args):
        key = o.get_key_element()
        if not o.is_sweep_override():
            values[key] = [f"{key}={o.get_value_element_as_str()}"]
        elif o.is_discrete_sweep():
            values[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            raise PlanError(f"{o.input_line}: only lists of values can be swept (e.g. depth=1,2,4)")
    return [list(job) for job in itertools.product(*values.values())]


class Composer:
    """The RunSpec of a job's overrides: its choice of config groups composed once (or taken
    from the sweep folder's ``CompositionCache``), its value overrides set on top."""

    def __init__(self, loader, config: DictConfig):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.loader, self.config = loader, config
        self.groups = set(loader.list_groups(""))
        self.parser = OverridesParser.create(config_loader=loader)
        self.parsed: dict[str, object] = {}  # each distinct override string parsed once
        self.composed: dict[tuple, tuple] = {}  # group choices -> (config or None, its RunSpec, literal?)
        self.cache = CompositionCache(sweep_root(config) / "hydra" / "compositions.json", config)

    def spec(self, overrides: list[str]) -> RunSpec:
        for line in overrides:
            if line not in self.parsed:
                self.parsed[line] = self.parser.parse_overrides([line])[0]
        job = [self.parsed[line] for line in overrides]
        is_group = [o.key_or_group.split("/")[0] in self.groups for o in job]
        choice = tuple(o.input_line for o, g in zip(job, is_group) if g)
        if choice not in self.composed:
            self.composed[choice] = self.cache.get(choice) or self.compose(choice)
        cfg, base, literal = self.composed[choice]
        values = [
            o
            for o, g in zip(job, is_group)
            if not g and not o.key_or_group.startswith("hydra.") and o.key_or_group not in CLI_NAMES
        ]
        fields = [override_value(o.key_or_group, o.value()) for o in values] if literal else [None]
        if None not in fields:  # the fast way: each value straight into the RunSpec
            return dataclasses.replace(base, **dict(fields))
        if cfg is None:  # known from the cache only: compose it now
            cfg = self.compose(choice)[0]
        cfg = cfg.copy()  # the way Hydra does it: onto a copy of the composed config
        apply_overrides(cfg, values)
        return spec_of(cfg)

    def compose(self, choice: tuple) -> tuple:
        self.composed[choice] = self.cache.put(choice, compose(self.loader, self.config, choice))
        return self.composed[choice]


def compose(loader, config: DictConfig, choice: tuple) -> tuple:
    """(config, its RunSpec, no interpolations?) of a sweep's group choices, composed by Hydra."""
    full = loader.load_sweep_config(config, list(choice))
    cfg = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])
    OmegaConf.set_struct(cfg, True)
    return cfg, spec_of(cfg), has_no_interpolations(cfg)


def apply_overrides(cfg: DictConfig, overrides) -> None:
    """Set the value overrides (``depth=4``, ``train.lr=0.1``) on a composed config, as Hydra
    does after composition: keys must exist in the schema and values must fit their type."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    for o in overrides:
        if o.is_delete():
            raise PlanError(f"{o.input_line}: removing a key is not supported")
        try:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        except (ConfigAttributeError, ConfigKeyError):
            raise PlanError(f"Could not override '{o.key_or_group}'. No match in config.") from None
        except OmegaConfBaseException as e:
            raise PlanError(f"Error merging override {o.input_line}: {one_line(e)}") from None


FORMAT = 2  # of the cache's entries: a new one leaves the entries of another behind


class CompositionCache:
    """The RunSpec each choice of config groups composes to, kept in the sweep's folder so that
    planning the same sweep again (resuming it, extending it) skips Hydra's composition, ~70 ms
    a choice. An entry counts only for the same conf/ files (their bytes), the same command-line
    overrides, the same mlplab and the same RunSpec fields; a job whose values need the composed
    config itself composes it anyway."""

    def __init__(self, path: Path, config: DictConfig):
        from mlplab import __version__
        from mlplab.spec import FIELDS

        h = hashlib.sha256()
        for f in sorted(Path(CONF_DIR).rglob("*.yaml")):
            h.update(str(f.relative_to(CONF_DIR)).encode() + b"\0" + f.read_bytes() + b"\0")
        fields = [f.name for f in FIELDS]
        h.update(json.dumps([FORMAT, __version__, fields, list(config.hydra.overrides.task)]).encode())
        self.path, self.salt, self.new = path, h.hexdigest(), {}
        try:
            self.entries = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def _key(self, choice: tuple) -> str:
        return f"{self.salt}:{'|'.join(choice)}"

    def get(self, choice: tuple):
        e = self.entries.get(self._key(choice))
        return None if e is None else (None, RunSpec(**e["spec"]), e["literal"])

    def put(self, choice: tuple, composed: tuple) -> tuple:
        self.new[self._key(choice)] = {"spec": composed[1].as_dict(), "literal": composed[2]}
        return composed

    def save(self) -> None:
        if self.new:
            res.atomic_write_bytes(self.path, json.dumps({**self.entries, **self.new}).encode())

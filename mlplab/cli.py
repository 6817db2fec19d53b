"""``python -m mlplab``: a thin ``@hydra.main`` over ``mlplab.train.run``.

In a multirun, ``SweepCallback`` (configured under ``hydra.callbacks``) plans the sweep before
any job starts: it composes every job's config, validates it (one bad value stops the sweep
with a one-line error and exit code 2, before anything is trained), and counts the runs that
are already done. Each job logs ``[done/total]`` as it finishes; at the end a summary counts
runs ok / diverged / failed / missing, and the exit code is 1 if any failed or are missing.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlplab import results as res
from mlplab.config import to_spec
from mlplab.spec import ConfigError, RunSpec
from mlplab.train import check_data, make_data, run

log = logging.getLogger("mlplab")

PLAN = "plan.json"
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # the repository's conf/


def sweep_root(cfg: DictConfig) -> Path:
    return Path(cfg.results_dir) / cfg.sweep_name


def fail(msg: str, code: int = 2):
    """Leave with a one-line message on stderr and a non-zero exit code."""
    print(f"mlplab: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    root = sweep_root(cfg)
    try:
        spec = to_spec(cfg)
        row = run(spec, root, sweep=cfg.sweep_name, force=cfg.force)
    except Exception as e:  # noqa: BLE001 - one run's fault must not stop the sweep
        # run() records faults inside training as status 'failed'; what reaches here is bad
        # input (caught up front for planned sweeps) or a fault while writing the results
        if cfg.debug:
            raise
        if multirun:
            log.error(f"run with overrides {' '.join(HydraConfig.get().overrides.task)} failed: {one_line(e)}")
            return
        fail(one_line(e), 2 if isinstance(e, ConfigError) else 1)
    what = "already done" if row["skipped"] else f"{row['status']} in {row['wall_time_s']:.2f}s"
    label = f"{spec.run_id} depth={spec.depth} {spec.activation} {spec.loss} clip={spec.clip} seed={spec.seed}"
    if row["status"] != "ok" and not row["skipped"]:
        what += f" ({row['reason']})"
    if multirun:
        plan = json.loads((root / "hydra" / PLAN).read_text())
        done = len(set(plan["run_ids"]) & res.committed_ids(root))
        log.info(f"[{done}/{len(plan['run_ids'])}] {label}: {what}")
    else:
        log.info(f"{label}: {what} -> {root}")


def one_line(exc: BaseException) -> str:
    """An exception (and its cause, where Hydra keeps the detail) as one line of text."""
    parts = [str(exc)]
    if exc.__cause__ is not None and str(exc.__cause__) not in parts[0]:
        parts.append(str(exc.__cause__))
    parts = [p.split("Config search path")[0] for p in parts]  # Hydra's search-path dump
    return ": ".join(" ".join(p.split()) for p in parts if p.strip())


def debug_requested(argv: list[str]) -> bool:
    return os.environ.get("MLPLAB_DEBUG", "") not in ("", "0") or any(
        a.lower() in ("debug=true", "debug=1", "+debug=true") for a in argv
    )


def entry() -> None:
    """``python -m mlplab``: errors become one line on stderr, with exit code 2 for bad input
    (Hydra's unknown option or wrong type included) and 1 for anything else (e.g. a sweep worker
    killed); ``debug=true`` (or MLPLAB_DEBUG=1) shows the full traceback."""
    debug = debug_requested(sys.argv[1:])
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        main()
    except Exception as e:  # noqa: BLE001 - every error leaves as one line unless debugging
        if debug:
            raise
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        bad_input = isinstance(e, (ConfigError, HydraException, OmegaConfBaseException))
        fail(one_line(e), 2 if bad_input else 1)


class PlanError(ValueError):
    """A job of a planned sweep that cannot run; ``str(err)`` is one line."""


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


def plan(config: DictConfig) -> list[RunSpec]:
    """Every job of the multirun ``config`` as a validated RunSpec, before launching.

    Jobs are expanded as Hydra's BasicSweeper expands them. Composing a config costs ~50 ms,
    so each distinct set of group choices (loss=..., activation=...) is composed once and the
    job's value overrides (depth=..., seed=...) are applied to a copy, exactly as Hydra applies
    them after composition. Each distinct data set (``RunSpec.data_key``) is built once and
    checked against every job that uses it. Raises PlanError, naming the job, on the first bad one.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader = GlobalHydra.instance().config_loader()
    groups = set(loader.list_groups(""))
    parser = OverridesParser.create(config_loader=loader)
    params = config.hydra.sweeper.get("params") or {}
    jobs = expand([f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task), parser)
    composed: dict[tuple, DictConfig] = {}
    datasets: dict[tuple, object] = {}
    planned = []
    for overrides in jobs:
        parsed = parser.parse_overrides(overrides)
        is_group = [o.key_or_group.split("/")[0] in groups for o in parsed]
        choice = tuple(o.input_line for o, g in zip(parsed, is_group) if g)
        try:
            if choice not in composed:
                full = loader.load_sweep_config(config, list(choice))
                composed[choice] = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])
            cfg = composed[choice].copy()
            OmegaConf.set_struct(cfg, True)
            apply_overrides(cfg, [o for o, g in zip(parsed, is_group) if not g and not o.key_or_group.startswith("hydra.")])
            spec = to_spec(cfg)
            key = spec.data_key()
            if key not in datasets:
                datasets[key] = make_data(spec)
            check_data(spec, datasets[key])
        except Exception as e:  # noqa: BLE001 - any composition or validation error of any job
            raise PlanError(f"{one_line(e)} (in job {' '.join(overrides)})") from e
        planned.append(spec)
    return planned


class SweepCallback(Callback):
    """Plans, validates and summarises a multirun (runs in the launching process)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        self.t0 = time.perf_counter()
        try:
            planned = plan(config)
        except PlanError as e:
            if config.debug:
                raise
            fail(str(e))
        root = sweep_root(config)
        self.run_ids = [spec.run_id for spec in planned]
        res.mark_folder(root)
        res.atomic_write_bytes(root / "hydra" / PLAN, json.dumps({"run_ids": self.run_ids}).encode())
        unique = set(self.run_ids)
        done = sum(res.is_done(root, r) for r in unique & res.committed_ids(root))
        todo = "all" if config.force else len(unique) - done
        print(
            f"mlplab: sweep '{config.sweep_name}': {len(self.run_ids)} runs, {done} already done, {todo} to run -> {root}",
            flush=True,
        )
        if done == len(unique) and not config.force:
            self.on_multirun_end(config)  # nothing to launch
            sys.exit(0)
        # Every job's config was composed and validated above; Hydra's BasicSweeper would
        # compose each one again, one after another in this process, before launching (its
        # own comment calls this slow for large sweeps): skip that repetition.
        BasicSweeper.validate_batch_is_legal = lambda self, batch: None

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        root = sweep_root(config)
        status = res.completed_statuses(root)
        planned = set(self.run_ids)
        counts = {"ok": 0, "diverged": 0, "failed": 0, "missing": 0}
        for rid in planned:
            counts[status.get(rid, "missing")] += 1
        print(
            f"mlplab: sweep '{config.sweep_name}' done in {time.perf_counter() - self.t0:.1f}s: "
            + ", ".join(f"{v} {k}" for k, v in counts.items())
            + f" -> {root}",
            flush=True,
        )
        if counts["failed"] or counts["missing"]:
            sys.exit(1)

"""``python -m mlplab``: a thin ``@hydra.main`` over ``mlplab.train.run``.

In a multirun, mlplab's sweeper (``hydra_plugins/mlplab_sweeps``, the default
``hydra/sweeper``) calls ``start_sweep``: ``plan_jobs`` composes and validates every job (one
bad value stops the sweep with a one-line error and exit code 2, before anything is trained),
the runs already done are counted and left out, and the launcher gets the rest (``local``:
forked processes; ``dask``: a Dask cluster; or Hydra's ``joblib``/``basic``). At the end
``SweepCallback`` compacts the folder and prints a summary of runs ok / diverged / failed /
missing; the exit code is 1 if any failed or are missing, or the disk is full.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlplab import results as res
from mlplab.config import CLI_KEYS, Config, to_spec
from mlplab.resources import MemoryProbe
from mlplab.results import ResultsError
from mlplab.spec import ConfigError, RunSpec
from mlplab.train import check_targets, make_data, prepare, run

log = logging.getLogger("mlplab")

PLAN = "plan.json"


def conf_dir() -> str:
    """The configs: ``mlplab/conf`` of an installed package (the wheel maps the repository's
    ``conf/`` there), else ``conf/`` of the checkout this module runs from (an editable install)."""
    here = Path(__file__).resolve().parent
    installed = here / "conf"
    return str(installed if (installed / "config.yaml").is_file() else here.parent / "conf")


CONF_DIR = conf_dir()


# a sweep's folder is one plain name inside results_dir: no separator, no '.' or '..'
FOLDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def sweep_root(cfg: DictConfig) -> Path:
    """``<results_dir>/<sweep_name>``; ConfigError (exit 2) unless ``sweep_name`` is one plain
    folder name, so that nothing a sweep writes lands outside ``results_dir``."""
    return Path(cfg.results_dir) / folder_name(cfg.sweep_name, "sweep_name")


def folder_name(name, key: str) -> str:
    """``name`` when it is one plain folder name (letters, digits, '-', '_', '.'; not '.' or
    '..'), else ConfigError naming ``key``, the value and the rule."""
    if not (isinstance(name, str) and FOLDER_NAME.fullmatch(name) and name not in (".", "..")):
        raise ConfigError(
            key,
            name,
            "must be one plain folder name (letters, digits, '-', '_', '.'; "
            "not '.' or '..', no '/'), so that results stay inside results_dir",
        )
    return name


def fail(msg: str, code: int = 2):
    """Leave with a one-line message on stderr and a non-zero exit code."""
    print(f"mlplab: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


# what an interrupted command reports: the results folder and the run ids it set out to make
CONTEXT: dict = {"root": None, "run_ids": []}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    root = sweep_root(cfg)
    try:
        spec = prepare(to_spec(cfg))
        if not multirun:
            CONTEXT.update(root=root, run_ids=[spec.run_id])
        row = run(spec, root, sweep=cfg.sweep_name, force=cfg.force)
    except Exception as e:  # noqa: BLE001 - one run's fault must not stop the sweep
        # run() records faults inside training as status 'failed'; what reaches here is bad
        # input (caught up front for planned sweeps) or a fault while writing the results
        if cfg.debug:
            raise
        if multirun:
            if res.is_disk_full(e):
                CONTEXT["disk_full"] = e  # said at the end of the sweep (when it runs in this process)
            log.error(f"run with overrides {' '.join(HydraConfig.get().overrides.task)} failed: {one_line(e)}")
            return
        leave(e)
    what = "already done" if row["skipped"] else f"{row['status']} in {row['wall_time_s']:.2f}s"
    label = f"{spec.run_id} depth={spec.depth} {spec.activation} {spec.loss} clip={spec.clip} seed={spec.seed}"
    if row["status"] != "ok" and not row["skipped"]:
        what += f" ({row['reason']})"
    if multirun:
        plan = json.loads((Path(HydraConfig.get().sweep.dir) / PLAN).read_text())
        done = len(set(plan["run_ids"]) & res.committed_ids(root))
        log.info(f"[{done}/{len(plan['run_ids'])}] {label}: {what}")
    elif row["status"] == "failed":
        fail(f"run {label} failed: {row['reason']} -> {root}", 1)
    else:
        log.info(f"{label}: {what} -> {root}")


def one_line(exc: BaseException) -> str:
    """An exception (and its cause, where Hydra keeps the detail) as one line of text."""
    parts = [str(exc)]
    if exc.__cause__ is not None and str(exc.__cause__) not in parts[0]:
        parts.append(str(exc.__cause__))
    parts = [p.split("Config search path")[0] for p in parts]  # Hydra's search-path dump
    return ": ".join(" ".join(p.split()) for p in parts if p.strip())


def exit_code(exc: BaseException) -> int:
    """2 for bad input (a config value, Hydra's unknown option or wrong type, an unusable
    results folder), 1 for anything else."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return 2 if isinstance(exc, (ConfigError, PlanError, ResultsError, HydraException, OmegaConfBaseException)) else 1


def disk_full(err: BaseException | None = None) -> None:
    """No space left on the device (or the disk quota exceeded): one line saying how many runs
    are committed, exit code 1. Nothing committed is lost and no half-written file is left
    (``results.DiskFull``): the same command, run again once there is space, does the rest."""
    root, ids = CONTEXT["root"], set(CONTEXT["run_ids"])
    why = getattr(err, "strerror", None) or os.strerror(errno.ENOSPC)
    where = root if root is not None else getattr(err, "filename", None)
    done = len(ids & res.committed_ids(root)) if root is not None and ids else 0
    committed = f"{done} of {len(ids)} runs committed" if ids else "no run committed"
    print(
        f"mlplab: disk full ({why}) writing results to {where}: {committed}; free some space and rerun "
        "the same command to finish",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(1)


def leave(exc: BaseException) -> None:
    """End the command on an error: the full-disk line (``disk_full``), or the error's one line
    with its exit code."""
    if res.is_disk_full(exc):
        disk_full(exc)
    fail(one_line(exc), exit_code(exc))


def debug_requested(argv: list[str]) -> bool:
    return os.environ.get("MLPLAB_DEBUG", "") not in ("", "0") or any(
        a.lower() in ("debug=true", "debug=1", "+debug=true") for a in argv
    )


def refuse_added_keys(argv: list[str]) -> None:
    """``+key=value`` adds a key that the schema does not have: refused like any unknown key
    (Hydra would add it and the run would ignore it). Hydra's own ``hydra.*`` keys may be added."""
    for arg in argv:
        if not arg.startswith("+") or "=" not in arg:
            continue
        key = arg.lstrip("+").split("=", 1)[0]
        if key.split(".")[0].split("/")[0] != "hydra" and not schema_has(key):
            raise PlanError(
                f"Could not add '{key}': there is no such key in mlplab's config (python -m mlplab --help lists them)"
            )


def schema_has(key: str) -> bool:
    """Whether the dotted ``key`` (or group, ``a/b``) names a field of the config schema."""
    import dataclasses

    node = Config
    for part in key.replace("/", ".").split("."):
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            return part == "sweep" and node is Config  # the sweep group has no schema node
        f = fields[part]
        node = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
    return True


def interrupted() -> None:
    """Ctrl-C: one line on how far the command got, exit code 130. Every committed run stays;
    the temporary files of the runs in flight are removed as their writes unwind."""
    root, ids = CONTEXT["root"], CONTEXT["run_ids"]
    done = len(set(ids) & res.committed_ids(root)) if root is not None else 0
    total = len(set(ids)) or 1
    print(
        f"mlplab: interrupted: {done} of {total} runs committed; rerun the same command to resume",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(130)


# Hydra 1.3 composes the whole config once just to read ``hydra.mode`` (``Hydra.get_mode``),
# then composes it again to run: ~0.1 s of every command. Where neither the command line nor a
# file of conf/ can set hydra.mode, the answer is known without composing: unset, and the -m
# flag decides, as it does after Hydra's composition.
CAN_SET_MODE = (
    "hydra.mode",
    "hydra.searchpath",
    "--config-dir",
    "-cd",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--experimental-rerun",
)


@functools.cache
def conf_sets_mode() -> bool:
    """Whether any file of conf/ has a ``mode:`` key (e.g. ``hydra: mode: MULTIRUN`` in a sweep
    file, as Hydra's documentation shows): read as text, a false alarm only costs the composition."""
    return any(re.search(r"^\s*mode\s*:", p.read_text(), flags=re.M) for p in Path(CONF_DIR).rglob("*.yaml"))


def mode_needs_composing(argv: list[str]) -> bool:
    """Whether ``hydra.mode`` may be set for this command: by its command line (an override of
    it, configs from another place, a rerun) or by a file of conf/."""
    return any(a.lstrip("+~").startswith(CAN_SET_MODE) for a in argv) or conf_sets_mode()


@contextlib.contextmanager
def mode_from_the_flag(argv: list[str]):
    """Within: Hydra takes ``hydra.mode`` as unset without composing the config to read it,
    unless ``mode_needs_composing(argv)``."""
    from hydra._internal.hydra import Hydra

    if mode_needs_composing(argv):
        yield
        return
    composing = Hydra.get_mode
    Hydra.get_mode = lambda self, config_name, overrides: None
    try:
        yield
    finally:
        Hydra.get_mode = composing


def entry() -> None:
    """``python -m mlplab``: errors become one line on stderr, with exit code 2 for bad input
    (Hydra's unknown option or wrong type included) and 1 for anything else (e.g. a sweep worker
    killed; a full disk, whose line says how many runs are committed); Ctrl-C exits 130 with one
    line; ``debug=true`` (or MLPLAB_DEBUG=1) shows the full traceback; ``--help`` prints the usage."""
    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        print(usage())
        sys.exit(0)
    debug = debug_requested(argv)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        refuse_added_keys(argv)
        with mode_from_the_flag(argv):
            main()
    except KeyboardInterrupt:
        if debug:
            raise
        interrupted()
    except Exception as e:  # noqa: BLE001 - every error leaves as one line unless debugging
        if debug:
            raise
        leave(e)


def usage() -> str:
    """``--help``: how to call, every config group with its options, every key with its default
    and meaning, examples and the exit codes."""
    from hydra import compose, initialize_config_dir

    from mlplab.spec import FIELDS

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config")
    groups = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir())
    options = {g: ", ".join(sorted(q.stem for q in (Path(CONF_DIR) / g).glob("*.yaml"))) for g in groups}
    docs = {f.metadata["key"]: f.metadata["doc"] for f in FIELDS if f.metadata["config"]}
    docs.update({name: doc for name, _, _, doc in CLI_KEYS})
    keys = []
    for f in FIELDS:
        if f.metadata["config"] and not f.metadata["group"]:
            keys.append(f.metadata["key"])
    keys += [name for name, *_ in CLI_KEYS]
    prog = "mlplab" if Path(sys.argv[0]).stem == "mlplab" else "python -m mlplab"  # the command, or the module
    pad = " " * (len(prog) - len("python -m mlplab"))
    lines = [
        f"usage: {prog} [KEY=VALUE ...]              {pad}one run",
        f"       {prog} -m [KEY=V1,V2,... ...]       {pad}a sweep: every combination of the values",
        f"       {prog} -m sweep=NAME [KEY=... ...]  {pad}a sweep declared in conf/sweep/NAME.yaml",
        f"configs: {CONF_DIR} (your own sweep files: hydra.searchpath=[file://FOLDER] with FOLDER/sweep/NAME.yaml)",
        "",
        "Trains multilayer perceptrons by exact backprop and records per-layer gradient norms as",
        "parquet tables in <results_dir>/<sweep_name>/ (runs/, steps/, layers/). A run already",
        "done is skipped: rerun a command to resume it.",
        "",
        "config groups (GROUP=OPTION; default in brackets):",
    ]
    for g in groups:
        chosen = OmegaConf.select(cfg, f"{g}.name") if g != "sweep" else None
        opts = ", ".join(f"[{o}]" if o == chosen else o for o in options[g].split(", "))
        lines.append(f"  {g:<12}{opts}")
    lines += ["", "keys (KEY=VALUE; default in brackets):"]
    for k in keys:
        default = OmegaConf.select(cfg, k)
        default = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
        lines.append(f"  {k:<20}{'[' + str(default) + ']':<10} {docs.get(k, '')}".rstrip())
    lines += [
        "",
        "examples:",
        f"  {prog} depth=8 activation=relu loss=bce train.lr=0.1",
        f"  {prog} residual=true norm=batch depth=16 init=orthogonal",
        f"  {prog} -m depth=1,4,16 norm=null,batch seed=0,1,2 sweep_name=mine",
        f"  {prog} -m sweep=default hydra.launcher.n_workers=2",
        "",
        "exit codes: 0 every run ok or diverged (divergence is data), 1 a run failed or is missing",
        "(or the disk is full: free space and rerun), 2 bad input (nothing is run), 130 interrupted",
        "(rerun to resume). debug=true shows tracebacks; --hydra-help shows Hydra's own options.",
    ]
    return "\n".join(lines)


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
    """Every job of the multirun ``config`` as a validated RunSpec, before launching."""
    return [spec for _, spec in plan_jobs(config)]


def plan_jobs(config: DictConfig) -> list[tuple[list[str], RunSpec]]:
    """Every job of the multirun ``config``: (its overrides, its validated RunSpec).

    Jobs are expanded as Hydra's BasicSweeper expands them. Composing a config costs ~50 ms,
    so each distinct set of group choices (loss=..., activation=...) is composed once and the
    job's value overrides (depth=..., seed=...) are applied to a copy, exactly as Hydra applies
    them after composition — or, where a value maps plainly onto a RunSpec field (the config has
    no interpolations), set on the group choice's RunSpec directly, which gives the same spec
    and costs microseconds. Each job is ``prepare``d (validated, its data files read and
    digested, its sizes and memory checked); each distinct data set (``RunSpec.data_key``) is
    built once and its targets checked against every job's loss. Raises PlanError, naming the job, on the first bad one.
    """
    import dataclasses

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mlplab.config import override_value, spec_of

    loader = GlobalHydra.instance().config_loader()
    groups = set(loader.list_groups(""))
    parser = OverridesParser.create(config_loader=loader)
    params = config.hydra.sweeper.get("params") or {}
    jobs = expand([f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task), parser)
    parsed: dict[str, object] = {}  # each distinct override string parsed once
    composed: dict[tuple, tuple] = {}  # group choices -> (config or None, its RunSpec, plain?)
    cache = CompositionCache(sweep_root(config) / "hydra" / "compositions.json", config)
    datasets: dict[tuple, object] = {}
    memory = MemoryProbe()  # one reading of the free memory for the jobs of a second
    planned = []
    for overrides in jobs:
        try:
            for line in overrides:
                if line not in parsed:
                    parsed[line] = parser.parse_overrides([line])[0]
            job = [parsed[line] for line in overrides]
            is_group = [o.key_or_group.split("/")[0] in groups for o in job]
            choice = tuple(o.input_line for o, g in zip(job, is_group) if g)
            if choice not in composed:
                composed[choice] = cache.get(choice) or cache.put(choice, compose(loader, config, choice))
            cfg, base, is_plain = composed[choice]
            values = [
                o
                for o, g in zip(job, is_group)
                if not g and not o.key_or_group.startswith("hydra.") and o.key_or_group not in CLI_NAMES
            ]
            try:  # the fast way: each value straight into the RunSpec
                if not is_plain:
                    raise LookupError
                spec = dataclasses.replace(base, **dict(override_value(o.key_or_group, o.value()) for o in values))
            except LookupError:  # the way Hydra does it: onto a copy of the composed config
                if cfg is None:  # known from the cache: compose it now
                    composed[choice] = cache.put(choice, compose(loader, config, choice))
                    cfg = composed[choice][0]
                cfg = cfg.copy()
                apply_overrides(cfg, values)
                spec = spec_of(cfg)
            spec = prepare(spec, memory)
            key = spec.data_key()
            if key not in datasets:
                datasets[key] = make_data(spec)
            check_targets(spec, datasets[key])
        except Exception as e:  # noqa: BLE001 - any composition or validation error of any job
            raise PlanError(f"{one_line(e)} (in job {' '.join(overrides)})") from e
        planned.append((overrides, spec))
    cache.save()
    return planned


def compose(loader, config: DictConfig, choice: tuple) -> tuple:
    """(config, its RunSpec, plain?) of a sweep's group choices, composed by Hydra."""
    from mlplab.config import plain, spec_of

    full = loader.load_sweep_config(config, list(choice))
    cfg = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])
    OmegaConf.set_struct(cfg, True)
    return cfg, spec_of(cfg), plain(cfg)


class CompositionCache:
    """The RunSpec each choice of config groups composes to, kept in the sweep's folder so that
    planning the same sweep again (resuming it, extending it) skips Hydra's composition, ~70 ms
    a choice. An entry counts only for the same conf/ files (their bytes), the same command-line
    overrides, the same mlplab and the same RunSpec fields; a job whose values need the composed
    config itself composes it anyway."""

    def __init__(self, path: Path, config: DictConfig):
        import hashlib

        from mlplab import __version__
        from mlplab.spec import FIELDS

        h = hashlib.sha256()
        for f in sorted(Path(CONF_DIR).rglob("*.yaml")):
            h.update(str(f.relative_to(CONF_DIR)).encode() + b"\0" + f.read_bytes() + b"\0")
        h.update(json.dumps([__version__, [f.name for f in FIELDS], list(config.hydra.overrides.task)]).encode())
        self.path, self.salt, self.new = path, h.hexdigest(), {}
        try:
            self.entries = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def _key(self, choice: tuple) -> str:
        return f"{self.salt}:{'|'.join(choice)}"

    def get(self, choice: tuple):
        e = self.entries.get(self._key(choice))
        return None if e is None else (None, RunSpec(**e["spec"]), e["plain"])

    def put(self, choice: tuple, composed: tuple) -> tuple:
        self.new[self._key(choice)] = {"spec": composed[1].as_dict(), "plain": composed[2]}
        return composed

    def save(self) -> None:
        if self.new:
            res.atomic_write_bytes(self.path, json.dumps({**self.entries, **self.new}).encode())


CLI_NAMES = {name for name, *_ in CLI_KEYS}  # keys that steer the command, not a run


class SweepCallback(Callback):
    """Checks the results folder before a run or a sweep, and summarises a sweep at its end
    (in the launching process; ``mlplab_sweeps``'s sweeper plans and launches in between).
    Every fault leaves as one line and an exit code: Hydra would turn an exception in a
    callback into a warning and go on."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        guarded(config, lambda: CONTEXT.update(root=res.prepare_folder(sweep_root(config), "results_dir")))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        CONTEXT.update(t0=time.perf_counter(), root=None, run_ids=[])
        guarded(config, lambda: CONTEXT.update(root=res.prepare_folder(sweep_root(config), "results_dir")))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        guarded(config, lambda: summary(config))


def start_sweep(config: DictConfig) -> list[tuple[list[str], RunSpec]]:
    """Plan the multirun ``config`` (``plan_jobs``), record the plan, say how much is left to
    run; return the jobs to launch (none when everything is done and ``force`` is off). Called
    by mlplab's sweeper; a bad job ends the command with one line and exit code 2."""
    t0 = time.perf_counter()
    try:
        jobs = plan_jobs(config)
    except PlanError as e:
        if config.debug:
            raise
        fail(str(e))
    root = sweep_root(config)
    run_ids = [spec.run_id for _, spec in jobs]
    CONTEXT.update(root=root, run_ids=run_ids)
    # in the sweep's own Hydra folder: sweeps sharing the results folder each have theirs
    res.atomic_write_bytes(Path(config.hydra.sweep.dir) / PLAN, json.dumps({"run_ids": run_ids}).encode())
    done = res.completed_statuses(root)
    todo, seen = [], set()
    for overrides, spec in jobs:
        if spec.run_id in seen or (not config.force and done.get(spec.run_id) in ("ok", "diverged")):
            continue
        seen.add(spec.run_id)
        todo.append((overrides, spec))
    CONTEXT["todo"] = todo
    already = sum(done.get(r) in ("ok", "diverged") for r in set(run_ids))
    print(
        f"mlplab: sweep '{config.sweep_name}': {len(run_ids)} runs, {already} already done, "
        f"{'all' if config.force else len(todo)} to run -> {root} (planned in {time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    return todo


def summary(config: DictConfig) -> None:
    """The end of a sweep: its folder compacted (``results.compact``, waiting for any other
    sweep's compaction of the folder to end), then the runs ok / diverged / failed / missing of
    the plan; exit code 1 if any failed or are missing, or if the disk filled up (a line saying
    how many runs are committed: the same command finishes the job once there is space)."""
    root = sweep_root(config)
    full = CONTEXT.get("disk_full") or any(o.disk_full for o in CONTEXT.get("outcomes", {}).values())
    try:
        res.compact(root)
    except res.DiskFull as e:
        full = e
    status = res.completed_statuses(root)
    counts = {"ok": 0, "diverged": 0, "failed": 0, "missing": 0}
    for rid in set(CONTEXT["run_ids"]):
        counts[status.get(rid, "missing")] += 1
    took = time.perf_counter() - CONTEXT.get("t0", time.perf_counter())
    print(
        f"mlplab: sweep '{config.sweep_name}' done in {took:.1f}s: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f" -> {root}",
        flush=True,
    )
    if full:
        disk_full(full if isinstance(full, BaseException) else None)
    if counts["failed"] or counts["missing"]:
        fail(
            f"sweep '{config.sweep_name}': {counts['failed']} failed, {counts['missing']} missing of "
            f"{len(set(CONTEXT['run_ids']))} runs; rerun the same command to retry them -> {root}",
            1,
        )


def guarded(config: DictConfig, action) -> None:
    """Run a callback's work; any error leaves as one line with its exit code (unless debug)."""
    try:
        action()
    except Exception as e:  # noqa: BLE001
        if config.debug:
            raise
        leave(e)

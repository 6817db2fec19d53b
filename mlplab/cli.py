"""``python -m mlplab``: ``@hydra.main`` → ``to_spec(cfg)`` → ``mlplab.train.run``, and exit codes.

A multirun (``-m``) goes to mlplab's sweeper (``hydra_plugins/mlplab_sweeps``, the default
``hydra/sweeper``): it plans the sweep (``mlplab.plan``), hands the plan to the launcher
(``local``: forked processes; ``dask``: a Dask cluster; Hydra's ``joblib``/``basic`` run ``main``
for each job) and prints the summary. Every error ends the command with one line on stderr
(``mlplab.errors``): exit code 2 for bad input (nothing is run), 1 for a fault (a run failed or
is missing, a full disk: the line says how many runs are committed), 130 for Ctrl-C;
``debug=true`` (or MLPLAB_DEBUG=1) shows the traceback instead. ``--help`` prints the usage.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mlplab import results as res
from mlplab.config import CONF_DIR, schema_has, sweep_root, to_spec
from mlplab.errors import PlanError, Tally, fail, leave, one_line
from mlplab.spec import RunSpec
from mlplab.sweep import Outcome
from mlplab.train import prepare, run

__all__ = ["CONF_DIR", "SweepCallback", "entry", "main"]

log = logging.getLogger("mlplab")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> Outcome | None:
    """One run, and its line; any error ends the command here, with its line (Ctrl-C and a
    full disk count the run). In a multirun under Hydra's own launchers, one job (``job``)."""
    if HydraConfig.get().mode.name == "MULTIRUN":
        return job(cfg)
    tally = Tally(sweep_root(cfg))
    try:
        spec = prepare(to_spec(cfg))
        tally.run_ids = [spec.run_id]
        row = run(spec, tally.root, sweep=cfg.sweep_name, force=cfg.force)
    except (Exception, KeyboardInterrupt) as e:  # Hydra would print more than one line
        if cfg.debug:
            raise
        leave(e, tally)
    if row["status"] == "failed":
        fail(f"run {label(spec)} failed: {row['reason']} -> {tally.root}", 1)
    log.info(f"{label(spec)}: {said(row)} -> {tally.root}")
    return None


def job(cfg: DictConfig) -> Outcome:
    """One job of a planned sweep: its run, a progress line counting the plan's committed runs,
    its outcome as the job's return value. A fault is logged and the sweep goes on (runs
    record faults inside training as status 'failed': what reaches here is a write's fault)."""
    from mlplab.plan import planned_ids

    t0, spec, root = time.perf_counter(), None, sweep_root(cfg)
    try:
        spec = prepare(to_spec(cfg))
        row = run(spec, root, sweep=cfg.sweep_name, force=cfg.force)
    except Exception as e:  # noqa: BLE001 - one run's fault must not stop the sweep
        if cfg.debug:
            raise
        log.error(f"run with overrides {' '.join(HydraConfig.get().overrides.task)} failed: {one_line(e)}")
        run_id = spec.run_id if spec else ""
        return Outcome(run_id, "failed", time.perf_counter() - t0, one_line(e), res.is_disk_full(e))
    ids = planned_ids(HydraConfig.get().sweep.dir)
    log.info(f"[{len(set(ids) & res.committed_ids(root))}/{len(ids)}] {label(spec)}: {said(row)}")
    status = "skipped" if row["skipped"] else row["status"]
    return Outcome(spec.run_id, status, time.perf_counter() - t0, row.get("reason"))


def label(spec: RunSpec) -> str:
    return f"{spec.run_id} depth={spec.depth} {spec.activation} {spec.loss} clip={spec.clip} seed={spec.seed}"


def said(row: dict) -> str:
    """What became of a run: already done, or its status and time (and why, unless ok)."""
    if row["skipped"]:
        return "already done"
    reason = f" ({row['reason']})" if row["status"] != "ok" else ""
    return f"{row['status']} in {row['wall_time_s']:.2f}s{reason}"


class SweepCallback(Callback):
    """Checks the results folder before a run or a sweep, before Hydra writes into it. Hydra
    turns an exception in a callback into a warning and goes on: a fault leaves here, as one
    line and an exit code."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        try:
            res.prepare_folder(sweep_root(config), "results_dir")
        except Exception as e:  # noqa: BLE001
            if config.debug:
                raise
            leave(e)

    on_multirun_start = on_run_start


def refuse_added_keys(argv: list[str]) -> None:
    """``+key=value`` adds a key that the schema does not have: refused like any unknown key
    (Hydra would add it and the run would ignore it). Hydra's own ``hydra.*`` keys may be added."""
    for arg in argv:
        key = arg.lstrip("+").split("=", 1)[0]
        if arg.startswith("+") and "=" in arg and key.split(".")[0].split("/")[0] != "hydra" and not schema_has(key):
            raise PlanError(
                f"Could not add '{key}': there is no such key in mlplab's config (python -m mlplab --help lists them)"
            )


def entry() -> None:
    """``python -m mlplab``: ``--help`` prints the usage; every error is one line (``leave``)."""
    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        from mlplab.usage import usage

        print(usage())
        sys.exit(0)
    debug = os.environ.get("MLPLAB_DEBUG", "") not in ("", "0") or any(
        a.lower() in ("debug=true", "debug=1", "+debug=true") for a in argv
    )
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        refuse_added_keys(argv)
        main()
    except (Exception, KeyboardInterrupt) as e:  # (Ctrl-C before the command knew its runs)
        if debug:
            raise
        leave(e)

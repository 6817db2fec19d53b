"""``make bench``, the sweep engine: how a sweep's wall time compares with the work in its runs.

Parallel efficiency = Σ per-run wall time ÷ (sweep wall time × workers), the sweep timed from
the command's start to its exit (interpreter, Hydra, planning, workers, compaction, summary).
The per-run wall time is the time each run occupied a worker, from the sweep's log
(``sweep.log``: the whole ``mlplab.train.run`` call, writing included); the runs table's
``wall_time_s`` stops before the run's last file is written, and is shown beside it.

Cases: the default sweep on each launcher (Hydra's joblib, mlplab's local and dask); resuming
it from half done; a large sweep of tiny runs (10,000; 1,000 with --quick): efficiency, the
driver's peak memory, planning time, files per table after compaction and ``load_results``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET_EFFICIENCY = 0.90  # default sweep, 2 cores
TARGET_TINY_EFFICIENCY = 0.80
TARGET_DRIVER_MB = 1024
TARGET_PLAN_S = 20.0
TARGET_LOAD_S = 3.0
TINY = ["depth=1,2", "width=8", "train.epochs=1", "data.n_samples=64", "sweep_name=tiny"]


def sweep(args: list[str], results: Path) -> dict:
    """``python -m mlplab -m ARGS results_dir=RESULTS``: wall time, exit code, the driver's peak
    resident memory (polled), the planning time it reports."""
    import psutil

    cmd = [sys.executable, "-m", "mlplab", "-m", *args, f"results_dir={results}"]
    # the output goes to files, not pipes: a sweep writes more than a pipe holds, and nothing
    # reads the pipes while the driver's memory is polled (a full pipe would stop the sweep)
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fout, stderr=ferr, text=True)
        driver, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, driver.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err.strip()[-500:]}")
    planned = re.search(r"planned in ([0-9.]+)s", out)
    return dict(
        wall=wall, peak_mb=peak / 2**20, plan_s=float(planned.group(1)) if planned else float("nan"), stdout=out
    )


def interrupt(args: list[str], results: Path, after: float) -> None:
    """Start the sweep and press Ctrl-C (SIGINT to its process group) ``after`` seconds."""
    import signal

    cmd = [sys.executable, "-m", "mlplab", "-m", *args, f"results_dir={results}"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # even from a background shell
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait()


def work(root: Path) -> tuple[float, float, int]:
    """(Σ seconds of the runs in the sweep logs, Σ wall_time_s of the runs table, runs)."""
    import mlplab

    logged = 0.0
    for log in root.glob("hydra/*/sweep.log"):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].endswith("s") and parts[1] != "skipped":
                logged += float(parts[2][:-1])
    runs = mlplab.load_results(root, join=False).runs
    return logged, float(runs.wall_time_s.sum()), len(runs)


def engine_section(quick: bool, notes: dict) -> None:
    import mlplab

    cores = os.cpu_count() or 1
    name = "smoke" if quick else "default"
    out = notes.setdefault("engine", {"cores": cores, "sweep": name, "cases": []})
    for launcher in ("joblib", "local", "dask"):
        with tempfile.TemporaryDirectory() as tmp:
            r = sweep([f"sweep={name}", f"hydra/launcher={launcher}"], Path(tmp))
            logged, table, n = work(Path(tmp) / name)
            per_run = logged if logged else table  # joblib keeps no sweep log
            out["cases"].append(
                dict(
                    case=f"{name} sweep, {launcher}",
                    runs=n,
                    wall=r["wall"],
                    work=per_run,
                    table=table,
                    efficiency=per_run / (r["wall"] * cores),
                    peak_mb=r["peak_mb"],
                    plan_s=r["plan_s"],
                )
            )
            print(f"engine: {name} on {launcher}: {r['wall']:.1f}s for {per_run:.1f}s of runs", flush=True)
    # resuming: the sweep interrupted (Ctrl-C) half way through its time, then the same command again
    half = next(k["wall"] for k in out["cases"] if k["case"].endswith("local")) / 2
    with tempfile.TemporaryDirectory() as tmp:
        interrupt([f"sweep={name}"], Path(tmp), half)
        before, _, _ = work(Path(tmp) / name)
        r = sweep([f"sweep={name}"], Path(tmp))
        total, _, n = work(Path(tmp) / name)
        missing = total - before
        out["resume"] = dict(runs=n, wall=r["wall"], missing_work=missing, overhead=r["wall"] - missing / cores)
        print(f"engine: resume: {r['wall']:.1f}s for {missing:.1f}s of missing runs", flush=True)
    # many tiny runs
    seeds = 500 if quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        r = sweep([*TINY, f"seed=range(0,{seeds})", "hydra/launcher=local"], Path(tmp))
        root = Path(tmp) / "tiny"
        logged, table, n = work(root)
        t0 = time.perf_counter()
        mlplab.load_results(root)
        load = time.perf_counter() - t0
        files = {t: len(list((root / t).glob("*.parquet"))) for t in ("runs", "steps", "layers")}
        out["tiny"] = dict(
            runs=n,
            wall=r["wall"],
            work=logged,
            table=table,
            efficiency=logged / (r["wall"] * cores),
            peak_mb=r["peak_mb"],
            plan_s=r["plan_s"],
            load_s=load,
            files=max(files.values()),
        )
        print(
            f"engine: {n} tiny runs: {r['wall']:.1f}s for {logged:.1f}s of runs, plan {r['plan_s']:.1f}s, "
            f"driver {r['peak_mb']:.0f} MB, load {load:.2f}s, {files} files",
            flush=True,
        )


def report_engine(notes: dict, verdicts: list, ok) -> list[str]:
    e = notes.get("engine")
    if not e:
        return []
    c = e["cores"]
    L = [
        "## Sweeps: the engine",
        "",
        f"Parallel efficiency = Σ per-run wall time ÷ (sweep wall time × {c} workers); the sweep timed from the "
        "command's start to its exit. Per-run time from the sweep log (the whole run, its last file included); "
        "`Σ wall_time_s` is the runs table's (it stops before the run's last file is written).",
        "",
        "| case | runs | sweep wall | Σ per-run | Σ wall_time_s | efficiency | target | met | driver peak | planning |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in e["cases"]:
        target = (
            TARGET_EFFICIENCY if k["case"].endswith(("local", "dask")) and e["sweep"] == "default" and c == 2 else None
        )
        met = None if target is None else k["efficiency"] >= target
        if met is not None and k["case"].endswith("local"):  # make sweep's launcher
            verdicts.append(met)
        L.append(
            f"| {k['case']} | {k['runs']} | {k['wall']:.1f} s | {k['work']:.1f} s | {k['table']:.1f} s | "
            f"{100 * k['efficiency']:.0f} % | {'≥ 90 %' if target else ''} | {ok(met)} | {k['peak_mb']:.0f} MB | "
            f"{k['plan_s']:.2f} s |"
        )
    L.append("")
    r = e.get("resume")
    if r:
        met = r["overhead"] <= 2.0
        verdicts.append(met)
        L += [
            f"Resuming the {e['sweep']} sweep from half done (interrupted by Ctrl-C, then the same command again): "
            f"{r['wall']:.1f} s for {r['missing_work']:.1f} s of missing runs, i.e. the missing runs on {c} workers "
            f"plus {r['overhead']:.1f} s (target ≤ 2 s: {ok(met)}).",
            "",
        ]
    t = e.get("tiny")
    if t:
        checks = [
            ("efficiency", t["efficiency"] >= TARGET_TINY_EFFICIENCY, f"{100 * t['efficiency']:.0f} % (≥ 80 %)"),
            ("driver peak memory", t["peak_mb"] <= TARGET_DRIVER_MB, f"{t['peak_mb']:.0f} MB (≤ 1 GB)"),
            ("planning", t["plan_s"] <= TARGET_PLAN_S, f"{t['plan_s']:.1f} s (≤ 20 s)"),
            ("load_results after compaction", t["load_s"] <= TARGET_LOAD_S, f"{t['load_s']:.2f} s (≤ 3 s)"),
            ("files per table", t["files"] <= max(1, t["runs"] // 1000), f"{t['files']} (≤ 1 per 1,000 runs)"),
        ]
        verdicts += [m for _, m, _ in checks]
        L += [
            f"{t['runs']} tiny runs (`{' '.join(TINY[:-1])} seed=…`, local launcher): {t['wall']:.1f} s for "
            f"{t['work']:.1f} s of runs (Σ wall_time_s {t['table']:.1f} s).",
            "",
            "| measure | value (target) | met |",
            "|---|---|---|",
        ]
        L += [f"| {name} | {value} | {ok(met)} |" for name, met, value in checks]
        L.append("")
    return L

"""The benchmark (experiments/bench/): its goals judged from hand-made timings whose ratios are
known, a run on tiny shapes whose report states the numbers of its own parquet table, and the
GEMM replay, the JAX twin's numbers against mlplab's (when JAX is installed) and the JAX section
without JAX. No timing is asserted here; the speed goals live in the benchmark's report."""

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parent.parent / "experiments" / "bench"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("mlplab_bench", BENCH / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts the bench folder on sys.path for its modules
    return module


@pytest.fixture(scope="module")
def G(bench):
    import goals

    return goals


# -- the goals, from hand-made timings ----------------------------------------------------------
BASES = [1.0, 4.0, 0.5, 2.0, 8.0]  # one per repeat; powers of two, so (r × base) / base is r exactly
KEY = dict(dtype="float64", activation="sigmoid", threads=1)


def paired(section, a, b, r, shape, **key):
    """Timings of ``a`` and ``b`` taking turns over the repeats, ``a`` taking ``r`` times as long
    as ``b`` in every repeat (while the repeats themselves differ 16-fold)."""
    d, w, n = shape
    rows = []
    for rep, base in enumerate(BASES):
        for impl, s in ((a, r * base), (b, base)):
            rows.append(
                {
                    **KEY,
                    **key,
                    "section": section,
                    "impl": impl,
                    "rep": rep,
                    "seconds": s,
                    "depth": d,
                    "width": w,
                    "batch": n,
                }
            )
    return rows


def frame(rows):
    return pd.DataFrame(
        rows,
        columns=[
            "section",
            "impl",
            "optim",
            "dtype",
            "activation",
            "threads",
            "depth",
            "width",
            "batch",
            "rep",
            "seconds",
        ],
    )


def goal_case(name, v, G):
    """(timings, notes, goal, case) in which the goal ``name`` measures ``v``, beside rows that
    the goal must leave out (other thread counts, dtypes, implementations, shapes)."""
    rows, notes = [], {}
    if name == "instrumentation":
        rows = paired("instrumentation", "step 0 only", "default", 1 - v, (4, 32, 32), optim="sgd")  # share = 1 − ratio
        return rows, notes, "instrumentation share of a default run", "depth 4"
    if name == "api":
        rows = paired("api", "gradients", "in-place", v, (5, 32, 64)) + paired(
            "api", "pytorch", "in-place", 1e3, (5, 32, 64)
        )
        return rows, notes, "gradients() / in-place forward, loss, backward", "5×32×64"
    if name == "api vs pytorch":
        rows = (
            paired("api", "gradients", "pytorch", v, (10, 64, 128))
            + paired("api", "in-place", "pytorch", 7.0, (10, 64, 128))
            + paired("api", "gradients", "pytorch", 1e3, (50, 256, 256))
        )  # a shape without this goal
        return rows, notes, "gradients() / PyTorch forward + backward", "10×64×128"
    if name == "gemm":
        rows = (
            paired("gemm", "step", "gemm_bare", v, (20, 128, 256), activation="relu")
            + paired("gemm", "step", "gemm_bare", 1e3 * v, (20, 128, 256), activation="relu", threads=2)
            + paired("gemm", "step", "gemm_bare", 1e3 * v, (20, 128, 256), activation="relu", dtype="float32")
            + paired("gemm", "step", "gemm_bare", 1e3, (2, 32, 32), activation="relu")
        )  # a shape without this goal
        return rows, notes, "step / its matrix products", "20×128×256 relu"
    if name == "float32 step":
        rows = []
        for impl, threads, r in (("mlplab", 1, v), ("mlplab", 2, 1e3 * v), ("pytorch", 1, 1e3 * v)):
            for rep, base in enumerate(BASES):
                for dtype, s in (("float32", r * base), ("float64", base)):
                    rows.append(
                        {
                            **KEY,
                            "section": "step",
                            "impl": impl,
                            "dtype": dtype,
                            "threads": threads,
                            "rep": rep,
                            "seconds": s,
                            "depth": 50,
                            "width": 256,
                            "batch": 256,
                        }
                    )
        return rows, notes, "float32 step / float64 step", "50×256×256 sigmoid"
    if name == "float32 error":
        return [], {"float32_error": v}, "float32 gradients against float64 (oracle nets, relative)", "12 nets"
    if name == "blocks":
        rows = paired("blocks", "layer norm", "plain", v, G.BLOCK_SHAPE)
        return rows, notes, "block step / plain step", f"layer norm, {G.fmt_shape(G.BLOCK_SHAPE)} sigmoid"
    if name == "step vs pytorch":
        rows = paired("step", "mlplab", "pytorch", v, (10, 64, 128), activation="relu", threads=2) + paired(
            "step", "mlplab", "pytorch", 1e3 * v, (10, 64, 128), activation="relu", threads=2, dtype="float32"
        )
        return rows, notes, "step / PyTorch step (round 1)", "10×64×128 relu 2t"
    if name == "norms":
        rows = paired("norms", "norms_bare", "step", v, (2, 32, 32), dtype="float32")
        return rows, notes, "per-layer norms / step (round 1)", "2×32×32 float32"
    if name == "sweep":
        return (
            [],
            {"engine_goals": [("default sweep, local", v, 0.9)]},
            "sweep efficiency (round 1)",
            "default sweep, local",
        )
    raise KeyError(name)


TARGETS = {  # goal -> (the target's name in goals.py, or its value for the case's shape, and the direction)
    "instrumentation": ("INSTRUMENTATION", "≤"),
    "api": ("API", "≤"),
    "api vs pytorch": (0.5, "≤"),
    "gemm": ("GEMM", "≤"),
    "float32 step": ("FLOAT32", "≤"),
    "float32 error": ("FLOAT32_ERROR", "≤"),
    "blocks": ("BLOCKS", "≤"),
    "step vs pytorch": (0.5, "≤"),
    "norms": ("NORMS_SHARE", "≤"),
    "sweep": (0.9, "≥"),
}
MARKS = {"≤": {"under": "✔", "at": "✔", "over": "✘"}, "≥": {"under": "✘", "at": "✔", "over": "✔"}}
CASES = [
    (name, where)
    for name in TARGETS
    for where in ("under", "at", "over")
    # its measured share is 1 − a ratio of times: no ratio of doubles gives exactly 0.15
    if (name, where) != ("instrumentation", "at")
]


def table_rows(G, rows) -> dict:
    """The goals table as {(goal, case): (measured, target, met)} cells, from its Markdown."""
    lines = G.table(rows)
    assert lines[:2] == ["| goal | case | measured | target | met |", "|---|---|---|---|---|"], lines[:2]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {(g, c): (m, t, ok) for g, c, m, t, ok in cells}


@pytest.mark.parametrize("name, where", CASES)
def test_a_goal_is_met_up_to_its_target_and_not_beyond(G, name, where):
    """Each goal, measured just under, at and just over its target: ✔ up to the target
    inclusive (≤ goals; from it for ≥), ✘ beyond, judged on the ratio of the right pair of
    timings of the right case."""
    target, op = TARGETS[name]
    target = getattr(G, target) if isinstance(target, str) else target
    v = target * {"under": 1 - 1e-6, "at": 1.0, "over": 1 + 1e-6}[where]
    rows, notes, goal, case = goal_case(name, v, G)
    measured = G.goals(frame(rows), notes)
    found = [r for r in measured if r[0] == goal]
    assert [r[1] for r in found] == [case], f"{name}: the goal's cases are {[r[1] for r in found]}, not [{case!r}]"
    assert found[0][2] == pytest.approx(v, rel=1e-12), (
        f"{name} {where}: measured {found[0][2]!r}, the timings say {v!r}"
    )
    m, t, ok = table_rows(G, found)[(goal, case)]
    assert t == f"{op} {target:g}", (name, t)
    assert ok == MARKS[op][where], f"{name}: {v!r} against {op} {target:g} is marked {ok}"
    assert float(m) == pytest.approx(v, rel=5e-3), (name, m, v)


def test_a_goal_ratio_is_the_median_of_the_per_repeat_ratios(G):
    """Paired by repeat: gradients/in-place per repeat are 0.5, 2, 0.5 (median 0.5), while the
    ratio of the medians is 2 and the mean of the ratios 1."""
    rows = []
    for rep, (a, b) in enumerate([(1.0, 2.0), (20.0, 10.0), (30.0, 60.0)]):
        for impl, s in (("gradients", a), ("in-place", b)):
            rows.append(
                {**KEY, "section": "api", "impl": impl, "rep": rep, "seconds": s, "depth": 5, "width": 32, "batch": 64}
            )
    ((goal, case, value, target, met),) = G.goals(frame(rows), {})
    assert (goal, case) == ("gradients() / in-place forward, loss, backward", "5×32×64")
    assert value == 0.5 and met is True, (value, met)


@pytest.mark.parametrize(
    "name, notes, shape, case",
    [
        ("blocks", {}, (2, 8, 8), "layer norm, 2×8×8 sigmoid"),  # not the shape the goal is set for
        ("instrumentation", {"default_runs": False}, (4, 32, 32), "depth 4"),  # --shapes: not a default run
    ],
)
def test_a_case_the_goal_is_not_set_for_is_shown_unjudged(G, name, notes, shape, case):
    if name == "blocks":  # 100× the plain step: ✘ if it were judged
        rows, goal, value = paired("blocks", "layer norm", "plain", 100.0, shape), "block step / plain step", 100.0
    else:  # 90 % of the run: ✘ if it were judged
        rows, goal, value = (
            paired("instrumentation", "step 0 only", "default", 0.1, shape, optim="sgd"),
            "instrumentation share of a default run",
            0.9,
        )
    ((g, c, measured, target, met),) = G.goals(frame(rows), notes)
    assert (g, c, target, met) == (goal, case, "", None), (g, c, target, met)
    assert measured == pytest.approx(value, rel=1e-12)
    assert table_rows(G, [(g, c, measured, target, met)])[(goal, case)][2] == "–"


def test_a_goal_missing_one_of_its_timings_is_not_judged(G):
    rows = [r for r in paired("api", "gradients", "in-place", 5.0, (5, 32, 64)) if r["impl"] == "gradients"]
    ((_, _, value, target, met),) = G.goals(frame(rows), {})
    assert math.isnan(value) and target == f"≤ {G.API:g}" and met is None, (value, target, met)
    assert table_rows(G, [("g", "c", value, target, met)])[("g", "c")][2] == "–"


# -- a run on tiny shapes ---------------------------------------------------------------------------
def section_text(md: str, heading: str) -> str:
    """The text under ``heading`` (a line of its own) up to the next '## ' heading."""
    lines = md.splitlines()
    assert heading in lines, f"no {heading!r} line in the report"
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def md_table(text: str, after: str = "") -> pd.DataFrame:
    """The first Markdown table in ``text`` (after the line starting ``after``), as strings."""
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(after)) if after else 0
    i = next(k for k in range(i, len(lines)) if lines[k].startswith("| "))
    head = [c.strip() for c in lines[i].strip().strip("|").split("|")]
    body = []
    for line in lines[i + 2 :]:
        if not line.startswith("| "):
            break
        body.append([c.strip() for c in line.strip().strip("|").split("|")])
    return pd.DataFrame(body, columns=head)


def value_of(cell: str) -> tuple[float, float]:
    """The number a cell shows (times in seconds) and half a unit of its last digit."""
    m = re.fullmatch(r"(-?[0-9.]+(?:e[-+][0-9]+)?)\s*(ms|µs|%|×)?", cell.strip())
    assert m, f"not a number: {cell!r}"
    text, unit = m.groups()
    scale = {"ms": 1e-3, "µs": 1e-6}.get(unit, 1.0)
    if "e" in text:
        mantissa = text.split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        half = 0.5 * 10.0**-decimals * 10.0 ** int(text.split("e")[1])
    else:
        decimals = len(text.split(".")[1]) if "." in text else 0
        half = 0.5 * 10.0**-decimals
    return float(text) * scale, half * scale * (1 + 1e-9)


def shows(cell: str, expected: float, what: str = ""):
    shown, half = value_of(cell)
    assert abs(shown - expected) <= half, f"{what}: the report shows {cell!r}, the table's timings give {expected!r}"


def shape(s: str) -> tuple:
    return tuple(int(x) for x in s.split("×"))


@pytest.fixture(scope="module")
def tiny(bench, tmp_path_factory):
    """The benchmark on shapes 1×8×4 and 2×8×8, three repeats, without PyTorch or sweeps; its
    timed turns last a twentieth of --quick's budget and pause for nobody (nothing is timed
    against a goal here)."""
    import core
    import timing

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "PAUSE", 0.0)
        mp.setattr(core, "race", lambda fns, repeats, budget, pause=0.0: timing.race(fns, repeats, budget / 20, pause))
        out = bench.main(
            [
                "--quick",
                "--no-sweep",
                "--no-torch",
                "--shapes",
                "1x8x4,2x8x8",
                "--repeats",
                "3",
                "--out",
                str(tmp_path_factory.mktemp("bench")),
            ]
        )
    return out, (out / "bench.md").read_text(), pd.read_parquet(out / "bench.parquet")


SECTION_ORDER = [
    "## Goals",
    "## Instrumentation",
    "## The public API",
    "## Training step against PyTorch",
    "## The step against its matrix products",
    "GEMM peak (`np.dot` of two square matrices):",
    "## Residual and normalised networks",
    "## Per-layer gradient norms",
    "## Machine load",
]


def test_bench_writes_its_files_and_sections_in_order(bench, tiny):
    out, md, df = tiny
    lines = md.splitlines()
    assert lines[0].startswith("# mlplab benchmark (")
    at = [lines.index(h) if h in lines else -1 for h in SECTION_ORDER]
    assert -1 not in at and at == sorted(at), dict(zip(SECTION_ORDER, at))
    machine = dict(md_table(md).values)
    assert machine["PyTorch"] == "not used (--no-torch)" and machine["sweep"] == "(skipped)", machine
    assert re.search(r"\(\w+, \d+ logical CPUs\)$", machine["CPU"]) and " kernels, " in machine["NumPy"], machine
    assert "PyTorch is not installed" in section_text(md, "## Training step against PyTorch")
    csv = pd.read_csv(out / "bench.csv", keep_default_na=False)
    assert len(csv) == len(df) and list(csv.columns) == list(df.columns)
    np.testing.assert_array_equal(csv["seconds"].to_numpy(), df["seconds"].to_numpy())
    assert (df["seconds"] > 0).all()
    # every section ran once, in order, and every timed one has its rows, each impl every repeat
    load = md_table(section_text(md, "## Machine load"))
    assert list(load["section"]) == ["instrumentation", "api", "step", "float32", "gemm", "blocks", "norms", "peak"]
    assert set(df["section"]) == set(load["section"]) - {"float32"}
    assert set(df.loc[df["section"] == "blocks", "impl"]) == set(bench.BLOCKS)
    keys = ["section", "impl", "optim", "dtype", "activation", "threads", "depth", "width", "batch"]
    reps = df.groupby(keys, dropna=False)["rep"].agg(sorted)
    bad = reps[reps.map(lambda r: r != list(range(len(r))) or len(r) < 3)]
    assert bad.empty, bad


def medians(df, section, keys):
    return df[df["section"] == section].groupby(keys + ["impl"])["seconds"].median()


def test_bench_sections_state_the_medians_of_their_timings(tiny):
    """Every time and ratio in the sections' tables, against the medians of the parquet's
    timings (pandas groupby, per shape, dtype, activation, threads)."""
    _, md, df = tiny
    shp = ["depth", "width", "batch"]

    t = md_table(section_text(md, "## Instrumentation"))
    m = medians(df, "instrumentation", ["optim", "depth"])
    ins = df[df["section"] == "instrumentation"]
    assert sorted(zip(t["optimiser"], t["depth"].astype(int))) == sorted(set(zip(ins.optim, ins.depth)))
    assert set(t["optimiser"]) == {"sgd", "adam"}
    for r in t.to_dict("records"):
        k = (r["optimiser"], int(r["depth"]))
        a, b = m[(*k, "default")], m[(*k, "step 0 only")]
        shows(r["default"], a, "default run")
        shows(r["step 0 only"], b, "step 0 only")
        shows(r["share"], 100 * (a - b) / a, "instrumentation share")

    t = md_table(section_text(md, "## The public API"))
    m = medians(df, "api", shp)
    assert len(t) == 2
    for r in t.to_dict("records"):
        k = shape(r["depth×width×batch"])
        g, i = m[(*k, "gradients")], m[(*k, "in-place")]
        shows(r["gradients()"], g, f"gradients() {k}")
        shows(r["in-place"], i, f"in-place {k}")
        shows(r["ratio"], g / i, f"gradients() / in-place {k}")
        assert r["PyTorch"] == r["gradients() / PyTorch"] == "–"

    t = md_table(section_text(md, "## Training step against PyTorch"), "| depth")
    m = medians(df, "step", shp + ["dtype", "activation", "threads"])
    assert (
        len(t) == 2 * 2 * 2 * df.loc[df["section"] == "step", "threads"].nunique()
    )  # shapes × dtypes × acts × threads
    for r in t.to_dict("records"):
        k = (*shape(r["depth×width×batch"]), r["dtype"], r["act"], int(r["threads"]))
        shows(r["mlplab"], m[(*k, "mlplab")], f"step {k}")
        assert r["PyTorch"] == r["ratio"] == "–"

    t = md_table(section_text(md, "## The step against its matrix products"))
    m = medians(df, "gemm", shp + ["dtype", "activation", "threads"])
    flops = df[df["section"] == "gemm"].groupby(shp)["flops"].first()
    assert set(t["depth×width×batch"]) == {"2×8×8"}  # the largest shape stands in for the goal's shapes
    for r in t.to_dict("records"):
        k = (*shape(r["depth×width×batch"]), r["dtype"], r["act"], int(r["threads"]))
        s, b = m[(*k, "step")], m[(*k, "gemm_bare")]
        shows(r["step"], s, f"step {k}")
        shows(r["products"], b, f"products {k}")
        shows(r["step / products"], s / b, f"step / products {k}")
        shows(r["step GFLOP/s"], flops[k[:3]] / s / 1e9, f"GFLOP/s {k}")
    t = md_table(md, "GEMM peak")
    m = medians(df, "peak", ["width", "dtype", "threads"])
    assert len(t) == len(m) == 2 * df.loc[df["section"] == "peak", "threads"].nunique()
    for r in t.to_dict("records"):
        n = int(r["n"])
        shows(r["GFLOP/s"], 2 * n**3 / m[(n, r["dtype"], int(r["threads"]), "numpy")] / 1e9, f"peak {n} {r['dtype']}")

    t = md_table(section_text(md, "## Residual and normalised networks"))
    m = medians(df, "blocks", shp + ["activation"])
    assert list(t.columns[2:]) == ["plain", "residual", "batch norm", "layer norm", "residual + batch norm"]
    assert sorted(t["act"]) == ["relu", "sigmoid"] and set(t["depth×width×batch"]) == {"2×8×8"}  # the largest shape
    for r in t.to_dict("records"):
        k = (*shape(r["depth×width×batch"]), r["act"])
        plain = m[(*k, "plain")]
        shows(r["plain"], plain, f"plain {k}")
        for b in t.columns[3:]:
            time, ratio = re.fullmatch(r"(.+) \((.+)\)", r[b]).groups()
            shows(time, m[(*k, b)], f"{b} {k}")
            shows(ratio, m[(*k, b)] / plain, f"{b} / plain {k}")

    t = md_table(section_text(md, "## Per-layer gradient norms"))
    m = medians(df, "norms", shp + ["dtype"])
    assert len(t) == 4
    for r in t.to_dict("records"):
        k = (*shape(r["depth×width×batch"]), r["dtype"])
        s, b = m[(*k, "step")], m[(*k, "norms_bare")]
        shows(r["step"], s, f"step {k}")
        shows(r["norms"], b, f"norms {k}")
        shows(r["share"], 100 * b / s, f"norms share {k}")


def paired_ratio(df, section, a, b, keys, **where):
    """Per case: the median over repeats of time(a)/time(b) in the same repeat (pandas pivot)."""
    d = df[df["section"] == section]
    for k, v in where.items():
        d = d[d[k] == v]
    p = d.pivot_table(index=keys + ["rep"], columns="impl", values="seconds")
    return (p[a] / p[b]).groupby(level=keys).median()


def test_bench_goals_table_judges_the_runs_own_ratios(bench, G, tiny):
    """The goals table of the tiny run: one row per case the run measured, each ratio the
    median of its per-repeat ratios in the parquet table, marked against its target; the
    shapes that are not the goals' own are shown unjudged; the count of goals met."""
    _, md, df = tiny
    t = md_table(section_text(md, "## Goals"))
    got = {(r["goal"], r["case"]): r for r in t.to_dict("records")}
    shp = ["depth", "width", "batch"]
    expect = {}  # (goal, case) -> (measured, target; None: shown unjudged)
    for (o, d), share in (
        1 - paired_ratio(df, "instrumentation", "step 0 only", "default", ["optim", "depth"])
    ).items():
        case = f"depth {d}" + ("" if o == "sgd" else f", {o}")
        expect[("instrumentation share of a default run", case)] = (share, None)  # 2-epoch runs, not default ones
    for k, r in paired_ratio(df, "api", "gradients", "in-place", shp).items():
        expect[("gradients() / in-place forward, loss, backward", "×".join(map(str, k)))] = (r, G.API)
    for b in sorted(set(df.loc[df["section"] == "blocks", "impl"]) - {"plain"}):
        for (d, w, n, act), r in paired_ratio(df, "blocks", b, "plain", shp + ["activation"]).items():
            expect[("block step / plain step", f"{b}, {d}×{w}×{n} {act}")] = (r, None)  # not the goal's shape
    for (d, w, n, dt), r in paired_ratio(df, "norms", "norms_bare", "step", shp + ["dtype"]).items():
        expect[("per-layer norms / step (round 1)", f"{d}×{w}×{n} {dt}")] = (r, G.NORMS_SHARE)
    f32 = ("float32 gradients against float64 (oracle nets, relative)", "12 nets")
    stated = re.search(r"at most ([0-9.e+-]+) from float64", md).group(1)  # the float32 line, 2 digits
    shows(stated, float(got[f32]["measured"]), "float32 error line against its goal")
    expect[f32] = (float(got[f32]["measured"]), G.FLOAT32_ERROR)
    assert set(got) == set(expect), f"missing {set(expect) - set(got)}, unexpected {set(got) - set(expect)}"
    for key, (value, target) in expect.items():
        r = got[key]
        shows(r["measured"], value, str(key))
        if target is None:
            assert (r["target"], r["met"]) == ("", "–"), (key, r)
        else:
            assert (r["target"], r["met"]) == (f"≤ {target:g}", "✔" if value <= target else "✘"), (key, value, r)
    judged = [r["met"] for r in got.values() if r["met"] != "–"]
    assert f"\n{judged.count('✔')} of {len(judged)} goals met.\n" in md


def test_bench_runs_one_section_alone(bench, tmp_path):
    """--sections float32 times nothing: the report has its one goal, and no table of timings."""
    out = bench.main(["--quick", "--no-sweep", "--no-torch", "--sections", "float32", "--out", str(tmp_path)])
    md = (out / "bench.md").read_text()
    t = md_table(section_text(md, "## Goals"))
    assert list(t["goal"]) == ["float32 gradients against float64 (oracle nets, relative)"], list(t["goal"])
    assert "## Instrumentation" not in md and "## Training step against PyTorch" not in md
    assert pd.read_parquet(out / "bench.parquet").empty


def test_bench_against_pytorch(bench, G, tmp_path):
    """mlplab's step and gradients() against PyTorch's on a shape the goals are set for: the two
    compute the same per-layer gradient norms, and the goals against PyTorch are the paired
    ratios of the run's timings."""
    pytest.importorskip("torch")
    import core
    import timing

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "PAUSE", 0.0)
        mp.setattr(core, "race", lambda fns, repeats, budget, pause=0.0: timing.race(fns, repeats, budget / 20, pause))
        out = bench.main(
            [
                "--quick",
                "--no-sweep",
                "--shapes",
                "5x32x64",
                "--repeats",
                "3",
                "--sections",
                "api,step",
                "--out",
                str(tmp_path),
            ]
        )
    md = (out / "bench.md").read_text()
    df = pd.read_parquet(out / "bench.parquet")
    import torch

    assert dict(md_table(md).values)["PyTorch"].startswith(f"{torch.__version__} (")
    assert {"mlplab", "pytorch"} == set(df[df.section == "step"].impl)
    assert {"gradients", "in-place", "pytorch"} == set(df[df.section == "api"].impl)
    agree = re.search(r"per-layer gradient norms differ by at most ([0-9.e+-]+) \(relative\)", md)
    assert agree and float(agree.group(1)) < 1e-4, "mlplab's and PyTorch's per-layer gradient norms differ"
    shp = ["depth", "width", "batch"]
    t = {(r["goal"], r["case"]): r for r in md_table(section_text(md, "## Goals")).to_dict("records")}
    expect = {
        ("gradients() / PyTorch forward + backward", "5×32×64"): paired_ratio(df, "api", "gradients", "pytorch", shp)[
            (5, 32, 64)
        ]
    }
    for (act, th), r in paired_ratio(
        df, "step", "mlplab", "pytorch", ["activation", "threads"], dtype="float64"
    ).items():
        expect[("step / PyTorch step (round 1)", f"5×32×64 {act} {th}t")] = r
    assert set(expect) <= set(t), set(expect) - set(t)
    for key, value in expect.items():
        shows(t[key]["measured"], value, str(key))
        assert (t[key]["target"], t[key]["met"]) == ("≤ 0.25", "✔" if value <= 0.25 else "✘"), (key, value, t[key])
    step = md_table(section_text(md, "## Training step against PyTorch"), "| depth")
    m = df[df.section == "step"].groupby(["dtype", "activation", "threads", "impl"])["seconds"].median()
    for r in step.to_dict("records"):
        k = (r["dtype"], r["act"], int(r["threads"]))
        shows(r["PyTorch"], m[(*k, "pytorch")], f"PyTorch {k}")
        shows(r["ratio"], m[(*k, "mlplab")] / m[(*k, "pytorch")], f"mlplab / PyTorch {k}")


@pytest.mark.parametrize("kind", ["plain", "residual + batch norm", "layer norm"])
def test_gemm_replay_is_the_steps_own_products(bench, kind):
    """The products are recorded from the step itself: the same count, shapes, dtype and
    numbers as the step computed, whatever layers the network has."""
    import gemm
    from problems import mlplab_step, problem

    net, X, Y, _ = problem(3, 8, 4, "sigmoid", "float64", **bench.BLOCKS[kind])
    step = mlplab_step(net, X, Y)
    step()  # a step made before: its buffers exist, and the record still sees every product
    calls = gemm.record(step)
    L = net.L
    # forward z^l per layer; backward ∂C/∂W, ∂C/∂b per layer and δ W for l ≥ 2; per normalised layer
    # its sums: batch norm μ, v and 1ᵀ(g_u ⊙ x), ∂C/∂β; layer norm μ, v, ∂C/∂γ, ∂C/∂β and two means with γ
    extra = {"plain": 0, "residual + batch norm": 3 * 4, "layer norm": 3 * 6}[kind]
    assert len(calls) == L + 2 * L + (L - 1) + extra, [(a.shape, b.shape) for a, b, _ in calls]
    np.testing.assert_array_equal(calls[0][0], X)  # z^1 = X W^1ᵀ
    assert calls[0][1].shape == net.weights[0].T.shape
    for a, b, out in calls:
        np.dot(a, b, out=out)
        assert out.dtype == net.dtype
    assert gemm.flops(calls[:1]) == 2 * 4 * 64 * 8


def test_bench_seeds_section_times_runs_stacked_and_alone(bench, G, tmp_path, monkeypatch):
    """--sections seeds: per depth and number of seeds, each repeat's seconds per run stacked
    (``run_many``) and alone; the goal is judged at 30 seeds only, as the paired ratio."""
    import seeds

    monkeypatch.setattr(seeds, "DEPTHS", (1,))
    monkeypatch.setattr(seeds, "SEEDS", (2, 30))
    out = bench.main(["--quick", "--no-sweep", "--no-torch", "--sections", "seeds", "--out", str(tmp_path)])
    md = (out / "bench.md").read_text()
    df = pd.read_parquet(out / "bench.parquet")
    assert set(df["section"]) == {"seeds"} and set(df["impl"]) == {"stacked", "alone"}
    assert sorted(set(df["batch"])) == [2, 30] and (df["seconds"] > 0).all()
    assert len(df) == 2 * 2 * 2  # seeds × impls × the quick repeats
    t = {r["case"]: r for r in md_table(section_text(md, "## Goals")).to_dict("records")}
    for n in (2, 30):
        want = paired_ratio(df[df.batch == n], "seeds", "stacked", "alone", ["depth"])[1]
        r = t[f"depth 1, {n} seeds"]
        shows(r["measured"], want, f"{n} seeds")
        assert (r["target"], r["met"]) == (
            ("", "–") if n < 30 else (f"≤ {G.SEEDS_BULK:g}", "✔" if want <= 0.5 else "✘")
        )


# -- the JAX twin (optional: JAX installed by make bench-jax) ------------------------------------------
def twin_output_from(tables, n_layers):
    """What the JAX twin's call returns (steps, layers, final: seeds first), made of mlplab's own
    tables: the arrays ``jax_twin.compare`` reads."""
    import jax_twin

    steps, layers, final = [], [], []
    for t in tables:
        st = t["steps"].to_pandas().sort_values("step")
        lay = t["layers"].to_pandas().sort_values(["step", "layer"])
        steps.append(st[list(jax_twin.STEP_COLUMNS)].to_numpy(np.float64))
        layers.append(lay[list(jax_twin.LAYER_COLUMNS)].to_numpy(np.float64).reshape(len(st), n_layers, -1))
        final.append(t["runs"].to_pandas()[list(jax_twin.FINAL_COLUMNS)].to_numpy(np.float64)[0])
    return np.stack(steps), np.stack(layers), np.stack(final)


def test_jax_twin_inputs_and_comparison(bench, tmp_path):
    """Without JAX: the twin's inputs are the runs' own (data, initial weights, each step's
    mini-batch as ``mlplab.train.batches`` draws it), and ``compare`` finds mlplab's tables equal
    to themselves and a number that is off by its relative difference."""
    import jax_twin

    import mlplab
    from mlplab.train import batches, load_data, prepare, rngs

    runs = jax_twin.specs(2, "mse", seeds=(0, 1), epochs=2)
    inp = jax_twin.inputs(runs)
    assert inp["idx"].shape == (2, 50, 1, 32) and [w.shape for w in inp["W"]] == [(2, 32, 8), (2, 32, 32), (2, 3, 32)]
    spec = prepare(runs[1])
    data, sched = load_data(spec), spec.schedule()
    shuffle = rngs(1)[2]
    got = [Xb for _ in range(2) for Xb, _ in batches(data, sched, shuffle)]
    np.testing.assert_array_equal(np.stack(got), inp["X"][1][inp["idx"][1, :, 0]])
    np.testing.assert_array_equal(inp["W"][0][1], mlplab.MLP(spec.layer_sizes(), seed=rngs(1)[1]).weights[0])
    tables = []
    for r in runs:
        mlplab.run(r, tmp_path, tables=tables)
    out = twin_output_from(tables, 3)
    same = jax_twin.compare(out, tables, inp["sched"])
    assert same["max_relative"] == 0 and same["max_float32_steps"] == 0, same
    assert set(same["relative"]) == set(jax_twin.STEP_COLUMNS + jax_twin.LAYER_COLUMNS + jax_twin.FINAL_COLUMNS) - {
        "train_accuracy",
        "test_accuracy",
        "act_mean",
        "act_std",
        "sat_frac",
        "final_accuracy",
        "final_test_accuracy",
    }
    out[1][1, 7, 2, 0] *= 1 + 1e-9  # ‖∂C/∂W^3‖ of seed 1 at step 7
    out[1][0, 3, 1, 4] = np.nextafter(np.float32(out[1][0, 3, 1, 4]), np.float32(2), dtype=np.float32)  # act_mean
    off = jax_twin.compare(out, tables, inp["sched"])
    assert off["worst"] == "grad_w_norm" and 0.9e-9 < off["max_relative"] < 1.1e-9, off
    assert off["float32_steps"]["act_mean"] == 1 and off["max_float32_steps"] == 1, off


def test_jax_twin_computes_what_mlplab_runs_compute(bench):
    """The twin (in its own process, as the bench runs it) of two short runs (depth 2, mse,
    2 epochs, seeds 0 and 1) against mlplab's runs of the same specs: every logged number within
    1e-12 (relative), the float32 columns equal."""
    pytest.importorskip("jax")
    import jax_twin

    rows, notes = [], {}
    jax_twin.jax_section(True, rows, notes, depths=(2,), losses=("mse",), seeds=(0, 1))
    check = notes["jax"]["check"]
    assert set(check["relative"]) >= {"grad_w_norm", "update_ratio", "train_loss", "final_test_loss"}
    assert check["max_relative"] <= 1e-12 and check["max_float32_steps"] == 0, check
    assert {(r["impl"], r["depth"]) for r in rows} == {
        (impl, 2) for impl in ("mlplab", "mlplab training", "jax first call", "jax compiled")
    }
    assert not notes["jax"]["full"] and notes["jax"]["seeds"] == 2 and notes["jax"]["steps"] == 50


def test_bench_jax_section_quick(bench, G, tmp_path):
    """--sections jax --quick: mlplab's runs against the twin's first and compiled calls at depth 1
    and 4; the report's table states the medians of the parquet's timings, its goals the paired
    ratio (unjudged: quick runs are not the goal's) and the twin's numbers within 1e-12 of mlplab's."""
    jax = pytest.importorskip("jax")
    out = bench.main(["--quick", "--no-sweep", "--no-torch", "--sections", "jax", "--out", str(tmp_path)])
    md = (out / "bench.md").read_text()
    df = pd.read_parquet(out / "bench.parquet")
    assert dict(md_table(md).values)["JAX"] == jax.__version__
    assert set(df["section"]) == {"jax"} and set(df["depth"]) == {1, 4}
    assert set(df["impl"]) == {"mlplab", "mlplab training", "jax first call", "jax compiled"}
    assert (df["seconds"] > 0).all()
    text = section_text(md, "## JAX twin of the default sweep")
    t = md_table(text)
    assert list(t["depth"]) == ["1", "4", "all"]
    m = df.groupby(["depth", "impl"])["seconds"].median()
    for r in t.to_dict("records")[:2]:
        d = int(r["depth"])
        for col, impl in (
            ("mlplab", "mlplab"),
            ("JAX with compilation", "jax first call"),
            ("JAX compiled", "jax compiled"),
        ):
            shows(r[col].removesuffix(" s"), m[(d, impl)], f"{col} depth {d}")
        shows(r["mlplab / JAX compiled"], m[(d, "mlplab")] / m[(d, "jax compiled")], f"ratio depth {d}")
    goals = {r["goal"]: r for r in md_table(section_text(md, "## Goals")).to_dict("records")}
    vs = goals["mlplab / compiled JAX (issue 26)"]
    assert (vs["target"], vs["met"]) == ("", "–"), vs
    shows(vs["measured"], G.jax_times(df)["all"]["vs_compiled"], "overall ratio")
    check = goals["JAX twin's numbers against mlplab's (relative, float64)"]
    assert float(check["measured"]) <= 1e-12 and (check["target"], check["met"]) == ("≤ 1e-12", "✔"), check
    assert "float32 columns (activation statistics, accuracies) at most 0 float32 step(s) apart" in text
    assert "CPU time / wall time of the compiled calls" in text


def test_bench_jax_section_skipped_without_jax(bench, tmp_path, monkeypatch, capsys):
    """Without JAX (its import fails) the section times nothing and says so in one line."""
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    out = bench.main(["--quick", "--no-sweep", "--no-torch", "--sections", "jax", "--out", str(tmp_path)])
    md = (out / "bench.md").read_text()
    text = section_text(md, "## JAX twin of the default sweep")
    assert [line for line in text.splitlines() if line] == [
        "JAX is not installed; the comparison is skipped (`make bench-jax` installs it, the `bench-jax` extra)."
    ]
    assert "JAX is not installed" in capsys.readouterr().out
    assert pd.read_parquet(out / "bench.parquet").empty
    assert "## Goals" in md and "JAX" not in section_text(md, "## Goals")
    assert list(md_table(section_text(md, "## Machine load"))["section"]) == ["jax"]

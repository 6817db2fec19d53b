"""Do the tests fail when the code is wrong? Mutation testing of the core and the commit path.

    python experiments/mutation/mutation.py [--jobs N] [--keep] [--report-only] [--out results/mutation]

mutmut (``[tool.mutmut]`` in pyproject.toml: which modules, which test files) copies the library
to ``mutants/``, makes every one-line mutant of every function (``<`` for ``<=``, ``+ 1`` to a
number, an argument dropped or set to None, ...), finds which tests call each function, and runs
only those tests against each mutant, stopping at the first failure. A mutant is *killed* when a
test fails (or the tests time out); it *survives* when they all pass.

Some survivors are *equivalent*: the mutant computes the same thing (``einsum("IJ->I")`` is
``einsum("ij->i")``). Those are listed by hand in ``equivalent.toml`` beside this file, each with
the changed line and the reason; an entry whose line no longer matches its mutant is stale and
the mutant counts as a survivor again.

Writes to ``--out``:

* ``score.md``: the score per module and overall against the goal (≥ 95 % of the non-equivalent
  mutants killed), with the run's duration, jobs and mutmut version;
* ``survivors.md``: every surviving non-equivalent mutant (and every mutant no test reaches) as a
  diff, by module;
* ``equivalent.md``: the mutants set aside as equivalent, with their reasons;
* ``mutants.csv``: one row per mutant (module, function, name, status).

``--keep`` reuses ``mutants/`` from an earlier run: mutmut then tests only mutants of functions
whose source changed (it does not see changes to the tests). ``--survivors`` also tests again
every mutant the earlier run did not kill (after new tests). Without either, every mutant is
tested from scratch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import tomllib

GOAL = 0.95
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code), folded into our four verdicts
KILLED = {
    1: "killed",
    3: "killed",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "crashed",
    -9: "crashed",
    37: "killed",
}
NO_TESTS = {5, 33}
SURVIVED = {0}


@dataclass
class Mutant:
    name: str
    module: str
    function: str
    status: str  # killed | timeout | crashed | survived | no tests | equivalent | not run
    diff: str = ""
    reason: str = ""


def status_of(code) -> str:
    if code in KILLED:
        return KILLED[code]
    if code in NO_TESTS:
        return "no tests"
    if code in SURVIVED:
        return "survived"
    return "not run"


def function_of(name: str) -> str:
    """``mlplab.losses.xǁMSEǁfn__mutmut_3`` -> ``MSE.fn``; ``mlplab.spec.x_cadence__mutmut_1`` -> ``cadence``."""
    key = name.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]
    if key.startswith("xǁ"):
        return ".".join(p for p in key[2:].split("ǁ") if p)
    return key[2:]


def changed_lines(diff: str) -> list[str]:
    return [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]


def diff_of(name: str, module: str) -> str:
    """The mutant's unified diff against the original function (what ``mutmut show`` prints)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return get_diff_for_mutant(name, path=module)
    finally:
        os.chdir(cwd)


def read_mutants() -> list[Mutant]:
    mutants = []
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        module = meta.relative_to(ROOT / "mutants").as_posix()[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            mutants.append(Mutant(name, module, function_of(name), status_of(code)))
    return mutants


def equivalents() -> dict[str, dict]:
    data = tomllib.loads((HERE / "equivalent.toml").read_text())
    return {e["mutant"]: e for e in data.get("equivalent", [])}


def classify(mutants: list[Mutant]) -> list[str]:
    """Attach diffs to the mutants that were not killed and set the listed equivalent ones aside.
    Returns the stale entries of equivalent.toml (mutant gone, killed, or its line changed)."""
    listed = equivalents()
    stale = []
    for m in mutants:
        if m.status in ("survived", "no tests"):
            m.diff = diff_of(m.name, m.module)
            e = listed.get(m.name)
            if e is not None:
                if e["change"].strip() in changed_lines(m.diff):
                    m.status, m.reason = "equivalent", e["reason"]
                else:
                    stale.append(f"{m.name}: listed line `{e['change']}` is not this mutant's change")
    names = {m.name: m for m in mutants}
    for name in listed:
        if name not in names:
            stale.append(f"{name}: no such mutant")
        elif names[name].status in ("killed", "timeout", "crashed"):
            stale.append(f"{name}: killed, no longer a survivor")
    return stale


def score_table(df: pd.DataFrame) -> pd.DataFrame:
    def row(g):
        killed = g["status"].isin(["killed", "timeout", "crashed"]).sum()
        equivalent = (g["status"] == "equivalent").sum()
        judged = len(g) - equivalent
        return pd.Series(
            {
                "mutants": len(g),
                "killed": killed,
                "of which timeouts": (g["status"] == "timeout").sum(),
                "survived": (g["status"] == "survived").sum(),
                "no tests": (g["status"] == "no tests").sum(),
                "not run": (g["status"] == "not run").sum(),
                "equivalent": equivalent,
                "score": killed / judged if judged else 1.0,
            }
        )

    t = df.groupby("module").apply(row, include_groups=False)
    t.loc["all"] = row(df)
    for c in t.columns.drop("score"):
        t[c] = t[c].astype(int)
    return t


def markdown(t: pd.DataFrame) -> str:
    cols = ["module", *t.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for module, r in t.iterrows():
        cells = [f"**{module}**" if module == "all" else f"`{module}`"]
        cells += [f"{r[c]:.1%}" if c == "score" else str(int(r[c])) for c in t.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(out: Path, mutants: list[Mutant], stale: list[str], seconds: float | None, jobs: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame([m.__dict__ for m in mutants])
    t = score_table(df)
    score = float(t.loc["all", "score"])
    ok = "✔" if score >= GOAL and not stale else "✘"
    with open(ROOT / "pyproject.toml", "rb") as f:
        cfg = tomllib.load(f)["tool"]["mutmut"]
    took = (
        f"{seconds / 60:.1f} min with {jobs} jobs"
        if seconds is not None
        else "(report only: an earlier run's verdicts)"
    )
    head = [
        "# Mutation score",
        "",
        f"**{ok} {score:.1%}** of the non-equivalent mutants killed (goal ≥ {GOAL:.0%}); "
        f"mutmut {version('mutmut')}, {took}.",
        "",
        "Score = killed / (mutants − equivalent). A timeout counts as killed; a mutant no selected test "
        "reaches (*no tests*) counts as a survivor, and so does one the run did not get to (*not run*: "
        "an interrupted run). Survivors: `survivors.md`; equivalent mutants and why: `equivalent.md`.",
        "",
        markdown(t),
        "",
        "Tests run against each mutant (only those that call the mutated function): "
        + ", ".join(f"`{p}`" for p in cfg["pytest_add_cli_args_test_selection"])
        + ".",
    ]
    if stale:
        head += ["", "## Stale entries of equivalent.toml", "", *[f"- {s}" for s in stale]]
    (out / "score.md").write_text("\n".join(head) + "\n")

    surv = [
        "# Surviving mutants",
        "",
        "Each is a change to the code that every test calling it lets pass. `mutmut show NAME` prints one; "
        "`mutmut apply NAME` writes it into the source to try by hand.",
        "",
    ]
    for module, g in df[df["status"].isin(["survived", "no tests"])].groupby("module"):
        surv += [f"## `{module}`", ""]
        for m in g.itertuples():
            surv += [f"### {m.function}: `{m.name}` ({m.status})", "", "```diff", m.diff.strip(), "```", ""]
    if len(surv) == 4:
        surv.append("None.")
    (out / "survivors.md").write_text("\n".join(surv) + "\n")

    eq = [
        "# Equivalent mutants",
        "",
        "Mutants that compute the same results as the code, set aside by hand (experiments/mutation/equivalent.toml).",
        "",
    ]
    for m in df[df["status"] == "equivalent"].itertuples():
        eq += [f"## {m.function}: `{m.name}`", "", m.reason.strip(), "", "```diff", m.diff.strip(), "```", ""]
    (out / "equivalent.md").write_text("\n".join(eq) + "\n")
    df.drop(columns=["diff"]).to_csv(out / "mutants.csv", index=False)
    return score


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once (default: all cores)")
    p.add_argument("--keep", action="store_true", help="reuse mutants/ and its verdicts from an earlier run")
    p.add_argument(
        "--survivors", action="store_true", help="with --keep: also test again the mutants the earlier run did not kill"
    )
    p.add_argument("--report-only", action="store_true", help="write the report from mutants/ without running mutmut")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "mutation")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs={args.jobs}: must be at least 1")
    if args.survivors and not args.keep:
        p.error("--survivors needs --keep (it tests again the survivors of the kept run)")
    seconds = None
    if not args.report_only:
        if not args.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)]
        r = subprocess.run(cmd, cwd=ROOT)
        if args.keep and args.survivors and r.returncode == 0:
            again = [m.name for m in read_mutants() if m.status in ("survived", "no tests", "not run")]
            if again:  # named mutants are tested again even when their verdict is known
                r = subprocess.run(cmd + again, cwd=ROOT)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"mutmut run exited with {r.returncode}; its verdicts so far are reported", file=sys.stderr)
    elif not (ROOT / "mutants").is_dir():
        print("--report-only: no mutants/ folder; run without --report-only first", file=sys.stderr)
        return 2
    mutants = read_mutants()
    stale = classify(mutants)
    score = write(args.out, mutants, stale, seconds, args.jobs)
    rel = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"mutation score {score:.1%} (goal ≥ {GOAL:.0%}) over {len(mutants)} mutants -> {rel}/score.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

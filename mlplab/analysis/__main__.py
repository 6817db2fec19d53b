"""Analyse an mlplab results folder: its report, or one study's tables and figures.

The report, then each study of mlplab.analysis.studies.STUDIES, is a command of its name:

    python -m mlplab.analysis report results/<sweep>      report.md, report.html, figures/
    python -m mlplab.analysis report results/a results/b  one report over both folders, side by side:
                                                          results/report_a+b/ (or --out <folder>)
    python -m mlplab.analysis blog results/blog           the blog table: results/blog_table.{md,parquet,csv}
                                                          and results/blog_claim_cases.{parquet,csv}; figures/
    python -m mlplab.analysis remedies results/remedies   remedies_*.{md,csv} and figures/ in the folder
    python -m mlplab.analysis nielsen results/nielsen_mnist
    python -m mlplab.analysis chaos results/chaos

Without a folder, a command reads results/<name> (the report: results/default). A folder that is missing or not
mlplab's ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

from mlplab.analysis import load
from mlplab.analysis.report import write_report
from mlplab.analysis.studies import STUDIES
from mlplab.errors import parser, run_on

REPORT = "report"


def _report(folders: list[str], out: str | None) -> str:
    return "wrote " + ", ".join(map(str, write_report(folders, out).values()))


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m mlplab.analysis", __doc__)
    p.add_argument("what", choices=[REPORT, *STUDIES], help="the report, or one study")
    p.add_argument(
        "results",
        nargs="*",
        help="an mlplab results folder, <results_dir>/<sweep_name> (default: results/<what>); the report takes several",
    )
    p.add_argument("--out", help="report: the folder to write it into (default: the folder, or results/report_<a>+<b>)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.what == REPORT:
        folders = args.results or ["results/default"]
        return run_on(lambda first: _report([first, *folders[1:]], args.out), folders[0])
    if len(args.results) > 1 or args.out:
        p.error(f"{args.what} takes one results folder and no --out; only the report takes several")
    study = STUDIES[args.what]
    return run_on(lambda folder: study.write(load(folder)), (args.results or [f"results/{args.what}"])[0])


if __name__ == "__main__":
    sys.exit(main())

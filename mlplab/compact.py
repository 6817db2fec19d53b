"""``python -m mlplab.compact results/<sweep>``: gather a results folder's per-run files into one
file per table (``mlplab.results.compact``); sweeps do it when they end.

Reading thousands of small files is slow; after compaction ``load_results``, pandas, pyarrow,
DuckDB and polars read three files. Crash-safe: a kill at any moment loses nothing, and running
the command again finishes the job. Safe while sweeps write into the folder: one compaction at a
time holds the folder's lease (it waits for another one to end), and the files of runs still
being written are left alone.
"""

from __future__ import annotations

import sys

from mlplab.errors import command
from mlplab.results import compact


def _compact(folder: str) -> str:
    done = compact(folder)
    return f"compacted {done['runs']} runs in {folder} ({done['removed']} files replaced)"


def main(argv=None) -> int:
    return command(_compact, argv, "results/default")


if __name__ == "__main__":
    sys.exit(main())

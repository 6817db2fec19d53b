"""How mlplab's commands end on an error: one line on stderr, starting ``mlplab:``, and an exit
code (2 bad input, 1 a fault, 130 Ctrl-C); a full disk and Ctrl-C say how many runs are
committed. Also the argument handling of the commands that take one results folder
(``python -m mlplab.compact``, the analysis commands). No Hydra here (Hydra's own
errors, where it runs, count as bad input)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from mlplab import results as res
from mlplab.spec import ConfigError


class PlanError(ValueError):
    """A job of a planned sweep (or an argument of the command) that cannot run; ``str(err)``
    is one line."""


def fail(msg: str, code: int = 2) -> NoReturn:
    """Leave with a one-line message on stderr and a non-zero exit code."""
    print(f"mlplab: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def one_line(exc: BaseException) -> str:
    """An exception (and its cause, where Hydra keeps the detail) as one line of text."""
    parts = [str(exc)]
    if exc.__cause__ is not None and str(exc.__cause__) not in parts[0]:
        parts.append(str(exc.__cause__))
    parts = [p.split("Config search path")[0] for p in parts]  # Hydra's search-path dump
    return ": ".join(" ".join(p.split()) for p in parts if p.strip())


@dataclass
class Tally:
    """The results folder and the run ids a command sets out to commit, known once it has
    planned them: what its lines say when Ctrl-C or a full disk ends it early."""

    root: Path | None = None
    run_ids: list[str] = field(default_factory=list)

    def committed(self) -> int:
        """How many of ``run_ids`` are committed in ``root``."""
        return len(set(self.run_ids) & res.committed_ids(self.root)) if self.root is not None and self.run_ids else 0

    def interrupted(self) -> NoReturn:
        """Ctrl-C: one line on how far the command got, exit code 130. Every committed run
        stays; the temporary files of the runs in flight are removed as their writes unwind."""
        fail(
            f"interrupted: {self.committed()} of {len(set(self.run_ids)) or 1} runs committed; "
            "rerun the same command to resume",
            130,
        )

    def disk_full(self, err: BaseException | None = None) -> NoReturn:
        """No space left on the device (or the disk quota exceeded): one line saying how many
        runs are committed, exit code 1. Nothing committed is lost and no half-written file is
        left (``results.DiskFull``): the same command, run again once there is space, does the rest."""
        why = getattr(err, "strerror", None) or os.strerror(errno.ENOSPC)
        where = self.root if self.root is not None else getattr(err, "filename", None)
        ids = set(self.run_ids)
        committed = f"{self.committed()} of {len(ids)} runs committed" if ids else "no run committed"
        fail(
            f"disk full ({why}) writing results to {where}: {committed}; free some space and rerun "
            "the same command to finish",
            1,
        )


def exit_code(exc: BaseException) -> int:
    """2 for bad input (a config value, an unusable results folder, a bad job of a sweep,
    Hydra's unknown option or wrong type), 1 for anything else."""
    bad_input = [ConfigError, PlanError, res.ResultsError]
    for module, name in (("hydra.errors", "HydraException"), ("omegaconf.errors", "OmegaConfBaseException")):
        if module in sys.modules:  # (where it is not imported, none of its errors was raised)
            bad_input.append(getattr(sys.modules[module], name))
    return 2 if isinstance(exc, tuple(bad_input)) else 1


def leave(exc: BaseException, tally: Tally | None = None) -> NoReturn:
    """End the command on ``exc``: Ctrl-C's line or the full disk's, counting the runs of
    ``tally``; else the error's one line with its exit code."""
    tally = tally or Tally()
    if isinstance(exc, KeyboardInterrupt):
        tally.interrupted()
    if res.is_disk_full(exc):
        tally.disk_full(exc)
    fail(one_line(exc), exit_code(exc))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit code 2
        self.exit(2, f"mlplab: {self.prog}: {message} (--help shows the usage)\n")


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A command's parser: the first line of ``doc`` as its description, the rest as the epilog
    of ``--help``; an argument error is one line on stderr and exit code 2."""
    doc = (doc or "").strip()
    return _Parser(
        prog=prog,
        description=doc.split("\n")[0],
        epilog="\n".join(doc.split("\n")[1:]).strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_on(action: Callable[[str], str], folder: str) -> int:
    """``action(folder)``, its text printed (exit code 0); a folder that is missing or not
    mlplab's is one line on stderr and exit code 2."""
    try:
        # normalised ('results/x/runs/..' is 'results/x'): the files a command writes beside or
        # inside the folder are named after its real name, never '..'
        print(action(os.path.normpath(folder)))
    except res.ResultsError as e:
        print(f"mlplab: {e}", file=sys.stderr)
        return 2
    return 0


def command(action: Callable[[str], str], argv: list[str] | None, default: str) -> int:
    """A command on one results folder: ``action(folder)`` (``default`` when none is given), its
    text printed; ``--help`` prints the usage (the command module's docstring); bad arguments, or
    a folder that is missing or not mlplab's, give one line on stderr and exit code 2."""
    module = sys.modules[action.__module__]
    name = module.__spec__.name if module.__spec__ else action.__module__
    p = parser(f"python -m {name}", module.__doc__)
    p.add_argument(
        "results",
        nargs="?",
        default=default,
        help=f"an mlplab results folder, <results_dir>/<sweep_name> (default: {default})",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    return run_on(action, args.results)

"""What the edge-of-chaos study's tables say, in words: what was run, where the measured decay
per layer and the theory agree and disagree, and the trainable depth against multiples of ξ_c.
The numbers are computed here, the words are the templates of ``text.md``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplab.analysis.fmt import strings, values
from mlplab.analysis.prose import Prose
from mlplab.analysis.studies.chaos.measures import (
    ACC_TARGET,
    NEAR_CRITICAL,
    RATE_TOL,
    TRAIN_MULTIPLE,
    multiple_brackets,
)
from mlplab.analysis.studies.chaos.select import SKIP_INPUT, SKIP_OUTPUT, fit_layers, init_runs, train_runs

TEXT = Prose.of(__package__)


def what_was_run(res) -> list[str]:
    """One sentence per part of the study, from the runs themselves."""
    out = []
    ir, tr = init_runs(res), train_runs(res)
    if len(ir):
        first, last = fit_layers(int(ir["depth"].median()))
        out.append(
            TEXT(
                "run.init",
                runs=len(ir),
                activations=strings(ir["activation"]),
                depths=values(ir["depth"]),
                widths=values(ir["width"]),
                sigma_w2=values(ir["sigma_w"] ** 2),
                sigma_b2=values(ir["sigma_b"] ** 2),
                seeds=ir.groupby(["sigma_w", "sigma_b"]).size().max(),
                first=first,
                last=last,
                skip_input=SKIP_INPUT,
                skip_output=SKIP_OUTPUT,
            )
        )
    if len(tr):
        out.append(
            TEXT(
                "run.train",
                runs=len(tr),
                activations=strings(tr["activation"]),
                widths=values(tr["width"]),
                sigma_b2=values(tr["sigma_b"] ** 2),
                depths=values(tr["depth"]),
                sigma_w2=values(tr["sigma_w"] ** 2),
                seeds=tr.groupby(["depth", "sigma_w", "sigma_b"]).size().max(),
                datasets=strings(tr["dataset"]),
                lr=values(tr["lr"]),
                batch=values(tr["batch_size"]),
                steps=values(tr["n_steps"]),
                target=ACC_TARGET,
            )
        )
    return out


def _compare(a: float, b: float) -> str:
    """'about equal to' (within 10%), 'more than' or 'less than'."""
    return TEXT("compare.equal") if abs(a - b) <= 0.1 * abs(b) else TEXT("compare.more" if a > b else "compare.less")


def _off_sentence(off: pd.DataFrame) -> str:
    """The cells whose measured rate is more than RATE_TOL from ln χ1, and why."""
    worst = off.loc[np.abs(off["diff"]).idxmax()]
    ends = off[np.abs(off["diff_path"]) <= RATE_TOL]
    text = TEXT(
        "decay.off",
        off=len(off),
        tol=RATE_TOL,
        sigma_w2=values(off["sigma_w2"]),
        sigma_b2=values(off["sigma_b2"]),
        worst_sigma_w2=worst["sigma_w2"],
        worst_sigma_b2=worst["sigma_b2"],
        worst_rate=worst["rate"],
        worst_log_chi1=worst["log_chi1"],
        worst_path=worst["rate_path"],
    )
    if len(ends):
        text += " " + TEXT("decay.off_at_the_ends", ends=len(ends), tol=RATE_TOL)
    if len(ends) < len(off):
        text += " " + TEXT("decay.off_everywhere", missed=len(off) - len(ends), tol=RATE_TOL)
    return text


def decay_sentences(t: pd.DataFrame) -> list[str]:
    """Where the measured per-layer rate and the theory agree and disagree, from the numbers."""
    t = t[np.isfinite(t["rate"])]
    if t.empty:
        return [TEXT("decay.none_finite")]
    off = t[np.abs(t["diff"]) > RATE_TOL]
    out = [
        TEXT(
            "decay.summary",
            cells=len(t),
            tol=RATE_TOL,
            inside=len(t) - len(off),
            gap=np.median(np.abs(t["diff"])),
            lowest=t["log_chi1"].min(),
            highest=t["log_chi1"].max(),
        )
    ]
    if len(off):
        out.append(_off_sentence(off))
    near = t[np.abs(t["log_chi1"]) < NEAR_CRITICAL]
    if len(near):
        same = (np.sign(near["rate"]) == np.sign(near["log_chi1"])).sum()
        spread, size = np.median(near["rate_max"] - near["rate_min"]), np.median(np.abs(near["log_chi1"]))
        out.append(
            TEXT(
                "decay.near",
                near=NEAR_CRITICAL,
                cells=len(near),
                layers=1 / NEAR_CRITICAL,
                same=same,
                spread=spread,
                compared=_compare(spread, size),
                size=size,
            )
            + (TEXT("decay.near_undecided") if spread > 0.9 * size else ".")
        )
    bias = t["diff_path"].median()
    jensen = t["jensen"].median()
    alike = np.sign(bias) == np.sign(jensen) and 1 / 3 <= abs(bias / jensen) <= 3 if jensen else False
    width = TEXT(
        "decay.width",
        width=int(t["width"].median()),
        low=(t["diff_path"] < 0).sum(),
        cells=len(t),
        bias=bias,
        spread=(t["rate_max"] - t["rate_min"]).median(),
        jensen=jensen,
    )
    out.append(width + " " + TEXT("decay.jensen_alike" if alike else "decay.jensen_unlike"))
    ends = (t["rate_all"] - t["rate"]).dropna()
    if ends.empty:
        return out
    largest = np.abs(ends).idxmax()
    out.append(
        TEXT(
            "decay.ends",
            first=int(t["first"].iloc[0]),
            last=int(t["last"].iloc[0]),
            median=ends.median(),
            largest=np.abs(ends).max(),
            sigma_w2=t.loc[largest, "sigma_w2"],
            sigma_b2=t.loc[largest, "sigma_b2"],
        )
    )
    return out


def _cells(d: pd.DataFrame) -> str:
    """'0.75 at depth 8, 1 at depth 16 and 32, ...' for the rows of d, by σ_w²."""
    return ", ".join(
        TEXT("train.cell", sigma_w2=sw2, depths=" and ".join(f"{x:g}" for x in sorted(g["depth"])))
        for sw2, g in d.groupby("sigma_w2")
    )


def _bracket_sentences(tt: pd.DataFrame, multiple: float) -> list[str]:
    """Between which multiples of ξ_c the measured trainable depth lies, per σ_w²."""
    out = []
    b = multiple_brackets(tt)
    b = b[np.isfinite(b["upper"]) & (b["lower"] > 0)]
    shallow = b[b["upper"] < 1]  # a failure less than one ξ_c deep: not a loss of signal
    if len(shallow):
        cells = ", ".join(
            TEXT("train.shallow_one", sigma_w2=r.sigma_w2, depth=r.first_failure, xi_c=r.xi_c)
            for r in shallow.itertuples()
        )
        out.append(TEXT("train.shallow", cells=cells))
    b = b[b["upper"] >= 1]
    if len(b):
        lo, hi = b["lower"].max(), b["upper"].min()
        spans = ", ".join(
            TEXT("train.bracket_one", sigma_w2=r.sigma_w2, lower=r.lower, upper=r.upper) for r in b.itertuples()
        )
        verdict = TEXT("train.one_multiple" if lo < hi else "train.no_multiple", lower=lo, upper=hi)
        out.append(
            TEXT(
                "train.brackets",
                spans=spans,
                verdict=verdict,
                multiple=multiple,
                above=(b["upper"] <= multiple).sum(),
                cells=len(b),
                inside=((b["lower"] <= multiple) & (multiple < b["upper"])).sum(),
                below=(b["lower"] > multiple).sum(),
            )
        )
    return out


def train_sentences(tt: pd.DataFrame, multiple: float = TRAIN_MULTIPLE) -> list[str]:
    """Measured trainable depth against multiple × ξ_c, from the numbers."""
    if tt.empty:
        return []
    measured = tt["fraction"] >= 0.5
    out = [TEXT("train.agree", multiple=multiple, agree=(measured == tt["predicted"]).sum(), cells=len(tt))]
    over = tt[~measured & tt["predicted"]]
    under = tt[measured & ~tt["predicted"]]
    if len(over):
        out.append(
            TEXT(
                "train.over",
                over=len(over),
                cells=_cells(over),
                lowest=over["depth_over_xi_c"].min(),
                highest=over["depth_over_xi_c"].max(),
            )
        )
    if len(under):
        out.append(
            TEXT(
                "train.under",
                multiple=multiple,
                under=len(under),
                cells=_cells(under),
                highest=under["depth_over_xi_c"].max(),
            )
        )
    return out + _bracket_sentences(tt, multiple)

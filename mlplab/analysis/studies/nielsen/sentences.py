"""What the Nielsen study's tables say, in words: the numbers are computed here, the words are
the templates of ``text.md``."""

from __future__ import annotations

import pandas as pd

from mlplab.analysis.fmt import plural
from mlplab.analysis.prose import Prose
from mlplab.analysis.studies.nielsen.measures import training_checkpoints, training_curves
from mlplab.analysis.studies.nielsen.published import NIELSEN_EPOCHS, NIELSEN_TRAINING, is_his_protocol
from mlplab.analysis.studies.nielsen.select import PROTOCOL_KEYS

TEXT = Prose.of(__package__)

# Nielsen's "about 4–5× per layer", read as a range of slowdown factors
ABOUT_4_TO_5 = (3.5, 5.5)


def init_sentences(pct: pd.DataFrame, slow: pd.DataFrame) -> list[str]:
    """What the tables at initialisation say, in words, computed from them (one data set)."""
    have = pct.dropna(subset=["nielsen"])
    out_rows = have[~have.inside.astype(bool)]
    outside = "; ".join(
        TEXT("init.outside_one", depth=r.depth, layer=r.layer, percentile=r.percentile) for r in out_rows.itertuples()
    )
    n = int(have.n.min()) if len(have) else 0
    inside = TEXT("init.inside", inside=int(have.inside.sum()), values=len(have), networks=plural(n, "network"))
    lines = [
        inside + (TEXT("init.outside", outside=outside) if len(out_rows) else "."),
        TEXT(
            "init.percentiles",
            lowest=have.percentile.min(),
            highest=have.percentile.max(),
            median=have.percentile.median(),
        ),
    ]
    sl = slow.dropna(subset=["nielsen"])
    if len(sl):
        low, high = ABOUT_4_TO_5
        in_range = sl["median"].between(low, high)
        where = (
            TEXT("init.pairs_all", pairs=len(sl))
            if in_range.all()
            else TEXT("init.pairs_some", holds=int(in_range.sum()), pairs=len(sl))
        )
        lines.append(
            TEXT(
                "init.slowdown",
                lowest=sl["median"].min(),
                highest=sl["median"].max(),
                factors=len(sl),
                his_lowest=sl.nielsen.min(),
                his_highest=sl.nielsen.max(),
                inside=int(sl.inside.sum()),
                low=low,
                high=high,
                where=where,
            )
        )
    return lines


def training_sentences(results) -> list[str]:
    """What the training curves say next to his, computed from them (his protocol only)."""
    cp = training_checkpoints(results)
    if cp.empty:
        return []
    curves = training_curves(results)
    curves = curves[[is_his_protocol(p) for p in curves[PROTOCOL_KEYS].itertuples(index=False)]]
    last = int(cp.epoch.max())
    at_last = cp[cp.epoch == last]
    seeds = plural(int(cp.n.min()), "seed")
    lines = [
        TEXT("training.epoch", epoch=e, inside=int(g.inside.sum()), values=len(g), seeds=seeds)
        for e, g in cp.groupby("epoch")
    ]
    falls = []
    on_his = curves[curves.epoch.isin(NIELSEN_EPOCHS)]  # both curves at the epochs his are kept at
    for d, g in on_his[on_his.depth.isin(list(NIELSEN_TRAINING))].groupby("depth"):
        first = g[g.layer == 1].sort_values("epoch")
        ours = first["median"]
        his = [NIELSEN_TRAINING[d][0][NIELSEN_EPOCHS.index(int(e))] for e in first.epoch]
        falls.append(TEXT("training.fall_one", ours=ours.iloc[0] / ours.min(), depth=d, his=his[0] / min(his)))
    lines.append(TEXT("training.fall", epochs=len(NIELSEN_EPOCHS), last=NIELSEN_EPOCHS[-1], falls=", ".join(falls)))
    ours, his = {}, {}
    for d, g in at_last.groupby("depth"):
        ours[d] = g[g.layer == 1]["median"].iloc[0] / g[g.layer == d]["median"].iloc[0]
        his[d] = g[g.layer == 1].nielsen.iloc[0] / g[g.layer == d].nielsen.iloc[0]
    ratios = "; ".join(TEXT("training.first_over_last_one", depth=d, ours=ours[d], his=his[d]) for d in ours)
    still = max(*ours.values(), *his.values()) < 1
    lines.append(
        TEXT("training.first_over_last", epoch=last, ratios=ratios) + (TEXT("training.still_slower") if still else ".")
    )
    return lines

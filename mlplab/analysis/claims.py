"""The blog post's empirical claims, checked on a results folder: numbers and computed verdicts.

Each ``claim_*`` function takes a results folder (or a ``Results``) and returns a DataFrame of
measurements; ``verdicts`` turns them into one row per claim with a verdict string computed from
*cases* (one per depth, loss, phase...): "reproduced" when the claim holds in every case that the
data decide, "not reproduced" when in none, "reproduced only when ..." naming the cases where it
holds, and "not enough data" when the sweep lacks the runs a claim needs.

The post's claims (see the seed post's summary):
  1. cross-entropy converges faster than MSE with a sigmoid output (its δ^L lacks σ');
  2. gradients vanish toward the lower layers of a sigmoid network (σ' ≤ 1/4 at every layer);
  3. gradients explode when the per-layer factor exceeds 1;
  4. remedies: ReLU (derivative 1), gradient clipping.

"Speed of learning" of layer l is Nielsen's ‖∂C/∂b^l‖ (``grad_b_norm``); layer 1 is the first
hidden layer, layer L = depth + 1 the output layer.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplab import theory
from mlplab.analysis import load

NOT_ENOUGH = "not enough data"
# config values that define a "setting" besides the network shape, loss, clip rule and seed
SETTING = [
    "residual", "norm", "init", "sigma_w", "sigma_b", "lr", "width", "batch_size", "epochs", "weight_decay",
    "dataset", "n_samples", "n_features", "n_classes", "noise", "dtype",
]
CONFIG = ["activation", "alpha", "depth", "loss"] + SETTING
PHASES = ("initialisation", "after training")
CE_LOSSES = ("bce", "softmax_ce")
LOSS_FRAC = 0.5  # claim 1: steps until the training loss is at most this fraction of its initial value
ACC_FRAC = 0.9  # claim 1: test-accuracy target = this fraction of the best median final test accuracy
VANISH_BELOW = 0.1  # claim 2: first-to-last gradient ratio below this = the first layer learns >= 10x slower
EXPLODE_FACTOR = 100.0  # claim 3: a setting explodes if unclipped runs diverge or their max gradient norm
#                         grows this many times over its initial value


# -- selections ---------------------------------------------------------------------------------
def present(df: pd.DataFrame, cols) -> list[str]:
    return [c for c in cols if c in df.columns]


def main_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The main grid: unclipped runs in the most common setting (init, σ_w, σ_b, lr, data...).

    Claims 1 and 2 compare losses, depths and activations at one learning rate and one
    initialisation; runs of other settings (e.g. the exploding study) are left out.
    """
    r = runs[runs["clip"] == "none"]
    if r.empty:
        return r
    key = r[present(r, SETTING)].astype(str).agg("|".join, axis=1)
    return r[key == key.value_counts().idxmax()]


def setting_values(runs: pd.DataFrame, cols=("lr", "init", "sigma_w", "sigma_b")) -> str:
    """'lr=0.5, init=normal, ...' for the values shared by ``runs``."""
    parts = []
    for c in present(runs, cols):
        vals = runs[c].dropna().unique()
        if len(vals) == 1:
            parts.append(f"{c}={fmt(vals[0])}")
    return ", ".join(parts)


def fmt(x) -> str:
    """Short human form of a number (or a value)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "never" if x > 0 else "-inf"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.1e}"
    return f"{x:.3g}"


# -- verdicts -------------------------------------------------------------------------------------
def _describe(values: list, holding: set) -> str:
    """How the holding values of one column read: 'depth ≤ 4', 'loss ∈ {bce, softmax_ce}'."""
    vals = sorted(values, key=lambda v: (str(type(v)), v))
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in vals) and len(vals) > 2:
        flags = [v in holding for v in vals]
        if flags == sorted(flags, reverse=True):
            return f"≤ {fmt(max(holding))}"
        if flags == sorted(flags):
            return f"≥ {fmt(min(holding))}"
    inside = [fmt(v) for v in vals if v in holding]
    return f"= {inside[0]}" if len(inside) == 1 else "∈ {" + ", ".join(inside) + "}"


def _where(cases: pd.DataFrame, conds: list[str]) -> str:
    """The conditions under which ``cases.holds`` is True, as short text."""
    for c in conds:
        yes = set(cases.loc[cases["holds"], c])
        no = set(cases.loc[~cases["holds"], c])
        if yes and not yes & no:
            return f"{c} {_describe(list(yes | no), yes)}"
    if not conds:
        return "in some cases"
    c, parts = conds[0], []
    for v, g in cases.groupby(c, sort=True):
        if g["holds"].all():
            parts.append(f"{c} = {fmt(v)}")
        elif g["holds"].any():
            parts.append(f"{c} = {fmt(v)} and {_where(g, conds[1:])}")
    return "; or ".join(parts)


def verdict(cases: pd.DataFrame, conds: list[str]) -> str:
    """'reproduced', 'not reproduced', 'reproduced only when ...' or 'not enough data'.

    ``cases`` has a ``holds`` column (True, False, or None/NaN when the data cannot decide)
    and the condition columns ``conds`` that tell the cases apart. Undecided cases are named
    in parentheses.
    """
    if cases is None or cases.empty or "holds" not in cases:
        return NOT_ENOUGH
    decided = cases[cases["holds"].notna()].copy()
    if decided.empty:
        return NOT_ENOUGH
    decided["holds"] = decided["holds"].astype(bool)
    if decided["holds"].all():
        out = "reproduced"
    elif not decided["holds"].any():
        out = "not reproduced"
    else:
        out = "reproduced only when " + _where(decided, conds)
    if len(decided) < len(cases):
        undecided = cases.assign(holds=cases["holds"].isna())
        out += f" (undecided when {_where(undecided, conds)})"
    return out


# -- claim 1: cross-entropy converges faster than MSE ---------------------------------------------
def steps_to_target(steps: pd.DataFrame, loss_frac: float, acc_target: float) -> pd.DataFrame:
    """Per run: the first logged step with training loss ≤ loss_frac × its step-0 value, and the
    first with test accuracy ≥ acc_target (inf when never reached, e.g. a diverged run)."""
    s = steps.sort_values(["run_id", "step"])
    loss0 = s[s["step"] == 0].set_index("run_id")["train_loss"]
    hit_loss = s["train_loss"] <= s["run_id"].map(loss0) * loss_frac
    hit_acc = s["test_accuracy"] >= acc_target
    out = pd.DataFrame(index=pd.Index(s["run_id"].unique(), name="run_id"))
    out["steps_loss"] = s[hit_loss].groupby("run_id")["step"].min()
    out["steps_accuracy"] = s[hit_acc].groupby("run_id")["step"].min()
    return out.astype(float).fillna(math.inf).reset_index()


def _spread(x: pd.Series) -> pd.Series:
    v = np.sort(x.to_numpy(float))
    return pd.Series({
        "n": len(v),
        "n_reached": int(np.isfinite(v).sum()),
        "median": float(np.median(v)),
        "q25": float(np.quantile(v, 0.25, method="nearest")),
        "q75": float(np.quantile(v, 0.75, method="nearest")),
    })


def accuracy_target(runs: pd.DataFrame, frac: float = ACC_FRAC) -> float:
    """``frac`` × the best median final test accuracy over (activation, depth, loss), 2 decimals."""
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return math.nan
    best = ok.groupby(["activation", "depth", "loss"])["final_test_accuracy"].median().max()
    return round(float(frac * best), 2)


def claim_convergence(source, loss_frac: float = LOSS_FRAC, acc_target: float | None = None) -> pd.DataFrame:
    """Steps to reach a training-loss target and a test-accuracy target, per activation, depth
    and loss, in the main grid (one lr for all losses): median and quartiles over seeds."""
    res = load(source)
    runs = main_runs(res.runs)
    cols = ["target", "target_value", "lr", "activation", "depth", "loss", "n", "n_reached", "median", "q25", "q75"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    acc_target = accuracy_target(runs) if acc_target is None else acc_target
    steps = res.steps[res.steps["run_id"].isin(runs["run_id"])]
    reach = steps_to_target(steps, loss_frac, acc_target).merge(
        runs[["run_id", "lr", "activation", "depth", "loss"]], on="run_id"
    )
    frames = []
    for kind, col, value in [("train loss", "steps_loss", loss_frac), ("test accuracy", "steps_accuracy", acc_target)]:
        g = reach.groupby(["lr", "activation", "depth", "loss"])[col].apply(_spread).unstack().reset_index()
        g.insert(0, "target_value", value)
        g.insert(0, "target", kind)
        frames.append(g)
    out = pd.concat(frames, ignore_index=True)
    out[["n", "n_reached"]] = out[["n", "n_reached"]].astype(int)
    return out[cols]


def convergence_cases(conv: pd.DataFrame, target: str, activation: str = "sigmoid") -> pd.DataFrame:
    """One case per (depth, cross-entropy loss): does it reach the target in fewer median steps
    than MSE? Undecided (None) when neither reaches it."""
    d = conv[(conv["target"] == target) & (conv["activation"] == activation)]
    rows = []
    for (lr, depth), g in d.groupby(["lr", "depth"]):
        med = g.set_index("loss")["median"]
        if "mse" not in med:
            continue
        for ce in CE_LOSSES:
            if ce in med:
                undecided = math.isinf(med[ce]) and math.isinf(med["mse"])
                rows.append({"lr": lr, "depth": depth, "loss": ce, "holds": None if undecided else bool(med[ce] < med["mse"])})
    return pd.DataFrame(rows, columns=["lr", "depth", "loss", "holds"])


def _convergence_evidence(conv: pd.DataFrame, target: str, activation: str = "sigmoid") -> str:
    d = conv[(conv["target"] == target) & (conv["activation"] == activation)]
    parts = []
    for depth, g in d.groupby("depth"):
        if (g["n_reached"] == 0).all():
            parts.append(f"depth {depth}: no loss reaches it")
            continue
        meds = ", ".join(
            f"{r.loss} {fmt(r.median)}" + ("" if r.n_reached == r.n else f" ({r.n_reached}/{r.n} reach)")
            for r in g.sort_values("loss", key=lambda s: s.map({"mse": 0, "bce": 1, "softmax_ce": 2})).itertuples()
        )
        parts.append(f"depth {depth}: {meds}")
    return "; ".join(parts)


# -- claim 2: vanishing gradients ---------------------------------------------------------------
def gradient_ratios(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run and phase: ‖∂C/∂b^1‖/‖∂C/∂b^L‖ at step 0 ('initialisation') and at the last
    logged step of an ok run ('after training'). Networks without hidden layers are skipped.

    Under batch norm ∂C/∂b^l = 1ᵀ δ^l = 0 in every hidden layer (the bias is redundant), so
    for those runs the ratio is ‖∂C/∂W^1‖/‖∂C/∂W^L‖ instead; ``measure`` names the column used."""
    lay = layers[layers["depth"] >= 1]
    if lay.empty:
        return pd.DataFrame(columns=["run_id", "phase", "step", "ratio", "measure"])
    last_step = lay.groupby("run_id")["step"].transform("max")
    picks = {
        PHASES[0]: lay[lay["step"] == 0],
        PHASES[1]: lay[(lay["step"] == last_step) & (lay["status"] == "ok") & (lay["step"] > 0)],
    }
    frames = []
    for phase, d in picks.items():
        first = d[d["layer"] == 1].set_index("run_id")
        last = d[d["layer"] == d["depth"] + 1].set_index("run_id").reindex(first.index)
        batch_norm = (first["norm"] == "batch") if "norm" in first else pd.Series(False, index=first.index)
        measure = np.where(batch_norm, "grad_w_norm", "grad_b_norm")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = first["grad_b_norm"] / last["grad_b_norm"]
            if batch_norm.any():
                ratio = ratio.where(~batch_norm, first["grad_w_norm"] / last["grad_w_norm"])
        frames.append(pd.DataFrame({"run_id": first.index, "phase": phase, "step": first["step"].to_numpy(),
                                    "ratio": ratio.to_numpy(), "measure": measure}))
    return pd.concat(frames, ignore_index=True)


def predicted_ratio(activation: str, init: str, sigma_w: float, sigma_b: float, width: int, depth: int,
                    residual: bool = False, norm: str = "none") -> float:
    """Mean-field prediction of ‖δ^1‖/‖δ^L‖ = ∏_(l=1..depth) √χ^l (``mlplab.theory.profile``),
    with each initialiser's effective (σ_w, σ_b); NaN where the theory has no answer — and for
    residual or normalised networks, which ``mlplab.theory`` does not model."""
    if residual or norm not in ("none", None):
        return math.nan
    if init != "normal":
        sigma_w, sigma_b = theory.effective_sigmas(init, width, width, sigma_w, sigma_b)
    try:
        return float(theory.profile(activation, sigma_w, sigma_b, int(depth))["ratio"].prod())
    except (ValueError, RuntimeError):
        return math.nan


def claim_vanishing(source) -> pd.DataFrame:
    """First-to-last gradient ratio by activation, depth and phase over the unclipped runs of
    each setting: median, quartiles, per-layer factor (median^(1/depth)) and the mean-field
    prediction."""
    res = load(source)
    cols = ["activation", "residual", "norm", "init", "sigma_w", "sigma_b", "lr", "depth", "phase", "n", "median", "q25", "q75", "per_layer", "predicted", "predicted_per_layer", "main"]
    runs = res.runs[res.runs["clip"] == "none"]
    ratios = gradient_ratios(res.layers[res.layers["run_id"].isin(runs["run_id"])])
    if ratios.empty:
        return pd.DataFrame(columns=cols)
    keys = ["activation", "residual", "norm", "init", "sigma_w", "sigma_b", "lr", "width", "depth"]
    d = ratios.merge(runs[["run_id"] + keys], on="run_id")
    g = d.groupby(keys + ["phase"])["ratio"]
    out = pd.DataFrame({
        "n": g.size(), "median": g.median(),
        "q25": g.quantile(0.25), "q75": g.quantile(0.75),
    }).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["per_layer"] = out["median"] ** (1.0 / out["depth"])
    pred = {k: predicted_ratio(k.activation, k.init, k.sigma_w, k.sigma_b, k.width, k.depth, k.residual, k.norm)
            for k in out[keys].drop_duplicates().itertuples(index=False)}
    out["predicted"] = [pred[k] for k in out[keys].itertuples(index=False)]
    out["predicted_per_layer"] = out["predicted"] ** (1.0 / out["depth"])
    out["main"] = _is_main(out, main_runs(res.runs))
    out["phase"] = pd.Categorical(out["phase"], PHASES, ordered=True)
    return out.sort_values(["main", "activation", "residual", "norm", "init", "sigma_w", "phase", "depth"],
                           ascending=[False, True, True, True, True, True, True, True])[cols].reset_index(drop=True)


def _is_main(table: pd.DataFrame, main: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` whose (residual, norm, init, σ_w, σ_b, lr) setting is in the main grid."""
    keys = ["residual", "norm", "init", "sigma_w", "sigma_b", "lr"]
    if main.empty:
        return pd.Series(False, index=table.index)
    ref = main[keys].drop_duplicates().astype(str).agg("|".join, axis=1)
    return table[keys].astype(str).agg("|".join, axis=1).isin(set(ref))


def vanishing_cases(van: pd.DataFrame, activation: str = "sigmoid", below: float = VANISH_BELOW) -> pd.DataFrame:
    """One case per (phase, depth) of the main grid: is the median ratio below ``below``?"""
    d = van[van["main"] & (van["activation"] == activation)]
    return pd.DataFrame({
        "phase": d["phase"].astype(str), "depth": d["depth"],
        "holds": [None if math.isnan(m) else bool(m < below) for m in d["median"]],
    })


def relu_cases(van: pd.DataFrame) -> pd.DataFrame:
    """One case per (phase, depth): is ReLU's median ratio above the sigmoid's?"""
    d = van[van["main"]]
    if d.empty:
        return pd.DataFrame(columns=["phase", "depth", "holds"])
    piv = d.pivot_table(index=["phase", "depth"], columns="activation", values="median", observed=True)
    if "relu" not in piv or "sigmoid" not in piv:
        return pd.DataFrame(columns=["phase", "depth", "holds"])
    piv = piv.dropna(subset=["relu", "sigmoid"])
    return pd.DataFrame({
        "phase": piv.index.get_level_values("phase").astype(str),
        "depth": piv.index.get_level_values("depth"),
        "holds": (piv["relu"] > piv["sigmoid"]).to_numpy(),
    })


def _ratio_evidence(van: pd.DataFrame, activations) -> str:
    d = van[van["main"] & van["activation"].isin(activations)]
    parts = []
    for (phase, act), g in d.groupby(["phase", "activation"], observed=True, sort=True):
        vals = ", ".join(f"{r.depth}: {fmt(r.median)}" for r in g.sort_values("depth").itertuples())
        parts.append(f"{act}, {phase} (depth: ratio) {vals}")
    return "; ".join(parts) or f"no {' or '.join(activations)} runs with hidden layers in the main grid"


# -- claims 3 and 4: exploding gradients and clipping ---------------------------------------------
def claim_exploding(source, factor: float = EXPLODE_FACTOR) -> pd.DataFrame:
    """Per setting (config without clip rule and seed) and clip rule: divergence rate, median
    final loss of the runs that finished, median of the per-run maximum (pre-clip) gradient norm,
    median step-0 first-to-last ratio. ``exploding`` marks settings whose unclipped runs diverge
    or whose gradient norm grows ``factor``-fold."""
    res = load(source)
    runs = res.runs
    keys = present(runs, CONFIG)
    cols = keys + ["clip", "clip_threshold", "n", "n_diverged", "diverged_rate", "final_loss", "max_grad_norm", "growth", "ratio_step0", "exploding"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    st = res.steps
    per_run = pd.DataFrame({
        "max_grad_norm": st.groupby("run_id")["grad_norm"].max(),
        "grad_norm0": st[st["step"] == 0].groupby("run_id")["grad_norm"].first(),
    })
    ratios = gradient_ratios(res.layers)
    r0 = ratios[ratios["phase"] == PHASES[0]].set_index("run_id")["ratio"].rename("ratio_step0")
    d = runs.merge(per_run.join(r0, how="left"), left_on="run_id", right_index=True, how="left")
    d["diverged"] = d["status"] == "diverged"
    with np.errstate(divide="ignore", invalid="ignore"):
        d["growth"] = d["max_grad_norm"] / d["grad_norm0"]
    clip_key = ["clip", "clip_threshold"]
    g = d.groupby(keys + clip_key, dropna=False)
    out = pd.DataFrame({
        "n": g.size(), "n_diverged": g["diverged"].sum(),
        "final_loss": g["final_loss"].median(), "max_grad_norm": g["max_grad_norm"].median(),
        "growth": g["growth"].median(), "ratio_step0": g["ratio_step0"].median(),
    }).reset_index()
    out["diverged_rate"] = out["n_diverged"] / out["n"]
    unclipped = out[out["clip"] == "none"]
    boom = unclipped[(unclipped["n_diverged"] > 0) | (unclipped["growth"] >= factor)]
    sig = lambda df: df[keys].astype(str).agg("|".join, axis=1)  # noqa: E731
    out["exploding"] = sig(out).isin(set(sig(boom))) if len(boom) else False
    return out.sort_values(["exploding"] + keys + clip_key, ascending=[False] + [True] * (len(keys) + 2))[cols].reset_index(drop=True)


def varying(df: pd.DataFrame, cols) -> list[str]:
    return [c for c in cols if c in df and df[c].nunique(dropna=False) > 1]


def explode_cases(exp: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One case per exploding unclipped setting: did the gradient grow toward the input
    (step-0 first-to-last ratio > 1)?"""
    d = exp[exp["exploding"] & (exp["clip"] == "none")]
    conds = varying(d, ["activation", "loss", "depth", "sigma_w", "init", "lr"])
    cases = d[conds].copy()
    cases["holds"] = [None if math.isnan(r) else bool(r > 1) for r in d["ratio_step0"]]
    return cases, conds


def clipping_cases(exp: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One case per exploding setting with both unclipped and norm-clipped runs: does norm
    clipping lower the divergence rate (or, when neither diverges, the final loss)?"""
    d = exp[exp["exploding"]]
    keys = present(d, CONFIG)
    none = d[d["clip"] == "none"].set_index(keys)
    norm = d[d["clip"] == "norm"].groupby(keys).first()
    both = none.index.intersection(norm.index)
    rows = []
    for k in both:
        a, b = none.loc[k], norm.loc[k]
        a = a.iloc[0] if isinstance(a, pd.DataFrame) else a
        if a["diverged_rate"] > 0 or b["diverged_rate"] > 0:
            holds = bool(b["diverged_rate"] < a["diverged_rate"])
        else:
            holds = bool(b["final_loss"] < a["final_loss"])
        rows.append(dict(zip(keys, k if isinstance(k, tuple) else (k,)), holds=holds))
    cases = pd.DataFrame(rows, columns=keys + ["holds"])
    conds = varying(cases, ["activation", "loss", "depth", "sigma_w", "init", "lr"])
    return cases[conds + ["holds"]], conds


def _explode_evidence(exp: pd.DataFrame) -> str:
    d = exp[exp["exploding"]]
    if d.empty:
        return "no setting explodes"
    parts = []
    for clip, g in d.groupby("clip"):
        parts.append(
            f"clip={clip}: {int(g['n_diverged'].sum())}/{int(g['n'].sum())} runs diverge, "
            f"median final loss {fmt(g['final_loss'].median())}, "
            f"median max gradient norm {fmt(g['max_grad_norm'].median())}, "
            f"step-0 ratio {fmt(g['ratio_step0'].median())}"
        )
    where = varying(d, ["activation", "loss", "depth", "sigma_w", "init", "lr"])
    n_set = len(d[d["clip"] == "none"])
    what = f"{n_set} exploding setting" + ("s" if n_set != 1 else "") + (f" (varying {', '.join(where)})" if where else "")
    return f"{what}: " + "; ".join(parts)


# -- all claims -----------------------------------------------------------------------------------
VERDICT_COLUMNS = ["claim", "post_claim", "check", "verdict", "evidence"]


def verdicts(source, loss_frac: float = LOSS_FRAC, acc_target: float | None = None) -> pd.DataFrame:
    """One row per checked claim: claim id, what the post says, how it is checked, the computed
    verdict and the numbers behind it."""
    res = load(source)
    main = main_runs(res.runs)
    setting = setting_values(main) if not main.empty else "no main grid"
    acc = accuracy_target(main) if acc_target is None else acc_target
    conv = claim_convergence(res, loss_frac, acc)
    van = claim_vanishing(res)
    exp = claim_exploding(res)
    rows = []

    def add(cid, post, check, cases, conds, evidence):
        v = verdict(cases, conds)
        rows.append({"claim": cid, "post_claim": post, "check": check, "verdict": v, "evidence": evidence})

    post1 = "cross-entropy converges faster than MSE (δ^L has no σ' factor)"
    for cid, target, what in [("1a", "train loss", f"training loss ≤ {loss_frac:g} × its initial value"), ("1b", "test accuracy", f"test accuracy ≥ {fmt(acc)}")]:
        add(cid, post1, f"sigmoid, {setting}: median steps (over seeds) until {what}; bce and softmax_ce vs mse at each depth",
            convergence_cases(conv, target), ["depth", "loss"], _convergence_evidence(conv, target))
    add("2", "gradients vanish toward the lower layers of a sigmoid network (σ' ≤ 1/4)",
        f"sigmoid, {setting}: median ‖∂C/∂b^1‖/‖∂C/∂b^L‖ < {VANISH_BELOW:g} (first layer learns ≥ {1 / VANISH_BELOW:g}× slower)",
        vanishing_cases(van), ["phase", "depth"], _ratio_evidence(van, ["sigmoid"]))
    add("4a", "ReLU (derivative 1) is a remedy for vanishing gradients",
        f"{setting}: median first-to-last ratio of relu > sigmoid at each depth and phase",
        relu_cases(van), ["phase", "depth"], _ratio_evidence(van, ["relu"]))
    cases, conds = explode_cases(exp)
    add("3", "gradients explode when the per-layer factor exceeds 1",
        f"settings whose unclipped runs diverge or whose gradient norm grows ≥ {EXPLODE_FACTOR:g}×: step-0 first-to-last ratio > 1",
        cases, conds, _explode_evidence(exp))
    cases, conds = clipping_cases(exp)
    add("4b", "gradient clipping is a remedy for exploding gradients",
        "exploding settings: norm clipping lowers the divergence rate (or the final loss when neither diverges)",
        cases, conds, _explode_evidence(exp) if not cases.empty else "no exploding setting has both clip=none and clip=norm runs")
    order = {"1a": 0, "1b": 1, "2": 2, "3": 3, "4a": 4, "4b": 5}
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS).sort_values("claim", key=lambda s: s.map(order)).reset_index(drop=True)

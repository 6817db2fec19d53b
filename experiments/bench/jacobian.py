"""``make bench``, the input–output Jacobian: what recording its spectrum costs a run.

The spectrum study records, at chosen training steps, the singular values of J = ∂a^depth/∂a^0
(``mlplab.jacobian``) for ``SAMPLES`` training samples. One sample's J has n_depth × n_0 entries:
forward mode carries all n_0 input directions of every sample through every layer, so J for m
samples is one (m n_0 × n)·(n × n) product per layer — a forward pass at batch m n_0 = 4,096,
not at m = 16. (The (m × n)·(n × n) products are one Jacobian–vector product J v per sample, a
single direction; J is n_0 of them. Reverse mode would need n_depth backward passes instead.)
A training step at batch B does three (B × n)·(n × n) products per layer (z, ∂C/∂W, δ W), so in
arithmetic the Jacobian is about m n_0 / 3B steps: 85 at B = 16, 43 at B = 32.

Timed, taking turns, float64, 1 thread (as training runs), on the study's net (depth 128, width
256, n_0 = 256, tanh, 10 classes, softmax cross-entropy):

* the training step (``mlplab.train.Step``, lr 0) at batch 16 and at ``RunSpec``'s default batch;
* ``mlplab.jacobian`` for 16 samples, and its own matrix products (recorded from it, replayed
  bare: ``gemm.record`` on ``mlplab.jacobian``'s ``dot``);
* the 16 J's singular values: ``np.linalg.svd(J, compute_uv=False)``, and the Gram route
  √eigvalsh(J Jᵀ), cheaper but blind below ~√ε ≈ 1e-8 of the largest (the squares lose them).
"""

from __future__ import annotations

import importlib
import math

import gemm
import numpy as np
from timing import Threads, race

import mlplab
from mlplab.spec import RunSpec
from mlplab.train import Step

SHAPE = (128, 256, 16)  # depth, width (= n_0), samples: the study's net and its spectrum_samples
N_OUT = 10
BATCH = int(RunSpec().batch_size)  # the default training batch
EVERY = (10, 100, 1000)  # recording the spectrum every N steps
BLIND = 1e-8  # below this fraction of σ_max the Gram route's singular values are not to be trusted
IMPLS = ("step", "jacobian", "products", "svd", "eigvalsh")


def gram_singular_values(J: np.ndarray) -> np.ndarray:
    """√eigvalsh(J Jᵀ) per sample, descending like svd's (negative rounding clipped to 0)."""
    w = np.linalg.eigvalsh(np.matmul(J, J.transpose(0, 2, 1)))
    return np.sqrt(np.maximum(w, 0.0))[:, ::-1]


def problem(depth: int, width: int, samples: int, seed: int = 0):
    """The net, a batch of ``samples`` and one of ``BATCH`` (one-hot labels): n_0 = width."""
    rng = np.random.default_rng(seed)
    net = mlplab.MLP(
        [width] + [width] * depth + [N_OUT], "tanh", "softmax_ce", "normal", seed, sigma_w=1.0, sigma_b=0.1
    )
    batches = []
    for m in (samples, BATCH):
        X = rng.standard_normal((m, width))
        batches.append((X, np.eye(N_OUT)[rng.integers(0, N_OUT, m)]))
    return net, batches


def jacobian_section(shape, repeats, budget, rows, notes):
    depth, width, samples = shape
    net, ((X, Y), (Xb, Yb)) = problem(depth, width, samples)
    step = Step(net, "norm", 1.0, 0.0)  # lr 0: the weights, hence J, stay as they are
    module = importlib.import_module("mlplab.jacobian")  # the module (``mlplab.jacobian`` is the function)
    with Threads(1), np.errstate(over="ignore"):
        J = mlplab.jacobian(net, X)
        calls = gemm.record(lambda: mlplab.jacobian(net, X), module)
        turns = {}  # bare as in jacobian: the products written to two buffers in turn (not one each)
        for i, (a, b, out) in enumerate(calls):
            calls[i] = (a, b, turns.setdefault((out.shape, i % 2), out))
        step_flops = {
            m: gemm.flops(gemm.record(lambda X=X, Y=Y: step(X, Y)))
            for m, (X, Y) in ((samples, (X, Y)), (BATCH, (Xb, Yb)))
        }
        fns = {
            ("step", samples): lambda: step(X, Y),
            ("step", BATCH): lambda: step(Xb, Yb),
            ("jacobian", samples): lambda: mlplab.jacobian(net, X),
            ("products", samples): gemm.replay(calls),
            ("svd", samples): lambda: np.linalg.svd(J, compute_uv=False),
            ("eigvalsh", samples): lambda: gram_singular_values(J),
        }
        times = race(fns, repeats, budget)
    flops = gemm.flops(calls)
    for (impl, batch), ts in times.items():
        for r, t in enumerate(ts):
            rows.append(
                dict(
                    section="jacobian",
                    impl=impl,
                    dtype="float64",
                    activation="tanh",
                    threads=1,
                    depth=depth,
                    width=width,
                    batch=batch,
                    rep=r,
                    seconds=t,
                    flops=flops
                    if impl in ("jacobian", "products")
                    else step_flops[batch]
                    if impl == "step"
                    else math.nan,
                )
            )
    sv, sg = np.linalg.svd(J, compute_uv=False), gram_singular_values(J)
    top = sv[:, :1]
    seen = sv >= 1e-6 * top  # well above the Gram route's floor
    notes["jacobian"] = dict(
        products=len(calls),
        product_shape=(calls[0][0].shape, calls[0][1].shape) if calls else None,
        sv_max=float(sv.max()),
        sv_min=float(sv.min()),
        blind=int((sv < BLIND * top).sum()),
        values=int(sv.size),
        gram_err_seen=float(np.max(np.abs(sg - sv)[seen] / sv[seen])),
        gram_min=float(sg.min()),
    )
    print(
        f"jacobian {depth}x{width} {samples} samples: "
        + "  ".join(f"{k[0]}({k[1]}) {np.median(v) * 1e3:.1f} ms" for k, v in times.items()),
        flush=True,
    )


def per_rep(df, depth, width, samples) -> dict:
    """Each timing per repeat (indexed by rep), the step at the samples' batch and at ``BATCH``."""
    d = df[(df.section == "jacobian") & (df.depth == depth) & (df.width == width)]
    out = {}
    for impl in IMPLS:
        for batch, key in ((samples, impl), (BATCH, f"{impl} {BATCH}")):
            s = d[(d.impl == impl) & (d.batch == batch)].set_index("rep")["seconds"]
            if len(s):
                out[key] = s
    return out


def report_jacobian(df, notes, fmt_us) -> list[str]:
    jc = df[df.section == "jacobian"]
    if not len(jc):
        return []
    L = []
    for k in jc[["depth", "width"]].drop_duplicates().itertuples(index=False):
        depth, width = int(k.depth), int(k.width)
        samples = int(jc[(jc.depth == depth) & (jc.impl == "jacobian")]["batch"].iloc[0])
        t = per_rep(df, depth, width, samples)
        med = {key: float(s.median()) for key, s in t.items()}
        step, stepb, jac, svd = t["step"], t[f"step {BATCH}"], t["jacobian"], t["svd"]
        n = notes.get("jacobian", {})

        def flops_of(impl, batch=samples, depth=depth):
            return float(jc[(jc.depth == depth) & (jc.impl == impl) & (jc.batch == batch)]["flops"].iloc[0])

        flops = flops_of("products")
        rate = {  # GFLOP/s of the matrix products' arithmetic, each over its own whole time
            "step": flops_of("step") / med["step"] / 1e9,
            "stepb": flops_of("step", BATCH) / med[f"step {BATCH}"] / 1e9,
            "jacobian": flops / med["jacobian"] / 1e9,
        }
        count = n.get("products", "?")
        shp = n.get("product_shape")
        prod = f"{count} × ({shp[0][0]}×{shp[0][1]})·({shp[1][0]}×{shp[1][1]})" if shp else f"{count} products"
        L += [
            "## The input–output Jacobian",
            "",
            f"What recording the spectrum costs: `mlplab.jacobian` of a {depth}-layer, {width}-wide tanh net "
            f"(n_0 = {width} inputs) for {samples} samples, and the singular values of the {samples} J's, against "
            f"the training step of the same net; float64, 1 thread. Ratios: the median over repeats of the "
            f"per-repeat ratio (the functions took turns).",
            "",
            f"| what | time | / step, batch {samples} | / step, batch {BATCH} |",
            "|---|---|---|---|",
        ]

        def line(what, s, step=step, stepb=stepb):
            return (
                f"| {what} | {fmt_us(float(s.median()))} | {float((s / step).median()):.2f} | "
                f"{float((s / stepb).median()):.2f} |"
            )

        L += [
            line(f"step, batch {samples}", step),
            line(f"step, batch {BATCH} (the default)", stepb),
            line(f"`jacobian`, {samples} samples", jac),
            line(f"its matrix products, bare: {prod}", t["products"]),
            line("`svd(J, compute_uv=False)`", svd),
            line("√`eigvalsh(J Jᵀ)`", t["eigvalsh"]),
            line("`jacobian` + `svd`", jac + svd),
            "",
            f"`jacobian` / its products: {float((jac / t['products']).median()):.3f} (products bare at "
            f"{flops / med['products'] / 1e9:.1f} GFLOP/s, `jacobian` at {rate['jacobian']:.1f}); the step's "
            f"products at {rate['step']:.1f} GFLOP/s of its time at batch {samples}, {rate['stepb']:.1f} at "
            f"batch {BATCH}. svd / the eigvalsh route: {float((svd / t['eigvalsh']).median()):.2f}; svd is "
            f"{100 * float((svd / (jac + svd)).median()):.1f} % of the recording's time.",
            "",
            f"Recording the spectrum (`jacobian` + `svd`) every N steps of batch {BATCH}: its share of the "
            "run's time, (J + svd) / (J + svd + N step).",
            "",
            "| every N steps | share |",
            "|---|---|",
        ]
        for N in EVERY:
            share = (jac + svd) / (jac + svd + N * stepb)
            L.append(f"| {N} | {100 * float(share.median()):.1f} % |")
        L.append("")
        m_n0 = samples * width
        L += [
            f"Why so many steps: one sample's J has {width} × {width} entries, and forward mode carries all "
            f"n_0 = {width} input directions of every sample through every layer. J for {samples} samples is "
            f"therefore one ({m_n0}×{width})·({width}×{width}) product per layer — a forward pass at batch "
            f"m·n_0 = {m_n0}, not m = {samples}: depth·m·n_0 rows of work. Products of ({samples}×{width})·"
            f"({width}×{width}) would be J v, one direction per sample. A step at batch B does three "
            f"(B×{width})·({width}×{width}) products per layer, so in arithmetic J ≈ m·n_0 / 3B steps "
            f"({m_n0 / (3 * samples):.0f} at B = {samples}, {m_n0 / (3 * BATCH):.0f} at B = {BATCH}); the "
            "measured ratios differ from these as far as the two run at different rates (GFLOP/s above). "
            "The first layer's product is skipped (J^0 = I: K Wᵀ is Wᵀ), hence "
            f"{count} products for {depth} layers.",
            "",
        ]
        if n:
            L += [
                f"Singular values of these {samples} J's: from {n['sv_max']:.2e} down to {n['sv_min']:.2e} "
                f"(svd); {n['blind']} of {n['values']} lie below {BLIND:g} × their J's largest, where "
                f"√eigvalsh(J Jᵀ) cannot see them (its smallest here: {n['gram_min']:.2e}; the squares round "
                f"to ε σ_max²). Above 1e-6 σ_max the two agree to {n['gram_err_seen']:.1e} (relative). The "
                "recorded method stays `svd`: the Gram route would save only svd's share of the recording "
                "(above), and would lose the smallest singular values, whose decay with depth is what the "
                "study measures.",
                "",
            ]
    return L

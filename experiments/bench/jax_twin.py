"""``make bench``, the JAX twin: the default sweep's runs in mlplab against the same runs in JAX.

What a researcher would write today for sweeps of small MLPs: ``jax.jit`` over a ``lax.scan`` of
the training steps, ``jax.vmap`` over the seeds. The twin does what an mlplab run of the same
spec does, number for number:

* the same data (``mlplab.train.load_data``), the same initial weights (the mlplab network built
  from the run's init generator, its W and b copied) and the same mini-batches in the same order
  (the run's shuffle generator replayed as ``mlplab.train.batches`` draws it);
* float64, plain SGD at the spec's learning rate, the same forward and backward maths (the
  sigmoid as 1/(1 + e^(−z)), softmax with the largest logit subtracted, MSE's δ^L = (a − y) a (1 − a),
  the losses in mlplab's stable forms);
* at every logged step (every ``log_every``-th: the default sweep's ``eval_every: log`` evaluates
  at each of them) the per-layer ‖∂C/∂W‖, ‖∂C/∂b‖, ‖W‖, ‖ΔW‖/‖W‖ and the mean, standard deviation
  and saturated fraction of each layer's output for the mini-batch, the mini-batch loss and the
  global gradient norm; the training and test loss and accuracy on the whole sets; and the final
  evaluation of the trained network.

The steps are an outer ``lax.scan`` over the logged steps (the logged step, then an inner scan of
the ``log_every − 1`` plain steps up to the next one), the seeds a ``vmap`` of the whole run.
``compare`` checks the twin's numbers against the tables of the mlplab runs.

JAX is optional (``make bench-jax`` installs it, the ``bench-jax`` extra). ``jax_section`` runs
``measure`` in a process of its own (``main``), on one CPU thread, as mlplab's runs use one BLAS
thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlplab.activations import SAT_EPS
from mlplab.spec import RunSpec
from mlplab.train import build_network, load_data, prepare, rngs

DEPTHS = (1, 4, 16)  # the default sweep's depths that the issue measured
LOSSES = ("mse", "softmax_ce")  # its losses whose output layer is a sigmoid or a softmax
SEEDS = (0, 1, 2, 3, 4)
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
STEP_COLUMNS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "batch_loss", "grad_norm")
LAYER_COLUMNS = ("grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "sat_frac")
FINAL_COLUMNS = ("final_loss", "final_accuracy", "final_test_loss", "final_test_accuracy")


def specs(depth: int, loss: str, seeds=SEEDS, epochs: int | None = None) -> list[RunSpec]:
    """The default sweep's runs of one configuration (sigmoid, no clipping, ``eval_every: log``), one per seed."""
    extra = {} if epochs is None else {"epochs": epochs}
    return [
        RunSpec(depth=depth, loss=loss, activation="sigmoid", clip="none", seed=s, eval_every="log", **extra)
        for s in seeds
    ]


def inputs(runs: list[RunSpec]) -> dict:
    """What the twin needs of the runs ``runs`` (one configuration, several seeds), stacked over the
    seeds: data, initial weights and each step's mini-batch indices, drawn as mlplab draws them."""
    first = prepare(runs[0])
    sched = first.schedule()
    if sched.batch_size < sched.n_train and sched.n_train % sched.batch_size:
        raise ValueError(f"the twin needs equal mini-batches: {sched.n_train} samples in batches of {sched.batch_size}")
    if sched.n_steps % sched.log_every or sched.eval_every != sched.log_every:
        raise ValueError("the twin evaluates at every logged step (eval_every: log) of whole log_every blocks")
    stacks = {k: [] for k in ("X", "Y", "Xe", "Ye", "W", "b", "idx")}
    for spec in runs:
        spec = prepare(spec)
        _, rng_init, rng_shuffle = rngs(spec.seed)
        data = load_data(spec)
        net = build_network(spec, data, rng_init)
        order = []
        for _ in range(spec.epochs):  # mlplab.train.batches: one permutation per epoch (none when full batch)
            if sched.batch_size >= sched.n_train:
                order.append(np.arange(sched.n_train))
            else:
                order.append(rng_shuffle.permutation(sched.n_train))
        stacks["idx"].append(np.concatenate(order).reshape(sched.n_steps, sched.batch_size))
        stacks["X"].append(data.X_train)
        stacks["Y"].append(data.Y_train)
        stacks["Xe"].append(np.concatenate([data.X_train, data.X_test]))
        stacks["Ye"].append(np.concatenate([data.Y_train, data.Y_test]))
        stacks["W"].append([np.array(W) for W in net.weights])
        stacks["b"].append([np.array(b) for b in net.biases])
    out = {k: np.stack(v) for k, v in stacks.items() if k not in ("W", "b")}
    out["W"] = [np.stack(ws) for ws in zip(*stacks["W"])]
    out["b"] = [np.stack(bs) for bs in zip(*stacks["b"])]
    out["idx"] = out["idx"].reshape(len(runs), sched.n_steps // sched.log_every, sched.log_every, sched.batch_size)
    out["spec"], out["sched"] = first, sched
    return out


def program(jax, spec: RunSpec, sched):
    """The jitted twin of ``spec``'s run, vmapped over seeds: f(X, Y, Xe, Ye, W, b, idx) -> logged numbers."""
    jnp, lax = jax.numpy, jax.lax
    L, lr, mse = spec.depth + 1, float(spec.lr), spec.loss == "mse"
    n_train = sched.n_train

    def sigmoid(z):
        return 1.0 / (1.0 + jnp.exp(-z))

    def output(z):
        if mse:
            return sigmoid(z)
        e = jnp.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def per_sample_loss(z, y):
        if mse:  # a − y from z: σ(z) − 1 = −σ(−z) where z > 0
            d = jnp.where(z > 0, (1.0 - y) - sigmoid(-z), sigmoid(z) - y)
            return 0.5 * jnp.sum(d * d, axis=1)
        top = jnp.argmax(z, axis=1)
        d = jnp.take_along_axis(z, top[:, None], axis=1) - z  # M − z ≥ 0
        e = jnp.where(jnp.arange(z.shape[1])[None, :] == top[:, None], 0.0, jnp.exp(-d))
        return jnp.sum(y * d, axis=1) + jnp.log1p(jnp.sum(e, axis=1))

    def forward(W, b, X):
        a, outs = X, []
        for l in range(L):
            z = a @ W[l].T + b[l]
            a = sigmoid(z) if l < L - 1 else output(z)
            outs.append(a)
        return z, outs

    def gradients(W, b, X, Y):
        z, outs = forward(W, b, X)
        aL = outs[-1]
        delta = ((aL - Y) * aL) * (1.0 - aL) if mse else aL - Y
        delta = delta * (1.0 / X.shape[0])
        dW, db = [None] * L, [None] * L
        for l in reversed(range(L)):
            a_prev = X if l == 0 else outs[l - 1]
            dW[l], db[l] = delta.T @ a_prev, jnp.sum(delta, axis=0)
            if l:
                h = outs[l - 1]
                delta = (delta @ W[l]) * ((1.0 - h) * h)
        return z, outs, dW, db

    def sgd(W, b, dW, db):
        return [w + (-lr) * g for w, g in zip(W, dW)], [v + (-lr) * g for v, g in zip(b, db)]

    def evaluate(W, b, Xe, Ye):
        z, outs = forward(W, b, Xe)
        loss = per_sample_loss(z, Ye)
        hit = jnp.argmax(outs[-1], axis=1) == jnp.argmax(Ye, axis=1)
        return jnp.stack(
            [
                jnp.mean(loss[:n_train]),
                jnp.mean(hit[:n_train].astype(jnp.float64)),
                jnp.mean(loss[n_train:]),
                jnp.mean(hit[n_train:].astype(jnp.float64)),
            ]
        )

    def stats(a):
        n = a.size
        mean = jnp.sum(a) / n
        std = jnp.sqrt(jnp.sum((a - mean) ** 2) / n)
        sat = jnp.sum((a < SAT_EPS) | (a > 1.0 - SAT_EPS)) / n
        return jnp.stack([mean, std, sat])

    def plain_step(params, i, X, Y):
        W, b = params
        _, _, dW, db = gradients(W, b, X[i], Y[i])
        return sgd(W, b, dW, db), None

    def logged_block(params, block, X, Y, Xe, Ye):
        """The logged step (evaluation, statistics, update), then the block's plain steps."""
        W, b = params
        ev = evaluate(W, b, Xe, Ye)
        i = block[0]
        Yb = Y[i]
        z, outs, dW, db = gradients(W, b, X[i], Yb)
        gw = jnp.stack([jnp.sqrt(jnp.vdot(g, g)) for g in dW])
        gb = jnp.stack([jnp.sqrt(jnp.vdot(g, g)) for g in db])
        total = 0.0
        for g in [*dW, *db]:  # ‖g‖² summed array by array, W's then b's, as mlplab's SquaredNorms.total
            total = total + jnp.vdot(g, g)
        wn = jnp.stack([jnp.sqrt(jnp.vdot(w, w)) for w in W])
        layers = jnp.concatenate(
            [jnp.stack([gw, gb, wn, (gw * lr) / wn], axis=1), jnp.stack([stats(a) for a in outs])], axis=1
        )
        batch_loss = jnp.sum(per_sample_loss(z, Yb)) / Yb.shape[0]
        steps = jnp.concatenate([ev, jnp.stack([batch_loss, jnp.sqrt(total)])])
        params = sgd(W, b, dW, db)
        params, _ = lax.scan(lambda p, j: plain_step(p, j, X, Y), params, block[1:])
        return params, (steps, layers)

    def run(X, Y, Xe, Ye, W, b, idx):
        (W, b), (steps, layers) = lax.scan(lambda p, blk: logged_block(p, blk, X, Y, Xe, Ye), (W, b), idx)
        return steps, layers, evaluate(W, b, Xe, Ye)

    return jax.jit(jax.vmap(run))


def arrays(jax, inp: dict) -> tuple:
    """The program's arguments, on JAX's CPU device."""
    put = jax.device_put
    return tuple(put(inp[k]) for k in ("X", "Y", "Xe", "Ye")) + (
        [put(w) for w in inp["W"]],
        [put(v) for v in inp["b"]],
        put(inp["idx"]),
    )


def call(f, args) -> tuple[np.ndarray, ...]:
    """One call of the program, its results brought back as NumPy arrays (the wait included)."""
    return tuple(np.asarray(x) for x in f(*args))


def compare(out, tables: list[dict], sched) -> dict:
    """The twin's numbers (``call``'s) against the mlplab runs' tables (one dict of pyarrow tables
    per seed, in the same order): per column, the largest relative difference |a − b| / max(|a|, |b|)
    of the float64 columns, and for the float32 columns (act_mean, act_std, sat_frac, accuracies)
    how many float32 steps apart the twin's number, rounded to float32, is from mlplab's."""
    steps, layers, final = out
    n_rows = steps.shape[1]
    expect_steps = np.arange(n_rows) * sched.log_every
    rel: dict[str, float] = {}
    ulps: dict[str, int] = {}

    def put(col, a, b, f32):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise AssertionError(f"{col}: twin {a.shape}, mlplab {b.shape}")
        if f32:
            a32, b32 = a.astype(np.float32), b.astype(np.float32)
            d = np.abs(a32.view(np.int32).astype(np.int64) - b32.view(np.int32).astype(np.int64))
            ulps[col] = max(ulps.get(col, 0), int(d.max(initial=0)))
            return
        both = np.maximum(np.abs(a), np.abs(b))
        r = np.divide(np.abs(a - b), both, out=np.zeros_like(both), where=both > 0)
        rel[col] = max(rel.get(col, 0.0), float(r.max(initial=0.0)))

    for s, t in enumerate(tables):
        st = t["steps"].to_pandas().sort_values("step")
        lay = t["layers"].to_pandas().sort_values(["step", "layer"])
        runs = t["runs"].to_pandas().iloc[0]
        if list(st["step"]) != list(expect_steps):
            raise AssertionError(f"seed {s}: mlplab logged steps {list(st['step'])[:5]}…, the twin {expect_steps[:5]}…")
        if runs["status"] != "ok":
            raise AssertionError(f"seed {s}: the mlplab run is {runs['status']}: {runs['reason']}")
        for j, col in enumerate(STEP_COLUMNS):
            put(col, steps[s, :, j], st[col], "accuracy" in col)
        L = layers.shape[2]
        for j, col in enumerate(LAYER_COLUMNS):
            put(col, layers[s, :, :, j], lay[col].to_numpy().reshape(n_rows, L), col.startswith(("act_", "sat_")))
        for j, col in enumerate(FINAL_COLUMNS):
            put(col, final[s, j], runs[col], "accuracy" in col)
    return _summary(rel, ulps)


def _summary(rel: dict, ulps: dict) -> dict:
    """The differences per column (relative; float32 steps) and the largest of each."""
    worst = max(rel, key=rel.get)
    return {
        "relative": rel,
        "float32_steps": ulps,
        "max_relative": rel[worst],
        "worst": worst,
        "max_float32_steps": max(ulps.values()),
    }


def merge(checks: list[dict]) -> dict:
    """The largest differences over several configurations' ``compare``."""
    rel, ulps = {}, {}
    for c in checks:
        for k, v in c["relative"].items():
            rel[k] = max(rel.get(k, 0.0), v)
        for k, v in c["float32_steps"].items():
            ulps[k] = max(ulps.get(k, 0), v)
    return _summary(rel, ulps)


def cpu_seconds() -> float:
    """This process's CPU time (user and system, every thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(depths, losses, seeds, epochs: int | None, repeats: int) -> tuple[list[dict], dict]:
    """Per depth, the configurations (depth, each of ``losses``, sigmoid) at ``seeds``: the mlplab
    runs as a sweep's worker does them (``mlplab.train.Runner.many``: the seeds in one stack, one
    BLAS thread, the tables written), the twin's first call (tracing and XLA's compilation included) and its compiled
    call, mlplab and the compiled twin taking turns ``repeats`` times; the twin's numbers checked
    against the runs' tables. Returns the bench's rows (seconds summed over the losses of a depth)
    and the section's note. Starts JAX in this process: run it in a process of its own (``main``)."""
    import jax

    from mlplab.train import Runner

    jax.config.update("jax_enable_x64", True)
    note = {
        "skipped": False,
        "version": jax.__version__,
        "seeds": len(seeds),
        "losses": list(losses),
        "repeats": repeats,
        "full": tuple(depths) == DEPTHS and tuple(losses) == LOSSES and tuple(seeds) == SEEDS and epochs is None,
    }
    checks, cpu, wall = [], 0.0, 0.0
    times: dict = {}  # (impl, depth, rep) -> seconds, summed over the losses

    def add(impl, depth, rep, s):
        times[(impl, depth, rep)] = times.get((impl, depth, rep), 0.0) + s

    for depth in depths:
        for loss in losses:
            runs = specs(depth, loss, seeds, epochs)
            inp = inputs(runs)
            note["steps"], note["log_every"] = inp["sched"].n_steps, inp["sched"].log_every
            args = arrays(jax, inp)
            jax.clear_caches()  # the first call compiles, whatever ran before
            f = program(jax, inp["spec"], inp["sched"])
            t0 = time.perf_counter()
            out = call(f, args)
            first = time.perf_counter() - t0
            add("jax first call", depth, 0, first)
            with tempfile.TemporaryDirectory() as tmp:
                runner = Runner(tmp, "jax", force=True)
                for rep in range(repeats):
                    tables = [] if rep == 0 else None
                    t0 = time.perf_counter()
                    done = runner.many(runs, tables)  # as a sweep's worker: the seeds in one stack
                    t1 = time.perf_counter()
                    c0 = cpu_seconds()
                    again = call(f, args)
                    t2 = time.perf_counter()
                    cpu, wall = cpu + cpu_seconds() - c0, wall + t2 - t1
                    add("mlplab", depth, rep, t1 - t0)
                    add("mlplab training", depth, rep, sum(r["train_time_s"] for r in done))
                    add("jax compiled", depth, rep, t2 - t1)
                    if rep == 0:
                        checks.append(compare(out, tables, inp["sched"]))
                        if any(not np.array_equal(a, b) for a, b in zip(out, again)):
                            raise AssertionError("the twin's compiled call gave other numbers than its first")
            print(
                f"jax: depth {depth} {loss}: first call {first:.2f}s, compiled {t2 - t1:.3f}s, "
                f"numbers within {checks[-1]['max_relative']:.1e} of mlplab's",
                flush=True,
            )
    note["check"] = merge(checks)
    note["cpu_per_wall"] = cpu / wall if wall else math.nan
    spec = RunSpec()
    rows = [
        dict(
            section="jax",
            impl=impl,
            dtype="float64",
            activation="sigmoid",
            threads=1,
            depth=depth,
            width=spec.width,
            batch=int(spec.batch_size),
            rep=rep,
            seconds=s,
        )
        for (impl, depth, rep), s in times.items()
    ]
    return rows, note


def available() -> bool:
    """Whether JAX can be imported here (found, and not blocked), without importing it."""
    try:
        return importlib.util.find_spec("jax") is not None
    except (ImportError, ValueError):  # sys.modules["jax"] is None: its import is blocked
        return False


def jax_section(quick: bool, rows: list, notes: dict, depths=None, losses=LOSSES, seeds=SEEDS) -> None:
    """The ``jax`` section of the bench: ``measure`` in a process of its own, on one CPU thread.

    JAX's CPU backend starts threads that make any later ``os.fork`` of its process unsafe (JAX
    warns), and reads its thread settings once, when it starts; so it runs in a child process:
    ``XLA_FLAGS`` (``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``) in its
    environment and the whole process pinned to one CPU before it starts (``sched_setaffinity``
    between fork and exec, as ``taskset`` does), its mlplab runs too. ``quick``: depths 1 and 4,
    2 epochs, 1 repeat (default: 1, 4, 16, 20 epochs, 3 repeats). Without JAX: a note, nothing timed."""
    if not available():
        notes["jax"] = {"skipped": True}
        print("jax: JAX is not installed; the JAX comparison is skipped (make bench-jax installs it)", flush=True)
        return
    depths = depths or ((1, 4) if quick else DEPTHS)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--depths", ",".join(map(str, depths))]
    cmd += ["--losses", ",".join(losses), "--seeds", ",".join(map(str, seeds))]
    cmd += ["--epochs", "2", "--repeats", "1"] if quick else ["--repeats", "3"]
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_FLAGS}".strip()
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "jax.json"
        proc = subprocess.run([*cmd, "--json", str(result)], env=env, preexec_fn=pin, stderr=subprocess.PIPE, text=True)
        if proc.returncode:
            raise RuntimeError(f"the JAX section exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        got = json.loads(result.read_text())
    note = got["note"]
    note["threads"] = f"XLA_FLAGS={env['XLA_FLAGS']}" + (
        "" if cpu is None else f"; the process pinned to CPU {cpu} (sched_setaffinity before exec, as taskset does)"
    )
    notes["jax"] = note
    rows.extend(got["rows"])


def main(argv=None) -> None:
    """The child process of ``jax_section``: ``measure``, its rows and note written as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depths", default=",".join(map(str, DEPTHS)))
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", required=True, help="where to write the rows and the note")
    a = p.parse_args(argv)
    ints = lambda text: tuple(int(v) for v in text.split(","))  # noqa: E731
    rows, note = measure(ints(a.depths), tuple(a.losses.split(",")), ints(a.seeds), a.epochs, a.repeats)
    Path(a.json).write_text(json.dumps({"rows": rows, "note": note}))


if __name__ == "__main__":
    main()

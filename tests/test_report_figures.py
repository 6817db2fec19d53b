"""The report's figures draw their data: the lines, dots and cells of each matplotlib Figure
against values recomputed here (pandas) from synthetic results with known answers; a figure
without data is skipped with a note saying what is missing."""

import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from synthetic import accuracy_curve, make_results

from mlplab.analysis import measures, plots
from mlplab.analysis.studies.blog import figures

ACTS, LOSSES, DEPTHS, SEEDS = ("sigmoid", "relu"), ("mse", "softmax_ce"), (1, 3), range(3)
SPEED = {"mse": 2.0, "softmax_ce": 1.0}  # logged steps per 0.1 of accuracy
SLOWER = (1.0, 1.5, 2.5)  # per seed: the median seed is not the mean one
N_LOGGED = 40


def grid(speed=SPEED, clip="none", depths=DEPTHS):
    """Sigmoid and relu, mse and softmax_ce, three seeds: test accuracy curves rising at
    ``speed[loss]`` (slower for higher seeds), the training accuracy twice as fast, training losses
    on a scale of their own per run, random per-layer gradient norms at step 0, half way and at
    the end; ∂C/∂W norms 10× those of ∂C/∂b (the figures plot neither ∂C/∂W nor the other
    accuracy where they mean one)."""
    rng = np.random.default_rng(11)
    runs, curves, profiles, train = [], {}, {}, {}
    for act in ACTS:
        for loss in LOSSES:
            for depth in depths:
                for seed in SEEDS:
                    rid = f"{act}-{loss}-{depth}-{seed}"
                    runs.append(dict(run_id=rid, activation=act, loss=loss, depth=depth, seed=seed, clip=clip))
                    curves[rid] = accuracy_curve(speed[loss] * SLOWER[seed], n=N_LOGGED)
                    train[rid] = accuracy_curve(speed[loss] * SLOWER[seed] / 2, n=N_LOGGED)
                    profiles[rid] = {s: rng.uniform(0.05, 1.0, depth + 1) for s in (0, 200, 10 * (N_LOGGED - 1))}
    res = make_results(runs, curves, profiles)
    res.layers["grad_w_norm"] = 10 * res.layers["grad_b_norm"]
    st = res.steps
    st["train_accuracy"] = [train[r][s // 10] for r, s in zip(st["run_id"], st["step"])]
    st["train_loss"] *= 1 + st["seed"] + 2 * (st["loss"] == "softmax_ce")
    res.runs["final_accuracy"] = res.runs["run_id"].map(st.groupby("run_id")["train_accuracy"].last())
    return res


@pytest.fixture(scope="module")
def res():
    return grid()


@pytest.fixture
def draw():
    """``draw(name, res)``: the Figure of figure ``name``, drawn in the figures' style, closed
    after the test."""
    made = []

    def f(name, res):
        with plots.style():
            made.append(figures.FIGURES[name](res))
        return made[-1]

    yield f
    for fig in made:
        plt.close(fig)


def last_step(layers):
    return layers[layers["step"] == layers.groupby("run_id")["step"].transform("max")]


def test_gradient_profile_plots_the_median_norm_of_each_layer(res, draw):
    """One panel per (activation, loss); in each, per depth, the median ‖∂C/∂b^l‖ over seeds
    per layer: at step 0 solid, at the last logged step dashed (the middle step unused)."""
    fig = draw("gradient_profile", res)
    lay = res.layers
    phases = {"-": lay[lay["step"] == 0], "--": last_step(lay)}
    legend = {h.get_label(): h for h in fig.legends[0].legend_handles}
    assert sorted(ax.get_title() for ax in fig.axes) == sorted(f"{a}, loss = {l}" for a in ACTS for l in LOSSES)
    for ax in fig.axes:
        act, loss = re.fullmatch(r"(\w+), loss = (\w+)", ax.get_title()).groups()
        seen = []
        for line in ax.get_lines():
            depth = len(line.get_xdata()) - 1
            d = phases[line.get_linestyle()]
            want = (
                d[(d["activation"] == act) & (d["loss"] == loss) & (d["depth"] == depth)]
                .groupby("layer")["grad_b_norm"]
                .median()
            )
            np.testing.assert_array_equal(line.get_xdata(), want.index, err_msg=f"{act} {loss} depth {depth}")
            np.testing.assert_allclose(
                line.get_ydata(), want.to_numpy(), rtol=1e-12, err_msg=f"{act} {loss} depth {depth}"
            )
            assert line.get_color() == legend[f"depth {depth}"].get_color(), (act, loss, depth)
            seen.append((depth, line.get_linestyle()))
        assert sorted(seen) == [(1, "-"), (1, "--"), (3, "-"), (3, "--")], (act, loss, seen)
    assert legend["initialisation"].get_linestyle() == "-" and legend["after training"].get_linestyle() == "--"


def first_to_last(layers):
    first = layers[layers["layer"] == 1].set_index("run_id")["grad_b_norm"]
    last = layers[layers["layer"] == layers["depth"] + 1].set_index("run_id")["grad_b_norm"]
    return (first / last).rename("ratio")


def test_ratio_vs_depth_plots_each_runs_ratio_and_the_median_per_depth(res, draw):
    """Left at step 0, right at the last step: a dot per run at ‖∂C/∂b^1‖/‖∂C/∂b^L‖, the median
    over runs per depth, and on the left the mean-field prediction at every depth up to the
    deepest."""
    fig = draw("ratio_vs_depth", res)
    left, right = fig.axes[:2]
    assert (left.get_title(), right.get_title()) == (
        "at initialisation (step 0)",
        "after training (last step, ok runs)",
    )
    runs = res.runs.set_index("run_id")
    for ax, phase in ((left, res.layers[res.layers["step"] == 0]), (right, last_step(res.layers))):
        r = runs.join(first_to_last(phase))
        labels = {l.get_label(): l for l in ax.get_lines()}
        for act in ACTS:
            setting = f"{act}, σ_w=1"
            med = r[r["activation"] == act].groupby("depth")["ratio"].median()
            line = labels[f"{setting}: measured median"]
            np.testing.assert_array_equal(line.get_xdata(), med.index)
            np.testing.assert_allclose(line.get_ydata(), med.to_numpy(), rtol=1e-12, err_msg=f"{ax.get_title()}: {act}")
            theory = labels.get(f"{setting}: mean-field")
            if ax is right:
                assert theory is None, "the prediction is for initialisation only"
                continue
            np.testing.assert_array_equal(theory.get_xdata(), [1, 2, 3])
            np.testing.assert_allclose(
                theory.get_ydata(), [measures.predicted_ratio(act, "normal", 1.0, 1.0, 32, k) for k in (1, 2, 3)]
            )
        dots = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
        np.testing.assert_allclose(np.sort(dots), np.sort(r["ratio"].to_numpy()), rtol=1e-12, err_msg=ax.get_title())


def test_curves_plot_the_median_relative_loss_and_accuracy_per_step(res, draw):
    """Per depth, top: the training loss over its step-0 value, bottom: the test accuracy, each
    the median over seeds per step, one line per (loss, activation)."""
    fig = draw("curves", res)
    top, bottom = fig.axes[:2], fig.axes[2:]
    st = res.steps.copy()
    st["rel"] = st["train_loss"] / st["run_id"].map(st[st["step"] == 0].set_index("run_id")["train_loss"])
    assert [ax.get_title() for ax in top] == [f"depth {d}" for d in DEPTHS]
    for j, depth in enumerate(DEPTHS):
        for ax, col in ((top[j], "rel"), (bottom[j], "test_accuracy")):
            lines = {l.get_label(): l for l in ax.get_lines()}
            assert set(lines) == {f"{l}, {a}" for l in LOSSES for a in ACTS}, (depth, col, set(lines))
            for label, line in lines.items():
                loss, act = label.split(", ")
                d = st[(st["depth"] == depth) & (st["loss"] == loss) & (st["activation"] == act)]
                want = d.groupby("step")[col].median()
                np.testing.assert_array_equal(line.get_xdata(), want.index)
                np.testing.assert_allclose(
                    line.get_ydata(), want.to_numpy(), rtol=1e-12, err_msg=f"depth {depth} {col} {label}"
                )
    # mse learns more slowly here (SPEED): its median accuracy is below softmax_ce's until both top out
    acc = {l.get_label(): l.get_ydata() for l in bottom[0].get_lines()}
    assert (acc["mse, sigmoid"] <= acc["softmax_ce, sigmoid"]).all() and (
        acc["mse, sigmoid"] < acc["softmax_ce, sigmoid"]
    ).any()


def steps_to_target(res, column):
    """Per sigmoid run: the first logged step at which ``column`` reaches 0.9 × the best median
    final accuracy over the losses at its depth (None: met at step 0), else one log past the end."""
    runs = res.runs[res.runs["activation"] == "sigmoid"].set_index("run_id")
    final = res.steps[res.steps["step"] == res.steps.groupby("run_id")["step"].transform("max")].set_index("run_id")[
        column
    ]
    best = runs.assign(final=final).groupby(["depth", "loss"])["final"].median().groupby("depth").max()
    st = res.steps[res.steps["run_id"].isin(runs.index)]
    out = {}
    for rid, s in st.groupby("run_id"):
        target = round(0.9 * best[runs.loc[rid, "depth"]], 4)
        hit = s.loc[s[column] >= target, "step"]
        out[rid] = hit.min() if len(hit) else runs.loc[rid, "n_steps"] + runs.loc[rid, "eval_every"]
    runs = runs.assign(steps=pd.Series(out))
    return runs.assign(reached=runs["steps"] < runs["n_steps"] + runs["eval_every"])


def cell(g) -> str:
    """A heatmap cell: the median steps; with 'k/n reach' when some run never does."""
    k, n = int(g["reached"].sum()), len(g)
    median = float(np.median(np.where(g["reached"], g["steps"], np.inf)))
    head = "never" if k == 0 else "median never" if math.isinf(median) else f"{median:.0f}"
    return head if k in (0, n) else f"{head}\n{k}/{n} reach"


@pytest.mark.parametrize("speed", [SPEED, {"mse": 1.0, "softmax_ce": 3.0}], ids=["ce-faster", "mse-faster"])
def test_steps_heatmap_cells_are_the_median_steps_to_the_target(draw, speed):
    """The sigmoid runs' median steps to the accuracy target, one cell per (depth, loss), one
    panel per target; the faster loss has the smaller number, whichever it is."""
    res = grid(speed)
    fig = draw("steps_heatmap", res)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        f"blobs: {t} ≥ 0.9 × best" for t in ("test accuracy", "train accuracy")
    ]
    for ax, column in zip(panels, ("test_accuracy", "train_accuracy")):
        runs = steps_to_target(res, column)
        want = runs.groupby(["depth", "loss"])[["steps", "reached"]].apply(cell)
        losses = [t.get_text() for t in ax.get_xticklabels()]
        depths = [int(t.get_text()) for t in ax.get_yticklabels()]
        assert (losses, depths) == (list(LOSSES), list(DEPTHS))
        shown = {(depths[int(t.get_position()[1])], losses[int(t.get_position()[0])]): t.get_text() for t in ax.texts}
        assert shown == want.to_dict(), column
        median = runs.groupby(["depth", "loss"])["steps"].median()
        fast, slow = sorted(LOSSES, key=lambda l: speed[l])
        assert all(median[(d, fast)] < median[(d, slow)] for d in DEPTHS), median


# -- exploding runs ------------------------------------------------------------------------------------
def exploding(diverged: dict, clipped=("none", "norm")):
    """relu at σ_w = 2 (√χ1 = √2), depths 4 and 6, five seeds, with the clip rules ``clipped``;
    ``diverged[depth]``: the seeds whose unclipped run diverges; per-layer norms at steps 0, 10
    and 20 (fewer steps for a diverged run) that say which run they belong to."""
    runs, curves, profiles = [], {}, {}
    for depth in (4, 6):
        for clip in clipped:
            for seed in range(5):
                rid = f"{depth}-{clip}-{seed}"
                div = clip == "none" and seed in diverged[depth]
                runs.append(
                    dict(
                        run_id=rid,
                        activation="relu",
                        depth=depth,
                        loss="softmax_ce",
                        seed=seed,
                        sigma_w=2.0,
                        clip=clip,
                        status="diverged" if div else "ok",
                        diverged_step=20.0 if div else math.nan,
                        final_loss=math.nan if div else 0.3,
                    )
                )
                curves[rid] = accuracy_curve(2, n=3)
                steps = (0, 10) if div else (0, 10, 20)
                profiles[rid] = {
                    s: (1 + depth + seed / 10 + s / 1000 + (clip == "norm") / 100) * 1.4 ** np.arange(depth, -1, -1.0)
                    for s in steps
                }
    return make_results(runs, curves, profiles)


@pytest.mark.parametrize(
    "diverged, first, second",
    [
        ({4: {1, 3}, 6: {2}}, (4, 1), (6, 2)),  # the setting diverging most often first, its lowest diverged seed
        ({4: {0}, 6: {3, 4}}, (6, 3), (4, 0)),
        ({4: set(), 6: set()}, (6, 0), (4, 0)),  # none diverges: the deepest first, the lowest seed
    ],
)
def test_exploding_figure_shows_the_most_diverging_setting_and_a_diverged_seed(draw, diverged, first, second):
    res = exploding(diverged)
    ex = figures.exploding_examples(res)
    picked = ex.groupby(["depth", "seed"], sort=False)["clip"].agg(sorted)
    assert list(picked.index) == [first, second] and all(c == ["none", "norm"] for c in picked), picked
    fig = draw("exploding", res)
    assert len(fig.axes) == 4
    for row, (depth, seed) in enumerate((first, second)):
        for col, clip in enumerate(("none", "norm")):
            ax = fig.axes[2 * row + col]
            title = ax.get_title()
            assert f"depth {depth}, softmax_ce, seed {seed}\n" in title, title
            rate = f"{len(diverged[depth])}/5"
            assert title.endswith(
                f"no clipping ({rate} seeds diverge)" if clip == "none" else "norm clipping, threshold 1"
            ), title
            lay = res.layers[res.layers["run_id"] == f"{depth}-{clip}-{seed}"]
            lines = {l.get_label(): l for l in ax.get_lines() if l.get_label().startswith("layer ")}
            assert set(lines) == {f"layer {k}" for k in range(1, depth + 2)}
            for k, line in lines.items():
                d = lay[lay["layer"] == int(k.split()[1])]
                np.testing.assert_array_equal(line.get_xdata(), d["step"])
                np.testing.assert_allclose(line.get_ydata(), d["grad_b_norm"], rtol=1e-12, err_msg=f"{title} {k}")
            marks = [l for l in ax.get_lines() if l.get_marker() == "x"]
            assert len(marks) == (clip == "none" and seed in diverged[depth]), title  # a cross where a run diverged


# -- skipped figures ----------------------------------------------------------------------------------
SKIPS = {
    "nothing explodes": (
        grid,
        {"exploding": "skipped: no setting has a per-layer factor above 1 (mean-field √χ1 > 1)"},
    ),
    "no clipped twin": (
        lambda: exploding({4: {1}, 6: {2}}, clipped=("none",)),
        {"exploding": "skipped: no setting with √χ1 > 1 has runs with both clip=none and clip=norm"},
    ),
    "every run clipped": (
        lambda: grid(clip="norm"),
        {
            "gradient_profile": "skipped: no unclipped runs",
            "ratio_vs_depth": "skipped: no unclipped runs with hidden layers",
            "curves": "skipped: no unclipped runs",
            "steps_heatmap": "skipped: no runs",
        },
    ),
    "no hidden layer": (lambda: grid(depths=(0,)), {"ratio_vs_depth": "skipped: no unclipped runs with hidden layers"}),
}


@pytest.mark.parametrize("case", list(SKIPS))
def test_a_figure_without_data_is_skipped_with_a_note(tmp_path, monkeypatch, case):
    """The figures that lack data give a note saying what is missing and no file; the others are
    written under their numbers (drawn here as blank figures: their data is tested above)."""
    make, skipped = SKIPS[case]
    for name in figures.FIGURES:
        if name not in skipped:
            monkeypatch.setitem(figures.FIGURES, name, lambda res: plt.figure(figsize=(1, 1)))
    made = figures.make_figures(make(), tmp_path)
    assert list(made) == list(figures.FIGURES)
    for i, name in enumerate(figures.FIGURES, start=1):
        files = [tmp_path / f"{i}_{name}.png", tmp_path / f"{i}_{name}.svg"]
        if name in skipped:
            assert made[name] == skipped[name], (name, made[name])
            assert not any(f.exists() for f in files), name
        else:
            assert made[name] == files and all(f.exists() for f in files), (name, made[name])

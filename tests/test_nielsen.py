"""Nielsen's speed-of-learning study: the published numbers, the percentile of his values in our
distribution (synthetic data with known answers), and the tables, figures and report section on
small runs made with mlplab.run (8x8 digits and real MNIST)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import mlplab
from mlplab.analysis import load, report
from mlplab.analysis.__main__ import main as analysis
from mlplab.analysis.plots import MIN_TEXT_PX, FigureSkipped, text_px_in_report
from mlplab.analysis.studies import nielsen as N
from mlplab.analysis.studies.nielsen import sections
from mlplab.cli import CONF_DIR
from mlplab.config import to_spec
from mlplab.train import build_network, load_data, rngs

SEEDS = (0, 1)
INIT_SEEDS = range(6)  # the MNIST networks at initialisation
TRAIN_SEEDS = (0, 1)  # the MNIST networks also trained: they start from the networks of seeds 0, 1


def spec(depth, seed, **kw):
    """Nielsen's configuration on a 200-image slice of the digits, full batch, a few steps."""
    base = dict(
        depth=depth,
        width=30,
        activation="sigmoid",
        loss="bce",
        init="normal",
        sigma_w=1.0,
        sigma_b=1.0,
        dataset="digits",
        n_samples=250,
        standardise=False,
        batch_size=200,
        lr=1.0,
        epochs=3,
        log_every=1,
        seed=seed,
    )
    base.update(kw)
    return mlplab.RunSpec(**base)


def mnist_spec(depth, seed, epochs=1, log_every=1):
    """His setting on MNIST: 1,000 training images, full batch, η = 0.1, λ/n = 0.005."""
    return spec(
        depth,
        seed,
        dataset="mnist",
        n_samples=1250,
        batch_size=1000,
        lr=0.1,
        weight_decay=0.005,
        epochs=epochs,
        log_every=log_every,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("nielsen")
    for depth in (2, 3):
        for seed in SEEDS:
            assert mlplab.run(spec(depth, seed), root)["status"] == "ok"
    mlplab.run(spec(2, 0, activation="relu"), root)  # not Nielsen's configuration: left out
    return mlplab.load_results(root)


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    """<tmp>/nielsen_mnist: depths 2 and 3 at initialisation (6 seeds, one step) and trained for
    12 epochs (2 seeds, logged every 5), as the two MNIST sweep files do."""
    root = tmp_path_factory.mktemp("results") / "nielsen_mnist"
    for depth in (2, 3):
        for seed in INIT_SEEDS:
            assert mlplab.run(mnist_spec(depth, seed), root, sweep="nielsen_mnist")["status"] == "ok"
        for seed in TRAIN_SEEDS:
            assert (
                mlplab.run(mnist_spec(depth, seed, epochs=12, log_every=5), root, sweep="nielsen_mnist")["status"]
                == "ok"
            )
    return root


@pytest.fixture(scope="module")
def mnist(mnist_root):
    return mlplab.load_results(mnist_root)


def recomputed_speeds(s):
    """‖∂C/∂b^l‖ of the hidden layers of spec ``s``, recomputed from the network the run starts from."""
    rng_data, rng_init, _ = rngs(s.seed)
    data = load_data(s, rng_data)
    net = build_network(s, data, rng_init)
    g = net.gradients(data.X_train, data.Y_train)  # the mean over the whole (full) batch
    return np.array([np.linalg.norm(db) for db in g.db[: s.depth]])


def speeds_at_init(depth, seed):
    return recomputed_speeds(spec(depth, seed))


# -- his numbers ----------------------------------------------------------------------------------------
def test_published_numbers():
    assert sorted(N.NIELSEN) == [2, 3, 4]
    rounded = {2: (0.0657, 0.3092), 3: (0.0118, 0.0600, 0.2831), 4: (0.00298, 0.0171, 0.0695, 0.2851)}
    for depth, vals in N.NIELSEN.items():
        assert len(vals) == depth
        assert np.allclose(vals, rounded[depth], rtol=5e-3)  # the values quoted from his JSON files
        assert all(a < b for a, b in zip(vals, vals[1:]))  # slower towards the input
        curves = np.array(N.NIELSEN_TRAINING[depth])
        assert curves.shape == (depth, len(N.NIELSEN_EPOCHS))
        assert np.allclose(curves[:, 0], vals, rtol=1e-3)  # his curves start at his epoch-0 values
        assert (curves[:, -1] < curves[:, 0] / 10).all()  # ... and fall during training
    assert N.NIELSEN_EPOCHS[0] == 0 and list(N.NIELSEN_EPOCHS) == sorted(N.NIELSEN_EPOCHS)
    assert N.nielsen_network(3) == "[784, 30, 30, 30, 10]"
    assert N.NIELSEN_PROTOCOL["weight_decay"] == pytest.approx(5.0 / 1000)  # λ/n


# -- percentiles on synthetic data ----------------------------------------------------------------------
def test_percentile_rank_known_answers():
    assert N.percentile_rank(2.5, [1, 2, 3, 4]) == 50.0
    assert N.percentile_rank(3.0, [1, 2, 3, 4]) == 62.5  # 2 below, 1 tie counting half
    assert N.percentile_rank(0.0, [1, 2, 3, 4]) == 0.0
    assert N.percentile_rank(9.0, [1, 2, 3, 4]) == 100.0
    assert N.percentile_rank(7.0, [7.0] * 5) == 50.0  # all ties
    assert N.percentile_rank(2.0, [2, 2, 1, 5]) == 50.0  # 1 below, 2 ties
    assert N.percentile_rank(1.0, [3.0, np.nan]) == 0.0  # NaN draws are left out
    assert np.isnan(N.percentile_rank(1.0, [])) and np.isnan(N.percentile_rank(np.nan, [1.0]))
    x = np.random.default_rng(0).normal(size=1001)
    assert N.percentile_rank(np.median(x), x) == pytest.approx(50.0)


def synthetic_speeds(ranks, n=41):
    """One row per network: for each of his (depth, layer), n draws his × exp(g − g[k]) on the grid
    g = linspace(−2, 2, n), shuffled, so that his value is the (k+1)-th smallest draw exactly
    (k from ``ranks``); plus a depth-5 network he did not publish."""
    rng = np.random.default_rng(1)
    grid = np.linspace(-2.0, 2.0, n)
    rows = []
    pairs = [(d, l) for d in sorted(N.NIELSEN) for l in range(1, d + 1)]
    for (depth, layer), k in zip(pairs, ranks):
        for seed, g in enumerate(rng.permutation(grid)):
            rows.append((depth, layer, seed, N.NIELSEN[depth][layer - 1] * np.exp(g - grid[k])))
    rows += [(5, l, s, 1.0) for s in range(n) for l in range(1, 6)]
    d = pd.DataFrame(rows, columns=["depth", "layer", "seed", "speed"])
    d["dataset"], d["run_id"], d["step"] = "mnist", d.depth.astype(str) + "-" + d.seed.astype(str), 0
    d["network"] = [N.nielsen_network(x) for x in d.depth]
    return d


def test_percentile_table_on_synthetic_draws():
    n = 41
    ranks = [0, n - 1, 20, *np.random.default_rng(2).integers(1, n - 1, 6)]
    speeds = synthetic_speeds(ranks, n)
    t = N.percentile_table(speeds)
    assert list(zip(t.depth, t.layer))[:9] == [(d, l) for d in (2, 3, 4) for l in range(1, d + 1)]
    his = t.iloc[:9]
    assert np.allclose(his.percentile, [100 * (k + 0.5) / n for k in ranks])  # k below, one tie
    assert (his.n == n).all()
    for r, _ in zip(his.itertuples(), ranks):
        draws = speeds[(speeds.depth == r.depth) & (speeds.layer == r.layer)].speed
        assert [r.p5, r.median, r.p95] == pytest.approx(list(np.quantile(draws, [0.05, 0.5, 0.95])))
        assert r.inside == (r.p5 <= r.nielsen <= r.p95)
    assert not his.inside.iloc[0] and not his.inside.iloc[1] and his.inside.iloc[2]  # lowest, highest, median
    assert his.percentile.iloc[2] == 50.0 and his["median"].iloc[2] == pytest.approx(his.nielsen.iloc[2])
    unpublished = t[t.depth == 5]
    assert len(unpublished) == 5 and unpublished.nielsen.isna().all() and unpublished.percentile.isna().all()


def test_slowdown_and_sentences_on_synthetic_draws():
    rng = np.random.default_rng(3)
    rows = []
    for depth in (2, 3, 4):
        for seed in range(20):
            top = rng.uniform(0.2, 0.4)
            rows += [(depth, l, seed, top / 5.0 ** (depth - l)) for l in range(1, depth + 1)]  # exactly 5× per layer
    d = pd.DataFrame(rows, columns=["depth", "layer", "seed", "speed"])
    d["dataset"], d["run_id"], d["step"] = "mnist", d.depth.astype(str) + "-" + d.seed.astype(str), 0
    d["network"] = [N.nielsen_network(x) for x in d.depth]
    slow = N.slowdown_table(d)
    assert len(slow) == 6 and np.allclose(slow["median"], 5.0) and np.allclose(slow.p5, 5.0)
    his = np.array([N.NIELSEN[r.depth][r.layer] / N.NIELSEN[r.depth][r.layer - 1] for r in slow.itertuples()])
    assert np.allclose(slow.nielsen, his)
    assert np.array_equal(slow.percentile, np.where(his < 5.0, 0.0, 100.0))  # every draw is exactly 5
    assert not slow.inside.any()
    lines = N.init_sentences(N.percentile_table(d), slow)
    assert lines[2].startswith("Each hidden layer learns 5× to 5× slower")
    assert "0 of his 6 factors lie inside" in lines[2] and "holds for our median in all 6 layer pairs" in lines[2]
    assert N.ordinal(1) == "1st" and N.ordinal(12.4) == "12th" and N.ordinal(92) == "92nd" and N.ordinal(43) == "43rd"


# -- the tables on real runs (8x8 digits) ----------------------------------------------------------------
def test_table_matches_the_networks_at_initialisation(results):
    t = N.nielsen_table(results)
    assert list(zip(t.depth, t.layer)) == [(2, 1), (2, 2), (3, 1), (3, 2), (3, 3)]
    assert (t.n_seeds == len(SEEDS)).all()
    assert set(t.network) == {"[64, 30, 30, 10]", "[64, 30, 30, 30, 10]"}
    for depth in (2, 3):
        ours = np.array([speeds_at_init(depth, s) for s in SEEDS])
        rows = t[t.depth == depth]
        assert np.allclose(rows.ours_mean, ours.mean(axis=0), rtol=1e-10)
        assert np.allclose(rows.ours_std, ours.std(axis=0, ddof=1), rtol=1e-8)
        ratio = (ours[:, :-1] / ours[:, 1:]).mean(axis=0)
        assert np.allclose(rows.ours_ratio_next.iloc[:-1], ratio, rtol=1e-10)
        assert np.isnan(rows.ours_ratio_next.iloc[-1]) and np.isnan(rows.nielsen_ratio_next.iloc[-1])
        assert np.allclose(rows.nielsen, N.NIELSEN[depth])
        assert np.allclose(rows.ours_over_nielsen, rows.ours_mean / rows.nielsen)
    # the vanishing gradient: each hidden layer learns several times slower than the next
    assert (t.ours_ratio_next.dropna() < 0.5).all()


def test_theory_column(results):
    t = N.nielsen_table(results, q0=0.25)
    pred = t.theory_ratio_next.dropna()
    assert len(pred) == 3 and ((pred > 0.15) & (pred < 0.3)).all()  # √χ for σ_w = σ_b = 1 is ≈ 0.2
    assert "theory_ratio_next" not in N.nielsen_table(results).columns


def test_first_last(results):
    fl = N.nielsen_first_last(results).set_index("depth")
    assert fl.loc[2, "nielsen"] == pytest.approx(0.06574134326503182 / 0.3092184942703712)
    assert fl.loc[3, "nielsen"] == pytest.approx(N.NIELSEN[3][0] / N.NIELSEN[3][2])
    ours = np.array([speeds_at_init(3, s) for s in SEEDS])
    assert fl.loc[3, "ours_mean"] == pytest.approx((ours[:, 0] / ours[:, -1]).mean(), rel=1e-10)
    assert fl.loc[3, "ours_mean"] < fl.loc[2, "ours_mean"] < 1


def test_training_speeds(results):
    tr = N.nielsen_training(results)
    assert sorted(tr.step.unique()) == [0, 1, 2]
    assert (tr.n_seeds == len(SEEDS)).all()
    last = tr[tr.layer == tr.depth]
    assert np.allclose(last.rel_to_last_mean, 1.0)
    init = N.nielsen_table(results)
    at0 = tr[tr.step == 0].reset_index(drop=True)
    assert np.allclose(at0.speed_mean, init.ours_mean)


def test_other_configurations_are_refused(tmp_path):
    mlplab.run(spec(2, 0, loss="mse"), tmp_path)
    with pytest.raises(ValueError, match="Nielsen's configuration"):
        N.nielsen_table(mlplab.load_results(tmp_path))
    assert not N.STUDY.applies(mlplab.load_results(tmp_path))  # decided by the data, not by an error
    assert analysis(["nielsen", str(tmp_path)]) == 2  # the command: one line, exit code 2


# -- MNIST: his protocol ----------------------------------------------------------------------------------
def test_each_network_is_counted_once_at_initialisation(mnist):
    s = N.speeds_at_init(mnist)
    per_depth = s.groupby("depth").run_id.nunique()
    assert per_depth.to_dict() == {2: len(INIT_SEEDS), 3: len(INIT_SEEDS)}  # not 6 + 2
    every = N.hidden_speeds(mnist, 0)
    assert every.run_id.nunique() == 2 * (len(INIT_SEEDS) + len(TRAIN_SEEDS))
    # a trained run's step 0 is the very network of the same seed at initialisation
    both = every[every.seed == TRAIN_SEEDS[0]].groupby(["depth", "layer"]).speed
    assert (both.size() == 2).all() and (both.nunique() == 1).all()
    assert set(s.network) == {"[784, 30, 30, 10]", "[784, 30, 30, 30, 10]"}


def test_percentiles_on_mnist_runs(mnist):
    p = N.percentiles(mnist)
    assert list(zip(p.depth, p.layer)) == [(2, 1), (2, 2), (3, 1), (3, 2), (3, 3)]
    assert (p.dataset == "mnist").all() and (p.n == len(INIT_SEEDS)).all()
    for depth in (2, 3):
        ours = np.array([recomputed_speeds(mnist_spec(depth, s)) for s in INIT_SEEDS])
        rows = p[p.depth == depth]
        assert np.allclose(rows["median"], np.median(ours, axis=0), rtol=1e-10)
        assert np.allclose(rows.p95, np.quantile(ours, 0.95, axis=0), rtol=1e-10)
        expect = [N.percentile_rank(his, ours[:, l]) for l, his in enumerate(N.NIELSEN[depth])]
        assert np.allclose(rows.percentile, expect)
    # the vanishing gradient on MNIST: each layer several times slower than the next
    assert (N.slowdown_table(N.speeds_at_init(mnist))["median"] > 2).all()


def test_training_on_mnist_against_his_curves(mnist):
    tr = N.nielsen_training(mnist)  # the runs that train, not the one-step runs
    assert (tr.n_seeds == len(TRAIN_SEEDS)).all() and sorted(tr.step.unique()) == [0, 5, 10]
    cp = N.training_checkpoints(mnist)
    assert sorted(cp.epoch.unique()) == [0, 10]  # epoch 50 was not reached; 10 is the last logged
    at10 = cp[(cp.epoch == 10) & (cp.depth == 3) & (cp.layer == 1)].iloc[0]
    assert at10.nielsen == N.NIELSEN_TRAINING[3][0][N.NIELSEN_EPOCHS.index(10)]
    assert at10.inside == (at10.lo <= at10.nielsen <= at10.hi)
    lines = N.training_sentences(mnist)
    assert (
        lines[0]
        == f"Epoch 0: {int(cp[cp.epoch == 0].inside.sum())} of his 5 values lie within the range of our 2 seeds."
    )
    assert (cp[cp.epoch == 10]["median"] < cp[cp.epoch == 0]["median"].to_numpy()).all()  # learning slows


@pytest.fixture(scope="module")
def written_and_drawn(mnist_root):
    """``write_tables`` on the MNIST folder: (its Markdown, [((folder, prefix), the figures
    make_figures drew for it)]); the tables and both figures (PNG and SVG, drawn by
    ``fig_init`` and ``fig_training``) are in the folder."""
    original, drawn = N.make_figures, []

    def recorded(res, outdir, prefix):
        drawn.append(((Path(res.path), prefix), original(res, outdir, prefix)))
        return drawn[-1][1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sections, "make_figures", recorded)
        md = N.write_tables(mnist_root)
    return md, drawn


@pytest.fixture(scope="module")
def written(written_and_drawn):
    return written_and_drawn[0]


def test_figures_are_written(mnist, mnist_root, written):
    import matplotlib.pyplot as plt

    for name, draw in (("init", N.fig_init), ("training", N.fig_training)):
        fig = draw(mnist)
        assert fig.get_size_inches()[0] <= 10
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert len(panels) == 2 and all(ax.get_yscale() == "log" for ax in panels)  # one panel per depth
        plt.close(fig)
        png, svg = (mnist_root / "figures" / f"nielsen_mnist_{name}{ext}" for ext in (".png", ".svg"))
        assert png.stat().st_size > 10_000 and "<svg" in svg.read_text()[:2000]


def test_no_training_figure_without_training(tmp_path):
    for seed in (0, 1):
        mlplab.run(mnist_spec(2, seed), tmp_path)
    with pytest.raises(FigureSkipped, match="trains"):
        N.fig_training(mlplab.load_results(tmp_path))


def test_report_blocks(mnist_root, tmp_path, written_and_drawn, monkeypatch):
    """The section asks make_figures for the figures write_tables drew (the same folder and
    names, into the report's outdir) and shows them; they are not drawn a second time here."""
    (((folder, prefix), made),) = written_and_drawn[1]

    def same_figures(res, outdir, name):
        assert (Path(res.path), name, Path(outdir)) == (folder, prefix, tmp_path)
        return made

    monkeypatch.setattr(sections, "make_figures", same_figures)
    blocks = N.report_blocks(mnist_root.parent / "blog", outdir=tmp_path)  # a study next to the Nielsen folder
    assert blocks[0].kind == "h2" and blocks[0].body == "Nielsen's speeds of learning"
    assert {b.kind for b in blocks} <= {"h2", "h3", "p", "list", "table", "figure", "code"}
    figures = [b for b in blocks if b.kind == "figure"]
    assert [f.body.name for f in figures] == ["nielsen_mnist_init.png", "nielsen_mnist_training.png"]
    assert all(f.body.exists() and f.body.with_suffix(".svg").exists() and f.caption for f in figures)
    assert all(text_px_in_report(f.body) >= MIN_TEXT_PX for f in figures)  # legible at the report's width
    tables = [b.body for b in blocks if b.kind == "table"]
    pct = N.percentiles(mlplab.load_results(mnist_root))
    assert np.allclose(tables[0]["percentile of his"], pct.percentile)
    inside = f"{int(pct.inside.sum())} of his 5 values lie inside our 5–95 % range"
    assert any(inside in line for b in blocks if b.kind == "list" for line in b.body)
    assert N.nielsen_folders(mnist_root) == N.nielsen_folders(mnist_root.parent / "blog") == [mnist_root]
    # the same section through the Study protocol: its figures, then its blocks from them
    res = load(mnist_root)
    assert N.STUDY.applies(res) and N.STUDY.name == "nielsen" and N.STUDY.title == blocks[0].body
    figs = N.STUDY.figures(res, tmp_path)
    assert figs == {f"nielsen_mnist_{kind}": paths for kind, paths in made.items()}
    again = N.STUDY.sections(res, figs)
    assert [b.kind for b in again] == [b.kind for b in blocks]
    assert report.to_markdown(again, mnist_root) == report.to_markdown(blocks, mnist_root)  # what the report writes


def test_report_blocks_without_runs(tmp_path):
    blocks = N.report_blocks(tmp_path / "blog")
    assert [b.kind for b in blocks] == ["h2", "p"]
    assert "make nielsen" in blocks[1].body


def test_write_tables(mnist_root, written):
    md = written
    assert "Where his values fall" in md and "During training" in md
    pct = pd.read_csv(mnist_root / "nielsen_percentiles.csv")
    assert list(pct.depth) == [2, 2, 3, 3, 3] and (pct.n == len(INIT_SEEDS)).all()
    assert (mnist_root / "nielsen_table.md").exists() and (
        mnist_root / "figures" / "nielsen_mnist_training.svg"
    ).exists()
    tables = N.STUDY.tables(mlplab.load_results(mnist_root))  # what the command writes as CSV
    assert list(tables) == ["nielsen_table", "nielsen_percentiles"]
    for name, table in tables.items():
        pd.testing.assert_frame_equal(pd.read_csv(mnist_root / f"{name}.csv"), table, check_dtype=False)


# -- the sweep files -----------------------------------------------------------------------------------------
def composed(sweep):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"sweep={sweep}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    depths = [int(d) for d in str(params.depth).split(",")]
    lo, hi = map(int, str(params.seed).replace(" ", "").removeprefix("range(").removesuffix(")").split(","))
    return cfg, to_spec(cfg), depths, range(lo, hi)


def test_sweep_file_is_nielsens_setup():
    cfg, s, depths, seeds = composed("nielsen")
    assert cfg.sweep_name == "nielsen"
    for k, v in N.NIELSEN_CONFIG.items():
        assert getattr(s, k) == v, k
    assert s.dataset == "digits" and s.batch_size == 1000
    assert len(load_data(s).X_train) == 1000  # step 0's gradient is the mean over 1,000 images
    assert depths == [2, 3, 4] and len(seeds) == 10


@pytest.mark.parametrize("sweep", ["nielsen_mnist", "nielsen_mnist_training"])
def test_mnist_sweep_files_are_his_setup(sweep):
    cfg, s, depths, seeds = composed(sweep)
    assert cfg.sweep_name == "nielsen_mnist"  # both files write to one folder
    for k, v in N.NIELSEN_CONFIG.items():
        assert getattr(s, k) == v, k
    assert s.init == "normal" and s.residual is False and s.norm == "none"
    assert s.dataset == "mnist" and not s.standardise and s.batch_size == 1000
    data = load_data(s)
    assert data.X_train.shape == (1000, 784) and 0 <= data.X_train.min() and data.X_train.max() <= 1
    assert depths == [2, 3, 4]
    assert (s.lr, s.weight_decay) == (N.NIELSEN_PROTOCOL["lr"], pytest.approx(5.0 / 1000))
    assert N.is_his_protocol((s.dataset, s.lr, s.weight_decay, s.batch_size))
    if sweep == "nielsen_mnist":
        assert s.epochs == 1 and len(seeds) >= 30  # one step: step 0 is the measurement
    else:
        assert s.epochs == N.NIELSEN_PROTOCOL["epochs"] and 3 <= len(seeds) <= 5 and s.log_every == 5
        assert set(seeds) <= set(composed("nielsen_mnist")[3])  # its networks are among the init sweep's

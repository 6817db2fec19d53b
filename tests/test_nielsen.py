"""Nielsen's speed-of-learning table on small runs made with mlplab.run."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import mlplab
from mlplab.analysis import nielsen as N
from mlplab.cli import CONF_DIR
from mlplab.config import to_spec
from mlplab.train import build_network, load_data, rngs

SEEDS = (0, 1)


def spec(depth, seed, **kw):
    """Nielsen's configuration on a 200-image slice of the digits, full batch, a few steps."""
    base = dict(
        depth=depth, width=30, activation="sigmoid", loss="bce", init="normal", sigma_w=1.0, sigma_b=1.0,
        dataset="digits", n_samples=250, standardise=False, batch_size=200, lr=1.0, epochs=3, log_every=1, seed=seed,
    )
    base.update(kw)
    return mlplab.RunSpec(**base)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("nielsen")
    for depth in (2, 3):
        for seed in SEEDS:
            assert mlplab.run(spec(depth, seed), root)["status"] == "ok"
    mlplab.run(spec(2, 0, activation="relu"), root)  # not Nielsen's configuration: left out
    return mlplab.load_results(root)


def speeds_at_init(depth, seed):
    """‖∂C/∂b^l‖ of the hidden layers, recomputed from the network the run starts from."""
    s = spec(depth, seed)
    rng_data, rng_init, _ = rngs(seed)
    data = load_data(s, rng_data)
    net = build_network(s, data, rng_init)
    g = net.gradients(data.X_train, data.Y_train)  # the mean over the whole (full) batch
    return np.array([np.linalg.norm(db) for db in g.db[:depth]])


def test_published_numbers():
    assert sorted(N.NIELSEN) == [2, 3, 4]
    for depth, vals in N.NIELSEN.items():
        assert len(vals) == depth
        assert all(a < b for a, b in zip(vals, vals[1:]))  # slower towards the input
    assert N.nielsen_network(3) == "[784, 30, 30, 30, 10]"


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
    assert fl.loc[2, "nielsen"] == pytest.approx(0.07 / 0.31)
    assert fl.loc[3, "nielsen"] == pytest.approx(0.012 / 0.283)
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


def test_sweep_file_is_nielsens_setup():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sweep=nielsen"], return_hydra_config=True)
    s = to_spec(cfg)
    assert cfg.sweep_name == "nielsen"
    for k, v in N.NIELSEN_CONFIG.items():
        assert getattr(s, k) == v, k
    assert s.dataset == "digits" and s.batch_size == 1000
    assert len(load_data(s).X_train) == 1000  # step 0's gradient is the mean over 1,000 images
    params = cfg.hydra.sweeper.params
    assert [int(d) for d in str(params.depth).split(",")] == [2, 3, 4]
    assert "range(0,10)" in str(params.seed).replace(" ", "")

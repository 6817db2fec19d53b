"""Hydra configs: every group option composes; bad values fail with one line naming the field."""

import functools
import itertools
import math
from pathlib import Path

import pytest
from conftest import forked
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException, ValidationError

from mlplab.config import CONF_DIR, to_spec
from mlplab.spec import ConfigError, RunSpec
from mlplab.train import load_data, prepare

GROUPS = ["activation", "loss", "init", "clip", "data", "train", "optim"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((Path(CONF_DIR) / g).glob("*.yaml"))]


def hydra_compose(overrides=()):
    """The config ``python -m mlplab overrides`` runs, composed by Hydra."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@functools.cache
def _composed(choices: tuple):
    return hydra_compose(choices)


def make(overrides=()):
    """The config ``python -m mlplab overrides`` runs, made as the sweep planner makes a job's
    (``mlplab.plan.plan_jobs``): Hydra composes the group choices (``loss=mse``), once per
    distinct set of them (~80 ms each), and the value overrides (``depth=4``) are set on a copy
    (``apply_overrides``). test_the_planner_gives_each_job_the_spec_hydra_composes holds that
    to Hydra's own composition; the tests here that are about Hydra use ``hydra_compose``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mlplab.plan import apply_overrides

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    is_group = [(Path(CONF_DIR) / o.key_or_group.split("/")[0]).is_dir() for o in parsed]
    cfg = _composed(tuple(o.input_line for o, g in zip(parsed, is_group) if g)).copy()
    apply_overrides(cfg, [o for o, g in zip(parsed, is_group) if not g])
    return cfg


def test_defaults_compose_to_the_documented_run():
    spec = to_spec(make())
    assert spec == RunSpec()  # conf/ and the RunSpec defaults tell the same story


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_group_option_composes(group, option):
    overrides = [f"{group}={option}"]
    if option == "file":
        overrides.append("data.path=x.npz")
    spec = to_spec(make(overrides))
    name = {
        "data": spec.dataset,
        "activation": spec.activation,
        "loss": spec.loss,
        "init": spec.init,
        "clip": spec.clip,
        "optim": spec.optim,
    }
    if group in name:
        assert name[group] == option


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (Path(CONF_DIR) / "sweep").glob("*.yaml")))
def test_every_sweep_file_composes(sweep):
    """Each sweep file composes, names its folder, and sweeps config keys that exist."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"sweep={sweep}"], return_hydra_config=True)
    assert cfg.sweep_name and cfg.sweep_name != "runs"
    params = cfg.hydra.sweeper.params
    assert params and all(str(v) for v in params.values())
    groups = {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()}
    for key in params:
        head = key.split(".")[0]
        assert head in groups or head in cfg, f"{sweep}: sweeps unknown key {key}"
    to_spec(cfg)  # the composed base run is a valid run


@pytest.mark.parametrize(
    "override,field,value",
    [
        ("depth=-1", "depth", "-1"),
        ("width=0", "width", "0"),
        ("train.lr=0", "train.lr", "0.0"),
        ("train.lr=-0.5", "train.lr", "-0.5"),
        ("train.lr=nan", "train.lr", "nan"),
        ("train.lr=inf", "train.lr", "inf"),
        ("clip.threshold=0", "clip.threshold", "0.0"),
        ("clip.threshold=-1", "clip.threshold", "-1.0"),
        ("train.batch_size=0", "train.batch_size", "0"),
        ("train.batch_size=abc", "train.batch_size", "'abc'"),
        ("train.log_every=0", "train.log_every", "0"),
        ("train.eval_every=0", "train.eval_every", "0"),
        ("train.epochs=0", "train.epochs", "0"),
        ("dtype=float16", "dtype", "'float16'"),
        ("data.test_fraction=1.5", "data.test_fraction", "1.5"),
        ("init.sigma_w=0", "init.sigma_w", "0.0"),
        ("norm=group", "norm", "'group'"),
        ("optim.beta1=1", "optim.beta1", "1.0"),
        ("optim.beta2=-0.1", "optim.beta2", "-0.1"),
        ("optim.eps=0", "optim.eps", "0.0"),
        ("optim.momentum=-0.9", "optim.momentum", "-0.9"),
        ("optim.alpha=1", "optim.alpha", "1.0"),
        ("train.schedule=linear", "train.schedule", "'linear'"),
        ("train.warmup_steps=-1", "train.warmup_steps", "-1"),
        ("train.gamma=0", "train.gamma", "0.0"),
        ("train.gamma=2", "train.gamma", "2.0"),
        ("train.step_size=0", "train.step_size", "0"),
    ],
)
def test_out_of_range_values_fail_naming_field_value_and_rule(override, field, value):
    with pytest.raises(ConfigError) as e:
        to_spec(make([override]))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"invalid config: {field}={value}: must be")


def test_remedies_compose_from_the_command_line():
    spec = to_spec(make(["residual=true", "norm=batch", "depth=16", "init=orthogonal"]))
    assert (spec.residual, spec.norm, spec.depth, spec.init) == (True, "batch", 16, "orthogonal")
    assert to_spec(make(["norm=layer"])).norm == "layer"
    assert to_spec(make(["norm=null"])).norm == "none"  # the old spelling, read as today's
    ids = {
        to_spec(make([f"residual={r}", f"norm={n}"])).run_id
        for r in ("false", "true")
        for n in ("null", "batch", "layer")
    }
    assert len(ids) == 6  # the run id covers both


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ([], dict(optim="sgd", lr=0.5, weight_decay=0.0)),
        (["optim=momentum"], dict(optim="momentum", lr=0.05, momentum=0.9)),
        (["optim=nesterov"], dict(optim="nesterov", lr=0.05, momentum=0.9)),
        (["optim=adam"], dict(optim="adam", lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)),
        (["optim=adamw"], dict(optim="adamw", lr=1e-3, weight_decay=0.01)),
        (["optim=rmsprop"], dict(optim="rmsprop", lr=1e-2, rms_alpha=0.99, eps=1e-8)),
        (["optim=adam", "train.lr=0.02", "optim.beta2=0.99"], dict(optim="adam", lr=0.02, beta2=0.99)),
        (["train.lr=0.02", "optim=adamw", "train.weight_decay=0"], dict(optim="adamw", lr=0.02, weight_decay=0.0)),
        (["optim=adam", "remedy=weight_decay"], dict(optim="adam", lr=1e-3, weight_decay=0.001)),
        (["remedy=adam"], dict(optim="adam", lr=1e-3, weight_decay=0.0)),
        (["remedy=adam", "train.lr=0.02"], dict(optim="adam", lr=0.02)),
        (
            ["train.schedule=step", "train.gamma=0.5", "train.step_size=7", "train.warmup_steps=3"],
            dict(lr_schedule="step", lr_gamma=0.5, lr_step_size=7, warmup_steps=3),
        ),
    ],
)
def test_each_optimiser_brings_pytorchs_defaults_and_the_command_line_wins(overrides, expected):
    """optim=adam sets Adam's own default learning rate (PyTorch's), as its config file says; a
    value on the command line (or a remedy) beats it, in any order."""
    spec = to_spec(make(overrides))
    assert {k: getattr(spec, k) for k in expected} == expected
    assert to_spec(hydra_compose(overrides)) == spec  # as Hydra itself composes it


@pytest.mark.parametrize("batch_size,n_last", [(1, 1), (17, 1), ("full", None)])
def test_batch_norm_refuses_a_mini_batch_of_one(batch_size, n_last):
    """800 training samples: batches of 17 leave a last batch of 1, which batch norm cannot
    normalise; batches of 1 likewise. Full batch is fine."""
    spec = to_spec(make(["norm=batch", f"train.batch_size={batch_size}"]))
    if n_last is None:
        prepare(spec)
        return
    with pytest.raises(
        ConfigError,
        match=rf"^invalid config: train.batch_size={batch_size}: with norm=batch every mini-batch needs >= 2",
    ):
        prepare(spec)
    prepare(to_spec(make(["norm=layer", f"train.batch_size={batch_size}"])))  # layer norm: fine


def test_batch_larger_than_the_training_set_fails_before_training():
    spec = to_spec(make(["train.batch_size=801"]))  # 1000 samples, 20 % held out
    with pytest.raises(
        ConfigError, match=r"^invalid config: train.batch_size=801: must be <= the 800 training samples"
    ):
        prepare(spec)


@pytest.mark.parametrize(
    "override,exc,words",
    [
        ("depth=abc", ValidationError, ["depth", "abc", "Integer"]),
        ("train.lr=fast", ValidationError, ["lr", "fast", "Float"]),
        ("activation=swish", ConfigCompositionException, ["activation/swish", "sigmoid", "relu"]),
        ("residual=maybe", ValidationError, ["residual", "maybe", "bool"]),
        ("nosuchkey=1", OmegaConfBaseException, ["nosuchkey"]),
    ],
)
def test_hydra_rejects_wrong_types_and_unknown_options(override, exc, words):
    with pytest.raises(Exception) as e:
        hydra_compose([override])
    text = str(e.value) + str(e.value.__cause__ or "")
    assert isinstance(e.value, exc) or isinstance(e.value.__cause__, exc)
    for w in words:
        assert w in text


def test_targets_must_suit_the_loss(tmp_path, rng):
    import numpy as np

    path = tmp_path / "soft.npz"
    X = rng.standard_normal((50, 3))
    np.savez(path, X=X, Y=np.full((50, 2), 0.5))  # soft targets: fine for mse only
    base = ["data=file", f"data.path={path}", "train.batch_size=8"]
    assert load_data(to_spec(make(base + ["loss=mse"]))).Y_train.shape == (40, 2)
    for loss, rule in [("bce", "must be 0/1"), ("softmax_ce", "must be 0/1")]:
        with pytest.raises(ConfigError, match=rf"^invalid config: loss='{loss}': .*{rule}"):
            load_data(to_spec(make(base + [f"loss={loss}"])))
    np.savez(path, X=X, Y=np.ones((50, 2)))  # binary but not one-hot
    load_data(to_spec(make(base + ["loss=bce"])))
    with pytest.raises(ConfigError, match="must be one-hot"):
        load_data(to_spec(make(base + ["loss=softmax_ce"])))


def cli(*args, cwd):
    """``python -m mlplab args`` (in a forked child of the test process: conftest.forked)."""
    return forked("mlplab", list(args), cwd)


# A bad value on the command line (one line on stderr, exit code 2, nothing written): the cases
# of test_bad_input (depth=-1, activation=swish, depth=abc, a batch above the training set and
# more), each against a results folder that already holds a run.


def test_cli_debug_flag_shows_the_traceback(tmp_path):
    p = cli(f"results_dir={tmp_path}/r", "depth=-1", "debug=true", cwd=tmp_path)
    assert p.returncode != 0 and "Traceback" in p.stderr and "ConfigError" in p.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_learning_rate_that_is_not_finite_is_refused(value):
    """NaN compares false with every bound, so "lr > 0" alone would let it through."""
    with pytest.raises(ConfigError) as err:
        to_spec(make([f"train.lr={value}"]))
    assert err.value.field == "train.lr" and math.isnan(err.value.value) == (value == "nan")
    assert "finite" in str(err.value) and str(err.value).startswith("invalid config: train.lr=")


def covering(jobs):
    """Jobs (lists of overrides) among ``jobs`` such that every pair of overrides of two keys
    that some job has is in one of them (a pairwise covering set, chosen greedily)."""

    def pairs(job):
        return set(itertools.combinations(sorted(job), 2))

    todo, chosen = set().union(*map(pairs, jobs)), []
    while todo:
        best = max(jobs, key=lambda job: len(pairs(job) & todo))
        chosen.append(best)
        todo -= pairs(best)
    return chosen


def test_the_planner_gives_each_job_the_spec_hydra_composes(tmp_path):
    """The planner sets plain values straight on a RunSpec; that must be exactly the spec of the
    job's config composed by Hydra (ints for float keys, null, booleans, 'full', groups). Hydra
    composes the jobs of a covering set (~70 ms each): every value of every key, and every pair
    of values of two keys, is in a job compared; the other jobs are the planner's products of
    the same values."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from mlplab.plan import plan_jobs
    from mlplab.train import prepare

    params = {
        "depth": "0,3",
        "train.lr": "1,0.25",
        "norm": "null,layer",
        "residual": "true",
        "train.batch_size": "full,16",
        "activation": "relu,tanh",
        "init.sigma_b": "0",
        "data.n_samples": "200",
        "train.log_every": "null,7",
        "optim": "sgd,adam",
        "train.schedule": "cosine",
    }
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):  # (its cache: in tmp_path)
        cfg = compose(config_name="config", overrides=[f"results_dir={tmp_path}"], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.sweeper.params = params
        HydraConfig.instance().set_config(cfg)
        jobs = plan_jobs(cfg)
        assert len(jobs) == 2**7 and len({spec.run_id for _, spec in jobs}) == 2**7
        planned = {tuple(job): spec for job, spec in jobs}
        checked = covering([list(job) for job, _ in jobs])
        assert len(checked) < 16
        for job in checked:
            spec = planned[tuple(job)]
            composed = prepare(to_spec(compose(config_name="config", overrides=job)))
            assert spec == composed and spec.run_id == composed.run_id, job
        assert {type(s.lr) for _, s in jobs} == {float} and {s.norm for _, s in jobs} == {"none", "layer"}


def test_planning_the_same_sweep_again_reuses_its_compositions(tmp_path, monkeypatch):
    """The second plan of a sweep (a resume) takes each group choice's RunSpec from the sweep
    folder's cache instead of composing it; the specs are the same."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import mlplab.plan as planning

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"results_dir={tmp_path}"], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.sweeper.params = {"loss": "mse,bce", "activation": "relu,tanh", "depth": "1,2"}
        HydraConfig.instance().set_config(cfg)
        composed = {"n": 0}
        original = planning.compose

        def counting(*args):
            composed["n"] += 1
            return original(*args)

        monkeypatch.setattr(planning, "compose", counting)
        first = planning.plan_jobs(cfg)
        assert composed["n"] == 4 and (tmp_path / "runs" / "hydra" / "compositions.json").is_file()
        again = planning.plan_jobs(cfg)
        assert composed["n"] == 4  # nothing composed the second time
        assert [(j, s, s.run_id) for j, s in first] == [(j, s, s.run_id) for j, s in again]
        from omegaconf import read_write

        with read_write(cfg.hydra.overrides), open_dict(cfg.hydra.overrides):  # other overrides: other compositions
            cfg.hydra.overrides.task = ["train.lr=0.1"]
        planning.plan_jobs(cfg)
        assert composed["n"] == 8

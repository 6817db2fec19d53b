"""A run's id: every field of the spec is part of it, and it is the same in every process."""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import pytest

from mlplab.activations import ACTIVATIONS
from mlplab.clipping import CLIPS
from mlplab.data import DATASETS
from mlplab.init import INITS
from mlplab.layers import NORMS
from mlplab.losses import LOSSES
from mlplab.lr_schedule import SCHEDULES
from mlplab.optim import OPTIMISERS
from mlplab.spec import BEFORE, FIELDS, SCHEMA_VERSION, RunSpec, cadence

# every string a field may hold, for finding a valid value other than the default
WORDS = sorted(
    {
        *ACTIVATIONS,
        *LOSSES,
        *INITS,
        *CLIPS,
        *DATASETS,
        *NORMS,
        *OPTIMISERS,
        *SCHEDULES,
        "float32",
        "float64",
        "full",
        "log",
        "data.npz",
        "0" * 64,
    }
)


def other_value(field: dataclasses.Field):
    """A valid value of ``field`` other than its default (the field's own check decides)."""
    default, check = field.default, field.metadata["check"]
    candidates = (
        [default + 1, default * 1.5 + 0.25, default / 2]
        if isinstance(default, (int, float)) and not isinstance(default, bool)
        else []
    )
    candidates += [not default] if isinstance(default, bool) else []
    candidates += [*WORDS, 7, 0.5, 0.3, 3]
    for v in candidates:
        if v != default and check.ok(v):
            return v
    raise AssertionError(f"no valid value other than {default!r} found for {field.name}")


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_every_field_changes_the_run_id(field):
    """Two runs that differ in any one field are two runs: neither is skipped as the other.
    (A field added to RunSpec is covered by this test without touching it.)"""
    base = RunSpec()
    changed = dataclasses.replace(base, **{field.name: other_value(field)})
    assert changed.run_id != base.run_id


def test_the_run_id_is_the_hash_of_the_canonical_config():
    """Computed here independently of RunSpec.run_id: sha256 of the sorted-key JSON of every
    field plus the schema version, 16 hex digits."""
    spec = RunSpec(depth=3, activation="relu", seed=11)
    fields = {f.name: getattr(spec, f.name) for f in FIELDS}
    assert fields["norm"] == "none"
    fields["norm"] = None  # hashed as it was spelled before "none": the run ids made then stay
    for name in ("optim", "momentum", "beta1", "beta2", "eps", "rms_alpha"):
        del fields[name]  # added later, at the value every run had before: left out
    for name in ("lr_schedule", "warmup_steps", "lr_gamma", "lr_step_size", "spectrum_every", "spectrum_samples"):
        del fields[name]
    del fields["input_q0"]
    blob = json.dumps({"schema": SCHEMA_VERSION, **fields}, sort_keys=True)
    assert spec.run_id == hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_a_field_added_later_is_hashed_once_it_leaves_the_value_runs_had_before():
    """An adam run's id covers optim and every hyperparameter, written out here."""
    spec = RunSpec(optim="adam", lr=1e-3, beta2=0.99, lr_schedule="cosine")
    fields = {f.name: getattr(spec, f.name) for f in FIELDS}
    fields["norm"] = None
    for name in ("momentum", "beta1", "eps", "rms_alpha", "warmup_steps", "lr_gamma", "lr_step_size"):
        del fields[name]  # still at the value runs had before these fields existed
    for name in ("spectrum_every", "spectrum_samples", "input_q0"):
        del fields[name]  # still at the value runs had before these fields existed
    blob = json.dumps({"schema": SCHEMA_VERSION, **fields}, sort_keys=True)
    assert spec.run_id == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert BEFORE == {
        "optim": "sgd",
        "momentum": 0.9,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "rms_alpha": 0.99,
        "lr_schedule": "constant",
        "warmup_steps": 0,
        "lr_gamma": 0.1,
        "lr_step_size": None,
        "spectrum_every": None,
        "spectrum_samples": 16,
        "input_q0": None,
    }


@pytest.mark.parametrize(
    "kw,run_id",
    [
        ({}, "4e561cd2555ffb04"),
        ({"norm": "batch"}, "8e3044707c5da026"),
        ({"norm": None}, "4e561cd2555ffb04"),
        ({"optim": "sgd", "lr_schedule": "constant", "momentum": 0.9}, "4e561cd2555ffb04"),
        ({"optim": "adam"}, "da17b633639aaa58"),
        ({"lr_schedule": "cosine", "warmup_steps": 5}, "340897f877169ea4"),
        ({"spectrum_every": None, "spectrum_samples": 16, "input_q0": None}, "4e561cd2555ffb04"),
    ],
)
def test_run_ids_made_before_norm_was_spelled_none_stay(kw, run_id):
    """The ids of runs made when no normalisation was spelled null, or before there were
    optimisers and schedules to choose (result folders resume, the reference runs keep theirs);
    null, the old spelling, is read as "none". Pinned too: the ids of runs made with the new fields."""
    spec = RunSpec(**kw)
    assert spec.run_id == run_id
    assert spec.norm == (kw.get("norm") or "none")


def test_the_run_id_is_the_same_in_another_process():
    code = "from mlplab.spec import RunSpec; print(RunSpec(depth=3, activation='relu', seed=11).run_id)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == RunSpec(depth=3, activation="relu", seed=11).run_id


# --- validation: every field's accepted edge values, rejected ones and its exact message ------------

from mlplab.spec import ConfigError, validate  # noqa: E402

INT = "must be an integer >= {}"
POS = "must be a finite number > 0"
NONNEG = "must be a finite number >= 0"
OPEN01 = "must be a number in (0, 1)"
CLOSED_OPEN01 = "must be a number in [0, 1)"
BOOL = "must be true or false"
I32, I64 = 2**31 - 1, 2**63 - 1

# field: (accepted, rejected, the rule the message states)
RULES = {
    "depth": ([0, 3, I32], [-1, True, 1.0, "2"], INT.format(0)),
    "width": ([1, I32], [0, False, 2.5], INT.format(1)),
    "activation": (sorted(ACTIVATIONS), ["swish", None, 1], f"must be one of {sorted(ACTIVATIONS)}"),
    "alpha": ([1e-12, 0.5, 1 - 1e-12], [0, 1.0, -0.1, True, "0.1"], OPEN01),
    "loss": (sorted(LOSSES), ["hinge", None], f"must be one of {sorted(LOSSES)}"),
    "init": (sorted(INITS), ["zeros"], f"must be one of {sorted(INITS)}"),
    "sigma_w": ([5e-324, 2], [0, 0.0, -1.0, float("inf"), float("nan"), True, "1"], POS),
    "sigma_b": ([0, 0.0, 3.5], [-5e-324, float("inf"), float("nan"), False], NONNEG),
    "residual": ([True, False], [1, 0, "true", None], BOOL),
    "norm": (["none", *sorted(NORMS)], ["group", "", "None"], f"must be one of {sorted(['none', *NORMS])}"),
    "lr": ([5e-324, 10], [0, -0.5, float("inf"), float("-inf"), float("nan"), True], POS),
    "lr_schedule": (sorted(SCHEDULES), ["linear", None], f"must be one of {sorted(SCHEDULES)}"),
    "warmup_steps": ([0, I32], [-1, True, 1.5, None], INT.format(0)),
    "lr_gamma": ([5e-324, 0.5, 1, 1.0], [0, -0.1, 1 + 1e-12, True, None], "must be a number in (0, 1]"),
    "lr_step_size": (
        [None, 1, I32],
        [0, 2.0, True, "full"],
        INT.format(1) + " or null (a third of the updates after the warmup)",
    ),
    "optim": (sorted(OPTIMISERS), ["sgdm", None, "Adam"], f"must be one of {sorted(OPTIMISERS)}"),
    "momentum": ([0, 0.0, 0.9, 5], [-1e-12, float("inf"), float("nan"), True], NONNEG),
    "beta1": ([0, 0.0, 0.5, 1 - 1e-16], [1, 1.0, -1e-12, True, None], CLOSED_OPEN01),
    "beta2": ([0, 0.999], [1, 2, -0.5, False], CLOSED_OPEN01),
    "eps": ([5e-324, 1e-8, 1], [0, -1e-8, float("inf"), True], POS),
    "rms_alpha": ([0, 0.99], [1, -0.01, "0.9"], CLOSED_OPEN01),
    "batch_size": ([1, "full", I32], [0, "half", True, 1.0, None], INT.format(1) + " or 'full'"),
    "epochs": ([1], [0, -3, True], INT.format(1)),
    "weight_decay": ([0, 0.0, 1e-4], [-1e-12, float("nan")], NONNEG),
    "clip": (sorted(CLIPS), ["soft", None], f"must be one of {sorted(CLIPS)}"),
    "clip_threshold": ([5e-324, 1], [0, -1, float("inf")], POS),
    "log_every": ([None, 1, I32], [0, "log", True, 2.0], INT.format(1) + " or null (auto: >= 50 points)"),
    "eval_every": (
        [None, "log", 1, I32],
        [0, "often", "LOG", True, False],
        INT.format(1) + ", 'log' (every logged step) or null (auto: 5 points)",
    ),
    "spectrum_every": (
        [None, "log", 1, I32],
        [0, -1, "often", True, 2.0],
        INT.format(1) + ", 'log' (every logged step) or null (off)",
    ),
    "spectrum_samples": ([1, 16, I32], [0, None, True, 4.0], INT.format(1)),
    "input_q0": ([None, 5e-324, 0.25, 4], [0, -1.0, float("inf"), float("nan"), True, "1"], POS + " or null"),
    "dataset": (sorted(set(DATASETS) - {"file"}), ["cifar", None], f"must be one of {sorted(DATASETS)}"),
    "n_samples": ([2, I32], [1, 0, True], INT.format(2)),
    "n_features": ([1], [0], INT.format(1)),
    "n_classes": ([2], [1], INT.format(2)),
    "noise": ([0, 0.0, 2.5], [-1e-9], NONNEG),
    "test_fraction": ([1e-9, 0.5, 1 - 1e-9], [0, 0.0, 1, 1.0], OPEN01),
    "standardise": ([True, False], [1, "yes"], BOOL),
    "data_path": ([None, "x.npz", ""], [3, b"x.npz"], "must be a path"),
    "data_digest": ([None, "0" * 64], [3], "must be a sha256"),
    "seed": ([0, I64], [-1, True, 0.0], INT.format(0)),
    "dtype": (["float32", "float64"], ["float16", None], "must be one of ['float32', 'float64']"),
}


def test_every_field_has_its_rules_listed():
    assert set(RULES) == {f.name for f in FIELDS}


@pytest.mark.parametrize("field", sorted(RULES))
def test_each_field_accepts_its_edges_and_refuses_the_values_beyond(field):
    accepted, rejected, rule = RULES[field]
    key = {f.name: f.metadata["key"] for f in FIELDS}[field]
    for v in accepted:
        assert getattr(validate(RunSpec(**{field: v})), field) == v
    for v in rejected:
        with pytest.raises(ConfigError) as e:
            validate(RunSpec(**{field: v}))
        assert str(e.value) == f"invalid config: {key}={v!r}: {rule}"
        assert (e.value.field, e.value.allowed) == (key, rule) and e.value.value is v


@pytest.mark.parametrize(
    "field,top", [("depth", I32), ("batch_size", I32), ("log_every", I32), ("seed", I64), ("n_samples", I32)]
)
def test_an_integer_beyond_its_column_is_refused_with_the_column_limit(field, top):
    key = {f.name: f.metadata["key"] for f in FIELDS}[field]
    with pytest.raises(ConfigError) as e:
        validate(RunSpec(**{field: top + 1}))
    assert str(e.value).startswith(f"invalid config: {key}={top + 1}: must be an integer >= ")
    assert str(e.value).endswith(f" and <= {top}")


def test_a_file_dataset_needs_a_path():
    with pytest.raises(ConfigError) as e:
        validate(RunSpec(dataset="file"))
    assert str(e.value) == "invalid config: data.path=None: must name an .npz file when dataset is 'file'"
    for empty in (None, ""):
        with pytest.raises(ConfigError) as e:
            validate(RunSpec(dataset="file", data_path=empty))
        assert (e.value.field, e.value.value) == ("data.path", empty)
    assert validate(RunSpec(dataset="file", data_path="d.npz")).data_path == "d.npz"


def test_a_config_error_keeps_a_name_that_is_not_a_field():
    e = ConfigError("data.rows", 3, "must be more")
    assert (e.field, e.value, e.allowed, str(e)) == (
        "data.rows",
        3,
        "must be more",
        "invalid config: data.rows=3: must be more",
    )


def test_column_types_follow_the_declared_python_types():
    """The runs table's column per field: bool, int32, float64, category for names; int64 for the
    seed; nullable strings for paths and digests (written out here, not derived)."""
    from mlplab.spec import column_types

    expected = {
        f: "int32"
        for f in (
            "depth",
            "width",
            "batch_size",
            "epochs",
            "log_every",
            "eval_every",
            "n_samples",
            "n_features",
            "n_classes",
            "warmup_steps",
            "lr_step_size",
            "spectrum_every",
            "spectrum_samples",
        )
    }
    expected |= {
        f: "float64"
        for f in ("alpha", "sigma_w", "sigma_b", "lr", "weight_decay", "clip_threshold", "noise", "test_fraction")
    }
    expected |= {f: "float64" for f in ("lr_gamma", "momentum", "beta1", "beta2", "eps", "rms_alpha", "input_q0")}
    names = ("activation", "loss", "init", "norm", "clip", "dataset", "dtype", "optim", "lr_schedule")
    expected |= {f: "category" for f in names}
    expected |= {
        "residual": "bool",
        "standardise": "bool",
        "data_path": "string",
        "data_digest": "string",
        "seed": "int64",
    }
    assert column_types() == expected


def test_param_declares_a_field_with_its_metadata():
    from mlplab.spec import Integer, param

    check = Integer(0)
    f = param(3, "train.k", check, group=True, use=("net",), column="int16", doc="what k is", config=False)
    assert f.default == 3
    assert dict(f.metadata) == {
        "key": "train.k",
        "check": check,
        "group": True,
        "use": ("net",),
        "column": "int16",
        "doc": "what k is",
        "config": False,
        "arg": None,
    }
    h = param(0.5, "optim.alpha", check, use=("optim",), arg="alpha", before=0.5)
    assert (h.metadata["arg"], h.metadata["before"]) == ("alpha", 0.5)
    g = param("x", "k", check)
    assert dict(g.metadata) == {
        "key": "k",
        "check": check,
        "group": False,
        "use": (),
        "column": None,
        "doc": "",
        "config": True,
        "arg": None,
    }
    assert "before" not in g.metadata  # a field runs had from the start


def test_the_data_key_is_the_seed_and_the_data_fields_only():
    """Runs that share a data key share one data set in a sweep: a data field or the seed must
    change it, a network or training field must not."""
    base = RunSpec()
    assert base.data_key() == (
        0,
        *{f.metadata["arg"] or f.name: getattr(base, f.name) for f in FIELDS if "data" in f.metadata["use"]}.items(),
    )
    for field in ("n_samples", "noise", "dataset", "dtype", "seed", "input_q0"):
        assert (
            dataclasses.replace(base, **{field: other_value(next(f for f in FIELDS if f.name == field))}).data_key()
            != base.data_key()
        )
    for field in ("lr", "depth", "activation", "clip_threshold"):
        assert (
            dataclasses.replace(base, **{field: other_value(next(f for f in FIELDS if f.name == field))}).data_key()
            == base.data_key()
        )


# --- a network-shaping field: declared here, given its YAML default, taken by MLP -------------------

import inspect  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mlplab import MLP  # noqa: E402
from mlplab import train as tr  # noqa: E402

NET = {f.name for f in FIELDS if "net" in f.metadata["use"]}
# every network field: a value other than its default, with which the network must differ
OTHER = dict(
    activation="tanh",
    alpha=0.3,
    loss="mse",
    init="orthogonal",
    sigma_w=2.0,
    sigma_b=0.5,
    residual=True,
    norm="layer",
    dtype="float32",
)


def test_the_network_fields_are_the_keywords_of_the_network():
    """Adding a field that changes only the network is three places: the field (use="net"), its
    YAML default and MLP's keyword. A field MLP does not take, or a keyword of MLP that no field
    feeds, fails here."""
    keywords = set(inspect.signature(MLP).parameters) - {"sizes", "seed", "runs"}  # runs: MLP.stack's, not a run's
    assert NET == keywords
    assert set(RunSpec().network_kwargs()) == NET


@pytest.mark.parametrize("field", sorted(NET))
def test_each_network_field_changes_the_network(field):
    """MLP uses every network field: one changed (``OTHER``) changes the initial parameters, their
    dtype or the output of a fixed batch (leaky_relu, so that its slope counts)."""
    assert set(OTHER) == NET
    base = RunSpec(activation="leaky_relu", width=5, depth=3, n_features=5)
    X = np.random.default_rng(0).standard_normal((6, 5))

    def net_of(spec):
        net = MLP(spec.layer_sizes(), seed=0, **spec.network_kwargs())
        return net.params.copy(), net.forward(X)[-1]

    (p0, y0), (p1, y1) = net_of(base), net_of(dataclasses.replace(base, **{field: OTHER[field]}))
    same = p0.dtype == p1.dtype and p0.shape == p1.shape and np.array_equal(p0, p1) and np.array_equal(y0, y1)
    assert not same, field


def test_a_run_builds_its_network_from_every_network_field(monkeypatch):
    got = {}

    def spy(sizes, seed, **kw):
        got.update(kw)
        return MLP(sizes, seed=seed, **kw)

    monkeypatch.setattr(tr, "MLP", spy)
    spec = tr.prepare(RunSpec(**{**OTHER, "activation": "leaky_relu", "n_samples": 100, "epochs": 1}))
    data = tr.load_data(spec)
    net = tr.build_network(spec, data, np.random.default_rng(0))
    assert got == spec.network_kwargs() and set(got) == NET
    assert net.sizes == spec.layer_sizes() == [8, 32, 32, 3]
    assert RunSpec(depth=1, width=5).layer_sizes(64, 10) == [64, 5, 10]  # the data's shape where given


def test_every_network_field_has_its_yaml_default():
    """conf/ holds each network field's default under its config key, spelled as RunSpec's (norm:
    the string "none", not null)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mlplab.config import register

    register()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config")
    for f in FIELDS:
        if f.name in NET:
            key = f.metadata["key"] + (".name" if f.metadata["group"] else "")
            assert OmegaConf.select(cfg, key, default="missing") == f.default, f.name
    assert OmegaConf.select(cfg, "norm") == "none"


@pytest.mark.parametrize(
    "kw,want",
    [
        (dict(n_samples=200, batch_size=32, epochs=3), (160, 40, 32, 5, 15)),
        (dict(n_samples=200, batch_size="full", epochs=3), (160, 40, 160, 1, 3)),
        (dict(n_samples=2, test_fraction=0.5, batch_size="full"), (1, 1, 1, 1, 20)),
        (dict(n_samples=2, test_fraction=0.5, batch_size=5), (1, 1, 1, 1, 20)),  # a batch is at most the set
        (dict(n_samples=2, test_fraction=0.9, batch_size="full"), (0, 2, 1, 0, 0)),  # refused later, not a crash
        (dict(n_samples=2, test_fraction=0.9, batch_size=3), (0, 2, 1, 0, 0)),
    ],
)
def test_the_schedule_is_derived_once_from_the_spec(kw, want):
    """RunSpec.schedule(): (n_train, n_test, batch size, steps per epoch, steps), and the logged
    and evaluated steps of ``cadence``; what train, the memory estimate and the sweep's cost use."""
    s = RunSpec(**kw).schedule()
    assert (s.n_train, s.n_test, s.batch_size, s.steps_per_epoch, s.n_steps) == want
    assert (s.log_every, s.eval_every, s.rows) == cadence(s.n_steps, None, None)

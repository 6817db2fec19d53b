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
from mlplab.spec import FIELDS, SCHEMA_VERSION, RunSpec

# every string a field may hold, for finding a valid value other than the default
WORDS = sorted(
    {
        *ACTIVATIONS,
        *LOSSES,
        *INITS,
        *CLIPS,
        *DATASETS,
        *NORMS,
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
    blob = json.dumps({"schema": SCHEMA_VERSION, **{f.name: getattr(spec, f.name) for f in FIELDS}}, sort_keys=True)
    assert spec.run_id == hashlib.sha256(blob.encode()).hexdigest()[:16]


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
    "norm": ([None, *sorted(NORMS)], ["group", ""], f"must be null or one of {sorted(NORMS)}"),
    "lr": ([5e-324, 10], [0, -0.5, float("inf"), float("-inf"), float("nan"), True], POS),
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
        )
    }
    expected |= {
        f: "float64"
        for f in ("alpha", "sigma_w", "sigma_b", "lr", "weight_decay", "clip_threshold", "noise", "test_fraction")
    }
    expected |= {f: "category" for f in ("activation", "loss", "init", "norm", "clip", "dataset", "dtype")}
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
    }
    g = param("x", "k", check)
    assert dict(g.metadata) == {
        "key": "k",
        "check": check,
        "group": False,
        "use": (),
        "column": None,
        "doc": "",
        "config": True,
    }


def test_the_data_key_is_the_seed_and_the_data_fields_only():
    """Runs that share a data key share one data set in a sweep: a data field or the seed must
    change it, a network or training field must not."""
    base = RunSpec()
    assert base.data_key() == (
        0,
        *{f.name: getattr(base, f.name) for f in FIELDS if "data" in f.metadata["use"]}.items(),
    )
    for field in ("n_samples", "noise", "dataset", "dtype", "seed"):
        assert (
            dataclasses.replace(base, **{field: other_value(next(f for f in FIELDS if f.name == field))}).data_key()
            != base.data_key()
        )
    for field in ("lr", "depth", "activation", "clip_threshold"):
        assert (
            dataclasses.replace(base, **{field: other_value(next(f for f in FIELDS if f.name == field))}).data_key()
            == base.data_key()
        )

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
WORDS = sorted({*ACTIVATIONS, *LOSSES, *INITS, *CLIPS, *DATASETS, *NORMS, "float32", "float64", "full", "log",
                "data.npz", "0" * 64})


def other_value(field: dataclasses.Field):
    """A valid value of ``field`` other than its default (the field's own check decides)."""
    default, check = field.default, field.metadata["check"]
    candidates = [default + 1, default * 1.5 + 0.25, default / 2] if isinstance(default, (int, float)) and not isinstance(default, bool) else []
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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == RunSpec(depth=3, activation="relu", seed=11).run_id

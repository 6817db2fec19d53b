"""The flat description of one run: its fields, their validation and the run's stable id.

``RunSpec`` holds every value that decides a run's numbers, flat, as they appear as columns of
the ``runs`` table. Each field is declared once, here, with its default, the config key a user
types, the check it must pass and what it feeds (``use``: "net" = a keyword of ``mlplab.MLP``,
"data" = a keyword of ``mlplab.data.make_dataset``). Everything else is derived from these
declarations: the Hydra schema (``mlplab.config``), the column types of the ``runs`` table
(``mlplab.results``), validation and the error messages, the planner's data key, and the
arguments of the network and the data set. Adding a field means declaring it here, giving it
its YAML default, and using it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import dataclass
from typing import Any

from mlplab.activations import ACTIVATIONS
from mlplab.clipping import CLIPS
from mlplab.data import DATASETS, split_sizes
from mlplab.init import INITS
from mlplab.layers import NO_NORM, NORMS
from mlplab.losses import LOSSES
from mlplab.lr_schedule import SCHEDULES, LearningRate
from mlplab.optim import OPTIMISERS

SCHEMA_VERSION = 5  # of the result tables; part of every run id
MIN_LOG_POINTS = 50  # auto log_every: at least this many logged steps (the gradient metrics)
EVAL_POINTS = 5  # auto eval_every: this many whole-set evaluations (steps 0, n/5, ..., on logged steps)


# -- checks: ok(value) and the words of the one-line error ------------------------------------------
# Each rule is evaluated when a value is checked (not when the fields are declared), so that
# mutation testing, which swaps functions at call time, reaches it.
class Check:
    """A rule a field's value must pass: ``ok(v)``, and ``allowed()``, what the error says is allowed."""

    def ok(self, v) -> bool:
        raise NotImplementedError

    def allowed(self) -> str:
        raise NotImplementedError


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True, eq=False)
class Integer(Check):
    """An integer >= ``at_least`` (a bool is not an integer here), or one of the words ``also``."""

    at_least: int
    also: tuple = ()
    extra: str = ""

    def ok(self, v) -> bool:
        return (_is_int(v) and v >= self.at_least) or v in self.also

    def allowed(self) -> str:
        return f"must be an integer >= {self.at_least}{self.extra}"


@dataclass(frozen=True, eq=False)
class Finite(Check):
    """A finite real number >= ``at_least``, or > ``above`` (or null, with ``null``)."""

    at_least: float | None = None
    above: float | None = None
    null: bool = False

    def ok(self, v) -> bool:
        if v is None:
            return self.null
        return (
            _is_real(v)
            and math.isfinite(v)
            and (self.at_least is None or v >= self.at_least)
            and (self.above is None or v > self.above)
        )

    def allowed(self) -> str:
        bound = f" >= {self.at_least:g}" if self.at_least is not None else f" > {self.above:g}"
        return f"must be a finite number{bound}" + (" or null" if self.null else "")


@dataclass(frozen=True, eq=False)
class Inside(Check):
    """A real number between ``lo`` and ``hi``: strictly, unless ``closed`` says an end is included
    ("lo", "hi")."""

    lo: float
    hi: float
    closed: str = ""

    def ok(self, v) -> bool:
        if not _is_real(v):
            return False
        above = v >= self.lo if "lo" in self.closed else v > self.lo
        below = v <= self.hi if "hi" in self.closed else v < self.hi
        return above and below

    def allowed(self) -> str:
        left, right = "[" if "lo" in self.closed else "(", "]" if "hi" in self.closed else ")"
        return f"must be a number in {left}{self.lo:g}, {self.hi:g}{right}"


@dataclass(frozen=True, eq=False)
class OneOf(Check):
    """One of the names ``choices`` (a registry's keys)."""

    choices: Any

    def ok(self, v) -> bool:
        return isinstance(v, str) and v in self.choices

    def allowed(self) -> str:
        return f"must be one of {sorted(self.choices)}"


@dataclass(frozen=True, eq=False)
class Boolean(Check):
    def ok(self, v) -> bool:
        return isinstance(v, bool)

    def allowed(self) -> str:
        return "must be true or false"


@dataclass(frozen=True, eq=False)
class Text(Check):
    """A string, or None; ``what`` it must be."""

    what: str

    def ok(self, v) -> bool:
        return v is None or isinstance(v, str)

    def allowed(self) -> str:
        return self.what


NOT_NEW = object()  # a field runs had from the start (``param``'s ``before``)


def param(
    default,
    key: str,
    check: Check,
    *,
    group: bool = False,
    use: tuple = (),
    column: str | None = None,
    doc: str = "",
    config: bool = True,
    arg: str | None = None,
    before=NOT_NEW,
):
    """A RunSpec field: ``key`` is the config key (``group``: the choice of a config group, e.g.
    ``activation=relu``); ``column`` the runs-table type where the Python type does not say
    it; ``doc`` one line for the config schema and --help; ``config=False``: not set by the
    user but filled in from the data (``resolve``); ``arg``: its keyword where it feeds a
    ``use`` under another name; ``before``: for a field added after runs were first made, the
    value every run had before it existed (see ``RunSpec.run_id``; never changed once set)."""
    meta = dict(key=key, check=check, group=group, use=use, column=column, doc=doc, config=config, arg=arg)
    if before is not NOT_NEW:
        meta["before"] = before
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunSpec:
    # network
    depth: int = param(2, "depth", Integer(0), doc="hidden layers; L = depth + 1 weight layers")
    width: int = param(32, "width", Integer(1), doc="units per hidden layer")
    activation: str = param("sigmoid", "activation", OneOf(ACTIVATIONS), group=True, use=("net",))
    alpha: float = param(0.01, "activation.alpha", Inside(0, 1), use=("net",), doc="leaky_relu's slope for z < 0")
    loss: str = param("softmax_ce", "loss", OneOf(LOSSES), group=True, use=("net",))
    init: str = param("normal", "init", OneOf(INITS), group=True, use=("net",))
    sigma_w: float = param(
        1.0,
        "init.sigma_w",
        Finite(above=0),
        use=("net",),
        doc="normal: W ~ N(0, sigma_w²/fan_in); orthogonal: W = sigma_w Q",
    )
    sigma_b: float = param(
        1.0, "init.sigma_b", Finite(at_least=0), use=("net",), doc="normal, orthogonal: b ~ N(0, sigma_b²)"
    )
    residual: bool = param(
        False,
        "residual",
        Boolean(),
        use=("net",),
        doc="a^l = a^(l-1) + σ(·) in hidden layers l >= 2 of unchanged width",
    )
    norm: str | None = param(  # None: the spelling before "none", read as "none" (__post_init__)
        NO_NORM,
        "norm",
        OneOf((NO_NORM, *NORMS)),
        use=("net",),
        doc="normalise every hidden layer's z before σ: none, batch or layer",
    )
    # training
    lr: float = param(0.5, "train.lr", Finite(above=0), use=("optim",), doc="learning rate η (the schedule's peak)")
    lr_schedule: str = param(
        "constant",
        "train.schedule",
        OneOf(SCHEDULES),
        use=("schedule",),
        arg="schedule",
        before="constant",
        doc="η per update after the warmup: constant, cosine (to 0 at the last update) or step (× gamma)",
    )
    warmup_steps: int = param(
        0, "train.warmup_steps", Integer(0), use=("schedule",), before=0, doc="updates of linear warmup from 0 to η"
    )
    lr_gamma: float = param(
        0.1,
        "train.gamma",
        Inside(0, 1, closed="hi"),
        use=("schedule",),
        arg="gamma",
        before=0.1,
        doc="schedule step: η × gamma every step_size updates",
    )
    lr_step_size: int | None = param(
        None,
        "train.step_size",
        Integer(1, also=(None,), extra=" or null (a third of the updates after the warmup)"),
        use=("schedule",),
        arg="step_size",
        column="int32",
        before=None,
        doc="schedule step: updates between decays; null: a third of those after the warmup",
    )
    batch_size: int | str = param(
        32,
        "train.batch_size",
        Integer(1, also=("full",), extra=" or 'full'"),
        column="int32",
        doc="an integer >= 1, or 'full' (batch gradient descent)",
    )
    epochs: int = param(20, "train.epochs", Integer(1), doc="passes over the training set")
    weight_decay: float = param(
        0.0,
        "train.weight_decay",
        Finite(at_least=0),
        use=("optim",),
        doc="L2 on weights W only: λW added to the gradient (adamw: W <- W - lr*weight_decay*W beside the step)",
    )
    optim: str = param("sgd", "optim", OneOf(OPTIMISERS), group=True, before="sgd")
    momentum: float = param(
        0.9, "optim.momentum", Finite(at_least=0), use=("optim",), before=0.9, doc="μ of momentum and nesterov"
    )
    beta1: float = param(
        0.9,
        "optim.beta1",
        Inside(0, 1, closed="lo"),
        use=("optim",),
        before=0.9,
        doc="adam, adamw: first moment's decay",
    )
    beta2: float = param(
        0.999,
        "optim.beta2",
        Inside(0, 1, closed="lo"),
        use=("optim",),
        before=0.999,
        doc="adam, adamw: second moment's decay",
    )
    eps: float = param(
        1e-8, "optim.eps", Finite(above=0), use=("optim",), before=1e-8, doc="adam, adamw, rmsprop: added to √v"
    )
    rms_alpha: float = param(
        0.99,
        "optim.alpha",
        Inside(0, 1, closed="lo"),
        use=("optim",),
        arg="alpha",
        before=0.99,
        doc="rmsprop: the squared gradients' decay",
    )
    clip: str = param("none", "clip", OneOf(CLIPS), group=True)
    clip_threshold: float = param(
        1.0, "clip.threshold", Finite(above=0), doc="norm: the largest ‖g‖; value: the largest |g_i|"
    )
    log_every: int | None = param(
        None,
        "train.log_every",
        Integer(1, also=(None,), extra=" or null (auto: >= 50 points)"),
        column="int32",
        doc="null: often enough for >= 50 logged points",
    )
    eval_every: int | str | None = param(
        None,
        "train.eval_every",
        Integer(1, also=(None, "log"), extra=", 'log' (every logged step) or null (auto: 5 points)"),
        column="int32",
        doc="steps between whole-set evaluations; 'log': every logged step; null: 5, on logged steps",
    )
    spectrum_every: int | str | None = param(
        None,
        "train.spectrum_every",
        Integer(1, also=(None, "log"), extra=", 'log' (every logged step) or null (off)"),
        column="int32",
        before=None,
        doc="steps between records of J's singular values (spectra table; step n_steps: the trained net); null: off",
    )
    spectrum_samples: int = param(
        16,
        "train.spectrum_samples",
        Integer(1),
        before=16,
        doc="training samples whose Jacobian's singular values are recorded (at most the training set)",
    )
    # data
    dataset: str = param("blobs", "data", OneOf(DATASETS), group=True, use=("data",))
    n_samples: int = param(
        1000, "data.n_samples", Integer(2), use=("data",), doc="samples (digits: at most 1797; file: the file's)"
    )
    n_features: int = param(8, "data.n_features", Integer(1), use=("data",), doc="inputs n_0 (blobs, spirals)")
    n_classes: int = param(3, "data.n_classes", Integer(2), use=("data",), doc="classes, outputs n_L (blobs, spirals)")
    noise: float = param(1.0, "data.noise", Finite(at_least=0), use=("data",), doc="spread of the clusters or arms")
    test_fraction: float = param(
        0.2, "data.test_fraction", Inside(0, 1), use=("data",), doc="share of samples held out for testing"
    )
    standardise: bool = param(
        True, "data.standardise", Boolean(), use=("data",), doc="scale features by the training split's mean and std"
    )
    input_q0: float | None = param(
        None,
        "data.q0",
        Finite(above=0, null=True),
        use=("data",),
        arg="q0",
        before=None,
        doc="scale the inputs (after standardising) to this mean square over the training split; null: unscaled",
    )
    data_path: str | None = param(
        None,
        "data.path",
        Text("must be a path"),
        use=("data",),
        column="string",
        doc="dataset 'file': an .npz with X and Y (or labels)",
    )
    data_digest: str | None = param(
        None,
        "data.digest",
        Text("must be a sha256"),
        use=("data",),
        column="string",
        config=False,
        doc="sha256 of the data file's bytes: a run's id covers what it reads",
    )
    # run
    seed: int = param(
        0, "seed", Integer(0), column="int64", doc="draws the data, the initial weights and the batch order"
    )
    dtype: str = param("float64", "dtype", OneOf(("float32", "float64")), use=("net", "data"), doc="float64 or float32")

    def __post_init__(self):
        for name, new in RESPELLED.items():  # null, the old spelling (a config, a command line, a sweep file)
            if getattr(self, name) is None:
                object.__setattr__(self, name, new)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @functools.cached_property
    def run_id(self) -> str:
        """sha256 of the canonical JSON of every field plus the result schema version. No run
        id changes as mlplab grows: a value spelled anew hashes as its old spelling did
        (``RESPELLED``), and a field added later (declared with ``before``) is left out while it
        has the value every run had before it existed (``optim`` "sgd", ``lr_schedule``
        "constant", ...)."""
        fields = self.as_dict()
        for name, new in RESPELLED.items():
            if fields[name] == new:
                fields[name] = None
        for name, value in BEFORE.items():
            if fields[name] == value:
                del fields[name]
        blob = json.dumps({"schema": SCHEMA_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def used_by(self, use: str) -> dict:
        """The fields that feed ``use`` ("net", "data", "optim" or "schedule"), as keyword arguments."""
        return {f.metadata["arg"] or f.name: getattr(self, f.name) for f in FIELDS if use in f.metadata["use"]}

    def optimiser_kwargs(self) -> dict:
        """The keywords of ``mlplab.optim.make(net, self.optim, ...)``: lr, weight_decay and the rule's own."""
        own = ("lr", "weight_decay", *OPTIMISERS[self.optim].HYPER)
        return {k: v for k, v in self.used_by("optim").items() if k in own}

    def step_size(self) -> int:
        """Updates between the step schedule's decays: ``lr_step_size``, or a third of the updates
        after the warmup (at least 1)."""
        if self.lr_step_size is not None:
            return self.lr_step_size
        return max(1, (self.schedule().n_steps - self.warmup_steps) // 3)

    def learning_rate(self) -> LearningRate:
        """η per update (``mlplab.lr_schedule.LearningRate``) over the run's updates."""
        kw = self.used_by("schedule") | {"step_size": self.step_size()}
        return LearningRate(self.lr, n_steps=self.schedule().n_steps, **kw)

    def network_kwargs(self) -> dict:
        """The keywords of ``mlplab.MLP`` besides its sizes and seed: every field declared ``use="net"``."""
        return self.used_by("net")

    @property
    def normalised(self) -> bool:
        """Every hidden layer normalises its z (``norm`` is batch or layer)."""
        return self.norm != NO_NORM

    def layer_sizes(self, n_features: int | None = None, n_classes: int | None = None) -> list[int]:
        """[n_0, n_1, ..., n_L]: the features, ``depth`` hidden layers of ``width``, the classes:
        the spec's (a resolved spec's are its data set's real shape, ``mlplab.train.resolve``),
        or the data's where given."""
        n_0 = self.n_features if n_features is None else n_features
        n_L = self.n_classes if n_classes is None else n_classes
        return [n_0] + [self.width] * self.depth + [n_L]

    def schedule(self) -> Schedule:
        """The run's steps: batches, steps per epoch, and which steps are logged and evaluated."""
        n_train, n_test = split_sizes(self.n_samples, self.test_fraction)
        bs = max(n_train, 1) if self.batch_size == "full" else min(int(self.batch_size), max(n_train, 1))
        spe = math.ceil(n_train / bs)
        n_steps = spe * self.epochs
        log, ev, rows = cadence(n_steps, self.log_every, self.eval_every)
        spectrum = log if self.spectrum_every == "log" else self.spectrum_every
        return Schedule(n_train, n_test, bs, spe, n_steps, log, ev, rows, spectrum)

    def data_key(self) -> tuple:
        """What decides the data set (the data fields and the seed): runs with the same key share it."""
        return (self.seed, *self.used_by("data").items())


def cadence(n_steps: int, log_every: int | None, eval_every: int | str | None) -> tuple[int, int, int]:
    """(log_every, eval_every, rows) of a run of ``n_steps`` updates: the steps between rows of
    gradient metrics and between whole-set evaluations (null: auto; eval_every "log": the
    same as log_every), and the most rows the run writes (a step is a row when it is logged,
    evaluated, or where training diverged).

    Auto: a row at least every ``n_steps // MIN_LOG_POINTS`` steps; an evaluation at every k-th
    of them, k such that there are ``EVAL_POINTS`` evaluations (step 0 included)."""
    log = log_every or max(1, n_steps // MIN_LOG_POINTS)
    ev = log if eval_every == "log" else eval_every or log * max(1, (n_steps // log) // EVAL_POINTS)
    rows = -(-n_steps // log) + (0 if ev % log == 0 else -(-n_steps // ev))  # steps 0, log, 2 log, ... < n_steps
    return log, ev, rows + 1


@dataclass(frozen=True)
class Schedule:
    """When a run computes and logs (``RunSpec.schedule()``): ``n_train``/``n_test`` samples, mini-batches of
    ``batch_size`` (the whole training set when full), ``steps_per_epoch`` × epochs = ``n_steps``
    updates, gradient metrics every ``log_every`` steps, a whole-set evaluation every
    ``eval_every`` steps (each also a logged step); ``rows``: the most rows the run writes;
    ``spectrum_every``: the steps between records of the Jacobian's singular values (None: off)."""

    n_train: int
    n_test: int
    batch_size: int
    steps_per_epoch: int
    n_steps: int
    log_every: int
    eval_every: int
    rows: int
    spectrum_every: int | None = None


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(RunSpec)
# field -> today's spelling of a value spelled null when runs were first made. Null is read as
# it, from a config or an old results folder (``mlplab.results.load_results``); it is hashed as
# null, so that a run keeps its id.
RESPELLED: dict[str, str] = {"norm": NO_NORM}
# field added later -> the value every run had before it existed: left out of the run id at that
# value, and filled in where an older results folder has no column for it (``mlplab.results``)
BEFORE: dict[str, Any] = {f.name: f.metadata["before"] for f in FIELDS if "before" in f.metadata}
CONFIG_KEYS: dict[str, str] = {f.name: f.metadata["key"] for f in FIELDS}  # RunSpec field -> config key

PY_COLUMN = {bool: "bool", int: "int32", float: "float64", str: "category"}
INT_MAX = {"int16": 2**15 - 1, "int32": 2**31 - 1, "int64": 2**63 - 1}


def column_types() -> dict[str, str]:
    """The runs-table column type of every field: its declared ``column``, or by its Python type."""
    hints = typing.get_type_hints(RunSpec)
    out = {}
    for f in FIELDS:
        py = next(t for t in (typing.get_args(hints[f.name]) or (hints[f.name],)) if t is not type(None))
        out[f.name] = f.metadata["column"] or PY_COLUMN[py]
    return out


COLUMN_TYPES = column_types()


class ConfigError(ValueError):
    """A bad input value. ``str(err)`` is the one-line message shown to the user."""

    def __init__(self, field: str, value, allowed: str):
        field = CONFIG_KEYS.get(field, field)
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"invalid config: {field}={value!r}: {allowed}")


def validate(spec: RunSpec) -> RunSpec:
    """Check every value that needs no data; raise ``ConfigError`` on the first bad one. An
    integer must also fit its column in the runs table."""
    for f in FIELDS:
        value, check = getattr(spec, f.name), f.metadata["check"]
        if not check.ok(value):
            raise ConfigError(f.name, value, check.allowed())
        top = INT_MAX.get(COLUMN_TYPES[f.name])
        if top is not None and _is_int(value) and value > top:
            raise ConfigError(f.name, value, f"{check.allowed()} and <= {top}")
    if spec.spectrum_every is not None and spec.norm == "batch":
        raise ConfigError(
            "spectrum_every",
            spec.spectrum_every,
            "must be null with norm=batch (a sample's a^l depends on its batch: it has no Jacobian of its own)",
        )
    if spec.dataset == "file" and not spec.data_path:
        raise ConfigError("data_path", spec.data_path, "must name an .npz file when dataset is 'file'")
    return spec

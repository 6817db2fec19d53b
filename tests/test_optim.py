"""The optimisers and learning-rate schedules against their formulas, written out here per array
(float64, 20 steps, every parameter kind W, b, γ, β), against PyTorch's when it is installed, and
the step sizes the record reads against the parameters' actual change."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab import MLP
from mlplab.lr_schedule import SCHEDULES, LearningRate
from mlplab.optim import OPTIMISERS, make

STEPS = 20
TOL = 1e-12

CASES = {  # name -> keywords of make (besides lr), with weight decay
    "sgd": dict(weight_decay=1e-2),
    "momentum": dict(momentum=0.9, weight_decay=1e-2),
    "nesterov": dict(momentum=0.8, weight_decay=1e-2),
    "adam": dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2),
    "adamw": dict(beta1=0.85, beta2=0.99, eps=1e-6, weight_decay=0.05),
    "rmsprop": dict(alpha=0.99, eps=1e-8, weight_decay=1e-2),
}
LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 1e-2, "adamw": 1e-2, "rmsprop": 1e-2}


def network(seed: int = 0, norm: str = "batch") -> tuple[MLP, np.ndarray, np.ndarray]:
    """A net with every parameter kind (batch norm: γ, β) and a mini-batch."""
    rng = np.random.default_rng(seed)
    net = MLP([5, 7, 6, 3], seed=seed, activation="tanh", norm=norm)
    X = rng.normal(size=(16, 5))
    Y = np.eye(3)[rng.integers(0, 3, 16)]
    return net, X, Y


def arrays(net, grads: bool = False) -> dict:
    """{(kind, layer): a copy of its array}, from the network's flat layout."""
    views = net.layout.grad_views if grads else net.layout.views
    return {(k, i): views(i)[k].copy() for k, i, _ in net.layout.segments}


# -- the formulas, per array, as the PyTorch documentation writes them --------------------------------
def reference_step(name: str, kw: dict, lr: float, p: dict, g: dict, state: dict, t: int, s: float) -> None:
    """One update of every array of ``p`` in place; t = 0, 1, ... the updates done before."""
    wd = kw.get("weight_decay", 0.0)
    for key in p:
        grad = s * g[key]
        decayed = key[0] == "W"
        if decayed and wd and name != "adamw":
            grad = grad + wd * p[key]  # coupled: L2 in the gradient, weights only
        if name == "sgd":
            p[key] = p[key] - lr * grad
        elif name in ("momentum", "nesterov"):
            mu = kw["momentum"]
            buf = grad.copy() if t == 0 else mu * state[key] + grad
            state[key] = buf
            p[key] = p[key] - lr * (grad + mu * buf if name == "nesterov" else buf)
        elif name in ("adam", "adamw"):
            b1, b2, eps = kw["beta1"], kw["beta2"], kw["eps"]
            if decayed and wd and name == "adamw":
                p[key] = p[key] * (1 - lr * wd)  # decoupled
            m, v = state.get(key, (0.0, 0.0))
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad**2
            state[key] = (m, v)
            m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
            p[key] = p[key] - lr * m_hat / (np.sqrt(v_hat) + eps)
        elif name == "rmsprop":
            a, eps = kw["alpha"], kw["eps"]
            v = a * state.get(key, 0.0) + (1 - a) * grad**2
            state[key] = v
            p[key] = p[key] - lr * grad / (np.sqrt(v) + eps)


def assert_close(net, ref: dict, what: str) -> None:
    for key, r in ref.items():
        got = net.layout.views(key[1])[key[0]]
        err = np.max(np.abs(got - r) / np.maximum(1.0, np.abs(r)))
        assert err <= TOL, f"{what}: {key} off by {err:.2e}"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("scale", [1.0, 0.37])
def test_each_optimiser_is_its_formula_for_every_parameter_kind(name, scale):
    net, X, Y = network()
    kw, lr = CASES[name], LR[name]
    opt = make(net, name, lr=lr, **kw)
    ref, state = arrays(net), {}
    assert {k for k, _ in ref} == {"W", "b", "gamma", "beta"}
    for t in range(STEPS):
        net.forward_(X, track=True)
        net.backward_(Y)
        g = arrays(net, grads=True)
        opt.step(scale)
        reference_step(name, kw, lr, ref, g, state, t, scale)
        assert_close(net, ref, f"{name}, step {t + 1}")
    start = arrays(network()[0])
    assert max(np.max(np.abs(ref[k] - start[k])) for k in ref) > 1e-3  # the parameters did move


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_step_the_record_reads_is_the_step_applied(name):
    """‖ΔW^l‖ asked before a step (as the record does) equals the weights' actual change."""
    net, X, Y = network(1)
    opt = make(net, name, lr=LR[name], **CASES[name])
    for _ in range(5):
        net.forward_(X, track=True)
        net.backward_(Y)
        before = [W.copy() for W in net.weights]
        said = opt.weight_step_norms(0.5, None)
        opt.step(0.5)
        moved = [np.linalg.norm(W - b) for W, b in zip(net.weights, before)]
        np.testing.assert_allclose(said, moved, rtol=1e-9)


def test_the_registry_has_the_six_rules_each_declaring_its_hyperparameters():
    assert sorted(OPTIMISERS) == ["adam", "adamw", "momentum", "nesterov", "rmsprop", "sgd"]
    for name, cls in OPTIMISERS.items():
        opt = make(network()[0], name, lr=0.1)
        assert all(hasattr(opt, h) for h in cls.HYPER), name  # what the config will set


@pytest.mark.parametrize(
    "name, kw, message",
    [
        ("adam", dict(lr=1e-3, beta1=1.0), r"beta1=1.0: must be a number in \[0, 1\)"),
        ("adam", dict(lr=1e-3, beta2=-0.1), r"beta2=-0.1: must be a number in \[0, 1\)"),
        ("adam", dict(lr=1e-3, eps=0.0), r"eps=0.0: must be a number > 0"),
        ("rmsprop", dict(lr=1e-3, alpha=1.0), r"alpha=1.0: must be a number in \[0, 1\)"),
        ("momentum", dict(lr=0.1, momentum=-0.5), r"momentum=-0.5: must be a number ≥ 0"),
        ("adamw", dict(lr=0.0), r"lr=0.0: must be a number > 0"),
        ("nesterov", dict(lr=0.1, weight_decay=math.nan), r"weight_decay=nan: must be a number ≥ 0"),
    ],
)
def test_a_bad_hyperparameter_is_a_one_line_error(name, kw, message):
    with pytest.raises(ValueError, match=message) as e:
        make(network()[0], name, **kw)
    assert "\n" not in str(e.value)


# -- properties ------------------------------------------------------------------------------------
def _train(name: str, kw: dict, seed: int, scale: float, steps: int = 5) -> dict:
    net, X, Y = network(seed, norm="layer")
    opt = make(net, name, **kw)
    for _ in range(steps):
        net.forward_(X, track=True)
        net.backward_(Y)
        opt.step(scale)
    return arrays(net)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    lr=st.floats(1e-3, 0.5),
    wd=st.floats(0, 0.1),
    scale=st.floats(0.1, 1.0),
)
def test_momentum_zero_is_sgd(seed, lr, wd, scale):
    a = _train("momentum", dict(lr=lr, momentum=0.0, weight_decay=wd), seed, scale)
    b = _train("sgd", dict(lr=lr, weight_decay=wd), seed, scale)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), lr=st.floats(1e-4, 1e-1), b1=st.floats(0, 0.99), scale=st.floats(0.1, 1.0))
def test_adamw_without_decay_is_adam(seed, lr, b1, scale):
    a = _train("adamw", dict(lr=lr, beta1=b1, weight_decay=0.0), seed, scale)
    b = _train("adam", dict(lr=lr, beta1=b1, weight_decay=0.0), seed, scale)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


# -- learning-rate schedules -------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    schedule=st.sampled_from(sorted(SCHEDULES)),
    warmup=st.integers(0, 50),
    n=st.integers(1, 400),
    gamma=st.floats(0.05, 1.0),
    step_size=st.integers(1, 60),
)
def test_warmup_reaches_lr_then_the_schedule_follows_its_formula(lr, schedule, warmup, n, gamma, step_size):
    eta = LearningRate(lr, schedule, warmup, n + warmup, gamma, step_size)
    for t in range(warmup):
        assert eta(t) == pytest.approx(lr * t / warmup, rel=TOL)
    assert eta(warmup) == pytest.approx(lr, rel=TOL)  # the warmup ends at lr
    for u in range(0, n + 1, max(1, n // 7)):
        want = {
            "constant": lr,
            "cosine": lr * (1 + math.cos(math.pi * u / n)) / 2,
            "step": lr * gamma ** (u // step_size),
        }[schedule]
        assert eta(warmup + u) == pytest.approx(want, rel=TOL, abs=1e-15)
    if schedule == "cosine":
        assert eta(warmup + n) == pytest.approx(0.0, abs=1e-15)  # to 0 at the end of training


def test_a_bad_schedule_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"schedule='linear': must be one of \['constant', 'cosine', 'step'\]"):
        LearningRate(0.1, "linear")
    with pytest.raises(ValueError, match="step_size=0: must be an integer ≥ 1"):
        LearningRate(0.1, "step", step_size=0)


# -- against PyTorch, when it is installed (make bench-torch) ----------------------------------------
TORCH = {
    "sgd": lambda torch, groups, kw, lr: torch.optim.SGD(groups, lr=lr),
    "momentum": lambda torch, groups, kw, lr: torch.optim.SGD(groups, lr=lr, momentum=kw["momentum"]),
    "nesterov": lambda torch, groups, kw, lr: torch.optim.SGD(groups, lr=lr, momentum=kw["momentum"], nesterov=True),
    "adam": lambda torch, groups, kw, lr: torch.optim.Adam(
        groups, lr=lr, betas=(kw["beta1"], kw["beta2"]), eps=kw["eps"]
    ),
    "adamw": lambda torch, groups, kw, lr: torch.optim.AdamW(
        groups, lr=lr, betas=(kw["beta1"], kw["beta2"]), eps=kw["eps"]
    ),
    "rmsprop": lambda torch, groups, kw, lr: torch.optim.RMSprop(groups, lr=lr, alpha=kw["alpha"], eps=kw["eps"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_optimiser_steps_as_torch_optim(name):
    torch = pytest.importorskip("torch")
    net, X, Y = network(2)
    kw, lr = CASES[name], LR[name]
    opt = make(net, name, lr=lr, **kw)
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in arrays(net).items()}
    wd = kw["weight_decay"]
    groups = [
        {"params": [t for k, t in tensors.items() if k[0] == "W"], "weight_decay": wd},
        {"params": [t for k, t in tensors.items() if k[0] != "W"], "weight_decay": 0.0},
    ]
    theirs = TORCH[name](torch, groups, kw, lr)
    for t in range(STEPS):
        net.forward_(X, track=True)
        net.backward_(Y)
        for k, g in arrays(net, grads=True).items():
            tensors[k].grad = torch.tensor(0.6 * g, dtype=torch.float64)  # clipped: s = 0.6
        opt.step(0.6)
        theirs.step()
        for k, v in tensors.items():
            err = np.max(np.abs(net.layout.views(k[1])[k[0]] - v.detach().numpy()))
            assert err <= TOL, f"{name}, step {t + 1}, {k}: {err:.2e} from torch.optim"


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("warmup", [0, 5])
def test_each_schedule_is_torchs_schedulers_chained(schedule, warmup):
    """LambdaLR(t/w) for the warmup (LinearLR cannot start at 0), then ConstantLR, CosineAnnealingLR
    or StepLR, chained by SequentialLR at w: the learning rate of each of 40 updates."""
    torch = pytest.importorskip("torch")
    lrs = torch.optim.lr_scheduler
    n, gamma, step_size = 40, 0.5, 7
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    after = {
        "constant": lambda: lrs.ConstantLR(opt, factor=1.0, total_iters=0),
        "cosine": lambda: lrs.CosineAnnealingLR(opt, T_max=n - warmup),
        "step": lambda: lrs.StepLR(opt, step_size=step_size, gamma=gamma),
    }[schedule]()
    sched = lrs.SequentialLR(opt, [lrs.LambdaLR(opt, lambda t: t / warmup), after], [warmup]) if warmup else after
    eta = LearningRate(0.1, schedule, warmup, n, gamma, step_size)
    for t in range(n):
        assert eta(t) == pytest.approx(opt.param_groups[0]["lr"], rel=TOL, abs=1e-16), t
        opt.step()
        sched.step()


DEFAULTS = {  # PyTorch's, and momentum 0.9 for the momentum rules (torch.optim.SGD's is 0)
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0),
    "momentum": dict(momentum=0.9, nesterov=False, weight_decay=0.0),
    "nesterov": dict(momentum=0.9, nesterov=True, weight_decay=0.0),
    "sgd": dict(weight_decay=0.0),
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_the_defaults_are_pytorchs(name):
    kw = {} if "lr" in DEFAULTS[name] else {"lr": 0.1}
    opt = make(network()[0], name, **kw)
    assert {k: getattr(opt, k) for k in DEFAULTS[name]} == DEFAULTS[name]


def test_the_schedules_defaults_and_edges():
    assert [LearningRate(0.3)(t) for t in (0, 1, 1000)] == [0.3, 0.3, 0.3]  # constant, no warmup
    assert [LearningRate(1.0, "step")(t) for t in range(4)] == pytest.approx([1.0, 0.1, 0.01, 0.001])  # γ 0.1 each
    assert LearningRate(0.2, "cosine")(3) == 0.2  # no length given: nothing to anneal over
    at_end = LearningRate(0.2, "cosine", warmup_steps=5, n_steps=5)  # the warmup takes every update
    assert [at_end(t) for t in (4, 5, 6)] == pytest.approx([0.16, 0.2, 0.2])
    assert LearningRate(0.2, "step", gamma=1.0, step_size=3)(10) == 0.2
    one = LearningRate(0.2, "cosine", n_steps=1)  # one update: at lr, then 0 at the end
    assert (one(0), one(1)) == (0.2, pytest.approx(0.0, abs=1e-17))


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(warmup_steps=-1), r"warmup_steps=-1: must be an integer ≥ 0"),
        (dict(gamma=0.0), r"gamma=0.0: must be a number in \(0, 1\]"),
        (dict(gamma=1.5), r"gamma=1.5: must be a number in \(0, 1\]"),
    ],
)
def test_a_bad_schedule_setting_is_a_one_line_error(kw, message):
    with pytest.raises(ValueError, match=message):
        LearningRate(0.1, "step", **kw)


def test_a_negative_weight_decay_is_refused():
    with pytest.raises(ValueError, match=r"weight_decay=-0.1: must be a number ≥ 0"):
        make(network()[0], "adam", weight_decay=-0.1)


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_a_step_without_a_scale_is_a_step_of_scale_one(name):
    """``opt.step()`` is ``opt.step(1.0)``: the unclipped gradient, three steps in a row."""
    runs = []
    for scale in (None, 1.0):
        net, X, Y = network()
        opt = make(net, name, lr=0.05, weight_decay=1e-3)
        for _ in range(3):
            net.forward_(X, track=True)
            net.backward_(Y)
            opt.step() if scale is None else opt.step(scale)
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])

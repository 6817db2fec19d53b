"""The networks the benchmark times, and their PyTorch twins (same weights, same batch)."""

from __future__ import annotations

import numpy as np

from mlplab.network import MLP
from mlplab.train import Step

N_IN, N_OUT = 64, 10
LR, CLIP = 0.0, 1.0  # lr = 0: every repeat does the same arithmetic on the same numbers
INIT = {"sigmoid": "normal", "relu": "he_normal"}


def problem(
    depth: int,
    width: int,
    batch: int,
    activation: str = "sigmoid",
    dtype: str = "float64",
    seed: int = 0,
    residual=False,
    norm=None,
):
    """An mlplab network and a batch (X, one-hot Y, integer labels): 64 inputs, 10 classes,
    softmax cross-entropy."""
    rng = np.random.default_rng(seed)
    sizes = [N_IN] + [width] * depth + [N_OUT]
    net = MLP(
        sizes, activation, "softmax_ce", INIT[activation], seed, residual, norm, sigma_w=1.0, sigma_b=0.1, dtype=dtype
    )
    X = rng.standard_normal((batch, N_IN)).astype(dtype)
    labels = rng.integers(0, N_OUT, batch)
    Y = np.eye(N_OUT, dtype=dtype)[labels]
    return net, X, Y, labels


def mlplab_step(net: MLP, X, Y):
    """One unlogged training step: ``mlplab.train.Step``, the step ``train`` takes (forward,
    backward with per-layer squared norms, norm clipping, SGD update)."""
    step = Step(net, "norm", CLIP, LR, 0.0)
    return lambda: step(X, Y)


def mlplab_inplace(net: MLP, X, Y):
    """What ``gradients`` computes, on the in-place API: forward, loss, backward."""

    def f():
        net.forward_(X)
        net.loss_(Y)
        net.backward_(Y)

    return f


def torch_model(torch, net: MLP, activation: str):
    """The same network in PyTorch: an nn.Linear stack holding net's weights."""
    nn = torch.nn
    dtype = {np.dtype("float64"): torch.float64, np.dtype("float32"): torch.float32}[net.dtype]
    act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[activation]
    layers = []
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        lin = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < net.L - 1:
            layers.append(act())
    return nn.Sequential(*layers)


def torch_twin(torch, net: MLP, X, labels, activation: str):
    """PyTorch's SGD step on the same network: autograd, per-layer ``p.grad`` norms,
    ``clip_grads_with_norm_``, ``optimizer.step``. Returns (step, out): out["norms"] after a step."""
    nn = torch.nn
    model = torch_model(torch, net, activation)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(labels)
    clip = nn.utils.clip_grads_with_norm_
    out = {}

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        norms = torch.stack([p.grad.norm() for p in params])  # per layer: W^1, b^1, W^2, ...
        total = norms.norm()
        if not torch.isfinite(total):
            raise FloatingPointError(f"gradient norm {float(total)}")
        clip(params, CLIP, total)
        opt.step()
        out["norms"] = norms

    return step, out


def torch_gradients(torch, net: MLP, X, labels, activation: str):
    """What ``MLP.gradients`` gives, in PyTorch: the loss, then every ``p.grad`` by autograd."""
    nn = torch.nn
    model = torch_model(torch, net, activation)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(labels)

    def grads():
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        return loss

    return grads

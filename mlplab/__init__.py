"""mlplab: how gradients flow, vanish and explode through multilayer perceptrons.

Public API::

    net = mlplab.MLP(sizes, activation="sigmoid", loss="softmax_ce", init="normal", seed=0)
    g = net.gradients(X, Y)          # g.loss, g.dW[l-1], g.db[l-1]
    J = mlplab.jacobian(net, X)      # ∂a^depth/∂a^0 per sample, (batch, n_depth, n_0)
    rows = mlplab.run_many(specs, "results/mine")   # seeds of a configuration trained together
    res = mlplab.load_results("results/default")   # res.runs, res.steps, res.layers
"""

__version__ = "0.1.0"

from mlplab.jacobian import jacobian  # noqa: E402
from mlplab.network import MLP, Gradients  # noqa: E402
from mlplab.results import Results, load_results  # noqa: E402
from mlplab.spec import ConfigError, RunSpec  # noqa: E402
from mlplab.train import run, run_many  # noqa: E402

__all__ = [
    "MLP",
    "Gradients",
    "jacobian",
    "load_results",
    "Results",
    "RunSpec",
    "ConfigError",
    "run",
    "run_many",
    "__version__",
]

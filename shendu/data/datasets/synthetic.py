"""Small synthetic datasets for teaching: XOR, blobs, circles, moons, spirals, linear data.

Every function takes ``seed`` (an int gives the same data every time; None draws from
shendu's global generator, so ``sd.manual_seed`` controls it) and returns float32 inputs
``X`` with int64 class labels (float32 targets for regression).
"""
from __future__ import annotations

import numpy as np

from .._rng import data_rng

__all__ = ["make_xor", "make_blobs", "two_blobs", "make_circles", "make_moons",
           "make_spirals", "make_regression"]


def _rng(seed: int | None) -> np.random.Generator:
    return data_rng(None) if seed is None else np.random.default_rng(seed)


def _check_n(name: str, n: int, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name}: n_samples must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _shuffled(rng, X, y):
    perm = rng.permutation(len(X))
    return X[perm].astype(np.float32), y[perm]


def make_xor(n_samples: int = 200, noise: float = 0.1, seed: int | None = 0):
    """Points near the corners of the unit square, labelled by XOR of the corner's bits.

    Sample ``i`` sits near corner ``i % 4`` of (0,0), (0,1), (1,0), (1,1), so
    ``make_xor(4, noise=0)`` is exactly the truth table a single perceptron cannot learn.

    >>> X, y = make_xor(4, noise=0.0)
    >>> X.tolist(), y.tolist()
    ([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0, 1, 1, 0])
    """
    n = _check_n("make_xor", n_samples)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    which = np.arange(n) % 4
    X = corners[which] + noise * _rng(seed).standard_normal((n, 2))
    return X.astype(np.float32), ((which == 1) | (which == 2)).astype(np.int64)


def make_blobs(n_samples: int = 100, centers=3, n_features: int = 2,
               cluster_std: float = 1.0, center_box=(-10.0, 10.0), seed: int | None = 0,
               return_centers: bool = False):
    """Gaussian clusters, one class per centre, samples spread evenly and shuffled.

    Args:
        n_samples: total points.
        centers: how many clusters (centres drawn uniformly in ``center_box``) or an array
            of centres ``(k, n_features)``.
        cluster_std: standard deviation of every cluster.
        seed: int, or None for shendu's global generator.
        return_centers: also return the centres.

    >>> X, y = make_blobs(90, centers=3)
    >>> X.shape, X.dtype, [int(c) for c in np.bincount(y)]
    ((90, 2), dtype('float32'), [30, 30, 30])
    """
    n = _check_n("make_blobs", n_samples)
    rng = _rng(seed)
    if isinstance(centers, (int, np.integer)):
        centers = rng.uniform(center_box[0], center_box[1], size=(int(centers), n_features))
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or len(centers) == 0:
        raise ValueError(f"make_blobs: centers must be a count or a (k, n_features) array, "
                         f"got shape {centers.shape}")
    y = np.arange(n) % len(centers)
    X = centers[y] + cluster_std * rng.standard_normal((n, centers.shape[1]))
    X, y = _shuffled(rng, X, y.astype(np.int64))
    return (X, y, centers.astype(np.float32)) if return_centers else (X, y)


def two_blobs(n_samples: int = 200, distance: float = 4.0, std: float = 1.0,
              seed: int | None = 0):
    """Two Gaussian classes in 2-D, centred ``distance`` apart on the diagonal.

    >>> X, y = two_blobs(10)
    >>> X.shape, sorted(set(y.tolist()))
    ((10, 2), [0, 1])
    """
    half = distance / (2 * np.sqrt(2))
    return make_blobs(n_samples, centers=[[-half, -half], [half, half]], cluster_std=std,
                      seed=seed)


def make_circles(n_samples: int = 100, noise: float = 0.0, factor: float = 0.5,
                 seed: int | None = 0):
    """A circle of radius 1 (class 0) around one of radius ``factor`` (class 1).

    >>> X, y = make_circles(8)
    >>> bool(np.allclose(np.hypot(X[:, 0], X[:, 1]), np.where(y == 0, 1.0, 0.5)))
    True
    """
    n = _check_n("make_circles", n_samples, 2)
    if not 0 < factor < 1:
        raise ValueError(f"make_circles: factor must be in (0, 1), got {factor}")
    rng = _rng(seed)
    n_out = n - n // 2
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n // 2, np.int64)])
    angle = np.concatenate([np.linspace(0, 2 * np.pi, n_out, endpoint=False),
                            np.linspace(0, 2 * np.pi, n // 2, endpoint=False)])
    radius = np.where(y == 0, 1.0, factor)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    X = X + noise * rng.standard_normal(X.shape)
    return _shuffled(rng, X, y)


def make_moons(n_samples: int = 100, noise: float = 0.0, seed: int | None = 0):
    """Two interleaving half circles.

    >>> make_moons(10)[0].shape
    (10, 2)
    """
    n = _check_n("make_moons", n_samples, 2)
    rng = _rng(seed)
    n_top = n - n // 2
    t_top, t_bot = np.linspace(0, np.pi, n_top), np.linspace(0, np.pi, n // 2)
    X = np.concatenate([np.stack([np.cos(t_top), np.sin(t_top)], 1),
                        np.stack([1 - np.cos(t_bot), 0.5 - np.sin(t_bot)], 1)])
    y = np.concatenate([np.zeros(n_top, np.int64), np.ones(n // 2, np.int64)])
    return _shuffled(rng, X + noise * rng.standard_normal(X.shape), y)


def make_spirals(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2,
                 seed: int | None = 0):
    """Interleaved spiral arms, one per class: not linearly separable in any way.

    >>> X, y = make_spirals(300, n_classes=3)
    >>> X.shape, [int(c) for c in np.bincount(y)]
    ((300, 2), [100, 100, 100])
    """
    n = _check_n("make_spirals", n_samples)
    if n_classes < 1:
        raise ValueError(f"make_spirals: n_classes must be >= 1, got {n_classes}")
    rng = _rng(seed)
    y = np.sort(np.arange(n) % n_classes).astype(np.int64)
    X = np.empty((n, 2))
    for c in range(n_classes):
        m = int(np.sum(y == c))
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(4.0 * c, 4.0 * (c + 1), m) + noise * rng.standard_normal(m)
        X[y == c] = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    return _shuffled(rng, X, y)


def make_regression(n_samples: int = 100, n_features: int = 1, noise: float = 0.1,
                    weight=None, bias: float = 0.0, seed: int | None = 0,
                    return_coef: bool = False):
    """Linear data ``y = X @ weight + bias + noise * N(0, 1)``, ``X`` standard normal.

    Args:
        weight: the true weights ``(n_features,)``; drawn uniformly in [-2, 2] when None.
        return_coef: also return ``(weight, bias)`` to compare a fit against.

    >>> X, y, w, b = make_regression(50, 2, noise=0.0, weight=[1.0, -2.0], bias=3.0,
    ...                              return_coef=True)
    >>> bool(np.allclose(X @ w + b, y, atol=1e-5)), y.dtype
    (True, dtype('float32'))
    """
    n = _check_n("make_regression", n_samples)
    rng = _rng(seed)
    X = rng.standard_normal((n, n_features))
    w = rng.uniform(-2.0, 2.0, n_features) if weight is None else np.asarray(weight, float)
    if w.shape != (n_features,):
        raise ValueError(f"make_regression: weight must have shape ({n_features},), got "
                         f"{w.shape}")
    y = X @ w + bias + noise * rng.standard_normal(n)
    X, y = X.astype(np.float32), y.astype(np.float32)
    return (X, y, w.astype(np.float32), np.float32(bias)) if return_coef else (X, y)

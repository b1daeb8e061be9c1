"""Input conversion and validation shared by the metric functions.

Metrics run on the CPU in NumPy: they are computed once per batch or epoch on small arrays,
so moving predictions off the GPU costs little and keeps one implementation.
"""
from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # a shendu Tensor, a NumPy array, or a (nested) list of numbers


def as_numpy(x: ArrayLike, fn: str, name: str) -> np.ndarray:
    """``x`` as a NumPy array (tensors are copied off the GPU by ``np.asarray``)."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{fn}: could not convert {name} ({type(x).__name__}) to an array: "
                        f"{exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must hold numbers, got dtype {arr.dtype}")
    return arr


def as_labels(x: ArrayLike, fn: str, name: str) -> np.ndarray:
    """``x`` as a 1-D int64 array of class labels; floats are accepted when integral."""
    arr = as_numpy(x, fn, name)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{fn}: {name} must be a 1-D array of class labels, got shape "
                         f"{arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            bad = arr[~np.isfinite(arr) | (arr != np.round(arr))][0]
            raise ValueError(f"{fn}: {name} must hold integer class labels, got the value "
                             f"{bad!r}; threshold probabilities first (e.g. probs > 0.5) or "
                             "pass scores/logits to a function that takes them")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{fn}: {name} holds the negative label {int(arr.min())}; class "
                         "labels must be 0, 1, ..., num_classes - 1")
    return arr


def same_length(fn: str, a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{fn}: {a_name} and {b_name} must have the same number of samples, "
                         f"got shapes {a.shape} and {b.shape}")


def pair(y_true: ArrayLike, y_pred: ArrayLike, fn: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(y_true, y_pred)`` label arrays of equal length."""
    t = as_labels(y_true, fn, "y_true")
    p = as_labels(y_pred, fn, "y_pred")
    same_length(fn, t, "y_true", p, "y_pred")
    return t, p


def check_range(fn: str, labels: np.ndarray, name: str, num_classes: int) -> None:
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"{fn}: {name} holds the label {int(labels.max())}, out of range for "
                         f"num_classes={num_classes} (labels must be < {num_classes})")


def binary_scores(y_true: ArrayLike, scores: ArrayLike, fn: str,
                  pos_label: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(is_positive, scores)``: a boolean target and float64 scores of equal length."""
    t = as_labels(y_true, fn, "y_true")
    s = as_numpy(scores, fn, "scores")
    if s.ndim != 1:
        raise ValueError(f"{fn}: scores must be 1-D (one score per sample for the positive "
                         f"class), got shape {s.shape}")
    same_length(fn, t, "y_true", s, "scores")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{fn}: scores contain NaN or inf")
    present = np.unique(t)
    if len(present) > 2:
        raise ValueError(f"{fn}: y_true must hold two classes for a binary curve, got "
                         f"{len(present)} ({present[:5].tolist()}...); pass 2-D scores to "
                         "a function with an `average` argument for one-vs-rest")
    if len(present) == 2 and pos_label not in present:
        raise ValueError(f"{fn}: pos_label={pos_label} is not one of the labels in y_true "
                         f"{present.tolist()}")
    return t == pos_label, s.astype(np.float64)

"""Threshold-free metrics from scores: precision-recall and ROC curves, AP and ROC AUC.

Argument order follows scikit-learn: ``(y_true, scores)``. Results match
``sklearn.metrics`` (``drop_intermediate`` defaults included).
"""
from __future__ import annotations

import warnings

import numpy as np

from ._checks import ArrayLike, as_labels, as_numpy, binary_scores, check_range

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy < 2 spells it trapz


def _cumulative_counts(is_pos: np.ndarray, scores: np.ndarray):
    """True/false positives when predicting positive for ``score >= t``, per distinct ``t``.

    Samples with equal scores are one step: the curve can only move past all of them at
    once, so ties never depend on sample order.
    """
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], is_pos[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]  # last index of every run of equal scores
    tps = np.cumsum(pos)[last_of_group].astype(np.float64)
    fps = (np.flatnonzero(last_of_group) + 1) - tps
    return fps, tps, s[last_of_group]


def precision_recall_curve(y_true: ArrayLike, scores: ArrayLike, *, pos_label: int = 1,
                           drop_intermediate: bool = False):
    """Precision and recall at every distinct score threshold (binary).

    Args:
        y_true: labels of shape (N,), two classes.
        scores: score of the positive class per sample, shape (N,) (probabilities or logits).
        pos_label: which label is positive.
        drop_intermediate: drop thresholds whose point lies on a vertical segment of the
            curve (same recall); the step-wise average precision is unchanged.

    Returns:
        ``(precision, recall, thresholds)``; recall decreases along the arrays and a final
        point ``(precision=1, recall=0)`` without a threshold ends them, as in scikit-learn.

    >>> p, r, t = precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> p.tolist(), r.tolist(), t.tolist()
    ([0.5, 0.6666666666666666, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0], [0.1, 0.35, 0.4, 0.8])
    """
    is_pos, s = binary_scores(y_true, scores, "precision_recall_curve", pos_label)
    if s.size == 0:
        raise ValueError("precision_recall_curve: got 0 samples")
    fps, tps, thresholds = _cumulative_counts(is_pos, s)
    if drop_intermediate and len(tps) > 2:
        # keep the first and last point of each run with the same recall
        keep = np.r_[True, (np.diff(tps[:-1]) != 0) | (np.diff(tps[1:]) != 0), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted != 0)
    if tps[-1] == 0:
        warnings.warn("precision_recall_curve: y_true has no positive samples; recall is "
                      "set to 1 at every threshold", UserWarning, stacklevel=2)
        recall = np.ones_like(tps)
    else:
        recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def _binary_ap(is_pos: np.ndarray, s: np.ndarray) -> float:
    if not is_pos.any():
        warnings.warn("average_precision: y_true has no positive samples; AP is 0",
                      UserWarning, stacklevel=3)
        return 0.0
    fps, tps, _ = _cumulative_counts(is_pos, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    # sum over thresholds of (gain in recall) x (precision there): no interpolation
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _binary_auc(is_pos: np.ndarray, s: np.ndarray) -> float:
    fpr, tpr, _ = _roc(is_pos, s, drop_intermediate=True, fn="roc_auc")
    return float(_trapezoid(tpr, fpr))


def _one_vs_rest(fn: str, y_true, scores, average, binary_metric, pos_label: int) -> float:
    """Apply a binary score metric to 1-D scores, or one-vs-rest to (N, C) scores."""
    s = as_numpy(scores, fn, "scores")
    if s.ndim == 1:
        return binary_metric(*binary_scores(y_true, s, fn, pos_label))
    if s.ndim != 2:
        raise ValueError(f"{fn}: scores must have shape (N,) or (N, C), got {s.shape}")
    t = as_labels(y_true, fn, "y_true")
    if len(t) != len(s):
        raise ValueError(f"{fn}: y_true has {len(t)} labels but scores has {len(s)} rows "
                         f"(shapes {t.shape} and {s.shape})")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{fn}: scores contain NaN or inf")
    check_range(fn, t, "y_true", s.shape[1])
    onehot = t[:, None] == np.arange(s.shape[1])[None, :]
    if average == "micro":
        return binary_metric(onehot.ravel(), s.ravel().astype(np.float64))
    if average not in ("macro", "weighted", None):
        raise ValueError(f"{fn}: average must be 'macro', 'weighted', 'micro' or None, got "
                         f"{average!r}")
    # a class with no positive samples has no defined score: leave it out of the mean
    present = onehot.any(axis=0)
    per_class = np.full(s.shape[1], np.nan)
    for c in np.flatnonzero(present):
        per_class[c] = binary_metric(onehot[:, c], s[:, c].astype(np.float64))
    if average is None:
        return per_class
    weights = onehot.sum(axis=0)[present] if average == "weighted" else None
    return float(np.average(per_class[present], weights=weights))


def average_precision(y_true: ArrayLike, scores: ArrayLike, *, average: str | None = "macro",
                      pos_label: int = 1):
    """Average precision: ``sum_n (R_n - R_{n-1}) P_n`` over the thresholds, as scikit-learn.

    This is the area under the step-wise precision-recall curve without interpolation.

    Args:
        y_true: labels of shape (N,).
        scores: shape (N,) for a binary problem, or (N, C) class scores for one-vs-rest.
        average: for (N, C) scores: ``'macro'`` (mean over classes present in y_true),
            ``'weighted'`` (by class frequency), ``'micro'`` (all pairs pooled) or ``None``
            (per class, NaN for absent classes).
        pos_label: positive class for 1-D scores.

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    return _one_vs_rest("average_precision", y_true, scores, average, _binary_ap, pos_label)


def _roc(is_pos, s, drop_intermediate, fn):
    if s.size == 0:
        raise ValueError(f"{fn}: got 0 samples")
    fps, tps, thresholds = _cumulative_counts(is_pos, s)
    if drop_intermediate and len(fps) > 2:
        # a point is needed only where the curve changes direction (a corner)
        corner = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
        keep = np.r_[True, corner, True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    if fps[-1] == 0 or tps[-1] == 0:
        which = "negative" if fps[-1] == 0 else "positive"
        raise ValueError(f"{fn}: y_true has no {which} samples, so the ROC curve is undefined")
    return fps / fps[-1], tps / tps[-1], thresholds


def roc_curve(y_true: ArrayLike, scores: ArrayLike, *, pos_label: int = 1,
              drop_intermediate: bool = True):
    """False and true positive rates at each distinct threshold (binary).

    Returns ``(fpr, tpr, thresholds)`` starting at ``(0, 0)`` with threshold ``inf``;
    collinear points are dropped unless ``drop_intermediate=False``.

    >>> fpr, tpr, t = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    is_pos, s = binary_scores(y_true, scores, "roc_curve", pos_label)
    return _roc(is_pos, s, drop_intermediate, "roc_curve")


def roc_auc(y_true: ArrayLike, scores: ArrayLike, *, average: str | None = "macro",
            pos_label: int = 1):
    """Area under the ROC curve; one-vs-rest over classes for (N, C) scores.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    return _one_vs_rest("roc_auc", y_true, scores, average, _binary_auc, pos_label)


__all__ = ["precision_recall_curve", "average_precision", "roc_curve", "roc_auc"]

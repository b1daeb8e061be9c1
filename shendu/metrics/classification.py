"""Classification metrics: accuracy, confusion matrix, precision, recall and F-scores.

Functions named as in scikit-learn take ``(y_true, y_pred)`` in scikit-learn's order and
give scikit-learn's numbers (with ``zero_division=0`` and no warnings). ``accuracy`` and
``top_k_accuracy`` follow PyTorch-style ``(input, target)`` order because they usually
take a model's raw output. Inputs may be shendu Tensors, NumPy arrays or lists; labels are
the integers ``0 .. num_classes - 1``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._checks import ArrayLike, as_labels, as_numpy, check_range, pair

AVERAGES = ("binary", "micro", "macro", "weighted", None)


def _pred_from_input(input: ArrayLike, fn: str) -> np.ndarray:
    """Labels from predictions: 1-D labels as given, (N, C, ...) scores by argmax over dim 1."""
    arr = as_numpy(input, fn, "input")
    if arr.ndim >= 2:
        return np.argmax(arr, axis=1).reshape(-1)
    return as_labels(arr, fn, "input")


def accuracy(input: ArrayLike, target: ArrayLike) -> float:
    """Fraction of samples whose predicted class equals ``target``.

    Args:
        input: predicted labels of shape (N,), or scores/logits of shape (N, C) or
            (N, C, d1, ...) whose argmax over dim 1 is the prediction.
        target: true labels of shape (N,) (or (N, d1, ...) for dense predictions).

    >>> accuracy([[0.1, 2.0], [3.0, 0.5], [0.2, 0.1]], [1, 0, 1])
    0.6666666666666666
    >>> accuracy([2, 0, 1, 1], [2, 0, 1, 0])
    0.75
    """
    pred = _pred_from_input(input, "accuracy")
    tgt = as_numpy(target, "accuracy", "target").reshape(-1)
    tgt = as_labels(tgt, "accuracy", "target")
    if pred.shape != tgt.shape:
        raise ValueError(f"accuracy: input gives {pred.size} predictions but target has "
                         f"{tgt.size} labels (input shape {np.shape(input)}, target shape "
                         f"{np.shape(target)}); scores must be (N, C, ...) with target (N, ...)")
    if tgt.size == 0:
        raise ValueError("accuracy: got 0 samples")
    return float(np.mean(pred == tgt))


def accuracy_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """:func:`accuracy` with scikit-learn's argument order ``(y_true, y_pred)``.

    >>> accuracy_score([0, 1, 1], [0, 1, 0])
    0.6666666666666666
    """
    return accuracy(y_pred, y_true)


def top_k_accuracy(input: ArrayLike, target: ArrayLike, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    Ties are broken like ``argmax``: among equal scores the lower class index ranks first,
    so ``k=1`` always equals :func:`accuracy` on the same scores.

    Args:
        input: scores or logits of shape (N, C).
        target: true labels of shape (N,).
        k: how many top classes count as a hit (1 <= k <= C).

    >>> top_k_accuracy([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]], [1, 0], k=2)
    0.5
    """
    scores = as_numpy(input, "top_k_accuracy", "input")
    tgt = as_labels(target, "top_k_accuracy", "target")
    if scores.ndim != 2:
        raise ValueError(f"top_k_accuracy: input must be scores of shape (N, C), got shape "
                         f"{scores.shape}")
    if len(scores) != len(tgt):
        raise ValueError(f"top_k_accuracy: input has {len(scores)} rows but target has "
                         f"{len(tgt)} labels (shapes {scores.shape} and {tgt.shape})")
    n, c = scores.shape
    if not 1 <= int(k) <= c:
        raise ValueError(f"top_k_accuracy: k must be in [1, {c}] for {c} classes, got k={k}")
    check_range("top_k_accuracy", tgt, "target", c)
    if n == 0:
        raise ValueError("top_k_accuracy: got 0 samples")
    true_score = scores[np.arange(n), tgt][:, None]
    cols = np.arange(c)[None, :]
    # rank of the true class = classes scoring higher, plus equal scores at a lower index
    rank = np.sum((scores > true_score) | ((scores == true_score) & (cols < tgt[:, None])),
                  axis=1)
    return float(np.mean(rank < int(k)))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None,
                     normalize: str | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of samples with true class ``i`` predicted as ``j``.

    Args:
        y_true, y_pred: integer labels of shape (N,) (scikit-learn order).
        num_classes: matrix size; defaults to ``max(label) + 1``.
        normalize: ``None`` (counts), ``'true'`` (rows sum to 1), ``'pred'`` (columns sum
            to 1) or ``'all'``; empty rows/columns stay 0.

    >>> confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1])
    array([[1, 0, 0],
           [0, 0, 1],
           [0, 1, 1]])
    """
    t, p = pair(y_true, y_pred, "confusion_matrix")
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    elif int(num_classes) < 1:
        raise ValueError(f"confusion_matrix: num_classes must be >= 1, got {num_classes}")
    num_classes = int(num_classes)
    check_range("confusion_matrix", t, "y_true", num_classes)
    check_range("confusion_matrix", p, "y_pred", num_classes)
    cm = np.bincount(t * num_classes + p, minlength=num_classes ** 2)
    cm = cm.reshape(num_classes, num_classes)
    if normalize is None:
        return cm
    if normalize not in ("true", "pred", "all"):
        raise ValueError(f"confusion_matrix: normalize must be None, 'true', 'pred' or 'all', "
                         f"got {normalize!r}")
    axis = {"true": 1, "pred": 0, "all": None}[normalize]
    total = cm.sum(axis=axis, keepdims=axis is not None)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cm / total
    return np.nan_to_num(out, nan=0.0)


def _safe_div(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(np.shape(num), float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def _mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    """(Weighted) mean skipping NaNs (zero_division=nan), as scikit-learn averages.

    When every weight is zero (no listed class occurs in y_true) the plain mean is used.
    """
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if weights is not None and weights[keep].sum() > 0:
        return float(np.average(values[keep], weights=weights[keep]))
    return float(values[keep].mean())


def prf_from_counts(tp, fp, fn, average: str | None = "macro", beta: float = 1.0,
                    zero_division: float = 0.0):
    """Precision, recall, F-beta from per-class true/false positive and false negative counts.

    Shared by the functions below and by the streaming :class:`MetricTracker`.
    """
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    support = tp + fn
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    b2 = float(beta) ** 2
    precision = _safe_div(tp, tp + fp, zero_division)
    recall = _safe_div(tp, tp + fn, zero_division)
    fscore = _safe_div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, zero_division)
    if average in (None, "binary", "micro"):
        return precision, recall, fscore
    weights = support if average == "weighted" else None
    return tuple(_mean(v, weights) for v in (precision, recall, fscore))


def precision_recall_fscore_support(y_true: ArrayLike, y_pred: ArrayLike, *, beta: float = 1.0,
                                    labels: Sequence[int] | None = None, pos_label: int = 1,
                                    average: str | None = None, zero_division: float = 0.0):
    """Precision, recall, F-beta and support, per class or averaged (as scikit-learn).

    Args:
        y_true, y_pred: integer labels of shape (N,) (scikit-learn order).
        beta: weight of recall in the F-score (1 gives F1).
        labels: classes to report/average over; defaults to the sorted labels present in
            either array.
        pos_label: the positive class when ``average='binary'``.
        average: ``None`` (per class arrays), ``'binary'`` (``pos_label`` only),
            ``'micro'`` (global counts), ``'macro'`` (unweighted class mean) or
            ``'weighted'`` (class mean weighted by support).
        zero_division: value used when a ratio is 0/0 (e.g. a class never predicted);
            ``np.nan`` excludes those classes from averages. No warning is issued.

    Returns:
        ``(precision, recall, fscore, support)``; support is ``None`` when averaged.

    >>> p, r, f, s = precision_recall_fscore_support([0, 1, 1, 2], [0, 1, 2, 2])
    >>> p.tolist(), r.tolist(), s.tolist()
    ([1.0, 1.0, 0.5], [1.0, 0.5, 1.0], [1, 2, 1])
    """
    return _prfs("precision_recall_fscore_support", y_true, y_pred, beta, labels, pos_label,
                 average, zero_division)


def _prfs(fn_name, y_true, y_pred, beta, labels, pos_label, average, zero_division):
    if average not in AVERAGES:
        raise ValueError(f"{fn_name}: average must be one of {AVERAGES}, got {average!r}")
    t, p = pair(y_true, y_pred, fn_name)
    present = np.union1d(t, p)
    if average == "binary":
        if len(present) > 2:
            raise ValueError(f"{fn_name}: average='binary' needs at most two classes, but the "
                             f"labels include {present.tolist()[:10]}; choose average='macro', "
                             "'micro', 'weighted' or None for multi-class data")
        if len(present) == 2 and pos_label not in present:
            raise ValueError(f"{fn_name}: pos_label={pos_label} is not one of the labels "
                             f"{present.tolist()}")
        labels = [pos_label]
    elif labels is None:
        labels = present
    labels = as_labels(labels, fn_name, "labels")
    size = int(max(present.max(initial=-1), labels.max(initial=-1))) + 1
    cm = confusion_matrix(t, p, num_classes=max(size, 1))
    diag = np.diag(cm)
    tp = diag[labels]
    fp = cm.sum(axis=0)[labels] - tp
    fn = cm.sum(axis=1)[labels] - tp
    prec, rec, f = prf_from_counts(tp, fp, fn, average, beta, zero_division)
    if average == "binary":
        return float(prec[0]), float(rec[0]), float(f[0]), None
    if average == "micro":
        return float(prec), float(rec), float(f), None
    if average is None:
        return prec, rec, f, (tp + fn).astype(np.int64)
    return prec, rec, f, None


def precision(y_true: ArrayLike, y_pred: ArrayLike, *, average: str | None = "binary",
              labels: Sequence[int] | None = None, pos_label: int = 1,
              zero_division: float = 0.0):
    """Precision ``tp / (tp + fp)``: of the samples predicted as a class, the fraction right.

    Arguments as in :func:`precision_recall_fscore_support`; the default
    ``average='binary'`` (as in scikit-learn) needs two classes, use ``average='macro'``
    for more.

    >>> precision([0, 1, 1, 0], [1, 1, 1, 0])
    0.6666666666666666
    >>> precision([0, 1, 2, 2], [0, 2, 2, 2], average='macro')  # class 1 never predicted
    0.5555555555555555
    """
    return _prfs("precision", y_true, y_pred, 1.0, labels, pos_label, average,
                 zero_division)[0]


def recall(y_true: ArrayLike, y_pred: ArrayLike, *, average: str | None = "binary",
           labels: Sequence[int] | None = None, pos_label: int = 1,
           zero_division: float = 0.0):
    """Recall ``tp / (tp + fn)``: of the samples of a class, the fraction found.

    Arguments as in :func:`precision_recall_fscore_support`.

    >>> recall([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _prfs("recall", y_true, y_pred, 1.0, labels, pos_label, average,
                 zero_division)[1]


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, *, average: str | None = "binary",
             labels: Sequence[int] | None = None, pos_label: int = 1,
             zero_division: float = 0.0):
    """F1, the harmonic mean of precision and recall: ``2 tp / (2 tp + fp + fn)``.

    Arguments as in :func:`precision_recall_fscore_support`; macro F1 is the mean of the
    per-class F1 scores.

    >>> f1_score([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return _prfs("f1_score", y_true, y_pred, 1.0, labels, pos_label, average,
                 zero_division)[2]


def fbeta_score(y_true: ArrayLike, y_pred: ArrayLike, *, beta: float,
                average: str | None = "binary", labels: Sequence[int] | None = None,
                pos_label: int = 1, zero_division: float = 0.0):
    """F-beta: ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)``; ``beta > 1`` favours recall.

    >>> round(fbeta_score([0, 1, 1, 0], [1, 1, 0, 0], beta=2.0), 4)  # P = R = 0.5
    0.5
    """
    if beta <= 0:
        raise ValueError(f"fbeta_score: beta must be > 0, got {beta}")
    return _prfs("fbeta_score", y_true, y_pred, beta, labels, pos_label, average,
                 zero_division)[2]


__all__ = ["accuracy", "accuracy_score", "top_k_accuracy", "confusion_matrix",
           "precision_recall_fscore_support", "precision", "recall", "f1_score", "fbeta_score",
           "prf_from_counts"]

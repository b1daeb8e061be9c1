"""Semantic segmentation metrics: per-class IoU (Jaccard index), mean IoU and pixel
accuracy, from a confusion matrix accumulated over batches.

>>> import numpy as np
>>> from shendu.metrics import JaccardIndex
>>> m = JaccardIndex(num_classes=2)
>>> m.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]))
>>> m.compute(), m.per_class().tolist(), m.pixel_accuracy()
(0.5833333333333333, [0.5, 0.6666666666666666], 0.75)
"""
from __future__ import annotations

import numpy as np

__all__ = ["JaccardIndex", "mean_iou", "pixel_accuracy"]


def _labels(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


class JaccardIndex:
    """Streaming IoU per class, ``TP / (TP + FP + FN)`` over all pixels seen
    (torchmetrics' ``JaccardIndex(task='multiclass')``).

    Args:
        num_classes: classes including the background.
        ignore_index: a target value whose pixels are left out (e.g. 255 for borders).
        average: ``'macro'`` (mean over classes present in target or prediction) or
            ``'none'`` (per-class array).

    ``update(preds, target)``: ``preds`` are class indices ``(N, H, W)`` or scores
    ``(N, C, H, W)`` (argmax over C), ``target`` class indices ``(N, H, W)``.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None,
                 average: str = "macro"):
        if average not in ("macro", "none"):
            raise ValueError(f"JaccardIndex: average must be 'macro' or 'none', got {average!r}")
        self.num_classes, self.ignore_index, self.average = num_classes, ignore_index, average
        self.reset()

    def reset(self) -> None:
        self.confmat = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, preds, target) -> None:
        p, t = _labels(preds), _labels(target)
        if p.ndim == t.ndim + 1:
            p = p.argmax(1)
        if p.shape != t.shape:
            raise ValueError(f"JaccardIndex.update: preds {p.shape} and target {t.shape} must "
                             f"have the same shape (or preds one more class axis at dim 1)")
        keep = t != self.ignore_index if self.ignore_index is not None else np.ones(t.shape,
                                                                                    bool)
        p, t = p[keep].astype(np.int64), t[keep].astype(np.int64)
        for name, v in (("target", t), ("preds", p)):
            if v.size and (v.min() < 0 or v.max() >= self.num_classes):
                bad = v[(v < 0) | (v >= self.num_classes)][0]
                raise ValueError(f"JaccardIndex.update: {name} has class {bad}, outside "
                                 f"[0, {self.num_classes})")
        self.confmat += np.bincount(t * self.num_classes + p,
                                    minlength=self.num_classes ** 2).reshape(self.confmat.shape)

    def per_class(self) -> np.ndarray:
        """IoU of each class (NaN for a class absent from both target and prediction)."""
        tp = np.diag(self.confmat).astype(np.float64)
        denom = self.confmat.sum(0) + self.confmat.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / denom, np.nan)

    def pixel_accuracy(self) -> float:
        """Fraction of (non-ignored) pixels classified correctly."""
        return float(np.trace(self.confmat) / max(self.confmat.sum(), 1))

    def compute(self):
        iou = self.per_class()
        return iou if self.average == "none" else float(np.nanmean(iou))


def mean_iou(preds, target, num_classes: int, ignore_index: int | None = None) -> float:
    """Mean IoU over the classes present in ``target`` or ``preds``.

    >>> mean_iou(np.array([0, 0, 1]), np.array([0, 1, 1]), 2)
    0.5
    """
    m = JaccardIndex(num_classes, ignore_index)
    m.update(preds, target)
    return m.compute()


def pixel_accuracy(preds, target, ignore_index: int | None = None) -> float:
    """Fraction of pixels whose predicted class equals the target.

    >>> pixel_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1]))
    0.6666666666666666
    """
    p, t = _labels(preds), _labels(target)
    if p.ndim == t.ndim + 1:
        p = p.argmax(1)
    keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
    return float((p[keep] == t[keep]).mean())

"""Streaming metrics for training loops: running means and an epoch-level tracker.

A trainer sees one batch at a time; averaging per-batch accuracies would weight a short
last batch like a full one, and per-batch precision cannot be averaged at all. These
helpers accumulate sums and a confusion matrix instead, so ``compute()`` after an epoch
equals the metric on the whole epoch's predictions.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import ArrayLike, as_labels, as_numpy
from .classification import prf_from_counts


def _scalar(value, name: str) -> float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise ValueError(f"RunningMean.update: {name} must be a single number, got shape "
                         f"{arr.shape}")
    return float(arr.reshape(()))


class RunningMean:
    """Mean of a stream of values, each weighted by how many samples it summarises.

    >>> m = RunningMean()
    >>> m.update(2.0, n=3)   # a batch of 3 with mean loss 2.0
    >>> m.update(4.0, n=1)
    >>> m.compute()
    2.5
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.total = 0.0
        self.count = 0
        self.last = math.nan

    def update(self, value, n: int = 1) -> None:
        """Add ``value`` (a number or one-element tensor) as the mean of ``n`` samples."""
        if n < 0:
            raise ValueError(f"RunningMean.update: n must be >= 0, got {n}")
        v = _scalar(value, "value")
        self.last = v
        self.total += v * n
        self.count += int(n)

    def compute(self) -> float:
        """The weighted mean so far (NaN before the first update)."""
        return self.total / self.count if self.count else math.nan

    @property
    def mean(self) -> float:
        return self.compute()

    def __repr__(self) -> str:
        return f"RunningMean(mean={self.compute():.6g}, count={self.count})"


class MetricTracker:
    """Accumulate loss and classification counts over batches; ``compute()`` per epoch.

    Args:
        num_classes: number of classes; when ``None`` it is taken from the scores'
            width, or grows with the largest label seen.

    ``update(output, target, loss=None, **scalars)`` takes a batch's scores/logits (N, C)
    or predicted labels (N,), its true labels and optionally its mean loss and other
    per-batch means (weighted by batch size). ``compute()`` returns a dict with ``loss``
    (if given), ``accuracy`` and macro ``precision``, ``recall`` and ``f1`` over the
    classes seen (scikit-learn's label set), plus the extra scalars.

    >>> t = MetricTracker()
    >>> t.update([[2.0, 0.1], [0.3, 1.0]], [0, 0], loss=0.5)
    >>> t.update([[0.2, 0.9]], [1], loss=0.2)
    >>> {k: round(v, 4) for k, v in t.compute().items()}
    {'loss': 0.4, 'accuracy': 0.6667, 'precision': 0.75, 'recall': 0.75, 'f1': 0.6667}
    """

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        """Start a new epoch."""
        size = self.num_classes or 0
        self.confusion = np.zeros((size, size), dtype=np.int64)
        self.seen = np.zeros(size, dtype=bool)  # classes present in targets or predictions
        self.scalars: dict[str, RunningMean] = {}

    def _grow(self, size: int) -> None:
        old = self.confusion.shape[0]
        if size <= old:
            return
        if self.num_classes is not None:
            raise ValueError(f"MetricTracker.update: label {size - 1} out of range for "
                             f"num_classes={self.num_classes}")
        cm = np.zeros((size, size), dtype=np.int64)
        cm[:old, :old] = self.confusion
        seen = np.zeros(size, dtype=bool)
        seen[:old] = self.seen
        self.confusion, self.seen = cm, seen

    def update(self, output: ArrayLike, target: ArrayLike, loss=None, **scalars) -> None:
        """Add one batch (see the class docstring)."""
        out = as_numpy(output, "MetricTracker.update", "output")
        if out.ndim == 2:
            width = out.shape[1]
            pred = out.argmax(axis=1)
        else:
            width = 0
            pred = as_labels(out, "MetricTracker.update", "output")
        tgt = as_labels(target, "MetricTracker.update", "target")
        if len(pred) != len(tgt):
            raise ValueError(f"MetricTracker.update: output has {len(pred)} samples but target "
                             f"has {len(tgt)} (shapes {out.shape} and {np.shape(target)})")
        self._grow(max(width, int(tgt.max(initial=-1)) + 1, int(pred.max(initial=-1)) + 1))
        size = self.confusion.shape[0]
        self.confusion += np.bincount(tgt * size + pred, minlength=size * size).reshape(size,
                                                                                        size)
        self.seen[tgt] = True
        self.seen[pred] = True
        n = len(tgt)
        if loss is not None:
            scalars = {"loss": loss, **scalars}
        for name, value in scalars.items():
            self.scalars.setdefault(name, RunningMean()).update(value, n)

    def compute(self) -> dict[str, float]:
        """Epoch metrics so far (accuracy etc. are NaN before any sample)."""
        out = {name: m.compute() for name, m in self.scalars.items() if name == "loss"}
        cm = self.confusion
        total = cm.sum()
        out["accuracy"] = float(np.trace(cm) / total) if total else math.nan
        labels = np.flatnonzero(self.seen)
        if total:
            tp = np.diag(cm)[labels]
            fp = cm.sum(axis=0)[labels] - tp
            fn = cm.sum(axis=1)[labels] - tp
            p, r, f = prf_from_counts(tp, fp, fn, average="macro")
        else:
            p = r = f = math.nan
        out.update(precision=p, recall=r, f1=f)
        out.update({k: m.compute() for k, m in self.scalars.items() if k != "loss"})
        return out


__all__ = ["RunningMean", "MetricTracker"]

"""``classification_report``: per-class precision, recall, F1 and support as a text table."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._checks import ArrayLike, as_labels, pair
from .classification import precision_recall_fscore_support


def classification_report(y_true: ArrayLike, y_pred: ArrayLike, *,
                          labels: Sequence[int] | None = None,
                          target_names: Sequence[str] | None = None, digits: int = 2,
                          output_dict: bool = False, zero_division: float = 0.0):
    """A table of precision, recall, F1 and support per class, plus averages.

    Args:
        y_true, y_pred: integer labels of shape (N,) (scikit-learn order).
        labels: classes to list; defaults to those present in either array.
        target_names: display names, one per listed class.
        digits: decimals shown in the text table.
        output_dict: return a dict ``{name: {'precision', 'recall', 'f1-score', 'support'},
            'accuracy': float, 'macro avg': {...}, 'weighted avg': {...}}`` instead of text.
            When ``labels`` leaves some classes out, ``'micro avg'`` replaces ``'accuracy'``.
        zero_division: value for 0/0 ratios (no warning).

    >>> print(classification_report([0, 1, 1, 2], [0, 1, 2, 2], target_names=['cat', 'dog', 'fox']))
                  precision    recall  f1-score   support
    <BLANKLINE>
             cat       1.00      1.00      1.00         1
             dog       1.00      0.50      0.67         2
             fox       0.50      1.00      0.67         1
    <BLANKLINE>
        accuracy                           0.75         4
       macro avg       0.83      0.83      0.78         4
    weighted avg       0.88      0.75      0.75         4
    """
    t, p = pair(y_true, y_pred, "classification_report")
    present = np.union1d(t, p)
    labels = present if labels is None else as_labels(labels, "classification_report", "labels")
    if target_names is None:
        names = [str(int(c)) for c in labels]
    else:
        names = [str(n) for n in target_names]
        if len(names) != len(labels):
            raise ValueError(f"classification_report: got {len(names)} target_names for "
                             f"{len(labels)} classes {labels.tolist()[:10]}")
    args = dict(labels=labels, zero_division=zero_division)
    prec, rec, f1, support = precision_recall_fscore_support(t, p, average=None, **args)
    rows: dict = {}
    for i, name in enumerate(names):
        rows[name] = {"precision": float(prec[i]), "recall": float(rec[i]),
                      "f1-score": float(f1[i]), "support": int(support[i])}
    total = int(support.sum())
    all_listed = set(present.tolist()) <= set(labels.tolist())
    if all_listed:
        rows["accuracy"] = float(np.mean(t == p)) if len(t) else 0.0
    else:  # a subset of classes: accuracy over all samples would not match the rows
        mp, mr, mf, _ = precision_recall_fscore_support(t, p, average="micro", **args)
        rows["micro avg"] = {"precision": mp, "recall": mr, "f1-score": mf, "support": total}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(t, p, average=avg, **args)
        rows[f"{avg} avg"] = {"precision": ap, "recall": ar, "f1-score": af, "support": total}
    if output_dict:
        return rows
    return _format(rows, names, digits)


def _format(rows: dict, names: list[str], digits: int) -> str:
    headers = ["precision", "recall", "f1-score", "support"]
    width = max([len(n) for n in names] + [len("weighted avg"), digits])
    head = " " * width + "".join(f"{h:>10}" for h in headers)
    lines = [head, ""]

    def line(name, r):
        nums = "".join(f"{r[k]:>10.{digits}f}" for k in headers[:3])
        return f"{name:>{width}}{nums}{r['support']:>10}"

    lines += [line(n, rows[n]) for n in names]
    lines.append("")
    if "accuracy" in rows:
        blank = " " * 20
        lines.append(f"{'accuracy':>{width}}{blank}{rows['accuracy']:>10.{digits}f}"
                     f"{rows['macro avg']['support']:>10}")
    for key in ("micro avg", "macro avg", "weighted avg"):
        if key in rows:
            lines.append(line(key, rows[key]))
    return "\n".join(lines)


__all__ = ["classification_report"]

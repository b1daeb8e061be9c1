"""Error analysis: which classes fail, which get confused, which examples look mislabelled.

After training, look at the errors before deciding what to fix (seed notes 000 §10): a class
with a high error rate may need more data, a frequently confused pair may need better
features, and a confidently wrong example is often a labelling mistake. The results are
lists of named tuples that print as tables. Also available from ``shendu.train.diagnose``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._checks import ArrayLike, as_labels, as_numpy, check_range, pair
from .classification import confusion_matrix


class _Table(list):
    """A list of named tuples that prints as a table."""

    title = ""

    def __str__(self) -> str:
        if not self:
            return f"{self.title}: none"
        fields = self[0]._fields
        cells = [[_fmt(getattr(r, f)) for f in fields] for r in self._display_order()]
        widths = [max(len(f), *(len(c[i]) for c in cells)) for i, f in enumerate(fields)]
        line = lambda row: "  ".join(c.rjust(w) for c, w in zip(row, widths))  # noqa: E731
        return "\n".join([self.title, line(fields)] + [line(c) for c in cells])

    def _display_order(self) -> list:
        return list(self)

    def to_dict(self) -> list[dict]:
        return [r._asdict() for r in self]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _names(class_names: Sequence[str] | None, n: int, fn: str) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(n)]
    names = [str(c) for c in class_names]
    if len(names) < n:
        raise ValueError(f"{fn}: got {len(names)} class_names but labels go up to {n - 1}")
    return names


class ClassError(NamedTuple):
    label: int
    name: str
    support: int
    errors: int
    error_rate: float
    most_confused_with: str | None


class PerClassError(_Table):
    title = "Per-class error (worst first)"

    def _display_order(self) -> list:
        return sorted(self, key=lambda r: -r.error_rate)


def per_class_error(y_true: ArrayLike, y_pred: ArrayLike,
                    class_names: Sequence[str] | None = None) -> PerClassError:
    """Support, error count and error rate (1 - recall) of every class, by label.

    ``str()`` prints the worst classes first.

    >>> rows = per_class_error([0, 0, 1, 1, 1], [0, 1, 1, 0, 0], class_names=['cat', 'dog'])
    >>> [(r.name, r.errors, round(r.error_rate, 3), r.most_confused_with) for r in rows]
    [('cat', 1, 0.5, 'dog'), ('dog', 2, 0.667, 'cat')]
    """
    t, p = pair(y_true, y_pred, "per_class_error")
    n = len(class_names) if class_names is not None else None
    cm = confusion_matrix(t, p, num_classes=n)
    names = _names(class_names, cm.shape[0], "per_class_error")
    off = cm - np.diag(np.diag(cm))
    rows = PerClassError()
    for c in range(cm.shape[0]):
        support, errors = int(cm[c].sum()), int(off[c].sum())
        worst = names[int(off[c].argmax())] if errors else None
        rows.append(ClassError(c, names[c], support, errors,
                               errors / support if support else 0.0, worst))
    return rows


class ConfusedPair(NamedTuple):
    true: str
    predicted: str
    count: int
    fraction_of_true: float


class ConfusedPairs(_Table):
    title = "Most confused (true -> predicted)"


def most_confused_pairs(y_true: ArrayLike, y_pred: ArrayLike, k: int = 5,
                        class_names: Sequence[str] | None = None) -> ConfusedPairs:
    """The ``k`` most frequent (true, predicted) mistakes, largest first.

    >>> most_confused_pairs([0, 0, 0, 1, 2, 2], [1, 1, 0, 1, 1, 2], k=2).to_dict()[0]
    {'true': '0', 'predicted': '1', 'count': 2, 'fraction_of_true': 0.6666666666666666}
    """
    t, p = pair(y_true, y_pred, "most_confused_pairs")
    n = len(class_names) if class_names is not None else None
    cm = confusion_matrix(t, p, num_classes=n)
    names = _names(class_names, cm.shape[0], "most_confused_pairs")
    off = cm - np.diag(np.diag(cm))
    flat = np.argsort(-off.ravel(), kind="stable")[:max(int(k), 0)]
    support = cm.sum(axis=1)
    out = ConfusedPairs()
    for i in flat:
        r, c = divmod(int(i), cm.shape[0])
        if off[r, c] == 0:
            break
        out.append(ConfusedPair(names[r], names[c], int(off[r, c]),
                                float(off[r, c] / support[r])))
    return out


class HardExample(NamedTuple):
    index: int
    loss: float
    label: int
    predicted: int | None
    confidence: float | None
    suspect_label: bool


class HardExamples(_Table):
    title = "Highest-loss examples (suspect_label: confidently wrong, check the label)"


def _log_probs(scores: np.ndarray) -> np.ndarray:
    """Log-probabilities from probabilities (rows summing to 1) or from logits."""
    is_prob = scores.min() >= 0 and scores.max() <= 1 and np.allclose(scores.sum(1), 1,
                                                                       atol=1e-3)
    if is_prob:
        return np.log(np.clip(scores, 1e-12, None))
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def highest_loss_examples(losses_or_probs: ArrayLike, y_true: ArrayLike, k: int = 10, *,
                          confidence: float = 0.9) -> HardExamples:
    """The ``k`` examples with the highest loss: candidates for label errors.

    Args:
        losses_or_probs: per-example losses (N,), or class probabilities / logits (N, C)
            (rows summing to 1 are read as probabilities); then the loss is cross-entropy.
        y_true: labels (N,).
        k: how many examples to return.
        confidence: a wrong prediction with at least this probability is flagged
            ``suspect_label`` (needs (N, C) input).

    >>> ex = highest_loss_examples([[0.9, 0.1], [0.02, 0.98], [0.6, 0.4]], [0, 0, 1], k=2)
    >>> [(e.index, e.predicted, e.suspect_label) for e in ex]
    [(1, 1, True), (2, 0, False)]
    """
    fn = "highest_loss_examples"
    x = as_numpy(losses_or_probs, fn, "losses_or_probs").astype(np.float64)
    t = as_labels(y_true, fn, "y_true")
    if x.ndim not in (1, 2) or len(x) != len(t):
        raise ValueError(f"{fn}: losses_or_probs must be (N,) losses or (N, C) scores for the "
                         f"{len(t)} labels, got shape {x.shape}")
    if x.ndim == 2:
        check_range(fn, t, "y_true", x.shape[1])
        logp = _log_probs(x)
        losses = -logp[np.arange(len(t)), t]
        pred, conf = logp.argmax(axis=1), np.exp(logp.max(axis=1))
    else:
        losses, pred, conf = x, None, None
    order = np.argsort(-losses, kind="stable")[:max(int(k), 0)]
    out = HardExamples()
    for i in order:
        p = None if pred is None else int(pred[i])
        c = None if conf is None else float(conf[i])
        suspect = p is not None and p != t[i] and c >= confidence
        out.append(HardExample(int(i), float(losses[i]), int(t[i]), p, c, bool(suspect)))
    return out


__all__ = ["per_class_error", "most_confused_pairs", "highest_loss_examples", "ClassError",
           "ConfusedPair", "HardExample"]

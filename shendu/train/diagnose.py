"""What to try next: bias/variance diagnosis, training-curve checks and error analysis.

``diagnose`` follows the recipe of Andrew Ng's course (seed notes 000, sections 5 and 9-11):
compare human-level, training, train-dev, dev and test error; the largest gap names the
problem to fix first (avoidable bias, variance, train/dev data mismatch, or overfitting to
the dev set), each with its usual remedies. ``diagnose_history`` reads per-epoch curves
for divergence, plateaus and overfitting. The error-analysis helpers list which classes
fail, which pairs get confused, and which examples have the highest loss (often
mislabelled).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

from ..metrics.error_analysis import (
    ClassError,
    ConfusedPair,
    HardExample,
    highest_loss_examples,
    most_confused_pairs,
    per_class_error,
)

ADVICE: dict[str, tuple[str, ...]] = {
    "avoidable_bias": (
        "train a bigger network (more layers or hidden units)",
        "train longer, or use a better optimizer (momentum, RMSProp, Adam)",
        "try a different architecture, or search the hyperparameters"),
    "variance": (
        "get more training data",
        "add regularisation: L2 weight decay, dropout, data augmentation (or stop early)",
        "try a different architecture, or search the hyperparameters"),
    "data_mismatch": (
        "do error analysis on train vs dev examples to see how the distributions differ",
        "make the training data more like the dev data (e.g. artificial data synthesis)",
        "collect more training data that looks like the dev/test data"),
    "dev_overfitting": (
        "get a bigger dev set: the model (or your tuning) has overfit this one",),
}
_LABELS = {"avoidable_bias": "avoidable bias", "variance": "variance",
           "data_mismatch": "data mismatch", "dev_overfitting": "overfitting to dev"}


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`; ``str()`` is a readable report, ``to_dict()`` JSON-ready."""

    errors: dict[str, float]
    gaps: dict[str, float]
    problem: str | None
    recommendations: list[str]
    percent: bool
    min_gap: float
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Every gap of at least ``min_gap``, largest first."""
        big = [k for k, v in self.gaps.items() if v >= self.min_gap]
        return sorted(big, key=lambda k: -self.gaps[k])

    def to_dict(self) -> dict:
        return {**asdict(self), "problems": self.problems}

    def report(self) -> str:
        fmt = (lambda v: f"{v:6.2f}%") if self.percent else (lambda v: f"{100 * v:6.2f}%")
        lines = ["Bias/variance diagnosis", "  errors:"]
        lines += [f"    {name:<10} {fmt(v)}" for name, v in self.errors.items()]
        lines.append("  gaps:")
        for name, v in self.gaps.items():
            mark = "  <- largest" if name == self.problem else ""
            lines.append(f"    {_LABELS[name]:<19} {fmt(v)}{mark}")
        if self.problem is None:
            lines.append(f"No gap exceeds {fmt(self.min_gap).strip()}: no dominant problem. "
                         "Set a more ambitious target or get a better human-level estimate.")
        else:
            lines.append(f"Dominant problem: {_LABELS[self.problem]}. Next steps:")
            lines += [f"  - {r}" for r in self.recommendations]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = report


def diagnose(train_error: float, dev_error: float, test_error: float | None = None,
             train_dev_error: float | None = None, human_error: float | None = None, *,
             min_gap: float | None = None, unit: str | None = None) -> Diagnosis:
    """Split the error into avoidable bias, variance, data mismatch and dev overfitting.

    Args:
        train_error, dev_error: error rates (not accuracies) on the training and dev sets.
        test_error: error on the test set (gap to dev = overfitting to dev).
        train_dev_error: error on held-out data from the *training* distribution; with it,
            variance is ``train_dev - train`` and data mismatch ``dev - train_dev``.
        human_error: human-level error, the proxy for Bayes error (0 when unknown).
        min_gap: gaps below this are not a problem; default 1 percentage point.
        unit: ``'fraction'`` (0.08) or ``'percent'`` (8.0) for every error given; None
            reads all as fractions when none exceeds 1, all as percentages when every
            value other than 0 and 1 exceeds 1, and refuses a mix (8 and 0.10) as ambiguous.

    >>> d = diagnose(train_error=0.08, dev_error=0.10, human_error=0.01)
    >>> d.problem, round(d.gaps['avoidable_bias'], 4), round(d.gaps['variance'], 4)
    ('avoidable_bias', 0.07, 0.02)
    >>> d.recommendations[0]
    'train a bigger network (more layers or hidden units)'
    """
    given = {"human": human_error, "train": train_error, "train-dev": train_dev_error,
             "dev": dev_error, "test": test_error}
    errors = {k: float(v) for k, v in given.items() if v is not None}
    for name, v in errors.items():
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"diagnose: {name} error must be a finite number >= 0, got {v}")
    percent = _is_percent(errors, unit)
    tr, dev = errors["train"], errors["dev"]
    notes = []
    if human_error is None:
        notes.append("human-level error unknown: avoidable bias is measured from 0 error")
    gaps = {"avoidable_bias": tr - errors.get("human", 0.0)}
    if train_dev_error is None:
        gaps["variance"] = dev - tr
        notes.append("no train-dev error: variance and train/dev data mismatch cannot be "
                     "told apart (both are in dev - train)")
    else:
        gaps["variance"] = errors["train-dev"] - tr
        gaps["data_mismatch"] = dev - errors["train-dev"]
    if test_error is not None:
        gaps["dev_overfitting"] = errors["test"] - dev
    if min_gap is None:
        min_gap = 1.0 if percent else 0.01
    name, size = max(gaps.items(), key=lambda kv: kv[1])
    problem = name if size >= min_gap else None
    recs = list(ADVICE[problem]) if problem else []
    return Diagnosis(errors, gaps, problem, recs, percent, float(min_gap), notes)


def _is_percent(errors: dict[str, float], unit: str | None) -> bool:
    """Whether the errors are percentages; raises on a mix of units or out-of-range values."""
    if unit not in (None, "fraction", "percent"):
        raise ValueError(f"diagnose: unit must be 'fraction', 'percent' or None, got {unit!r}")
    big = [k for k, v in errors.items() if v > 1]
    small = [k for k, v in errors.items() if 0 < v < 1]  # 0 and 1 fit either unit
    if unit is None:
        if big and small:
            shown = ", ".join(f"{k} {errors[k]:g}" for k in (*big, *small))
            raise ValueError(
                f"diagnose: the errors mix units ({shown}): values above 1 read as "
                "percentages, values below 1 as fractions. Give them all in one unit, or "
                "name it: unit='percent' or 'fraction' (shendu diagnose --unit percent "
                "or --unit fraction)")
        unit = "percent" if big else "fraction"
    top = 100.0 if unit == "percent" else 1.0
    out = {k: v for k, v in errors.items() if v > top}
    if out:
        raise ValueError(f"diagnose: errors in unit {unit!r} must lie in [0, {top:g}], got "
                         + ", ".join(f"{k} {v:g}" for k, v in out.items()))
    return unit == "percent"


class Finding(NamedTuple):
    """One observation about a training run (``epoch`` counts from 1)."""

    kind: str
    epoch: int | None
    message: str
    advice: tuple[str, ...]


class HistoryDiagnosis(list):
    """The :class:`Finding` list from :func:`diagnose_history`, printable and JSON-ready."""

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self]

    def to_dict(self) -> list[dict]:
        return [{**f._asdict(), "advice": list(f.advice)} for f in self]

    def __str__(self) -> str:
        if not self:
            return "Training curves: no divergence, plateau or overfitting found."
        out = []
        for f in self:
            out.append(f"[{f.kind}] {f.message}")
            out += [f"  - {a}" for a in f.advice]
        return "\n".join(out)


def _series(history: Mapping, key: str) -> np.ndarray | None:
    v = history.get(key)
    if v is None or len(v) == 0:
        return None
    return np.asarray([float(x) for x in v], dtype=np.float64)


def _slope(y: np.ndarray) -> float:
    return float(np.polyfit(np.arange(len(y)), y, 1)[0]) if len(y) >= 2 else 0.0


def diagnose_history(history: Mapping[str, Sequence[float]], *, window: int = 5,
                     tol: float = 0.01) -> HistoryDiagnosis:
    """Look for a diverging loss, a plateau, or overfitting in per-epoch training curves.

    Args:
        history: ``{'train_loss': [...], 'val_loss': [...], 'train_acc': [...],
            'val_acc': [...]}``, one value per epoch; missing keys are skipped.
        window: how many recent epochs a plateau or trend is judged over.
        tol: relative change that counts as real (1%).

    >>> h = {'train_loss': [1.0, .6, .4, .3, .25, .2], 'val_loss': [1.0, .7, .6, .65, .7, .8]}
    >>> diagnose_history(h).kinds
    ['overfitting']
    """
    if not isinstance(history, Mapping):
        raise TypeError(f"diagnose_history: history must be a dict of per-epoch lists, got "
                        f"{type(history).__name__}")
    found = HistoryDiagnosis()
    train, val = _series(history, "train_loss"), _series(history, "val_loss")
    for name, s in (("train_loss", train), ("val_loss", val)):
        if s is not None and not np.all(np.isfinite(s)):
            e = int(np.argmax(~np.isfinite(s))) + 1
            found.append(Finding("diverging", e, f"{name} became {s[e - 1]} at epoch {e}: the "
                                 "learning rate is too high (or the loss is numerically "
                                 "unstable)", _DIVERGE))
            return found
    main, key = (train, "train_loss") if train is not None else (val, "val_loss")
    if main is not None and len(main) >= 3:
        best = int(np.argmin(main))
        recent = main[-window:]
        if best < len(main) - 1 and main[-1] > main[best] * (1 + 10 * tol) and \
                _slope(recent) > 0:
            found.append(Finding("diverging", best + 1, f"{key} rose from {main[best]:.4g} at "
                                 f"epoch {best + 1} to {main[-1]:.4g}: the learning rate is "
                                 "probably too high", _DIVERGE))
        elif len(main) > window:
            before, after = main[:-window].min(), recent.min()
            if before - after <= tol * abs(before):
                found.append(Finding(
                    "plateau", len(main) - window + 1,
                    f"{key} improved by less than {tol:.0%} over the last {window} epochs "
                    f"(best {min(before, after):.4g})", _PLATEAU))
    found.extend(_overfitting(history, train, val, tol))
    return found


_DIVERGE = ("lower the learning rate (try 3-10x smaller) or use learning-rate warm-up",
            "clip gradients, and check inputs are normalised and the loss is stable "
            "(e.g. cross-entropy from logits)")
_PLATEAU = ("lower the learning rate or add a decay schedule (step, cosine, reduce on "
            "plateau)",
            "if training error is still too high, use a bigger model or a better optimizer",
            "if the loss is already low enough, stop training (early stopping)")
_OVERFIT = ("stop early: keep the checkpoint from the best validation epoch",
            "regularise: L2 weight decay, dropout, data augmentation",
            "get more training data")


def _overfitting(history, train, val, tol) -> list[Finding]:
    if train is not None and val is not None and len(val) >= 3 and len(train) == len(val):
        best = int(np.argmin(val))
        if best < len(val) - 1 and val[-1] > val[best] * (1 + tol) and train[-1] < train[best]:
            return [Finding("overfitting", best + 1, f"val_loss is lowest at epoch {best + 1} "
                            f"({val[best]:.4g}) and has risen to {val[-1]:.4g} while "
                            f"train_loss kept falling ({train[best]:.4g} -> {train[-1]:.4g})",
                            _OVERFIT)]
        return []
    tr_acc, val_acc = _series(history, "train_acc"), _series(history, "val_acc")
    if tr_acc is not None and val_acc is not None and len(val_acc) >= 3 and \
            len(tr_acc) == len(val_acc):
        best = int(np.argmax(val_acc))
        if best < len(val_acc) - 1 and val_acc[-1] < val_acc[best] * (1 - tol) and \
                tr_acc[-1] > tr_acc[best]:
            return [Finding("overfitting", best + 1, f"val_acc peaked at epoch {best + 1} "
                            f"({val_acc[best]:.4g}) and fell to {val_acc[-1]:.4g} while "
                            "train_acc kept rising", _OVERFIT)]
    return []


__all__ = ["diagnose", "Diagnosis", "ADVICE", "diagnose_history", "HistoryDiagnosis", "Finding",
           "per_class_error", "most_confused_pairs", "highest_loss_examples", "ClassError",
           "ConfusedPair", "HardExample"]

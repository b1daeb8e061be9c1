"""Plots for training: learning curves, confusion matrices and precision-recall curves.

matplotlib is optional (``pip install shendu[train]``) and imported only when a plot is
made. Figures are built with the Agg canvas directly, never through ``pyplot``: no window
opens, the user's chosen backend is left alone, and figures are not kept alive by pyplot's
registry. Each function returns the ``Figure`` (Jupyter displays it) and writes a PNG when
``path`` is given.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_KEYS = {  # accepted spellings in a history dict, first match wins
    "train_loss": ("train_loss", "loss"), "val_loss": ("val_loss", "dev_loss"),
    "train_acc": ("train_acc", "train_accuracy", "acc", "accuracy"),
    "val_acc": ("val_acc", "val_accuracy", "dev_acc"),
}


def _new_figure(figsize: tuple[float, float]):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("shendu.train.plots needs matplotlib, an optional dependency: "
                          "pip install shendu[train] (matplotlib)") from exc
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself to fig: savefig renders with Agg
    return fig


def _finish(fig, path: str | os.PathLike | None):
    if path is not None:
        fig.savefig(os.fspath(path), format="png", dpi=100)
    return fig


def _get(history: Mapping, name: str) -> np.ndarray | None:
    for key in _KEYS[name]:
        if history.get(key) is not None and len(history[key]):
            v = np.asarray([float(x) for x in history[key]], dtype=np.float64)
            return np.where(np.isfinite(v), v, np.nan)  # diverged epochs show as a gap
    return None


def plot_learning_curves(history: Mapping[str, Sequence[float]],
                         path: str | os.PathLike | None = None, title: str | None = None):
    """Train vs dev loss (left) and accuracy (right) per epoch.

    Args:
        history: per-epoch lists under ``train_loss``/``val_loss``/``train_acc``/``val_acc``
            (``loss``, ``accuracy``, ``val_accuracy`` also accepted); missing ones are left
            out, and the accuracy panel is dropped when there is no accuracy.
        path: where to save a PNG.
        title: figure title.

    The epoch with the lowest dev loss is marked: the early-stopping point.

    >>> fig = plot_learning_curves({'train_loss': [1.0, 0.5, 0.3], 'val_loss': [1.1, 0.7, 0.8]})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['loss']
    """
    if not isinstance(history, Mapping):
        raise TypeError(f"plot_learning_curves: history must be a dict of per-epoch lists, "
                        f"got {type(history).__name__}")
    curves = {k: _get(history, k) for k in _KEYS}
    if all(v is None for v in curves.values()):
        raise ValueError(f"plot_learning_curves: history has none of train_loss, val_loss, "
                         f"train_acc, val_acc (keys: {sorted(history)})")
    panels = [p for p in ("loss", "acc") if any(curves[f"{s}_{p}"] is not None
                                                for s in ("train", "val"))]
    fig = _new_figure((5.5 * len(panels), 4))
    for ax, panel in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for split, style in (("train", "-"), ("val", "--")):
            y = curves[f"{split}_{panel}"]
            if y is not None:
                label = "train" if split == "train" else "dev"
                ax.plot(np.arange(1, len(y) + 1), y, style, marker="o", markersize=3,
                        label=label)
        val_loss = curves["val_loss"]
        if val_loss is not None and np.isfinite(val_loss).any():
            best = int(np.nanargmin(val_loss)) + 1
            ax.axvline(best, color="gray", linestyle=":", label=f"best dev loss (epoch {best})")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)  # no epoch 2.5
        ax.set_ylabel("loss" if panel == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_confusion_matrix(cm: Any, class_names: Sequence[str] | None = None,
                          path: str | os.PathLike | None = None, normalize: bool = False,
                          title: str | None = None):
    """Draw a confusion matrix (rows: true class, columns: predicted) with cell values.

    Args:
        cm: square (C, C) counts, e.g. from ``shendu.metrics.confusion_matrix``.
        class_names: tick labels, one per class.
        path: where to save a PNG.
        normalize: show each row as fractions of the true class (recall on the diagonal).

    >>> fig = plot_confusion_matrix([[5, 1], [2, 7]], class_names=['cat', 'dog'])
    >>> fig.axes[0].get_xlabel()
    'predicted'
    """
    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"plot_confusion_matrix: cm must be a square (C, C) matrix, got "
                         f"shape {m.shape}")
    n = m.shape[0]
    names = [str(i) for i in range(n)] if class_names is None else [str(c) for c in
                                                                     class_names]
    if len(names) != n:
        raise ValueError(f"plot_confusion_matrix: {len(names)} class_names for a {n}x{n} "
                         "matrix")
    if normalize:
        rows = m.sum(axis=1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows != 0)
    side = max(4.0, 0.5 * n + 2)
    fig = _new_figure((side + 1, side))
    ax = fig.add_subplot()
    image = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 3 else 0,
                  ha="right" if max(map(len, names)) > 3 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:  # beyond that the numbers are unreadable
        high = m.max() / 2 if m.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{m[i, j]:.2f}" if normalize else f"{m[i, j]:.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > high else "black")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize
                           else "confusion matrix"))
    return _finish(fig, path)


def plot_pr_curve(precision: Any, recall: Any, ap: float | None = None,
                  path: str | os.PathLike | None = None, title: str | None = None):
    """Draw a precision-recall curve as a step function (as average precision sums it).

    Args:
        precision, recall: arrays from ``shendu.metrics.precision_recall_curve``.
        ap: average precision, shown in the legend.
        path: where to save a PNG.

    >>> fig = plot_pr_curve([0.5, 0.67, 1.0, 1.0], [1.0, 1.0, 0.5, 0.0], ap=0.83)
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'AP = 0.830'
    """
    p = np.asarray(precision, dtype=np.float64).reshape(-1)
    r = np.asarray(recall, dtype=np.float64).reshape(-1)
    if p.shape != r.shape or p.size == 0:
        raise ValueError(f"plot_pr_curve: precision and recall must be non-empty and the same "
                         f"length, got {p.shape} and {r.shape}")
    fig = _new_figure((5, 4.5))
    ax = fig.add_subplot()
    label = "PR curve" if ap is None else f"AP = {ap:.3f}"
    ax.plot(r, p, drawstyle="steps-post", label=label)
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title or "precision-recall curve")
    return _finish(fig, path)


__all__ = ["plot_learning_curves", "plot_confusion_matrix", "plot_pr_curve"]

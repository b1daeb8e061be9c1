"""Pieces of the training loop: batch unpacking, on-device metric sums and the per-epoch
progress display (used by ``shendu.train.trainer``)."""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor

__all__ = ["split_batch", "move", "metric_name", "EpochStats", "Progress"]


def split_batch(batch, need_target: bool = True) -> tuple[tuple, Any]:
    """``(inputs_tuple, target)`` from a batch: ``(x, y)``, ``((x1, x2), y)``,
    ``(x1, x2, y)`` or a lone tensor ``x`` (target None)."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            inputs, target = batch[0], None
        elif len(batch) == 2:
            inputs, target = batch
        else:
            inputs, target = tuple(batch[:-1]), batch[-1]
    elif isinstance(batch, dict):
        raise TypeError("Trainer: dict batches are not understood; yield (inputs, targets) "
                        f"tuples (got keys {sorted(batch)})")
    else:
        inputs, target = batch, None
    if target is None and need_target:
        raise ValueError("Trainer: training and evaluation need (inputs, targets) batches; "
                         f"the loader yielded a single {type(batch).__name__}")
    return (tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)), target


def move(batch, device):
    """``batch`` (tensors, possibly nested in tuples/lists) on ``device``."""
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(move(b, device) for b in batch)
    return batch


def metric_name(metric) -> str:
    """History name of a metric: ``'accuracy'`` -> ``'acc'``, ``'top5'``, or a callable's
    ``__name__``."""
    if callable(metric):
        return getattr(metric, "name", None) or getattr(metric, "__name__", "metric")
    if metric in ("accuracy", "acc"):
        return "acc"
    m = str(metric).replace("_accuracy", "")
    if m.startswith("top") and m[3:].isdigit() and int(m[3:]) >= 1:
        return m
    raise ValueError(f"Trainer: unknown metric {metric!r}; use 'accuracy', 'top5' (any k) "
                     "or a callable fn(output, target) -> float")


def _label_counts(name: str, out, target) -> tuple:
    """(number correct as a backend scalar, number judged) without leaving the device."""
    if target.ndim == out.ndim and out.ndim >= 2 and out.shape[1] > 1 and \
            target.dtype.kind == "f":
        target = target.argmax(axis=1)  # one-hot or soft targets
    if out.ndim == target.ndim + 1 and out.shape[1] > 1:
        if name == "acc":
            return (out.argmax(axis=1) == target).sum(), target.size
        k = int(name[3:])
        scores = get_array_module(out).moveaxis(out, 1, -1)
        top = scores.argsort(axis=-1)[..., -k:]
        return (top == target[..., None]).any(axis=-1).sum(), target.size
    if out.size == target.size and name == "acc":  # binary: logits against 0/1 labels
        return ((out.reshape(target.shape) > 0) == (target > 0.5)).sum(), target.size
    raise ValueError(f"Trainer: cannot compute {name!r} for output shape {out.shape} and "
                     f"target shape {target.shape}; pass metrics=() for regression")


class EpochStats:
    """Running sums of loss and metrics over one pass, kept on backend arrays."""

    def __init__(self, metrics: Sequence, with_loss: bool = True):
        self.metrics = [(metric_name(m), m) for m in metrics]
        self.with_loss = with_loss
        self.n = 0
        self.loss_sum: Any = 0.0
        self.sums: dict[str, Any] = {name: 0.0 for name, _ in self.metrics}
        self.counts = {name: 0 for name, _ in self.metrics}

    def update(self, loss: Tensor | None, out: Tensor, target: Tensor | None) -> None:
        ref = target if target is not None else out
        n = int(ref.shape[0]) if ref.ndim else 1
        self.n += n
        if loss is not None:
            self.loss_sum = self.loss_sum + loss._data.astype(np.float64) * n
        for name, m in self.metrics:
            if callable(m):
                s, c = float(m(out, target)) * n, n
            else:
                s, c = _label_counts(name, out._data, target._data)
            self.sums[name] = self.sums[name] + s
            self.counts[name] += c

    def compute(self, prefix: str = "") -> dict[str, float]:
        """Means so far (this is where device values are read back)."""
        res = {}
        if self.with_loss:
            res[prefix + "loss"] = float(self.loss_sum) / self.n if self.n else math.nan
        for name, _ in self.metrics:
            c = self.counts[name]
            res[prefix + name] = float(self.sums[name]) / c if c else math.nan
        return res


class Progress:
    """A tqdm bar per epoch (``'bar'``), one printed line per epoch (``'line'``), or nothing.

    ``True`` picks the bar when the bar has a terminal (or a notebook) to redraw in, and
    one line per epoch otherwise: a log file, CI or ``nohup`` would get every redraw as a
    carriage-return fragment. The bar's count and its loss/accuracy are refreshed together,
    so the numbers shown are those of the batches counted.
    """

    def __init__(self, mode: bool | str, loader, desc: str, refresh_s: float = 0.3):
        if mode is True and not _interactive(sys.stderr):
            mode = "line"
        if mode is True or mode == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is optional: fall back to one line per epoch
                tqdm, mode = None, "line"
            else:
                mode = "bar"
        self.mode, self.desc, self.refresh_s = mode, desc, refresh_s
        self.bar, self._last, self._pending = None, 0.0, 0
        if mode == "bar":
            try:
                total = len(loader)
            except TypeError:
                total = None
            # tqdm redraws only when told (mininterval=0 with our own clock): a redraw
            # between our refreshes would show new counts beside old numbers
            self.bar = tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True,
                            leave=True, mininterval=0, miniters=1)

    def step(self, stats: EpochStats) -> None:
        if self.bar is None:
            return
        self._pending += 1
        now = time.perf_counter()
        if now - self._last >= self.refresh_s:  # reading values back is the costly part
            self._last = now
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in stats.compute().items()},
                                 refresh=False)
            self.bar.update(self._pending)
            self._pending = 0

    def close(self, logs: dict) -> None:
        shown = {k: v for k, v in logs.items() if k not in ("epoch", "time", "lr")}
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()
                                  if isinstance(v, float)}, refresh=False)
            self.bar.update(self._pending)
            self._pending = 0
            self.bar.close()
            self.bar = None
        elif self.mode == "line":
            text = " ".join(f"{k}={v:.4f}" for k, v in shown.items() if isinstance(v, float))
            print(f"{self.desc}: {text} lr={logs.get('lr', 0):.3g} "
                  f"({logs.get('time', 0):.1f}s)", flush=True)

    def abort(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _interactive(stream) -> bool:
    """Whether a progress bar can redraw in place on ``stream``: a terminal, or a
    Jupyter kernel (whose widgets tqdm.auto uses)."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

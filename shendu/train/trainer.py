"""The training loop: ``fit``, ``evaluate``, ``predict`` and the ``Trainer`` behind them.

One epoch is: for every batch, forward, loss, ``zero_grad``, ``backward``, optional
gradient clipping, ``optimizer.step()``; then an optional pass over the validation data,
the learning-rate schedule, and the callbacks. Per-batch bookkeeping stays on backend
arrays (loss sums and correct-prediction counts), so the loop never forces a GPU sync per
batch; numbers become Python floats once per epoch, or when the progress bar refreshes.

>>> import shendu as sd
>>> from shendu.nn.layers.linear import Linear
>>> from shendu.data import DataLoader, TensorDataset
>>> sd.manual_seed(0)  # doctest: +ELLIPSIS
<...>
>>> x = sd.randn(64, 2); y = (x[:, 0] > 0).long()
>>> model = Linear(2, 2)
>>> opt = sd.optim.SGD(model.parameters(), lr=0.5)
>>> hist = fit(model, sd.nn.functional.cross_entropy, opt,
...            DataLoader(TensorDataset(x, y), batch_size=16), epochs=5, progress=False)
>>> len(hist["train_loss"]), hist["train_acc"][-1] > 0.9
(5, True)
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..autograd.grad_mode import no_grad
from ..backend import get_array_module
from ..nn.module import Module
from ..nn.utils import clip_grad_norm_
from ..tensor import Tensor, _asarray
from ._loop import EpochStats, Progress, metric_name, move, split_batch

__all__ = ["History", "Trainer", "fit", "evaluate", "predict"]


class History(dict):
    """Per-epoch training record: a dict of equal-length lists (``train_loss``, ``val_acc``,
    ``lr``, ``time``, ...), JSON-serialisable as it is.

    >>> h = History()
    >>> h.append({"epoch": 1, "train_loss": 0.9}); h.append({"epoch": 2, "train_loss": 0.5})
    >>> h["train_loss"], h.epochs, h.best("train_loss")
    ([0.9, 0.5], 2, (2, 0.5))
    """

    @property
    def epochs(self) -> int:
        """How many epochs are recorded."""
        return max((len(v) for v in self.values()), default=0)

    def append(self, logs: dict[str, Any]) -> None:
        """Add one epoch's values; keys new or missing this epoch are padded with None."""
        n = self.epochs
        for key, value in logs.items():
            self.setdefault(key, [None] * n).append(_plain(value))
        for col in self.values():
            if len(col) < n + 1:
                col.append(None)

    def record(self, key: str, value: Any) -> None:
        """Set ``key`` for the latest epoch (callbacks use this to add their own numbers)."""
        n = self.epochs
        col = self.setdefault(key, [None] * n)
        col.extend([None] * (n - len(col)))
        col[-1] = _plain(value)

    def best(self, key: str = "val_loss", mode: str = "auto") -> tuple[int, float]:
        """``(epoch, value)`` of the best finite entry of ``key`` (1-based epoch).

        ``mode='auto'`` minimises losses and errors and maximises everything else."""
        if mode == "auto":
            mode = "min" if ("loss" in key or "err" in key) else "max"
        vals = [(i, v) for i, v in enumerate(self.get(key, []))
                if v is not None and math.isfinite(v)]
        if not vals:
            raise KeyError(f"History.best: no finite values recorded under {key!r} "
                           f"(keys: {sorted(self)})")
        i, v = (min if mode == "min" else max)(vals, key=lambda iv: iv[1])
        return i + 1, v

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The history as JSON text (NaN/Infinity kept, as Python's json writes them);
        also written to ``path`` when given."""
        text = json.dumps(dict(self), indent=1)
        if path is not None:
            from .checkpoint import atomic_write_text
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> History:
        """Read a history written by ``to_json`` (a path or the JSON text itself)."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as f:
                text = f.read()
        data = json.loads(text)
        if "history" in data and isinstance(data["history"], dict):
            data = data["history"]  # a metrics file that wraps the history
        return cls(data)


def _plain(value: Any) -> Any:
    """Python numbers for JSON: numpy/backend scalars and one-element tensors become float."""
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, np.generic) or (hasattr(value, "item") and hasattr(value, "ndim")
                                         and value.ndim == 0):
        value = value.item()
    return value


class Trainer:
    """Trains ``model`` with ``loss_fn`` and ``optimizer``; see :func:`fit` for arguments.

    >>> import shendu as sd
    >>> from shendu.nn.layers.linear import Linear
    >>> model = Linear(3, 2)
    >>> t = Trainer(model, sd.nn.functional.cross_entropy,
    ...             sd.optim.SGD(model.parameters(), lr=0.1), progress=False)
    >>> t.predict(sd.randn(5, 3)).shape
    (5, 2)
    """

    def __init__(self, model: Module, loss_fn: Callable | None = None, optimizer=None, *,
                 scheduler=None, callbacks: Iterable = (),
                 metrics: Sequence[str | Callable] = ("accuracy",), device=None,
                 progress: bool | str = True, grad_clip: float | None = None):
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a shendu.nn.Module, got "
                            f"{type(model).__name__}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.scheduler = scheduler
        # Callbacks with a larger ``order`` run later (ModelCheckpoint saves after the others
        # have updated their state for the epoch).
        self.callbacks = sorted(callbacks, key=lambda c: getattr(c, "order", 0))
        self.metrics = tuple(metrics or ())
        for m in self.metrics:
            metric_name(m)  # fail early on unknown names
        self.device = device
        self.progress = progress
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"Trainer: grad_clip must be a positive max-norm, got {grad_clip!r}")
        self.grad_clip = grad_clip
        self.history = History()
        self.epoch = 0
        self.stop_training = False
        self.train_loader = self.val_loader = None
        self.last_loss: Tensor | None = None
        if device is not None:
            model.to(device)

    # ------------------------------------------------------------------ callbacks
    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # ------------------------------------------------------------------ fitting
    def fit(self, train_loader, epochs: int, val_loader=None, *, start_epoch: int = 0,
            history: dict | None = None, resume: str | os.PathLike | None = None) -> History:
        """Train until ``epochs`` epochs in total are done (``start_epoch`` are already done).

        ``resume``: a checkpoint from ``ModelCheckpoint``/``save_checkpoint``; restores the
        model, optimizer, scheduler, RNG streams, history and epoch, then continues.
        """
        if self.optimizer is None or self.loss_fn is None:
            raise ValueError("Trainer.fit: needs both a loss_fn and an optimizer")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"Trainer.fit: epochs must be a non-negative int, got {epochs!r}")
        self.train_loader, self.val_loader = train_loader, val_loader
        if history is not None:
            self.history = History(history)
        if resume is not None:
            from .checkpoint import load_checkpoint
            state = load_checkpoint(resume, self.model, self.optimizer, self.scheduler,
                                    loader=train_loader, callbacks=self.callbacks)
            start_epoch, self.history = state["epoch"], History(state["history"])
        self.stop_training = False
        self._call("on_train_begin")
        for epoch in range(start_epoch, epochs):
            self.epoch = epoch
            self._call("on_epoch_begin", epoch)
            logs = self._run_epoch(train_loader, val_loader, epoch, epochs)
            self.history.append(logs)
            self._call("on_epoch_end", epoch, logs)
            self.epoch = epoch + 1
            if self.stop_training:
                break
        self._call("on_train_end")
        return self.history

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _run_epoch(self, loader, val_loader, epoch: int, epochs: int) -> dict:
        model, opt, loss_fn = self.model, self.optimizer, self.loss_fn
        lr = self._lr()
        start = time.perf_counter()
        model.train()
        stats = EpochStats(self.metrics)
        per_batch_sched = _per_batch(self.scheduler)
        bar = Progress(self.progress, loader, f"Epoch {epoch + 1}/{epochs}")
        try:
            for i, batch in enumerate(loader):
                inputs, target = split_batch(move(batch, self.device))
                self._call("on_batch_begin", i)
                out = model(*inputs)
                loss = loss_fn(out, target)
                opt.zero_grad()
                loss.backward()
                self._call("on_after_backward", i)
                if self.grad_clip is not None:
                    clip_grad_norm_(list(model.parameters()), self.grad_clip)
                opt.step()
                if per_batch_sched:
                    self.scheduler.step()
                stats.update(loss, out, target)
                self.last_loss = loss
                self._call("on_batch_end", i, loss)
                bar.step(stats)
                if self.stop_training:
                    break
            logs = {"epoch": epoch + 1, **self._summarize(stats, "train_")}
            if val_loader is not None:
                logs.update(self.evaluate(val_loader, prefix="val_"))
            logs["lr"] = lr
            self._step_scheduler(logs)
            logs["time"] = round(time.perf_counter() - start, 4)
            bar.close(logs)
        finally:
            bar.abort()
        return logs

    def _step_scheduler(self, logs: dict) -> None:
        sched = self.scheduler
        if sched is None or _per_batch(sched):
            return
        if type(sched).__name__ == "ReduceLROnPlateau":
            sched.step(logs.get("val_loss", logs.get("train_loss")))
        else:
            sched.step()

    def _summarize(self, stats: EpochStats, prefix: str) -> dict[str, float]:
        """A pass's means (a data-parallel trainer first sums the counts of every rank)."""
        return stats.compute(prefix)

    # ------------------------------------------------------------------ inference
    def evaluate(self, loader, prefix: str = "") -> dict[str, float]:
        """Mean loss and metrics over ``loader`` in eval mode without gradients."""
        model, was_training = self.model, self.model.training
        model.eval()
        stats = EpochStats(self.metrics, with_loss=self.loss_fn is not None)
        try:
            with no_grad():
                for batch in loader:
                    inputs, target = split_batch(move(batch, self.device))
                    out = model(*inputs)
                    loss = self.loss_fn(out, target) if self.loss_fn is not None else None
                    stats.update(loss, out, target)
        finally:
            model.train(was_training)
        return self._summarize(stats, prefix)

    def predict(self, data, batch_size: int = 256) -> Tensor:
        """Model outputs for every input in ``data`` (a loader, or a tensor/array of inputs
        batched by ``batch_size``), concatenated, in eval mode without gradients."""
        model, was_training = self.model, self.model.training
        model.eval()
        outs = []
        try:
            with no_grad():
                for batch in _input_batches(data, batch_size):
                    inputs, _ = split_batch(move(batch, self.device), need_target=False)
                    outs.append(model(*inputs)._data)
        finally:
            model.train(was_training)
        if not outs:
            raise ValueError("predict: the data yielded no batches")
        return Tensor._wrap(get_array_module(outs[0]).concatenate(outs))


def _per_batch(scheduler) -> bool:
    """Schedules defined per optimizer step (OneCycleLR counts batches, not epochs)."""
    return type(scheduler).__name__ == "OneCycleLR"


def _input_batches(data, batch_size: int):
    if isinstance(data, (Tensor, np.ndarray)):
        arr = data if isinstance(data, Tensor) else Tensor._wrap(_asarray(data))
        return ((arr[i:i + batch_size],) for i in range(0, len(arr), batch_size))
    return data


def fit(model: Module, loss_fn: Callable, optimizer, train_loader, epochs: int,
        val_loader=None, scheduler=None, callbacks: Iterable = (),
        metrics: Sequence[str | Callable] = ("accuracy",), device=None,
        progress: bool | str = True, grad_clip: float | None = None, start_epoch: int = 0,
        history: dict | None = None, resume: str | os.PathLike | None = None) -> History:
    """Train ``model`` and return its per-epoch :class:`History`.

    Args:
        model: the network (put in train mode for training, eval mode for validation).
        loss_fn: ``loss_fn(output, target) -> scalar tensor`` (e.g. ``F.cross_entropy``).
        optimizer: a ``shendu.optim`` optimizer over the model's parameters.
        train_loader: yields ``(inputs, targets)`` batches (a ``DataLoader``).
        epochs: total epochs to reach (counting the ``start_epoch`` already done).
        val_loader: dev data evaluated after every epoch (``val_loss``, ``val_acc``).
        scheduler: a learning-rate scheduler stepped once per epoch (``ReduceLROnPlateau``
            on ``val_loss``; ``OneCycleLR`` per batch; use ``LRSchedulerCallback`` for
            other arrangements).
        callbacks: ``shendu.train.callbacks`` objects (early stopping, checkpoints, ...).
        metrics: ``'accuracy'``, ``'top5'`` (any k) or callables ``fn(output, target)``.
        device: move the model and every batch there (``'cuda'``).
        progress: True: a tqdm bar per epoch (a line per epoch without tqdm);
            ``'line'``: a line per epoch; False: silent.
        grad_clip: rescale gradients whose global L2 norm exceeds this.
        start_epoch, history: continue a run that already did ``start_epoch`` epochs.
        resume: continue from a checkpoint file instead (see ``Trainer.fit``).

    Example: see the module docstring.
    """
    trainer = Trainer(model, loss_fn, optimizer, scheduler=scheduler, callbacks=callbacks,
                      metrics=metrics, device=device, progress=progress, grad_clip=grad_clip)
    return trainer.fit(train_loader, epochs, val_loader, start_epoch=start_epoch,
                       history=history, resume=resume)


def evaluate(model: Module, loader, loss_fn: Callable | None = None,
             metrics: Sequence[str | Callable] = ("accuracy",), device=None) -> dict[str, float]:
    """Mean ``loss`` and metrics (``acc``, ...) of ``model`` over ``loader``.

    The model runs in eval mode under ``no_grad``; its previous mode is restored.

    >>> import shendu as sd
    >>> from shendu.nn.layers.linear import Linear
    >>> from shendu.data import DataLoader, TensorDataset
    >>> m = Linear(2, 2)
    >>> r = evaluate(m, DataLoader(TensorDataset(sd.randn(8, 2), sd.zeros(8).long()), 4),
    ...              sd.nn.functional.cross_entropy)
    >>> sorted(r)
    ['acc', 'loss']
    """
    return Trainer(model, loss_fn, metrics=metrics, device=device,
                   progress=False).evaluate(loader)


def predict(model: Module, data, device=None, batch_size: int = 256) -> Tensor:
    """Outputs of ``model`` for a loader (inputs taken from ``(x, y)`` batches) or a
    tensor of inputs, concatenated along dim 0; eval mode and ``no_grad``, mode restored.

    >>> import shendu as sd
    >>> from shendu.nn.layers.linear import Linear
    >>> predict(Linear(4, 3), sd.randn(10, 4), batch_size=3).shape
    (10, 3)
    """
    return Trainer(model, None, device=device, progress=False).predict(data, batch_size)

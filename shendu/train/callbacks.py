"""Callbacks: code the training loop calls at fixed points (Keras-style hooks).

A callback defines any of ``on_train_begin(trainer)``, ``on_epoch_begin(trainer, epoch)``,
``on_batch_begin(trainer, batch)``, ``on_after_backward(trainer, batch)`` (gradients are
ready, the step has not happened), ``on_batch_end(trainer, batch, loss)``,
``on_epoch_end(trainer, epoch, logs)`` and ``on_train_end(trainer)``. Epochs are counted
from 0 in the hooks; ``logs`` holds the epoch's numbers (``train_loss``, ``val_acc``, ...),
already appended to ``trainer.history``. Set ``trainer.stop_training = True`` to stop.
Callbacks run in order of their ``order`` attribute (default 0; ``ModelCheckpoint`` runs
last so it saves everyone's state for the epoch).

>>> import shendu as sd
>>> from shendu.nn.layers.linear import Linear
>>> from shendu.data import DataLoader, TensorDataset
>>> from shendu.train import fit
>>> x = sd.randn(32, 2); y = (x[:, 0] > 0).long()
>>> loader = DataLoader(TensorDataset(x, y), batch_size=8)
>>> model = Linear(2, 2)
>>> stop = EarlyStopping(monitor="train_loss", patience=1, min_delta=10.0)
>>> hist = fit(model, sd.nn.functional.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1),
...            loader, epochs=10, callbacks=[stop], progress=False)
>>> hist.epochs, stop.stopped_epoch
(2, 2)
"""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

from .checkpoint import atomic_write_text, save_checkpoint
from .monitor import GradientMonitor, GradientWarning

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback", "CSVLogger",
           "JSONLogger", "GradientMonitor", "GradientWarning", "LambdaCallback"]


class Callback:
    """Base class: override the hooks you need (all do nothing here).

    ``state_dict()``/``load_state_dict()`` let checkpoints carry a callback's counters.
    """

    order = 0

    def on_train_begin(self, trainer) -> None: ...
    def on_train_end(self, trainer) -> None: ...
    def on_epoch_begin(self, trainer, epoch: int) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...
    def on_batch_begin(self, trainer, batch: int) -> None: ...
    def on_after_backward(self, trainer, batch: int) -> None: ...
    def on_batch_end(self, trainer, batch: int, loss) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=fn)``.

    >>> cb = LambdaCallback(on_epoch_end=lambda trainer, epoch, logs: None)
    >>> callable(cb.on_epoch_end)
    True
    """

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode == "auto":
        return "min" if ("loss" in monitor or "err" in monitor) else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"{who}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class _Monitored(Callback):
    """Shared logic: track the best value of ``monitor`` with ``min_delta`` tolerance."""

    def __init__(self, monitor: str, mode: str, min_delta: float, who: str):
        self.monitor, self.min_delta = monitor, abs(float(min_delta))
        self.mode = _resolve_mode(mode, monitor, who)
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0

    def _current(self, logs: dict) -> float | None:
        value = logs.get(self.monitor)
        if value is None:
            import warnings
            warnings.warn(f"{type(self).__name__}: metric {self.monitor!r} is not in the logs "
                          f"(available: {sorted(logs)}); did you pass a val_loader?",
                          RuntimeWarning, stacklevel=3)
        return value

    def _improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitored):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a logs key (``'val_loss'``, ``'val_acc'``, ``'train_loss'``...).
        patience: epochs without improvement tolerated.
        min_delta: smallest change that counts as an improvement.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (min for losses/errors).
        restore_best_weights: at the end of training, load the weights of the best epoch.

    After training, ``best_epoch`` and ``stopped_epoch`` (0 when it never stopped) are
    1-based epoch numbers. Example: see the module docstring.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        super().__init__(monitor, mode, min_delta, "EarlyStopping")
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.patience, self.restore_best_weights = int(patience), restore_best_weights
        self.wait = self.stopped_epoch = 0
        self.best_weights: dict | None = None
        self._restored_state = False

    def on_train_begin(self, trainer) -> None:
        if self._restored_state:  # resuming: keep the counters from the checkpoint
            self._restored_state = False
            return
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        value = self._current(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = float(value), epoch + 1, 0
            if self.restore_best_weights:
                self.best_weights = {k: v._data.copy()
                                     for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch + 1
            trainer.stop_training = True

    def on_train_end(self, trainer) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        state = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        if self.best_weights is not None:
            state["best_weights"] = dict(self.best_weights)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.wait = int(state["wait"])
        weights = state.get("best_weights")
        self.best_weights = ({k: getattr(v, "_data", v) for k, v in weights.items()}
                             if weights is not None else None)
        self._restored_state = True


class ModelCheckpoint(_Monitored):
    """Save a resumable checkpoint (see ``shendu.train.checkpoint``) after epochs.

    Args:
        path: file to write; may hold ``{epoch}`` and logs keys (``'ck-{epoch:02d}.sd'``).
        monitor: the logs key judged by ``save_best_only``.
        save_best_only: only save when ``monitor`` improved.
        every_n_epochs: consider saving every n-th epoch only.
        mode: ``'min'``, ``'max'`` or ``'auto'``.
        extra: extra data stored in every checkpoint (e.g. the run's settings).

    Writes are atomic (temp file then ``os.replace``). ``last_path`` is the latest file.

    >>> import os, tempfile, shendu as sd
    >>> from shendu.nn.layers.linear import Linear
    >>> from shendu.train import fit, load_checkpoint
    >>> folder, model = tempfile.mkdtemp(), Linear(2, 2)
    >>> ck = ModelCheckpoint(os.path.join(folder, "ck-{epoch}.sd"), every_n_epochs=2)
    >>> _ = fit(model, sd.nn.functional.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1),
    ...         [(sd.randn(8, 2), sd.zeros(8).long())], 3, callbacks=[ck], progress=False)
    >>> os.listdir(folder), load_checkpoint(ck.last_path, model)["epoch"]
    (['ck-2.sd'], 2)
    """

    order = 100

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss",
                 save_best_only: bool = False, every_n_epochs: int = 1, mode: str = "auto",
                 extra: dict | None = None):
        super().__init__(monitor, mode, 0.0, "ModelCheckpoint")
        if every_n_epochs < 1:
            raise ValueError(f"ModelCheckpoint: every_n_epochs must be >= 1, got "
                             f"{every_n_epochs}")
        self.path, self.save_best_only = os.fspath(path), save_best_only
        self.every_n_epochs, self.extra = int(every_n_epochs), extra
        self.last_path: str | None = None

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if (epoch + 1) % self.every_n_epochs:
            return
        if self.save_best_only:
            value = self._current(logs)
            if not self._improved(value):
                return
            self.best, self.best_epoch = float(value), epoch + 1
        fields = {k: v for k, v in logs.items() if k != "epoch"}
        path = self.path.format(epoch=epoch + 1, **fields)
        save_checkpoint(path, trainer.model, trainer.optimizer, trainer.scheduler,
                        epoch=epoch + 1, history=trainer.history, extra=self.extra,
                        loader=trainer.train_loader, callbacks=trainer.callbacks)
        self.last_path = path

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler per epoch or per batch.

    Args:
        scheduler: any ``shendu.optim.lr_scheduler`` object.
        interval: ``'epoch'`` or ``'step'`` (after every optimizer step).
        monitor: for ``ReduceLROnPlateau``, the logs key it watches (default ``val_loss``,
            or ``train_loss`` when there is no validation data).

    >>> import shendu as sd
    >>> opt = sd.optim.SGD([sd.nn.Parameter(sd.zeros(1))], lr=1.0)
    >>> cb = LRSchedulerCallback(sd.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    >>> cb.on_epoch_end(None, 0, {}); opt.param_groups[0]["lr"]
    0.5
    """

    def __init__(self, scheduler, interval: str = "epoch", monitor: str | None = None):
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'epoch' or 'step', got "
                             f"{interval!r}")
        self.scheduler, self.interval, self.monitor = scheduler, interval, monitor
        self._plateau = type(scheduler).__name__ == "ReduceLROnPlateau"
        if self._plateau and interval == "step":
            raise ValueError("LRSchedulerCallback: ReduceLROnPlateau needs interval='epoch'")

    def on_batch_end(self, trainer, batch: int, loss) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.interval != "epoch":
            return
        if self._plateau:
            key = self.monitor or ("val_loss" if "val_loss" in logs else "train_loss")
            if key not in logs:
                raise KeyError(f"LRSchedulerCallback: {key!r} is not in the logs "
                               f"({sorted(logs)})")
            self.scheduler.step(logs[key])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])


class CSVLogger(Callback):
    """Write the history as CSV (one row per epoch) after every epoch, atomically.

    The whole file is rewritten each time, so a resumed run continues the same file and a
    crash never leaves a half-written row.

    >>> import csv, os, tempfile, shendu as sd
    >>> from shendu.nn.layers.linear import Linear
    >>> from shendu.train import fit
    >>> path, model = os.path.join(tempfile.mkdtemp(), "log.csv"), Linear(2, 2)
    >>> _ = fit(model, sd.nn.functional.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1),
    ...         [(sd.randn(8, 2), sd.zeros(8).long())], 2, callbacks=[CSVLogger(path)],
    ...         progress=False)
    >>> rows = list(csv.DictReader(open(path)))
    >>> len(rows), list(rows[0])[:3]
    (2, ['epoch', 'train_loss', 'train_acc'])
    """

    order = 50

    def __init__(self, path: str | os.PathLike, separator: str = ","):
        self.path, self.separator = os.fspath(path), separator

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        hist = trainer.history
        keys = list(hist)
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.separator, lineterminator="\n")
        writer.writerow(keys)
        for i in range(hist.epochs):
            writer.writerow(["" if hist[k][i] is None else _cell(hist[k][i]) for k in keys])
        atomic_write_text(self.path, buf.getvalue())


def _cell(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


class JSONLogger(Callback):
    """Write the history (a dict of per-epoch lists) as JSON after every epoch, atomically.

    The file reads back with ``json.load`` or ``History.from_json``; a diverged loss is
    written as ``NaN`` (as Python's json module does).
    """

    order = 50

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        trainer.history.to_json(self.path)

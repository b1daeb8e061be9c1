"""``GradientMonitor``: per-layer checks for vanishing/exploding gradients, dead ReLUs and
NaN/Inf, in the spirit of the course notes' advice on debugging deep nets (seed 000 §7).

On every ``every_n_batches``-th batch it hooks the model for one forward/backward pass:

- **NaN/Inf**: forward hooks see each layer's output in call order, so the message names
  the *first* layer whose output went non-finite; failing that, the layer whose gradient
  went non-finite first as backward ran (the latest such layer in forward order, since a
  bad gradient spreads to every layer before it);
- **dead ReLUs**: for each ``ReLU`` module, the fraction of its units (channels for
  convolutional maps) that were zero for every sample of the batch; models that call
  ``F.relu`` instead are checked on the inputs of their Linear/Conv layers;
- **gradient norms**: the L2 norm of each parameterised layer's gradients; tiny norms
  (below ``vanishing_threshold``, or ``vanishing_ratio`` times the largest layer's)
  are reported as vanishing, huge ones as exploding.

Findings are issued as ``GradientWarning`` (once per layer and kind per epoch) and kept
in ``monitor.events``; per-epoch mean norms go into the history as ``grad_norm/<layer>``
and dead fractions as ``dead_relu/<layer>``.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from ..backend import get_array_module

__all__ = ["GradientMonitor", "GradientWarning"]

_RELUS = ("ReLU", "ReLU6")


class GradientWarning(RuntimeWarning):
    """Something is wrong with the gradients or activations of a layer."""


class GradientMonitor:
    """Watch gradients and activations layer by layer (a training callback).

    Args:
        every_n_batches: check one batch in this many (checking costs a little).
        vanishing_threshold: a layer gradient norm below this is vanishing.
        vanishing_ratio: ...or below this fraction of the largest layer norm.
        exploding_threshold: a layer gradient norm above this is exploding.
        dead_threshold: warn when at least this fraction of a ReLU layer's units is dead.
        stop_on_nan: stop training when a NaN/Inf appears.
        warn: issue ``GradientWarning`` s (events are recorded either way).

    >>> import shendu as sd
    >>> from shendu.nn.layers.linear import Linear
    >>> from shendu.train import Trainer
    >>> model = sd.nn.Sequential(Linear(3, 4), Linear(4, 2))
    >>> model[1].weight.data[0, 0] = float("nan")
    >>> mon = GradientMonitor(every_n_batches=1, warn=False)
    >>> t = Trainer(model, sd.nn.functional.cross_entropy,
    ...             sd.optim.SGD(model.parameters(), lr=0.1), callbacks=[mon], progress=False)
    >>> _ = t.fit([(sd.randn(8, 3), sd.zeros(8).long())], epochs=1)
    >>> mon.events[0]["kind"], mon.events[0]["layer"]
    ('nan', '1')
    """

    order = -10  # record into the history before loggers and checkpoints run

    def __init__(self, every_n_batches: int = 10, vanishing_threshold: float = 1e-7,
                 vanishing_ratio: float = 1e-3, exploding_threshold: float = 1e3,
                 dead_threshold: float = 0.9, stop_on_nan: bool = True, warn: bool = True):
        if every_n_batches < 1:
            raise ValueError(f"GradientMonitor: every_n_batches must be >= 1, got "
                             f"{every_n_batches}")
        self.every_n_batches = int(every_n_batches)
        self.vanishing_threshold, self.vanishing_ratio = vanishing_threshold, vanishing_ratio
        self.exploding_threshold, self.dead_threshold = exploding_threshold, dead_threshold
        self.stop_on_nan, self.warn = stop_on_nan, warn
        self.events: list[dict[str, Any]] = []
        self._handles: list = []
        self._checking = False

    # ------------------------------------------------------------------ set-up
    def on_train_begin(self, trainer) -> None:
        model = trainer.model
        leaves = [(n or type(m).__name__, m) for n, m in model.named_modules()
                  if not m._modules or n == ""]
        self._leaves = leaves
        self._layers = [(n, m) for n, m in model.named_modules()
                        if any(p is not None for p in m._parameters.values())]
        self._has_relu_modules = any(type(m).__name__ in _RELUS for _, m in leaves)
        self._epoch_norms: dict[str, list[float]] = {}
        self._epoch_dead: dict[str, list[float]] = {}

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self._epoch = epoch
        self._warned: set = set()
        self._epoch_norms, self._epoch_dead = {}, {}

    def on_batch_begin(self, trainer, batch: int) -> None:
        self._checking = batch % self.every_n_batches == 0
        if not self._checking:
            return
        self._batch, self._order, self._first_nan = batch, [], None
        self._dead: dict[str, float] = {}
        # Hooks live for this one batch only: unchecked batches pay nothing.
        for name, mod in self._leaves:
            self._handles.append(mod.register_forward_hook(self._make_hook(name, mod)))

    def _make_hook(self, name: str, mod):
        is_relu = type(mod).__name__ in _RELUS
        has_weight = getattr(mod, "weight", None) is not None

        def hook(module, args, out):
            data = getattr(out, "_data", None)
            if data is None:
                return None
            first_call = name not in self._order
            if first_call:
                self._order.append(name)
            xp = get_array_module(data)
            if self._first_nan is None and data.dtype.kind == "f" and \
                    not bool(xp.isfinite(data).all()):
                self._first_nan = name
            if is_relu:
                self._dead[name] = _dead_fraction(xp, data > 0)
            elif not self._has_relu_modules and has_weight and len(self._order) > 1 \
                    and args and hasattr(args[0], "_data") and first_call:
                self._dead[name] = _dead_fraction(xp, args[0]._data != 0)
            return None
        return hook

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    # ------------------------------------------------------------------ checks
    def on_after_backward(self, trainer, batch: int) -> None:
        if not self._checking:
            return
        self._remove_hooks()
        norms = {}
        for name, mod in self._layers:
            grads = [p.grad._data for p in mod._parameters.values()
                     if p is not None and p.grad is not None]
            if grads:
                xp = get_array_module(grads[0])
                norms[name] = math.sqrt(float(sum(xp.sum(g.astype("float64") ** 2)
                                                  for g in grads)))
        self._check_nan(trainer, norms)
        finite = [v for v in norms.values() if math.isfinite(v)]
        top = max(finite, default=0.0)
        for name, v in norms.items():
            self._epoch_norms.setdefault(name, []).append(v)
            if not math.isfinite(v):
                continue
            if v > self.exploding_threshold:
                self._event("exploding", name, v, f"gradient norm {v:.3g} exceeds "
                            f"{self.exploding_threshold:g}: exploding gradients; lower the "
                            "learning rate or clip gradients (grad_clip=1.0)")
            elif v < self.vanishing_threshold or (top > 0 and v < self.vanishing_ratio * top):
                self._event("vanishing", name, v, f"gradient norm {v:.3g} (largest layer "
                            f"{top:.3g}): vanishing gradients; use ReLU instead of "
                            "sigmoid/tanh, He/Xavier initialisation, batch norm or "
                            "residual connections")
        for name, frac in self._dead.items():
            self._epoch_dead.setdefault(name, []).append(frac)
            if frac >= self.dead_threshold:
                self._event("dead_relu", name, frac, f"{frac:.0%} of its units never "
                            "activated over the batch (dead ReLUs); lower the learning rate, "
                            "check the bias initialisation, or use LeakyReLU")

    def _check_nan(self, trainer, norms: dict) -> None:
        where, what = self._first_nan, "output of this layer (the first in forward order)"
        if where is None:
            # Backward runs from the last layer to the first and a non-finite gradient
            # spreads to every layer before it, so the origin is the bad layer latest in
            # forward order (layers the forward hooks did not see rank first).
            order = {n: i for i, n in enumerate(self._order)}
            bad = [n for n, v in norms.items() if not math.isfinite(v)]
            if bad:
                where = max(bad, key=lambda n: order.get(n, -1))
                what = "gradient of this layer (the first one backward reached)"
        if where is not None:
            self._event("nan", where, math.nan, f"NaN/Inf first appeared in the {what}; "
                        "lower the learning rate, clip gradients, or check the inputs and "
                        "the loss for log(0), 0/0 or sqrt/log at 0")
            if self.stop_on_nan:
                trainer.stop_training = True

    def _event(self, kind: str, layer: str, value: float, message: str) -> None:
        if (kind, layer) in self._warned:
            return
        self._warned.add((kind, layer))
        mod = dict(self._leaves + self._layers).get(layer)
        label = f"layer {layer!r} ({type(mod).__name__})" if mod is not None else repr(layer)
        text = f"GradientMonitor, epoch {self._epoch + 1}, batch {self._batch}: {label}: " \
               f"{message}"
        self.events.append({"kind": kind, "layer": layer, "epoch": self._epoch + 1,
                            "batch": self._batch, "value": value, "message": text})
        if self.warn:
            warnings.warn(text, GradientWarning, stacklevel=2)

    def on_batch_end(self, trainer, batch: int, loss) -> None:
        self._remove_hooks()  # in case backward never ran (an exception, a skipped step)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        for name, vals in self._epoch_norms.items():
            trainer.history.record(f"grad_norm/{name}", sum(vals) / len(vals))
        for name, vals in self._epoch_dead.items():
            trainer.history.record(f"dead_relu/{name}", sum(vals) / len(vals))

    def on_train_end(self, trainer) -> None:
        self._remove_hooks()


def _dead_fraction(xp, active) -> float:
    """Fraction of units (axis 1; the only axis for 1-d data) never active in the batch."""
    if active.ndim >= 2:
        axes = tuple(a for a in range(active.ndim) if a != 1)
        per_unit = active.any(axis=axes)
    else:
        per_unit = active
    return 1.0 - float(per_unit.mean()) if per_unit.size else 0.0

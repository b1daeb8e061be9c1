"""``LRScheduler``: the base of the learning-rate schedules, and ``LambdaLR``.

A schedule rewrites ``group['lr']`` of each parameter group once per ``step()``. As in
PyTorch, most schedules compute the new rate from the current one (so several schedules
can be chained) and also know a closed form of the epoch, used when ``step(epoch)`` jumps.
"""
from __future__ import annotations

import types
from collections.abc import Callable

from .optimizer import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR"]


class LRScheduler:
    """Base class: remembers each group's starting rate and applies ``get_lr()`` per step.

    Args:
        optimizer: the optimizer whose groups' ``lr`` the schedule sets.
        last_epoch: index of the last epoch when resuming (-1 starts fresh and records
            ``initial_lr`` in every group).

    Subclasses implement ``get_lr()`` (the rates at ``self.last_epoch``, possibly from the
    current ones) and optionally ``_get_closed_form_lr()``.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no "
                                   f"'initial_lr', needed to resume at last_epoch={last_epoch}")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Set the rates of epoch 0 (the constructor's first step)."""
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr")

    def get_last_lr(self) -> list[float]:
        """The rates the last ``step()`` set, one per parameter group."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to ``epoch``) and write the new rates to the groups."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Every attribute except the optimizer (and functions, which cannot be saved)."""
        return {k: v for k, v in self.__dict__.items()
                if k != "optimizer" and not isinstance(v, (types.FunctionType,
                                                           types.MethodType))}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(epoch)``, one function per group or one for all.

    >>> import shendu as sd
    >>> from shendu.optim import SGD, lr_scheduler
    >>> opt = SGD([sd.nn.Parameter(sd.zeros(1))], lr=1.0)
    >>> sched = lr_scheduler.LambdaLR(opt, lambda epoch: 1 / (epoch + 1))
    >>> for _ in range(3):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable | list[Callable],
                 last_epoch: int = -1):
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"{type(self).__name__}: expected {n} lr_lambdas (one per "
                                 f"parameter group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        super().__init__(optimizer, last_epoch)

    def _factors(self) -> list[float]:
        return [fn(self.last_epoch) for fn in self.lr_lambdas]

    def get_lr(self) -> list[float]:
        return [base * f for base, f in zip(self.base_lrs, self._factors())]

    def state_dict(self) -> dict:
        """As the base, with each lambda saved as ``None`` (a function) or its attributes
        (a callable object)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer",
                                                                     "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType)
                               else dict(fn.__dict__) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", None) or []
        self.__dict__.update(state)
        for fn, attrs in zip(self.lr_lambdas, saved):
            if attrs is not None:
                fn.__dict__.update(attrs)


class MultiplicativeLR(LambdaLR):
    """``lr *= lr_lambda(epoch)`` every epoch after the first.

    >>> import shendu as sd
    >>> from shendu.optim import SGD, lr_scheduler
    >>> opt = SGD([sd.nn.Parameter(sd.zeros(1))], lr=1.0)
    >>> sched = lr_scheduler.MultiplicativeLR(opt, lambda epoch: 0.5)
    >>> for _ in range(3):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.125]
    """

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch > 0:
            return [g["lr"] * f for g, f in zip(groups, self._factors())]
        return [g["lr"] for g in groups]

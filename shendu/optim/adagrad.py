"""Adagrad: per-coordinate step sizes that shrink with the accumulated squared gradient."""
from __future__ import annotations

from collections.abc import Iterable

from ..backend import updates
from .optimizer import Optimizer, check_range, zeros_state

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al.; PyTorch's update rule).

    ``s += d²`` and ``p -= clr * d / (sqrt(s) + eps)`` with ``d = g + weight_decay * p``
    and ``clr = lr / (1 + (t - 1) * lr_decay)`` at step ``t``. Coordinates with large past
    gradients take small steps; the steps only ever shrink (RMSprop forgets instead).

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        lr_decay: learning-rate decay per step.
        weight_decay: L2 penalty coefficient.
        initial_accumulator_value: starting value of the squared-gradient sum ``s``.
        eps: added to the denominator for numerical stability.
        maximize: climb the objective instead of descending it.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0]))
    >>> opt = sd.optim.Adagrad([w], lr=0.5)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w   # the first step is lr * sign(g)
    Parameter containing:
    tensor([ 0.5000, -1.5000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _check_group(self, group: dict) -> None:
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_range("Adagrad", key, group[key])

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["sum"] = zeros_state(p, group["initial_accumulator_value"])
        state["step"] = step = state["step"] + 1
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        updates.adagrad([p._data, grad, state["sum"]._data], clr, group["eps"],
                        group["weight_decay"], group["maximize"])

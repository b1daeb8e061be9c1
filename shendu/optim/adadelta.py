"""Adadelta: step sizes from the ratio of running RMS of updates and of gradients (Zeiler)."""
from __future__ import annotations

from collections.abc import Iterable

from ..backend import updates
from .optimizer import Optimizer, check_range, zeros_state

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (PyTorch's update rule): no hand-tuned step size needed (``lr`` scales it).

    ``sq = ρ sq + (1-ρ) d²``, ``Δ = sqrt(acc + eps) / sqrt(sq + eps) * d``,
    ``acc = ρ acc + (1-ρ) Δ²`` and ``p -= lr * Δ``, with ``d = g + weight_decay * p``: the
    step carries the units of the parameter, a running RMS of past steps.

    Args:
        params: tensors or parameter groups to optimize.
        lr: scale applied to the step (1.0 = the method as published).
        rho: decay rate of both running averages.
        eps: keeps the first steps and the denominator away from zero.
        weight_decay: L2 penalty coefficient.
        maximize: climb the objective instead of descending it.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([3.0]))
    >>> opt = sd.optim.Adadelta([w])
    >>> w.grad = sd.tensor([1.0])
    >>> opt.step()
    >>> round(3.0 - w.item(), 6)  # sqrt(eps) / sqrt(0.1 + eps): tiny first steps
    0.003162
    """

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check_group(self, group: dict) -> None:
        for key in ("lr", "eps", "weight_decay"):
            check_range("Adadelta", key, group[key])
        check_range("Adadelta", "rho", group["rho"], 0.0, 1.0)

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["square_avg"] = zeros_state(p)
            state["acc_delta"] = zeros_state(p)
        state["step"] += 1
        arrays = [p._data, grad, state["square_avg"]._data, state["acc_delta"]._data]
        updates.adadelta(arrays, group["lr"], group["rho"], group["eps"],
                         group["weight_decay"], group["maximize"])

"""RMSprop: divide the step by a running root-mean-square of recent gradients (Hinton)."""
from __future__ import annotations

from collections.abc import Iterable

from ..backend import updates
from .optimizer import Optimizer, check_range, zeros_state

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (PyTorch's update rule), optionally centered and with momentum.

    ``sq = α sq + (1-α) d²`` with ``d = g + weight_decay * p``; the step is
    ``p -= lr * d / (sqrt(sq) + eps)``. ``centered`` uses ``sq - mean(d)²`` (an estimate of
    the gradient's variance); ``momentum`` accumulates ``d / (sqrt(sq) + eps)`` first.

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        alpha: smoothing constant of the squared-gradient average.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty coefficient.
        momentum: momentum factor.
        centered: normalise by the gradient's estimated variance.
        maximize: climb the objective instead of descending it.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0]))
    >>> opt = sd.optim.RMSprop([w], lr=0.01, alpha=0.99)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w   # first step: lr * g / sqrt(0.01 g²) = 10 lr * sign(g)
    Parameter containing:
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _check_group(self, group: dict) -> None:
        for key in ("lr", "eps", "weight_decay", "momentum"):
            check_range("RMSprop", key, group[key])
        check_range("RMSprop", "alpha", group["alpha"], 0.0, 1.0)

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["square_avg"] = zeros_state(p)
        momentum, centered = group["momentum"], group["centered"]
        arrays = [p._data, grad, state["square_avg"]._data]
        if centered:
            arrays.append(state.setdefault("grad_avg", zeros_state(p))._data)
        if momentum > 0:
            arrays.append(state.setdefault("momentum_buffer", zeros_state(p))._data)
        state["step"] += 1
        updates.rmsprop(arrays, group["lr"], group["alpha"], group["eps"],
                        group["weight_decay"], momentum, centered, group["maximize"])

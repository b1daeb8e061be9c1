"""Stochastic gradient descent, with optional momentum (heavy-ball or Nesterov)."""
from __future__ import annotations

from collections.abc import Iterable

from ..backend import updates
from .optimizer import Optimizer, check_range, zeros_state

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (PyTorch's update rule).

    With ``d = g + weight_decay * p`` (``-g`` when ``maximize``), momentum keeps a velocity
    ``b = momentum * b + (1 - dampening) * d`` (``b = d`` on the first step) and the step
    is ``p -= lr * b``, or ``p -= lr * (d + momentum * b)`` with ``nesterov=True``.
    ``weight_decay = λ`` is exactly the gradient of the L2 penalty ``0.5 * λ * ||p||²``
    (see ``shendu.nn.utils.l2_penalty``).

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate (default 1e-3, as PyTorch).
        momentum: momentum factor (0 = plain SGD).
        dampening: damps the gradient's contribution to the velocity.
        weight_decay: L2 penalty coefficient λ.
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
        maximize: climb the objective instead of descending it.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0]))
    >>> opt = sd.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> w
    Parameter containing:
    tensor([ 0.4600, -0.9200], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check_group(self, group: dict) -> None:
        for key in ("lr", "momentum", "weight_decay"):
            check_range("SGD", key, group[key])
        check_range("SGD", "dampening", group["dampening"], 0.0, 1.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True requires momentum > 0 and dampening = 0, "
                             f"got momentum={group['momentum']!r}, "
                             f"dampening={group['dampening']!r}")

    def _update(self, p, grad, state, group):
        momentum = group["momentum"]
        lr, wd, maximize = group["lr"], group["weight_decay"], group["maximize"]
        if not momentum:
            updates.sgd([p._data, grad], lr, wd, maximize)
            return
        buf = state.get("momentum_buffer")
        first = buf is None
        if first:
            buf = state["momentum_buffer"] = zeros_state(p)
        updates.sgd_momentum([p._data, grad, buf._data], lr, wd, maximize, momentum,
                             group["dampening"], group["nesterov"], first)


"""RMSprop: divide the step by a running root-mean-square of recent gradients (Hinton)."""
from __future__ import annotations

from collections.abc import Iterable

from ..backend import cpu
from ..backend import pool as _parallel
from .adam import lerp_
from .optimizer import Optimizer, check_range, effective_grad, zeros_state

__all__ = ["RMSprop"]


def _kernel(xp, arrays, tmp, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    p, g, sq = arrays[:3]
    t, t2 = tmp
    d = effective_grad(xp, p, g, t, weight_decay, maximize)
    xp.multiply(d, 1 - alpha, out=t2)            # sq = alpha sq + (1 - alpha) d²
    xp.multiply(t2, d, out=t2)
    xp.multiply(sq, alpha, out=sq)
    xp.add(sq, t2, out=sq)
    if centered:  # subtract the squared mean gradient: a variance, not a raw second moment
        avg = arrays[3]
        lerp_(xp, avg, d, 1 - alpha, t2)
        xp.multiply(avg, avg, out=t2)
        xp.subtract(sq, t2, out=t2)
        xp.sqrt(t2, out=t2)
    else:
        xp.sqrt(sq, out=t2)
    xp.add(t2, eps, out=t2)
    if momentum > 0:
        buf = arrays[-1]
        xp.multiply(buf, momentum, out=buf)
        xp.divide(d, t2, out=t)
        xp.add(buf, t, out=buf)
        xp.multiply(buf, lr, out=t)
        xp.subtract(p, t, out=p)
    else:
        xp.multiply(d, -lr, out=t)
        xp.divide(t, t2, out=t)
        xp.add(p, t, out=p)


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
        none = p._data.reshape(-1)[:0]  # an empty state array switches its part off
        avg = arrays[3] if centered else none
        buf = arrays[-1] if momentum > 0 else none
        w = 1 - group["alpha"]
        if cpu.try_update("rmsprop", arrays[:3] + [avg, buf], group["lr"], group["alpha"], w,
                          1 - w, w < 0.5, group["eps"], group["weight_decay"],
                          group["maximize"], momentum):
            return
        _parallel.apply(_kernel, arrays, 2, group["lr"], group["alpha"], group["eps"],
                        group["weight_decay"], momentum, centered, group["maximize"])

"""RAdam: Adam with a rectified adaptive learning rate (Liu et al., 2019)."""
from __future__ import annotations

import math
from collections.abc import Iterable

from ..backend import get_array_module
from .adam import Adam, decayed_grad
from .optimizer import Optimizer, zeros_state

__all__ = ["RAdam"]


class RAdam(Optimizer):
    r"""RAdam: Adam that switches its adaptive step on only once the variance of the
    adaptive learning rate is tractable, and rescales it by the rectification term.

    With ``rho_inf = 2 / (1-β2) - 1`` and ``rho_t = rho_inf - 2 t β2^t / (1-β2^t)``:
    while ``rho_t <= 5`` the step is plain bias-corrected momentum
    ``p -= lr · m / (1-β1^t)``; afterwards it is
    ``p -= lr · m / (1-β1^t) · r_t · sqrt(1-β2^t) / (sqrt(v) + eps)`` with
    ``r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))``.
    ``m`` and ``v`` are Adam's moments of ``d = g + weight_decay * p`` (or, with
    ``decoupled_weight_decay``, of ``g`` after ``p *= 1 - lr * weight_decay``).

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate (default 1e-3).
        betas: decay rates of the first and second moment averages.
        eps: added to the denominator for numerical stability.
        weight_decay: weight decay coefficient.
        decoupled_weight_decay: shrink the weights directly (as AdamW).
        maximize: climb the objective instead of descending it.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0]))
    >>> opt = sd.optim.RAdam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w   # the first steps are un-adapted momentum: p -= lr * g
    Parameter containing:
    tensor([ 0.8000, -1.6000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def _check_group(self, group: dict) -> None:
        Adam._check_group(self, group)  # lr, eps, weight_decay >= 0; betas in [0, 1)

    def _update(self, p, grad, state, group):
        xp = get_array_module(p._data)
        if not state:
            state["step"] = 0
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
        state["step"] = t = state["step"] + 1
        lr, eps = group["lr"], group["eps"]
        beta1, beta2 = group["betas"]
        x, m, v = p._data, state["exp_avg"]._data, state["exp_avg_sq"]._data
        d = decayed_grad(x, grad, group)
        m += (1 - beta1) * (d - m)
        v *= beta2
        v += (1 - beta2) * d * d
        bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2 ** t / bias2
        if rho_t > 5.0:  # the adaptive step's variance is finite: rectify and use it
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            x -= (m / bias1) * lr * (math.sqrt(bias2) / (xp.sqrt(v) + eps)) * rect
        else:
            x -= (m / bias1) * lr

"""NAdam: Adam with Nesterov momentum (Dozat, 2016), PyTorch's update rule."""
from __future__ import annotations

from collections.abc import Iterable

from ..backend import get_array_module
from .adam import Adam, decayed_grad
from .optimizer import Optimizer, check_range, zeros_state

__all__ = ["NAdam"]


def _momentum_decay_weight(beta1: float, psi: float, step: int) -> float:
    """The momentum schedule ``mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * psi))``."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))


class NAdam(Optimizer):
    r"""NAdam: Adam whose step looks one momentum step ahead (Nesterov), with a warming-up
    momentum schedule ``mu_t = β1 (1 - 0.5 · 0.96^(t · momentum_decay))``.

    Per step ``t`` with ``d = g + weight_decay * p`` (or decoupled decay
    ``p *= 1 - lr * weight_decay``): ``m = β1 m + (1-β1) d``, ``v = β2 v + (1-β2) d²``,
    ``denom = sqrt(v / (1-β2^t)) + eps`` and
    ``p -= lr (1-mu_t) / (1 - Π_{i<=t} mu_i) · d / denom
    + lr mu_{t+1} / (1 - Π_{i<=t+1} mu_i) · m / denom``.

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate (default 2e-3).
        betas: decay rates of the first and second moment averages.
        eps: added to the denominator for numerical stability.
        weight_decay: weight decay coefficient.
        momentum_decay: ``psi`` in the momentum schedule (default 4e-3).
        decoupled_weight_decay: shrink the weights directly (as AdamW) instead of adding
            ``weight_decay * p`` to the gradient.
        maximize: climb the objective instead of descending it.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0], dtype=sd.float64))
    >>> opt = sd.optim.NAdam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 4) for v in w.tolist()]
    [0.8944, -1.8944]
    """

    def __init__(self, params: Iterable, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize))

    def _check_group(self, group: dict) -> None:
        Adam._check_group(self, group)  # lr, eps, weight_decay >= 0; betas in [0, 1)
        check_range("NAdam", "momentum_decay", group["momentum_decay"])

    def _update(self, p, grad, state, group):
        xp = get_array_module(p._data)
        if not state:
            state["step"] = 0
            state["mu_product"] = 1.0
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
        state["step"] = t = state["step"] + 1
        lr, eps = group["lr"], group["eps"]
        beta1, beta2 = group["betas"]
        x, m, v = p._data, state["exp_avg"]._data, state["exp_avg_sq"]._data
        d = decayed_grad(x, grad, group)
        mu = _momentum_decay_weight(beta1, group["momentum_decay"], t)
        mu_next = _momentum_decay_weight(beta1, group["momentum_decay"], t + 1)
        mu_product = float(state["mu_product"]) * mu
        state["mu_product"] = mu_product
        m += (1 - beta1) * (d - m)
        v *= beta2
        v += (1 - beta2) * d * d
        denom = xp.sqrt(v / (1 - beta2 ** t)) + eps
        x -= (lr * (1 - mu) / (1 - mu_product)) * d / denom
        x -= (lr * mu_next / (1 - mu_product * mu_next)) * m / denom

"""Adam: adaptive moment estimation (Kingma & Ba), with optional AMSGrad."""
from __future__ import annotations

import math
from collections.abc import Iterable

from ..backend import cpu
from ..backend import pool as _parallel
from .optimizer import Optimizer, check_range, effective_grad, zeros_state

__all__ = ["Adam"]


def lerp_(xp, start, end, weight, tmp):
    """``start += weight * (end - start)`` in place, rounded as PyTorch's ``lerp_``."""
    xp.subtract(end, start, out=tmp)
    if weight < 0.5:
        xp.multiply(tmp, weight, out=tmp)
        xp.add(start, tmp, out=start)
    else:  # near weight 1 measure from ``end`` so the result lands on it exactly
        xp.multiply(tmp, 1 - weight, out=tmp)
        xp.subtract(end, tmp, out=start)


def _kernel(xp, arrays, tmp, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
            bias1, bias2_sqrt):
    p, g, m, v = arrays[:4]
    t, t2 = tmp
    if decoupled:  # AdamW shrinks the weights directly instead of through the gradient
        if weight_decay:
            xp.multiply(p, 1 - lr * weight_decay, out=p)
        d = effective_grad(xp, p, g, t, 0, maximize)
    else:
        d = effective_grad(xp, p, g, t, weight_decay, maximize)
    lerp_(xp, m, d, 1 - beta1, t2)               # first moment
    xp.multiply(d, 1 - beta2, out=t2)            # second moment: v = b2 v + (1 - b2) d²
    xp.multiply(t2, d, out=t2)
    xp.multiply(v, beta2, out=v)
    xp.add(v, t2, out=v)
    if len(arrays) == 5:  # AMSGrad normalises by the largest second moment seen so far
        v = xp.maximum(arrays[4], v, out=arrays[4])
    xp.sqrt(v, out=t2)                           # denominator sqrt(v̂) + eps
    xp.divide(t2, bias2_sqrt, out=t2)
    xp.add(t2, eps, out=t2)
    xp.multiply(m, -lr / bias1, out=t)           # d is dead now, so t is free
    xp.divide(t, t2, out=t)
    xp.add(p, t, out=p)



def decayed_grad(x, grad, group: dict):
    """The gradient an Adam-family step uses (NAdam, RAdam): negated for ``maximize``;
    weight decay either shrinks ``x`` in place (decoupled, as AdamW) or joins the gradient
    (L2)."""
    d = -grad if group["maximize"] else grad
    wd = group["weight_decay"]
    if wd:
        if group["decoupled_weight_decay"]:
            x *= 1 - group["lr"] * wd
        else:
            d = d + wd * x
    return d


class Adam(Optimizer):
    r"""Adam (PyTorch's update rule), optionally AMSGrad or with decoupled weight decay.

    Per step ``t``, with ``d = g + weight_decay * p``: ``m = β1 m + (1-β1) d``,
    ``v = β2 v + (1-β2) d²`` and ``p -= lr / (1-β1^t) * m / (sqrt(v / (1-β2^t)) + eps)``.
    ``amsgrad`` uses the running maximum of ``v``; ``decoupled_weight_decay`` is AdamW.

    Args:
        params: tensors or parameter groups to optimize.
        lr: learning rate.
        betas: decay rates of the first and second moment averages.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty coefficient (added to the gradient).
        amsgrad: use the AMSGrad variant.
        maximize: climb the objective instead of descending it.
        decoupled_weight_decay: shrink weights by ``lr * weight_decay`` directly (AdamW).

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0]))
    >>> opt = sd.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w   # the first Adam step moves every weight by about lr
    Parameter containing:
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _check_group(self, group: dict) -> None:
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay"):
            check_range(name, key, group[key])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            check_range(name, f"betas[{i}]", b, 0.0, 1.0, hi_open=True)

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
        arrays = [p._data, grad, state["exp_avg"]._data, state["exp_avg_sq"]._data]
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = zeros_state(p)
            arrays.append(state["max_exp_avg_sq"]._data)
        state["step"] = step = state["step"] + 1
        beta1, beta2 = group["betas"]
        lr, wd, w1 = group["lr"], group["weight_decay"], 1 - beta1
        vmax = arrays[4] if len(arrays) == 5 else p._data.reshape(-1)[:0]  # empty: no AMSGrad
        if cpu.try_update("adam", arrays[:4] + [vmax], w1, 1 - w1, w1 < 0.5, beta2, 1 - beta2,
                          group["eps"], wd, group["decoupled_weight_decay"], group["maximize"],
                          -lr / (1 - beta1 ** step), math.sqrt(1 - beta2 ** step), 1 - lr * wd):
            return
        _parallel.apply(_kernel, arrays, 2, group["lr"], beta1, beta2, group["eps"],
                        group["weight_decay"], group["decoupled_weight_decay"],
                        group["maximize"], 1 - beta1 ** step, math.sqrt(1 - beta2 ** step))

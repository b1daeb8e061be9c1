"""Adam: adaptive moment estimation (Kingma & Ba), with optional AMSGrad."""
from __future__ import annotations

from collections.abc import Iterable

from ..backend import updates
from ..backend.updates import lerp_  # noqa: F401  (importable from here, as before)
from .optimizer import Optimizer, check_range, zeros_state

__all__ = ["Adam"]


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
        updates.adam(arrays, group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                     group["decoupled_weight_decay"], group["maximize"], step)

"""AdamW: Adam with weight decay decoupled from the gradient (Loshchilov & Hutter)."""
from __future__ import annotations

from collections.abc import Iterable

from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    r"""Adam whose weight decay shrinks the weights directly: ``p *= 1 - lr * weight_decay``.

    Unlike L2 decay in ``Adam`` the shrink is not rescaled by the adaptive denominator, so
    every weight decays at the same rate. Arguments as ``Adam``; ``weight_decay`` defaults
    to 1e-2 as in PyTorch.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0]))
    >>> w.grad = sd.zeros(2)               # no gradient: only the decay acts
    >>> sd.optim.AdamW([w], lr=0.1, weight_decay=0.5).step()
    >>> w
    Parameter containing:
    tensor([ 0.9500, -1.9000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

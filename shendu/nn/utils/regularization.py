"""L1 and L2 weight penalties, as differentiable scalars to add to a loss.

The L2 penalty is ``0.5 * sum(w²)``, so its gradient is ``w`` itself: adding
``lam * l2_penalty(params)`` to the loss changes each gradient by ``lam * w``, which is
exactly what ``SGD(..., weight_decay=lam)`` (and ``Adam``'s coupled weight decay) does
without building the penalty. L1 (``sum(|w|)``) pushes weights to exactly zero and so
selects features; L2 shrinks all of them smoothly.
"""
from __future__ import annotations

from collections.abc import Iterable

from ...tensor import Tensor

__all__ = ["l1_penalty", "l2_penalty"]


def _total(parameters, term) -> Tensor:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = None
    for p in params:
        t = term(p).sum()
        total = t if total is None else total + t
    return Tensor(0.0) if total is None else total


def l1_penalty(parameters: Tensor | Iterable[Tensor]) -> Tensor:
    """``sum(|w|)`` over all parameters: a scalar tensor to add to the loss (times λ).

    >>> import shendu as sd
    >>> from shendu.nn.utils import l1_penalty
    >>> l1_penalty([sd.tensor([1.0, -2.0]), sd.tensor([3.0])])
    tensor(6.)
    """
    return _total(parameters, lambda p: p.abs())


def l2_penalty(parameters: Tensor | Iterable[Tensor]) -> Tensor:
    """``0.5 * sum(w²)`` over all parameters, whose gradient is ``w``.

    ``loss + lam * l2_penalty(params)`` trains exactly as ``SGD(params, weight_decay=lam)``
    on ``loss`` alone.

    >>> import shendu as sd
    >>> from shendu.nn.utils import l2_penalty
    >>> w = sd.nn.Parameter(sd.tensor([1.0, -2.0]))
    >>> penalty = l2_penalty([w])
    >>> penalty
    tensor(2.5000, grad_fn=<...>)
    >>> penalty.backward()
    >>> w.grad
    tensor([ 1., -2.])
    """
    return _total(parameters, lambda p: p * p) * 0.5

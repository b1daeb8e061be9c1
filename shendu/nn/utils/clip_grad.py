"""Gradient clipping: rescale (by the total norm) or clamp (by value) gradients in place.

Clipping is the usual remedy for exploding gradients (deep or recurrent nets): the step
keeps its direction but its length is capped, so one bad batch cannot throw the weights
far away.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ...backend import get_array_module
from ...tensor import Tensor

__all__ = ["get_total_norm", "clip_grads_with_norm_", "clip_grad_norm_", "clip_grad_value_"]

Tensors = Tensor | Iterable[Tensor]


def _as_list(tensors: Tensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _grads(parameters: Tensors) -> list[Tensor]:
    """Each distinct gradient once (two parameters never scale one array twice)."""
    seen, out = set(), []
    for p in _as_list(parameters):
        g = p.grad
        if g is not None and id(g._data) not in seen:
            seen.add(id(g._data))
            out.append(g)
    return out


def _norm(arr, p: float) -> float:
    xp = get_array_module(arr)
    a = arr.reshape(-1)
    if a.dtype.itemsize < 4:  # half precision would overflow summing squares
        a = a.astype(np.float32)
    if a.size == 0:
        return 0.0 if p > 0 else math.inf
    if p == 2.0:
        return math.sqrt(float(xp.dot(a, a)))  # one BLAS pass, no |a|² temporary
    if p == math.inf:
        return float(xp.abs(a).max())
    if p == -math.inf:
        return float(xp.abs(a).min())
    if p == 1.0:
        return float(xp.abs(a).sum())
    if p == 0.0:
        return float(xp.count_nonzero(a))
    return float((xp.abs(a.astype(np.float64)) ** p).sum()) ** (1.0 / p)


def get_total_norm(tensors: Tensors, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` taken together as one long vector.

    >>> import shendu as sd
    >>> from shendu.nn.utils import get_total_norm
    >>> get_total_norm([sd.tensor([3.0]), sd.tensor([4.0])])
    tensor(5.)
    """
    tensors = _as_list(tensors)
    p = float(norm_type)
    if not tensors:
        return Tensor(0.0)
    norms = [_norm(t._data, p) for t in tensors]
    if p == math.inf:
        total = max(norms)
    elif p == -math.inf:
        total = min(norms)
    elif p == 0.0:
        total = sum(norms)
    else:
        total = sum(n ** p for n in norms) ** (1.0 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is {total}, so they cannot be clipped; pass "
                           "error_if_nonfinite=False to scale them by it anyway")
    xp = get_array_module(tensors[0]._data)
    return Tensor._wrap(xp.asarray(total, dtype=tensors[0]._data.dtype))


def clip_grads_with_norm_(parameters: Tensors, max_norm: float,
                          total_norm: Tensor | float) -> None:
    """Scale the gradients by ``max_norm / (total_norm + 1e-6)`` when that is below 1."""
    coef = float(max_norm) / (float(total_norm) + 1e-6)
    if coef >= 1.0:  # already short enough; multiplying by 1 would change nothing
        return
    for g in _grads(parameters):
        arr = g._data
        if getattr(arr.flags, "writeable", True):
            arr *= arr.dtype.type(coef)
        else:
            g._data = arr * coef
        g._version[0] += 1


def clip_grad_norm_(parameters: Tensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Rescale the gradients in place so their total norm is at most ``max_norm``.

    Returns the total norm before clipping (handy to log: a sudden jump signals
    exploding gradients).

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` is clipped.
        max_norm: the largest total norm allowed.
        norm_type: order of the norm (``float('inf')`` for the largest absolute entry).
        error_if_nonfinite: raise instead of scaling when the norm is ``nan``/``inf``.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.zeros(2))
    >>> w.grad = sd.tensor([3.0, 4.0])
    >>> sd.nn.utils.clip_grad_norm_([w], max_norm=1.0)
    tensor(5.)
    >>> w.grad
    tensor([0.6000, 0.8000])
    """
    parameters = _as_list(parameters)  # a generator would be used up by the first pass
    total = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(parameters: Tensors, clip_value: float) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]`` in place.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.zeros(3))
    >>> w.grad = sd.tensor([-5.0, 0.5, 2.0])
    >>> sd.nn.utils.clip_grad_value_(w, 1.0)
    >>> w.grad
    tensor([-1.0000,  0.5000,  1.0000])
    """
    v = float(clip_value)
    if v < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value!r}")
    for g in _grads(parameters):
        xp = get_array_module(g._data)
        if getattr(g._data.flags, "writeable", True):
            xp.clip(g._data, -v, v, out=g._data)
        else:
            g._data = xp.clip(g._data, -v, v)
        g._version[0] += 1

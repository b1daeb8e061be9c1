"""Elementwise ops without a useful gradient: comparisons and logical ops (bool results,
not differentiable), integer division and remainders, and the piecewise-constant
rounding family, whose gradient is zero where it exists (and zero here, as in PyTorch).
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.tracing import leaf
from ..tensor import Tensor
from ._util import as_tensor_like, xp_of

__all__ = ["allclose", "ceil", "eq", "equal", "floor", "floor_divide", "fmod", "ge", "gt",
           "isclose", "isfinite", "isinf", "isnan", "le", "logical_and", "logical_not",
           "logical_or", "logical_xor", "lt", "ne", "remainder", "round", "sign", "trunc"]


@leaf(lambda a, b, name: name)
def _nograd_binary(a, b, name):
    xa = a._data if isinstance(a, Tensor) else a
    xb = b._data if isinstance(b, Tensor) else b
    xp = xp_of(xa if isinstance(a, Tensor) else xb)
    if name == "trunc_divide":
        return Tensor._wrap(xp.trunc(xp.true_divide(xa, xb)).astype(
            np.result_type(xa, xb)))
    return Tensor._wrap(getattr(xp, name)(xa, xb))


def _cmp(name):
    def op(input, other):
        return _nograd_binary(input, other, name)
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` (returns a bool tensor; not differentiable)."
    return op


eq = _cmp("equal")
ne = _cmp("not_equal")
lt = _cmp("less")
le = _cmp("less_equal")
gt = _cmp("greater")
ge = _cmp("greater_equal")
logical_and = _cmp("logical_and")
logical_or = _cmp("logical_or")
logical_xor = _cmp("logical_xor")


def floor_divide(input, other):
    """``floor(input / other)`` elementwise, as PyTorch (rounds toward minus infinity;
    not differentiable).

    >>> import shendu as sd
    >>> sd.floor_divide(sd.tensor([-7, 7]), 2)
    tensor([-4,  3])
    """
    return _nograd_binary(input, other, "floor_divide")


def remainder(input, other):
    """Python's modulus: ``input - floor(input / other) * other``, so the result takes the
    sign of ``other`` (PyTorch's ``remainder`` and ``%``; not differentiable).

    >>> import shendu as sd
    >>> sd.remainder(sd.tensor([-3.0, 3.0]), 2.0)
    tensor([1., 1.])
    """
    return _nograd_binary(input, other, "remainder")


def fmod(input, other):
    """C's ``fmod``: ``input - trunc(input / other) * other``, so the result takes the sign
    of ``input`` (PyTorch's ``fmod``, unlike ``remainder``; not differentiable).

    >>> import shendu as sd
    >>> sd.fmod(sd.tensor([-3.0, 3.0]), 2.0)
    tensor([-1.,  1.])
    """
    return _nograd_binary(input, other, "fmod")


def _nograd_unary(name):
    @leaf(name)
    def op(input):
        return Tensor._wrap(getattr(xp_of(input._data), name)(input._data))
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` (not differentiable)."
    return op


logical_not = _nograd_unary("logical_not")


class _Step(Function):
    """A piecewise-constant op (floor, ceil, round, trunc, sign). Its derivative is zero
    wherever it exists, and PyTorch hands back those zeros rather than cutting the graph:
    the output of a tensor that requires grad requires grad too, and its gradient is 0."""

    linear_backward = True  # the backward, g -> 0, is linear in g

    @classmethod
    def forward(cls, ctx, a, decimals=0):
        if a.dtype.kind in "iub" and cls._op != "sign":
            return a.copy()  # integers are their own floor/ceil/round/trunc, dtype kept
        return cls.fn(xp_of(a), a, decimals)

    @staticmethod
    def backward(ctx, g):
        return xp_of(g).zeros_like(g)

    @staticmethod
    def jvp(ctx, da):
        return xp_of(da).zeros_like(da)


def _step(name, fn, doc):
    cls = type(name.capitalize(), (_Step,), {"fn": staticmethod(fn), "_op": name})

    def op(input):
        return cls.apply(as_tensor_like(input))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    op.Function = cls
    return op


def _round(xp, a, decimals):
    if decimals == 0:
        return xp.round(a)
    scale = a.dtype.type(10.0 ** decimals)  # as PyTorch: round(x * 10^d) / 10^d
    return xp.round(a * scale) / scale


sign = _step("sign", lambda xp, a, d: xp.sign(a),
             """The sign of each element (-1, 0 or 1); its gradient is zero.

    >>> import shendu as sd
    >>> sd.sign(sd.tensor([-2.0, 0.0, 3.0]))
    tensor([-1.,  0.,  1.])
    """)
floor = _step("floor", lambda xp, a, d: xp.floor(a),
              """The largest integer not above each element; its gradient is zero.

    >>> import shendu as sd
    >>> sd.floor(sd.tensor([-1.5, 0.5]))
    tensor([-2.,  0.])
    """)
ceil = _step("ceil", lambda xp, a, d: xp.ceil(a),
             """The smallest integer not below each element; its gradient is zero.

    >>> import shendu as sd
    >>> sd.ceil(sd.tensor([-1.5, 0.5]))
    tensor([-1.,  1.])
    """)
trunc = _step("trunc", lambda xp, a, d: xp.trunc(a),
              """Each element rounded toward zero; its gradient is zero.

    >>> import shendu as sd
    >>> sd.trunc(sd.tensor([-1.5, 0.5]))
    tensor([-1.,  0.])
    """)
_round_int = _step("round", _round, "")


def round(input, *, decimals: int = 0):  # noqa: A001
    """Each element rounded to ``decimals`` decimal places, halves to even (as PyTorch);
    its gradient is zero.

    >>> import shendu as sd
    >>> sd.round(sd.tensor([0.5, 1.5, 1.26]), decimals=0)
    tensor([0., 2., 1.])
    >>> sd.round(sd.tensor([1.26]), decimals=1)
    tensor([1.3000])
    """
    return _round_int.Function.apply(as_tensor_like(input), decimals=int(decimals))


round.Function = _round_int.Function
isnan = _nograd_unary("isnan")
isinf = _nograd_unary("isinf")
isfinite = _nograd_unary("isfinite")


def equal(input, other) -> bool:
    """True when both tensors have the same shape and elements."""
    return input.shape == other.shape and bool((input._data == other._data).all())


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    return bool(xp_of(input._data).allclose(input._data, as_tensor_like(other, input)._data,
                                            rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False):
    return Tensor._wrap(xp_of(input._data).isclose(
        input._data, as_tensor_like(other, input)._data, rtol=rtol, atol=atol,
        equal_nan=equal_nan))

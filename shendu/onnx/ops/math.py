"""Elementwise arithmetic, math, comparison and casting: Add ... Greater, Where, Clip, Cast."""
from __future__ import annotations

import numpy as np

from ... import ops as O
from ...ops.movement import type_
from ._registry import arr, arr_dtype, const, is_float, register


def _int_div(a, b):
    """ONNX's integer Div truncates toward zero (NumPy's // floors)."""
    if a.dtype.kind == "u":
        return a // b
    q = a // b
    fix = (q * b != a) & ((a < 0) != (b < 0))
    return (q + fix).astype(a.dtype)


_BINARY = {
    "Add": (O.add, np.add),
    "Sub": (O.sub, np.subtract),
    "Mul": (O.mul, np.multiply),
    "Div": (O.div, _int_div),
}


def _binary(name):
    sd_fn, np_fn = _BINARY[name]

    def convert(node, a, b):
        if is_float(a, b):
            return sd_fn(a, b)
        x, y = arr(a), arr(b)
        with np.errstate(over="ignore"):
            return const(np.asarray(np_fn(x, y)).astype(x.dtype))
    return convert


for _name in _BINARY:
    register(_name)(_binary(_name))


@register("Pow")
def pow_(node, a, b):
    """The result has the base's type; the exponent may have another type."""
    if is_float(a):
        return O.pow(a, b if is_float(b) else const(arr(b).astype(arr_dtype(a))))
    x = arr(a)
    return const(np.power(x.astype(np.float64), arr(b)).astype(x.dtype))


def _unary(sd_fn, np_fn):
    def convert(node, a):
        if is_float(a):
            return sd_fn(a)
        if np_fn is None:
            raise node.error(f"defined here for float inputs only, got {arr_dtype(a)}")
        return const(np_fn(arr(a)))
    return convert


for _name, _fns in {"Abs": (O.abs, np.abs), "Neg": (O.neg, np.negative),
                    "Sqrt": (O.sqrt, np.sqrt), "Exp": (O.exp, np.exp), "Log": (O.log, np.log),
                    "Reciprocal": (O.reciprocal, np.reciprocal), "Erf": (O.erf, None),
                    "Floor": (O.floor, np.floor), "Ceil": (O.ceil, np.ceil),
                    "Sign": (O.sign, np.sign), "Sin": (O.sin, np.sin), "Cos": (O.cos, np.cos)
                    }.items():
    register(_name)(_unary(*_fns))


@register("Not")
def not_(node, a):
    return const(np.logical_not(arr(a)))


for _name, _fn in {"Equal": np.equal, "Less": np.less, "Greater": np.greater,
                   "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
                   "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}.items():
    register(_name)(lambda node, a, b, _fn=_fn: const(_fn(arr(a), arr(b))))


@register("Where")
def where(node, cond, a, b):
    if is_float(a, b):
        return O.where(cond, a, b)
    return const(np.where(arr(cond), arr(a), arr(b)))


@register("Clip")
def clip(node, x, lo=None, hi=None):
    if node.opset < 11:
        lo, hi = node.get("min"), node.get("max")
    else:
        lo = None if lo is None else arr(lo).item()
        hi = None if hi is None else arr(hi).item()
    if lo is None and hi is None:
        return x
    if is_float(x):
        # ONNX: with min > max every element becomes max, as max(.., min) then min(.., max)
        return O.clamp(x, lo, hi)
    y = arr(x)
    if lo is not None:
        y = np.maximum(y, lo)
    if hi is not None:
        y = np.minimum(y, hi)
    return const(y.astype(arr(x).dtype))


def _nary(sd_fn, np_fn):
    def convert(node, *xs):
        if is_float(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = sd_fn(out, x)
            return out
        return const(np_fn.reduce(np.broadcast_arrays(*[arr(x) for x in xs])))
    return convert


register("Sum")(_nary(O.add, np.add))
register("Max")(_nary(O.maximum, np.maximum))
register("Min")(_nary(O.minimum, np.minimum))


@register("Mean")
def mean(node, *xs):
    return O.div(_nary(O.add, np.add)(node, *xs), float(len(xs)))


def cast_to(x, dtype):
    """Cast a Tensor; between float types the cast stays differentiable."""
    dtype = np.dtype(dtype)
    if is_float(x) and dtype.kind == "f":
        return type_(x, dtype)
    a = arr(x)
    if a.dtype.kind == "f" and dtype.kind in "iub":
        # NumPy warns on NaN/inf to int; ONNX leaves the value undefined: keep NumPy's.
        with np.errstate(invalid="ignore"):
            return const(a.astype(dtype))
    return const(a.astype(dtype))


@register("Cast")
def cast(node, x):
    from .._proto import numpy_dtype

    return cast_to(x, numpy_dtype(node.get("to"), node))


@register("CastLike")
def cast_like(node, x, like):
    return cast_to(x, arr_dtype(like))

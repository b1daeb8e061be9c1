"""The elementwise math family beyond the core primitives: logs and exponentials in other
bases, trigonometric and hyperbolic functions with their inverses, special functions (erf,
lgamma, digamma, ...), two-argument functions (atan2, hypot, logaddexp, xlogy, ...) and small
composites (lerp, addcmul, nan_to_num, logit). Each is differentiable, with its derivative
beside it, and named as in PyTorch.

>>> import shendu as sd
>>> sd.log2(sd.tensor([1.0, 8.0]))
tensor([0., 3.])
>>> sd.atan2(sd.tensor([1.0]), sd.tensor([1.0])) * 4
tensor([3.1416])
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..errors import DTypeError
from ..tensor import Tensor, _asarray
from . import _special
from ._util import add_tangents, as_tensor_like, bcast, unbroadcast, xp_of
from .elementwise import _apply_binary, _pair, _Unary, clamp

__all__ = ["acos", "acosh", "addcdiv", "addcmul", "arccos", "arccosh", "arcsin", "arcsinh",
           "arctan", "arctan2", "arctanh", "asin", "asinh", "atan", "atan2", "atanh",
           "clamp_max", "clamp_min", "copysign", "cosh", "deg2rad", "digamma", "erf", "erfc",
           "erfinv", "exp2", "expm1", "float_power", "fmax", "fmin", "frac", "heaviside",
           "hypot", "lerp", "lgamma", "log2", "log10", "logaddexp", "logaddexp2", "logit",
           "nan_to_num", "positive", "rad2deg", "reciprocal", "sgn", "signbit", "sinc", "sinh",
           "tan", "xlogy"]

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


def _floats(op, t):
    """PyTorch promotes integer inputs of float functions to the default float dtype."""
    if not isinstance(t, Tensor):
        t = Tensor._wrap(_asarray(t))
    if t._data.dtype.kind in "biu":
        from ..dtypes import get_default_dtype

        return t.type(get_default_dtype())
    if t._data.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point tensor, got {t.dtype}")
    return t


# ---------------------------------------------------------------------- unary: f and f'
def _unary(name, fn, deriv, doc):
    cls = type(name.capitalize(), (_Unary,), {"fn": staticmethod(fn),
                                              "deriv": staticmethod(deriv)})

    def op(input):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return cls.apply(_floats(name, input))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    op.Function = cls
    return op


def _sinc(xp, x):
    px = math.pi * xp.where(x == 0, 1, x)
    return xp.where(x == 0, 1, xp.sin(px) / px).astype(x.dtype, copy=False)


def _sinc_deriv(xp, x, y):
    safe = xp.where(x == 0, 1, x)
    return xp.where(x == 0, 0, (xp.cos(math.pi * safe) - y) / safe).astype(x.dtype, copy=False)


log2 = _unary("log2", lambda xp, x: xp.log2(x), lambda xp, x, y: 1 / (x * _LN2),
              "Base-2 logarithm.")
log10 = _unary("log10", lambda xp, x: xp.log10(x), lambda xp, x, y: 1 / (x * _LN10),
               "Base-10 logarithm.")
exp2 = _unary("exp2", lambda xp, x: xp.exp2(x), lambda xp, x, y: y * _LN2, "``2 ** x``.")
expm1 = _unary("expm1", lambda xp, x: xp.expm1(x), lambda xp, x, y: y + 1,
               "``exp(x) - 1``, accurate for small ``x``.")
tan = _unary("tan", lambda xp, x: xp.tan(x), lambda xp, x, y: 1 + y * y, "Tangent.")
asin = _unary("asin", lambda xp, x: xp.arcsin(x), lambda xp, x, y: 1 / xp.sqrt(1 - x * x),
              "Inverse sine (``arcsin``), for ``x`` in [-1, 1].")
acos = _unary("acos", lambda xp, x: xp.arccos(x), lambda xp, x, y: -1 / xp.sqrt(1 - x * x),
              "Inverse cosine (``arccos``), for ``x`` in [-1, 1].")
atan = _unary("atan", lambda xp, x: xp.arctan(x), lambda xp, x, y: 1 / (1 + x * x),
              "Inverse tangent (``arctan``).")
sinh = _unary("sinh", lambda xp, x: xp.sinh(x), lambda xp, x, y: xp.cosh(x),
              "Hyperbolic sine.")
cosh = _unary("cosh", lambda xp, x: xp.cosh(x), lambda xp, x, y: xp.sinh(x),
              "Hyperbolic cosine.")
asinh = _unary("asinh", lambda xp, x: xp.arcsinh(x), lambda xp, x, y: 1 / xp.sqrt(x * x + 1),
               "Inverse hyperbolic sine.")
acosh = _unary("acosh", lambda xp, x: xp.arccosh(x), lambda xp, x, y: 1 / xp.sqrt(x * x - 1),
               "Inverse hyperbolic cosine, for ``x >= 1``.")
atanh = _unary("atanh", lambda xp, x: xp.arctanh(x), lambda xp, x, y: 1 / (1 - x * x),
               "Inverse hyperbolic tangent, for ``x`` in (-1, 1).")
erf = _unary("erf", _special.erf,
             lambda xp, x, y: _TWO_OVER_SQRT_PI * xp.exp(-x * x), "The error function.")
erfc = _unary("erfc", _special.erfc,
              lambda xp, x, y: -_TWO_OVER_SQRT_PI * xp.exp(-x * x),
              "``1 - erf(x)``, accurate where ``erf(x)`` is near 1.")
erfinv = _unary("erfinv", _special.erfinv,
                lambda xp, x, y: 0.5 * math.sqrt(math.pi) * xp.exp(y * y),
                "Inverse of ``erf``, for ``x`` in [-1, 1].")
lgamma = _unary("lgamma", _special.lgamma, lambda xp, x, y: _special.digamma(xp, x),
                "``log(|Gamma(x)|)``.")
digamma = _unary("digamma", _special.digamma, lambda xp, x, y: _special.trigamma(xp, x),
                 "The derivative of ``lgamma``.")
sinc = _unary("sinc", _sinc, _sinc_deriv, "Normalised sinc: ``sin(pi x) / (pi x)``, 1 at 0.")
reciprocal = _unary("reciprocal", lambda xp, x: 1 / x, lambda xp, x, y: -y * y, "``1 / x``.")
frac = _unary("frac", lambda xp, x: x - xp.trunc(x), lambda xp, x, y: xp.ones_like(x),
              "The fractional part ``x - trunc(x)`` (with the sign of ``x``).")

arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


def deg2rad(input):
    """Degrees to radians."""
    return _floats("deg2rad", input) * (math.pi / 180)


def rad2deg(input):
    """Radians to degrees."""
    return _floats("rad2deg", input) * (180 / math.pi)


def sgn(input):
    """The sign of each element (``sign`` for real tensors)."""
    from .compare import sign

    return sign(input)


def positive(input):
    return input


class Logit(Function):
    """``log(x / (1 - x))``; with ``eps``, x is first clamped to [eps, 1 - eps] and the
    gradient is zero outside that range (as PyTorch)."""

    @staticmethod
    def forward(ctx, a, eps):
        xp = xp_of(a)
        z = a if eps is None else xp.clip(a, eps, 1 - eps)
        ctx.save_for_backward(a, z)
        ctx.eps = eps
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.log(z / (1 - z))

    @staticmethod
    def _deriv(a, z, eps):
        xp = xp_of(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1 / (z * (1 - z))
        if eps is None:
            return d
        return xp.where((a < eps) | (a > 1 - eps), 0, d).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        a, z = ctx.saved_tensors
        return g * Logit._deriv(a, z, ctx.eps)

    @staticmethod
    def jvp(ctx, da):
        a, z = ctx.saved
        return da * Logit._deriv(a, z, ctx.eps)


def logit(input, eps=None):
    """Inverse of the sigmoid: ``log(p / (1 - p))``; ``eps`` clamps ``p`` to [eps, 1-eps]."""
    return Logit.apply(_floats("logit", input), eps=eps)


class NanToNum(Function):
    @staticmethod
    def forward(ctx, a, nan, posinf, neginf):
        xp = xp_of(a)
        ctx.keep = xp.isfinite(a)
        return xp.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.keep

    jvp = backward


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """Replace NaN by ``nan`` and infinities by ``posinf``/``neginf`` (the dtype's largest
    and lowest finite values by default); replaced elements get zero gradient."""
    if input._data.dtype.kind != "f":
        return input.clone()
    return NanToNum.apply(input, nan=nan, posinf=posinf, neginf=neginf)


# ---------------------------------------------------------------------- binary
class _Binary(Function):
    """Two-tensor op with partial derivatives ``partials(xp, a, b, out) -> (da, db)``."""

    @classmethod
    def forward(cls, ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = cls.fn(xp_of(a), a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @classmethod
    def _partials(cls, a, b, out):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return cls.partials(xp_of(a), a, b, out)

    @classmethod
    def backward(cls, ctx, g):
        a, b, out = ctx.saved_tensors
        da, db = cls._partials(a, b, out)
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g * da, a.shape) if na else None,
                unbroadcast(g * db, b.shape) if nb else None)

    @classmethod
    def jvp(cls, ctx, ta, tb):
        a, b, out = ctx.saved
        da, db = cls._partials(a, b, out)
        t = add_tangents(None if ta is None else ta * da, None if tb is None else tb * db)
        return bcast(t, out.shape, xp_of(out))


def _binary(name, fn, partials, doc):
    cls = type(name.capitalize(), (_Binary,), {"fn": staticmethod(fn),
                                               "partials": staticmethod(partials)})

    def op(input, other):
        a, b = _pair(input, other)
        return _apply_binary(name, cls, _floats(name, a), _floats(name, b))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


def _logaddexp_partials(base):
    def partials(xp, a, b, out):
        # d/da log(e^a + e^b) = e^(a - out): the softmax weight of a (stable for large a, b)
        wa = xp.exp((a - out) * base)
        wb = xp.exp((b - out) * base)
        return wa, wb
    return partials


def _xlogy(xp, x, y):
    return xp.where(x == 0, xp.where(xp.isnan(y), y, 0), x * xp.log(y)).astype(
        np.result_type(x, y), copy=False)


def _xlogy_partials(xp, x, y, out):
    # as PyTorch: no gradient to x where x == 0 and y <= 0 (log y undefined there)
    dx = xp.where((x == 0) & (y <= 0), 0, xp.log(y))
    return dx.astype(out.dtype, copy=False), (x / y).astype(out.dtype, copy=False)


def _fmax_partials(xp, a, b, out):
    # the input that was chosen; a tie goes to ``a``, as in PyTorch
    wa = (a >= b) | xp.isnan(b)
    return wa.astype(out.dtype), (~wa).astype(out.dtype)


atan2 = _binary("atan2", lambda xp, y, x: xp.arctan2(y, x),
                lambda xp, y, x, out: (x / (x * x + y * y), -y / (x * x + y * y)),
                "The angle of the point ``(other, input)``: ``atan2(y, x)`` in (-pi, pi].")
arctan2 = atan2
hypot = _binary("hypot", lambda xp, a, b: xp.hypot(a, b),
                lambda xp, a, b, out: (a / out, b / out), "``sqrt(a**2 + b**2)`` without overflow.")
logaddexp = _binary("logaddexp", lambda xp, a, b: xp.logaddexp(a, b), _logaddexp_partials(1.0),
                    "``log(exp(a) + exp(b))``, computed stably.")
logaddexp2 = _binary("logaddexp2", lambda xp, a, b: xp.logaddexp2(a, b),
                     _logaddexp_partials(_LN2), "``log2(2**a + 2**b)``, computed stably.")
xlogy = _binary("xlogy", _xlogy, _xlogy_partials,
                "``x * log(y)``, and 0 where ``x == 0`` (unless ``y`` is NaN).")
fmax = _binary("fmax", lambda xp, a, b: xp.fmax(a, b), _fmax_partials,
               "Elementwise maximum that ignores NaN (NaN only where both are NaN).")
copysign = _binary("copysign", lambda xp, a, b: xp.copysign(a, b),
                   lambda xp, a, b, out: (xp.where(a == 0, 0, out / xp.where(a == 0, 1, a)),
                                          xp.zeros_like(out)),
                   "``|a|`` with the sign of ``b``.")


def fmin(input, other):
    """Elementwise minimum that ignores NaN (NaN only where both are NaN)."""
    a, b = _pair(input, other)
    return -fmax(-a, -b)


def float_power(input, exponent):
    """``input ** exponent`` computed in float64 (as PyTorch)."""
    from .elementwise import pow

    a = input.double() if isinstance(input, Tensor) else input
    e = exponent.double() if isinstance(exponent, Tensor) else exponent
    return pow(a, e)


# ---------------------------------------------------------------------- composites
def clamp_min(input, min):
    """``max(input, min)``, as ``clamp(input, min=min)``."""
    return clamp(input, min=min)


def clamp_max(input, max):
    """``min(input, max)``, as ``clamp(input, max=max)``."""
    return clamp(input, max=max)


def lerp(input, end, weight):
    """``input + weight * (end - input)``."""
    return input + weight * (as_tensor_like(end, input) - input)


def addcmul(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 * tensor2``."""
    return input + value * (tensor1 * tensor2)


def addcdiv(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 / tensor2``."""
    return input + value * (tensor1 / tensor2)


def heaviside(input, values):
    """0 where ``input < 0``, 1 where ``input > 0``, ``values`` where it is 0 (not
    differentiable)."""
    v = values._data if isinstance(values, Tensor) else values
    return Tensor._wrap(xp_of(input._data).heaviside(input._data, v))


def signbit(input):
    """True where the sign bit is set (also for -0.0)."""
    return Tensor._wrap(xp_of(input._data).signbit(input._data))


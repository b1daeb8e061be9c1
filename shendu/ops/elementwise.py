"""Elementwise primitives: arithmetic with broadcasting, unary math and activations
(comparisons, logical ops and rounding, which have no useful gradient, are in
``compare.py``).

Each class holds one op's forward, backward and forward-mode (jvp) rule together.
Backward rules never modify the incoming gradient in place (it may be shared).
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..backend import cpu
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import (
    Scalar,
    add_tangents,
    as_tensor_like,
    bcast,
    sum_to,
    unbroadcast,
    xp_of,
)
from .compare import _nograd_binary

__all__ = ["abs", "add", "clamp", "clip", "cos", "div", "elu", "exp", "gelu", "leaky_relu", "log",
           "log1p", "maximum", "minimum", "mul", "neg", "pow", "relu", "rsqrt", "sigmoid", "sin",
           "softplus", "sqrt", "square", "sub", "tanh", "where"]


# ---------------------------------------------------------------------- binary, tensor-tensor
class Add(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return cpu.add(a, b)

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        # (the shape test inline: this is the hottest backward of all)
        return (g if g.shape == sa else unbroadcast(g, sa)) if na else None, \
               (g if g.shape == sb else unbroadcast(g, sb)) if nb else None

    @staticmethod
    def jvp(ctx, da, db):
        out = np.broadcast_shapes(*ctx.shapes)
        return bcast(add_tangents(da, db), out, xp_of(da if da is not None else db))


class Sub(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None), (unbroadcast(-g, sb) if nb else None)

    @staticmethod
    def jvp(ctx, da, db):
        out = np.broadcast_shapes(*ctx.shapes)
        t = add_tangents(da, None if db is None else -db)
        return bcast(t, out, xp_of(t))


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g * b, a.shape) if na else None), \
               (unbroadcast(g * a, b.shape) if nb else None)

    @staticmethod
    def backward_graph(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (sum_to(g * ctx.input_tensor(1, b), a.shape) if na else None), \
               (sum_to(g * ctx.input_tensor(0, a), b.shape) if nb else None)

    @staticmethod
    def jvp(ctx, da, db):
        a, b = ctx.saved
        t = add_tangents(None if da is None else da * b, None if db is None else a * db)
        return bcast(t, np.broadcast_shapes(a.shape, b.shape), xp_of(t))


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(b, out)
        ctx.a_shape = a.shape
        return out

    @staticmethod
    def backward(ctx, g):
        b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(g / b, ctx.a_shape) if na else None
        gb = unbroadcast(-g * out / b, b.shape) if nb else None
        return ga, gb

    @staticmethod
    def backward_graph(ctx, g):
        b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        bt = ctx.input_tensor(1, b)
        ga = sum_to(g / bt, ctx.a_shape) if na else None
        gb = sum_to(-g * ctx.output_tensor(out) / bt, b.shape) if nb else None
        return ga, gb

    @staticmethod
    def jvp(ctx, da, db):
        b, out = ctx.saved
        t = add_tangents(None if da is None else da / b, None if db is None else -db * out / b)
        return bcast(t, out.shape, xp_of(t))


class Pow(Function):
    """``a ** b`` with both tensors."""

    @staticmethod
    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def _partials(a, b, out):
        xp = xp_of(a)
        da = b * a ** (b - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            db = xp.where(a > 0, out * xp.log(xp.where(a > 0, a, 1)), 0).astype(out.dtype)
        return da, db

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        da, db = Pow._partials(a, b, out)
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g * da, a.shape) if na else None), \
               (unbroadcast(g * db, b.shape) if nb else None)

    @staticmethod
    def backward_graph(ctx, g):
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        at, bt = ctx.input_tensor(0, a), ctx.input_tensor(1, b)
        ga = sum_to(g * bt * at ** (bt - 1), a.shape) if na else None
        gb = None
        if nb:
            pos = a > 0  # d(a^b)/db = a^b log a, taken as 0 where a <= 0 (as backward)
            safe = where(Tensor._wrap(pos), at, 1.0)
            gb = sum_to(where(Tensor._wrap(pos), g * ctx.output_tensor(out) * safe.log(), 0.0),
                        b.shape)
        return ga, gb

    @staticmethod
    def jvp(ctx, ta, tb):
        a, b, out = ctx.saved
        da, db = Pow._partials(a, b, out)
        t = add_tangents(None if ta is None else ta * da, None if tb is None else tb * db)
        return bcast(t, out.shape, xp_of(out))


class Maximum(Function):
    """Elementwise max; where the inputs tie, each gets half the gradient (as in PyTorch)."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a).maximum(a, b)

    @staticmethod
    def _weights(a, b, g_dtype):
        wa = (a > b).astype(g_dtype) + 0.5 * (a == b)
        return wa.astype(g_dtype), (1 - wa).astype(g_dtype)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        wa, wb = Maximum._weights(a, b, g.dtype)
        return unbroadcast(g * wa, a.shape), unbroadcast(g * wb, b.shape)

    @staticmethod
    def jvp(ctx, da, db):
        a, b = ctx.saved
        wa, wb = Maximum._weights(a, b, a.dtype)
        t = add_tangents(None if da is None else da * wa, None if db is None else db * wb)
        return bcast(t, np.broadcast_shapes(a.shape, b.shape), xp_of(a))


class Where(Function):
    """``where(cond, a, b)``; ``cond`` is a parameter, not differentiated."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a, b, cond):
        ctx.cond, ctx.shapes = cond, (a.shape, b.shape)
        return xp_of(a).where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        zero = xp.zeros((), g.dtype)
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(xp.where(ctx.cond, g, zero), ctx.shapes[0]) if na else None
        gb = unbroadcast(xp.where(ctx.cond, zero, g), ctx.shapes[1]) if nb else None
        return ga, gb

    @staticmethod
    def jvp(ctx, da, db):
        ref = da if da is not None else db
        xp = xp_of(ref)
        shape = np.broadcast_shapes(ctx.cond.shape, *ctx.shapes)
        da = xp.zeros((), ref.dtype) if da is None else da
        db = xp.zeros((), ref.dtype) if db is None else db
        return bcast(xp.where(ctx.cond, da, db), shape, xp)


# ---------------------------------------------------------------------- tensor-scalar
class AddScalar(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, c):
        return a + c

    @staticmethod
    def backward(ctx, g):
        return g

    @staticmethod
    def jvp(ctx, da):
        return da


class MulScalar(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, c):
        ctx.c = c
        return a * c

    @staticmethod
    def backward(ctx, g):
        return g * ctx.c

    @staticmethod
    def jvp(ctx, da):
        return da * ctx.c


class RSubScalar(Function):
    """``c - a``."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a, c):
        return c - a

    @staticmethod
    def backward(ctx, g):
        return -g

    @staticmethod
    def jvp(ctx, da):
        return -da


class RDivScalar(Function):
    """``c / a``."""

    @staticmethod
    def forward(ctx, a, c):
        out = c / a
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved_tensors
        return -g * out / a

    @staticmethod
    def backward_graph(ctx, g):
        a, out = ctx.saved_tensors
        return -g * ctx.output_tensor(out) / ctx.input_tensor(0, a)

    @staticmethod
    def jvp(ctx, da):
        a, out = ctx.saved
        return -da * out / a


class PowScalar(Function):
    """``a ** c`` for a number ``c``."""

    @staticmethod
    def forward(ctx, a, c):
        ctx.save_for_backward(a)
        ctx.c = c
        if c == 2:
            return a * a
        return a ** c

    @staticmethod
    def _deriv(a, c):
        if c == 2:
            return 2 * a
        if c == 1:
            return a * 0 + 1
        return c * a ** (c - 1)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g * PowScalar._deriv(a, ctx.c)

    @staticmethod
    def backward_graph(ctx, g):
        (a,) = ctx.saved_tensors
        c = ctx.c
        if c == 1:
            return g
        at = ctx.input_tensor(0, a)
        return g * (2 * at if c == 2 else c * at ** (c - 1))

    @staticmethod
    def jvp(ctx, da):
        return da * PowScalar._deriv(ctx.saved[0], ctx.c)


class RPowScalar(Function):
    """``c ** a`` for a number ``c``."""

    @staticmethod
    def forward(ctx, a, c):
        out = xp_of(a).power(a.dtype.type(c), a)
        ctx.save_for_backward(out)
        ctx.logc = math.log(c) if c > 0 else float("nan")
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out * ctx.logc

    @staticmethod
    def backward_graph(ctx, g):
        (out,) = ctx.saved_tensors
        return g * ctx.output_tensor(out) * ctx.logc

    @staticmethod
    def jvp(ctx, da):
        return da * ctx.saved[0] * ctx.logc


# ---------------------------------------------------------------------- unary
class Neg(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g

    @staticmethod
    def jvp(ctx, da):
        return -da


class _Unary(Function):
    """Unary op whose derivative is ``deriv(x, out)``; subclasses define ``fn`` and ``deriv``."""

    saves = "both"

    @classmethod
    def forward(cls, ctx, a):
        out = cls.fn(xp_of(a), a)
        ctx.save_for_backward(a, out)
        return out

    @classmethod
    def backward(cls, ctx, g):
        a, out = ctx.saved_tensors
        return g * cls.deriv(xp_of(a), a, out)

    @classmethod
    def jvp(cls, ctx, da):
        a, out = ctx.saved
        return da * cls.deriv(xp_of(a), a, out)

    deriv_graph = None  # deriv in Tensor ops (x, out) -> Tensor, for create_graph=True

    @classmethod
    def backward_graph(cls, ctx, g):
        if cls.deriv_graph is None:
            from ..autograd.graph_backward import no_rule_error

            raise no_rule_error(ctx)
        a, out = ctx.saved_tensors
        return g * cls.deriv_graph(ctx.input_tensor(0, a), ctx.output_tensor(out))


class Exp(_Unary):
    fn = staticmethod(lambda xp, x: xp.exp(x))
    deriv = staticmethod(lambda xp, x, y: y)
    deriv_graph = staticmethod(lambda x, y: y)


class Log(_Unary):
    fn = staticmethod(lambda xp, x: xp.log(x))
    deriv = staticmethod(lambda xp, x, y: 1 / x)
    deriv_graph = staticmethod(lambda x, y: 1 / x)


class Log1p(_Unary):
    fn = staticmethod(lambda xp, x: xp.log1p(x))
    deriv = staticmethod(lambda xp, x, y: 1 / (1 + x))
    deriv_graph = staticmethod(lambda x, y: 1 / (1 + x))


class Sqrt(_Unary):
    fn = staticmethod(lambda xp, x: xp.sqrt(x))
    deriv = staticmethod(lambda xp, x, y: 0.5 / y)
    deriv_graph = staticmethod(lambda x, y: 0.5 / y)


class Rsqrt(_Unary):
    fn = staticmethod(lambda xp, x: 1 / xp.sqrt(x))
    deriv = staticmethod(lambda xp, x, y: -0.5 * y * y * y)
    deriv_graph = staticmethod(lambda x, y: -0.5 * y * y * y)


class Sin(_Unary):
    fn = staticmethod(lambda xp, x: xp.sin(x))
    deriv = staticmethod(lambda xp, x, y: xp.cos(x))
    deriv_graph = staticmethod(lambda x, y: x.cos())


class Cos(_Unary):
    fn = staticmethod(lambda xp, x: xp.cos(x))
    deriv = staticmethod(lambda xp, x, y: -xp.sin(x))
    deriv_graph = staticmethod(lambda x, y: -x.sin())


class Tanh(_Unary):
    fn = staticmethod(lambda xp, x: xp.tanh(x))
    deriv = staticmethod(lambda xp, x, y: 1 - y * y)
    deriv_graph = staticmethod(lambda x, y: 1 - y * y)


def _sigmoid(xp, x):
    # exp(-|x|) never overflows, and each branch keeps relative precision
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(_Unary):
    fn = staticmethod(_sigmoid)
    deriv = staticmethod(lambda xp, x, y: y * (1 - y))
    deriv_graph = staticmethod(lambda x, y: y * (1 - y))


class Abs(_Unary):
    linear_backward = True  # sign(x) is a constant factor
    fn = staticmethod(lambda xp, x: xp.abs(x))
    deriv = staticmethod(lambda xp, x, y: xp.sign(x))


class Relu(Function):
    """max(a, 0); backward passes the gradient where the output is positive
    (``backend.cpu.relu``: the compiled kernel for dense float arrays, else NumPy)."""

    @staticmethod
    def forward(ctx, a):
        out = cpu.relu(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return relu_grad(g, out)

    linear_backward = True  # (for create_graph: the rule above is linear in g)

    @staticmethod
    def jvp(ctx, da):
        return da * (ctx.saved[0] > 0)


relu_grad = cpu.relu_grad  # ``g`` where ``y > 0``, else 0 (a NaN gradient where off: 0)


class LeakyRelu(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, negative_slope):
        ctx.save_for_backward(a)
        ctx.slope = negative_slope
        return xp_of(a).where(a > 0, a, a * negative_slope)

    @staticmethod
    def _deriv(a, slope):
        return xp_of(a).where(a > 0, 1, slope).astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        return g * LeakyRelu._deriv(ctx.saved_tensors[0], ctx.slope)

    @staticmethod
    def jvp(ctx, da):
        return da * LeakyRelu._deriv(ctx.saved[0], ctx.slope)


class Elu(Function):
    @staticmethod
    def forward(ctx, a, alpha):
        xp = xp_of(a)
        out = xp.where(a > 0, a, alpha * xp.expm1(xp.minimum(a, 0)))
        ctx.save_for_backward(a, out)
        ctx.alpha = alpha
        return out

    @staticmethod
    def _deriv(a, out, alpha):
        return xp_of(a).where(a > 0, 1, out + alpha).astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved_tensors
        return g * Elu._deriv(a, out, ctx.alpha)

    @staticmethod
    def backward_graph(ctx, g):
        a, out = ctx.saved_tensors
        return where(Tensor._wrap(a > 0), g, g * (ctx.output_tensor(out) + ctx.alpha))

    @staticmethod
    def jvp(ctx, da):
        a, out = ctx.saved
        return da * Elu._deriv(a, out, ctx.alpha)


def _erf(xp, x):
    if xp is np:
        try:
            from scipy.special import erf

            return erf(x)
        except ImportError:  # pragma: no cover - scipy is usually present
            pass
    else:
        from cupyx.scipy.special import erf

        return erf(x)
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): enough for float32 without SciPy.
    s, z = xp.sign(x), xp.abs(x)
    t = 1 / (1 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                         + t * 1.061405429))))
    return s * (1 - poly * xp.exp(-z * z))


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class _Erf(Function):
    """erf, for GELU's recorded backward: d erf(x)/dx = 2/sqrt(pi) exp(-x^2)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _erf(xp_of(a), a).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g * (2 / math.sqrt(math.pi)) * xp_of(a).exp(-a * a)

    @staticmethod
    def backward_graph(ctx, g):
        (a,) = ctx.saved_tensors
        x = ctx.input_tensor(0, a)
        return g * (2 / math.sqrt(math.pi)) * (-(x * x)).exp()

    @staticmethod
    def jvp(ctx, da):
        (a,) = ctx.saved
        return da * (2 / math.sqrt(math.pi)) * xp_of(a).exp(-a * a)


class Gelu(Function):
    """GELU, exact (``x * Phi(x)``) or with the tanh approximation."""

    @staticmethod
    def forward(ctx, a, approximate):
        xp = xp_of(a)
        ctx.save_for_backward(a)
        ctx.approximate = approximate
        if approximate == "tanh":
            return 0.5 * a * (1 + xp.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a ** 3)))
        return cpu.gelu(a, Gelu._exact)

    @staticmethod
    def _exact(a):
        """The NumPy reference of exact GELU (the backend's kernel is checked against it)."""
        return (0.5 * a * (1 + _erf(xp_of(a), a / math.sqrt(2)))).astype(a.dtype, copy=False)

    @staticmethod
    def _deriv(a, approximate):
        xp = xp_of(a)
        if approximate == "tanh":
            u = _SQRT_2_OVER_PI * (a + 0.044715 * a ** 3)
            th = xp.tanh(u)
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * a * a)
            return 0.5 * (1 + th) + 0.5 * a * (1 - th * th) * du
        cdf = 0.5 * (1 + _erf(xp, a / math.sqrt(2)))
        pdf = xp.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return (cdf + a * pdf).astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a = ctx.saved_tensors[0]
        if ctx.approximate == "tanh":
            return g * Gelu._deriv(a, "tanh")
        return cpu.gelu_grad(g, a, lambda x: Gelu._deriv(x, "none"))

    @staticmethod
    def forward_graph(ctx):
        """For create_graph=True: GELU in Tensor ops (erf through ``_Erf``)."""
        (a,) = ctx.saved_tensors

        def fn(x):
            if ctx.approximate == "tanh":
                return 0.5 * x * (1 + (_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)).tanh())
            return 0.5 * x * (1 + _Erf.apply(x * (1 / math.sqrt(2))))
        return [ctx.input_tensor(0, a)], fn

    @staticmethod
    def jvp(ctx, da):
        return da * Gelu._deriv(ctx.saved[0], ctx.approximate)


class Softplus(Function):
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold`` (as in PyTorch)."""

    @staticmethod
    def forward(ctx, a, beta, threshold):
        xp = xp_of(a)
        z = a * beta
        soft = (xp.log1p(xp.exp(-xp.abs(z))) + xp.maximum(z, 0)) / beta
        ctx.save_for_backward(a)
        ctx.beta, ctx.threshold = beta, threshold
        return xp.where(z > threshold, a, soft).astype(a.dtype)

    @staticmethod
    def _deriv(a, beta, threshold):
        xp = xp_of(a)
        z = a * beta
        return xp.where(z > threshold, 1, _sigmoid(xp, z)).astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        return g * Softplus._deriv(ctx.saved_tensors[0], ctx.beta, ctx.threshold)

    @staticmethod
    def backward_graph(ctx, g):
        (a,) = ctx.saved_tensors
        linear = Tensor._wrap(a * ctx.beta > ctx.threshold)
        return where(linear, g, g * sigmoid(ctx.input_tensor(0, a) * ctx.beta))

    @staticmethod
    def jvp(ctx, da):
        return da * Softplus._deriv(ctx.saved[0], ctx.beta, ctx.threshold)


class Clamp(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, lo, hi):
        ctx.save_for_backward(a)
        ctx.lo, ctx.hi = lo, hi
        return xp_of(a).clip(a, lo, hi)

    @staticmethod
    def _mask(a, lo, hi):
        m = True
        if lo is not None:
            m = a >= lo
        if hi is not None:
            m = m & (a <= hi)
        return m

    @staticmethod
    def backward(ctx, g):
        return g * Clamp._mask(ctx.saved_tensors[0], ctx.lo, ctx.hi)

    @staticmethod
    def jvp(ctx, da):
        return da * Clamp._mask(ctx.saved[0], ctx.lo, ctx.hi)


# ---------------------------------------------------------------------- public functions
def _pair(a, b):
    """Two operands as tensors, numbers taking the dtype of the tensor beside them."""
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b if isinstance(b, Tensor) else None)
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, a)
    return a, b


def _promote(a, b):
    """PyTorch's promotion between a float tensor and an integer or bool one: the integers
    take the float tensor's dtype (NumPy would turn float32 + int64 into float64)."""
    da, db = a._data.dtype, b._data.dtype
    if da is db or da == db:
        return a, b
    if da.kind == "f" and db.kind in "biu":
        return a, b.type(da)
    if db.kind == "f" and da.kind in "biu":
        return a.type(db), b
    return a, b


def _apply_binary(op, cls, a, b):
    """Run a tensor-tensor op, turning NumPy's broadcast and device errors into clear ones.

    Checking shapes up front would cost more than the op itself on small tensors, so the
    check only runs once NumPy has refused.
    """
    if a._data.dtype is not b._data.dtype:
        a, b = _promote(a, b)
    try:
        return cls.apply(a, b)
    except (ValueError, TypeError):
        if a._data.__class__ is not b._data.__class__:
            raise RuntimeError(f"{op}: expected both tensors on the same device, got "
                               f"{a.device} and {b.device}") from None
        try:
            np.broadcast_shapes(a._data.shape, b._data.shape)
        except ValueError:
            raise ShapeError(f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be "
                             "broadcast together (trailing dimensions must be equal or 1)"
                             ) from None
        raise


def _is_num(x):
    return isinstance(x, Scalar) and not isinstance(x, (bool, np.bool_))


def _num(x):
    """A Python number (NumPy scalars are not 'weak' and would upcast float32 to float64)."""
    return x.item() if isinstance(x, np.generic) else x


def _float_tensor_and_number(t, x):
    return isinstance(t, Tensor) and t._data.dtype.kind == "f" and _is_num(x)


def add(input, other, alpha=1):
    """``input + alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    if input.__class__ is Tensor and other.__class__ is Tensor and \
            input._data.dtype is other._data.dtype:
        try:  # _apply_binary inlined: the cost of a tiny add is all Python overhead
            return Add.apply(input, other)
        except (ValueError, TypeError):
            return _apply_binary("add", Add, input, other)
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        return _apply_binary("add", Add, input, other)
    if _float_tensor_and_number(input, other):
        return AddScalar.apply(input, c=_num(other))
    if _float_tensor_and_number(other, input):
        return AddScalar.apply(other, c=_num(input))
    return _apply_binary("add", Add, *_pair(input, other))


def sub(input, other, alpha=1):
    if alpha != 1:
        other = mul(other, alpha)
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        return _apply_binary("sub", Sub, input, other)
    if _float_tensor_and_number(input, other):
        return AddScalar.apply(input, c=-_num(other))
    if _float_tensor_and_number(other, input):
        return RSubScalar.apply(other, c=_num(input))
    return _apply_binary("sub", Sub, *_pair(input, other))


def mul(input, other):
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        return _apply_binary("mul", Mul, input, other)
    if _float_tensor_and_number(input, other):
        return MulScalar.apply(input, c=_num(other))
    if _float_tensor_and_number(other, input):
        return MulScalar.apply(other, c=_num(input))
    return _apply_binary("mul", Mul, *_pair(input, other))


def div(input, other, rounding_mode=None):
    if rounding_mode is not None:
        return _nograd_binary(input, other, "floor_divide" if rounding_mode == "floor"
                              else "trunc_divide")
    if _float_tensor_and_number(input, other) and other != 0:
        return MulScalar.apply(input, c=1 / _num(other))
    if _float_tensor_and_number(other, input):
        return RDivScalar.apply(other, c=_num(input))
    a, b = _pair(input, other)
    if a._data.dtype.kind in "iub" and b._data.dtype.kind in "iub":
        from ..dtypes import get_default_dtype

        a, b = a.type(get_default_dtype()), b.type(get_default_dtype())
    return _apply_binary("div", Div, a, b)


def pow(input, exponent):
    if isinstance(input, Tensor) and _is_num(exponent):
        return PowScalar.apply(input, c=_num(exponent))
    if _is_num(input) and isinstance(exponent, Tensor):
        return RPowScalar.apply(exponent, c=_num(input))
    return _apply_binary("pow", Pow, *_pair(input, exponent))


def neg(input):
    return Neg.apply(input)


def exp(input):
    return Exp.apply(input)


def log(input):
    return Log.apply(input)


def log1p(input):
    return Log1p.apply(input)


def sqrt(input):
    return Sqrt.apply(input)


def rsqrt(input):
    return Rsqrt.apply(input)


def sin(input):
    return Sin.apply(input)


def cos(input):
    return Cos.apply(input)


def tanh(input):
    return Tanh.apply(input)


def sigmoid(input):
    return Sigmoid.apply(input)


def abs(input):
    return Abs.apply(input)


def relu(input):
    return Relu.apply(input)


def leaky_relu(input, negative_slope=0.01):
    return LeakyRelu.apply(input, negative_slope=negative_slope)


def elu(input, alpha=1.0):
    return Elu.apply(input, alpha=alpha)


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(input, approximate=approximate)


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta=beta, threshold=threshold)


def square(input):
    return PowScalar.apply(input, c=2)


def clamp(input, min=None, max=None):
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(input, lo=min, hi=max)


clip = clamp


def maximum(input, other):
    return _apply_binary("maximum", Maximum, *_pair(input, other))


def minimum(input, other):
    a, b = _pair(input, other)
    return -_apply_binary("minimum", Maximum, -a, -b)


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other`` (both may be numbers)."""
    if input is None and other is None:
        from .movement import nonzero

        return nonzero(condition, as_tuple=True)
    ref = input if isinstance(input, Tensor) else other
    a = as_tensor_like(input, ref if isinstance(ref, Tensor) else None)
    b = as_tensor_like(other, a)
    cond = condition._data if isinstance(condition, Tensor) else \
        xp_of(a._data).asarray(condition)
    if a._data.dtype != b._data.dtype:
        a, b = _promote(a, b)
        if a._data.dtype != b._data.dtype:
            dt = np.result_type(a._data.dtype, b._data.dtype)
            a, b = a.type(dt), b.type(dt)
    if cond.dtype != np.bool_:
        cond = cond.astype(bool)
    try:
        return Where.apply(a, b, cond=cond)
    except ValueError:  # shapes are checked only once NumPy has refused (cheaper)
        try:
            np.broadcast_shapes(cond.shape, a._data.shape, b._data.shape)
        except ValueError:
            raise ShapeError(f"where: condition of shape {tuple(cond.shape)}, input of shape "
                             f"{a.shape} and other of shape {b.shape} cannot be broadcast "
                             "together (trailing dimensions must be equal or 1)") from None
        raise

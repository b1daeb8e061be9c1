"""Binds the op functions to ``Tensor`` as methods and operators (``x.sum()``, ``x + y``)."""
from __future__ import annotations

import numpy as np

from . import ops
from .autograd.grad_mode import no_grad
from .errors import ArgumentError, DTypeError
from .tensor import Tensor

_METHODS = """
abs add allclose argmax argmin argsort amax amin all any broadcast_to ceil chunk clamp clip
clone contiguous cos count_nonzero cumsum div dot elu eq equal exp expand expand_as flatten flip
fliplr flipud floor gather ge gelu gt index_select isclose isfinite isinf isnan le leaky_relu log
log1p logical_and logical_not logical_or logsumexp lt masked_fill masked_select matmul max
maximum mean min minimum mm moveaxis movedim mul narrow ne neg nonzero norm permute pow prod
relu repeat repeat_interleave reshape reshape_as roll round rsqrt scatter scatter_add select
sigmoid sign sin softplus sort split sqrt square squeeze std sub sum swapaxes swapdims t tanh
tile topk transpose tril triu trunc unbind unflatten unsqueeze var view view_as
""".split()

# the math family, statistics, indexed writes, counting and search (issue 10)
_METHODS += """
acos acosh addbmm addcdiv addcmul addmm addmv aminmax arccos arccosh arcsin arcsinh arctan arctan2
arctanh argwhere asin asinh atan atan2 atanh baddbmm bincount bmm clamp_max clamp_min copysign cosh
cross cummax cummin cumprod deg2rad diag diag_embed diagonal diff digamma erf erfc erfinv exp2
expm1 float_power fmax fmin frac heaviside histc hypot index_add index_copy index_fill index_put
inner isin kron lerp lgamma log10 log2 logaddexp logaddexp2 logcumsumexp logit median mode
nan_to_num nanmean nanmedian nanquantile nansum positive quantile rad2deg reciprocal rot90
scatter_reduce sgn signbit sinc sinh tan trace unique unique_consecutive xlogy
""".split()

for _name in _METHODS:
    setattr(Tensor, _name, getattr(ops, _name))

Tensor.type = ops.type_
Tensor.multiply = Tensor.mul
Tensor.subtract = Tensor.sub
Tensor.divide = Tensor.true_divide = Tensor.div
Tensor.negative = Tensor.neg
Tensor.absolute = Tensor.abs
Tensor.__getitem__ = ops.getitem
Tensor.__add__ = ops.add
Tensor.__radd__ = lambda self, other: ops.add(other, self)
Tensor.__sub__ = ops.sub
Tensor.__rsub__ = lambda self, other: ops.sub(other, self)
Tensor.__mul__ = ops.mul
Tensor.__rmul__ = lambda self, other: ops.mul(other, self)
Tensor.__truediv__ = ops.div
Tensor.__rtruediv__ = lambda self, other: ops.div(other, self)
Tensor.__floordiv__ = ops.floor_divide
Tensor.__rfloordiv__ = lambda self, other: ops.floor_divide(other, self)
Tensor.__mod__ = ops.remainder
Tensor.__pow__ = ops.pow
Tensor.__rpow__ = lambda self, other: ops.pow(other, self)
Tensor.__matmul__ = ops.matmul
Tensor.__rmatmul__ = lambda self, other: ops.matmul(other, self)
Tensor.__neg__ = ops.neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = ops.abs
Tensor.__eq__ = ops.eq
Tensor.__ne__ = ops.ne
Tensor.__lt__ = ops.lt
Tensor.__le__ = ops.le
Tensor.__gt__ = ops.gt
Tensor.__ge__ = ops.ge


# &, |, ^, ~ are bitwise, as in PyTorch: the same as logical on bool tensors, bit
# operations on integers (tensor([3]) & 5 is 1), refused for floats.
def _integral(op, *xs):
    for x in xs:
        kind = x.dtype.kind if isinstance(x, Tensor) else type(x).__name__
        if kind not in ("b", "i", "u", "bool", "int"):
            raise DTypeError(f"{op}: only bool and integer tensors, got "
                             f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")


def _bitwise(name):
    def op(self, other, _name=name):
        _integral(_name, self, other)
        return ops.compare._nograd_binary(self, other, _name)
    return op


def _invert(self):
    _integral("bitwise_not", self)
    return Tensor._wrap(~self._data)


Tensor.__and__ = Tensor.__rand__ = _bitwise("bitwise_and")
Tensor.__or__ = Tensor.__ror__ = _bitwise("bitwise_or")
Tensor.__xor__ = Tensor.__rxor__ = _bitwise("bitwise_xor")
Tensor.__invert__ = _invert
Tensor.__hash__ = lambda self: id(self)


# ---------------------------------------------------------------------- issue 10: methods
def _softmax(self, dim, dtype=None):
    from .nn.functional import softmax

    return softmax(self, dim, dtype)


def _log_softmax(self, dim, dtype=None):
    from .nn.functional import log_softmax

    return log_softmax(self, dim, dtype)


def _where(self, condition, other):
    """``self`` where ``condition`` holds, else ``other`` (``sd.where(condition, self, other)``)."""
    return ops.where(condition, self, other)


def _type_as(self, other):
    """This tensor cast to ``other``'s dtype."""
    return self.type(other.dtype)


def _new(fill):
    def method(self, *size, dtype=None, device=None, requires_grad=False):
        from . import creation

        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        return creation.full(tuple(shape), fill, dtype=dtype or self.dtype,
                             device=device or self.device, requires_grad=requires_grad)
    return method


def _new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    from . import creation

    return creation.full(tuple(size), fill_value, dtype=dtype or self.dtype,
                         device=device or self.device, requires_grad=requires_grad)


def _new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """A new tensor (a copy) from ``data``, with this tensor's dtype and device by default."""
    from . import creation

    if isinstance(data, Tensor):
        data = data.detach().clone()
    return creation.tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                           requires_grad=requires_grad)


def _format(self, spec):
    """``f"{loss:.4f}"`` formats a 0-d tensor's value; other tensors only format as ``str``
    (an empty spec), as in PyTorch."""
    if self.ndim == 0:
        return format(self.item(), spec)
    if spec:
        raise TypeError(f"unsupported format string {spec!r} for a tensor of shape "
                        f"{tuple(self.shape)}: only 0-d tensors take a format spec (use "
                        ".item() or index an element)")
    return str(self)


Tensor.softmax = _softmax
Tensor.log_softmax = _log_softmax
Tensor.where = _where
Tensor.type_as = _type_as
Tensor.new_zeros = _new(0)
Tensor.new_ones = _new(1)
Tensor.new_empty = _new(0)  # zeros: "uninitialised" made reproducible
Tensor.new_full = _new_full
Tensor.new_tensor = _new_tensor
Tensor.__format__ = _format


# in-place versions: out-of-place op, result written back (Tensor._inplace)
def _inplace_unary(name):
    fn = getattr(ops, name)

    def method(self, *args, **kwargs):
        return self._inplace(lambda a: fn(a, *args, **kwargs))
    method.__name__ = name + "_"
    method.__doc__ = f"In-place ``{name}``."
    return method


for _name in """abs acos acosh asin asinh atan atanh ceil clamp_max clamp_min cos cosh cumprod
cumsum deg2rad digamma erf erfc erfinv exp2 expm1 floor frac lgamma log log10 log1p log2 logit
nan_to_num rad2deg reciprocal round rsqrt sgn sign sin sinc sinh square tan tril triu trunc
""".split():
    setattr(Tensor, _name + "_", _inplace_unary(_name))


def _inplace_with(name):
    """In-place version of an op whose tensor arguments may carry gradients."""
    fn = getattr(ops, name)

    def method(self, *args, **kwargs):
        pos = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.is_floating_point()]

        def run(a, *tensors):
            full = list(args)
            for i, t in zip(pos, tensors):
                full[i] = t
            return fn(a, *full, **kwargs)
        return self._inplace(run, *[args[i] for i in pos])
    method.__name__ = name + "_"
    method.__doc__ = f"In-place ``{name}``."
    return method


for _name in """addbmm addcdiv addcmul addmm addmv atan2 baddbmm copysign fmax fmin hypot index_add
index_copy index_fill index_put lerp logaddexp scatter scatter_add scatter_reduce xlogy""".split():
    setattr(Tensor, _name + "_", _inplace_with(_name))


# ---------------------------------------------------------------------- random fills
def _random_(self, from_=0, to=None, *, generator=None):
    """Fill with integers drawn uniformly from [from, to - 1]; ``random_(to)`` draws from
    [0, to - 1]; ``random_()`` from [0, 2**mantissa] for floats (every integer exactly
    representable) and [0, max] for integers."""
    from .random import _rng

    if to is None and from_ != 0:
        from_, to = 0, from_
    if to is None:
        dt = self.dtype
        to = (2 ** (np.finfo(dt).nmant + 1) + 1 if dt.kind == "f"
              else 2 if dt.kind == "b" else int(np.iinfo(dt).max) + 1)
    if to <= from_:
        raise ArgumentError(f"random_: expected from < to, got from={from_} and to={to}")
    values = _rng(generator).integers(from_, to, self.shape, endpoint=False)
    with no_grad():
        return self.copy_(Tensor._wrap(values.astype(self.dtype)))


def _fill_from(sample):
    def method(self, *args, generator=None):
        from .random import _rng

        with no_grad():
            return self.copy_(Tensor._wrap(np.asarray(sample(_rng(generator), self.shape, *args),
                                                      self.dtype)))
    return method


Tensor.random_ = _random_
Tensor.exponential_ = _fill_from(lambda rng, shape, lambd=1.0: rng.exponential(1 / lambd, shape))
Tensor.geometric_ = _fill_from(lambda rng, shape, p: rng.geometric(p, shape))
Tensor.cauchy_ = _fill_from(lambda rng, shape, median=0.0, sigma=1.0:
                            median + sigma * rng.standard_cauchy(shape))
Tensor.log_normal_ = _fill_from(lambda rng, shape, mean=1.0, std=2.0:
                                rng.lognormal(mean, std, shape))


from .ops.windows import tensor_unfold  # noqa: E402  (a method only, as in PyTorch)

Tensor.unfold = tensor_unfold

"""Binds the op functions to ``Tensor`` as methods and operators (``x.sum()``, ``x + y``)."""
from __future__ import annotations

from . import ops
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
            raise TypeError(f"{op}: only bool and integer tensors, got "
                            f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")


def _bitwise(name):
    def op(self, other, _name=name):
        _integral(_name, self, other)
        return ops.elementwise._nograd_binary(self, other, _name)
    return op


def _invert(self):
    _integral("bitwise_not", self)
    return Tensor._wrap(~self._data)


Tensor.__and__ = Tensor.__rand__ = _bitwise("bitwise_and")
Tensor.__or__ = Tensor.__ror__ = _bitwise("bitwise_or")
Tensor.__xor__ = Tensor.__rxor__ = _bitwise("bitwise_xor")
Tensor.__invert__ = _invert
Tensor.__hash__ = lambda self: id(self)

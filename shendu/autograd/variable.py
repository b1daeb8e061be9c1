"""``Variable``: PyTorch's pre-0.4 wrapper, kept there as a deprecated alias of Tensor.

Since PyTorch 0.4 every tensor is a ``Variable``: ``Variable(x)`` returns a tensor sharing
``x``'s memory (cut from ``x``'s graph), ``requires_grad=True`` makes it a leaf that
requires grad, and ``isinstance(t, Variable)`` is true for every tensor. Old code (the
examples of many tutorials) runs unchanged.

>>> import shendu as sd
>>> from shendu.autograd import Variable
>>> v = Variable(sd.ones(2), requires_grad=True)
>>> (v * 3).sum().backward()
>>> v.grad
tensor([3., 3.])
>>> isinstance(sd.zeros(1), Variable)
True
"""
from __future__ import annotations


class _VariableMeta(type):
    def __call__(cls, data, requires_grad: bool = False, volatile: bool = False):
        from ..tensor import Tensor, _asarray

        t = data.detach() if isinstance(data, Tensor) else Tensor._wrap(_asarray(data))
        if requires_grad:
            t.requires_grad_(True)  # an integer tensor raises, as in PyTorch
        return t

    def __instancecheck__(cls, obj):
        from ..tensor import Tensor

        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableMeta):
    """Deprecated alias of Tensor (see the module docstring): ``Variable(x)`` is a tensor."""

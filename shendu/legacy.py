"""The legacy typed constructors: ``sd.FloatTensor``, ``sd.LongTensor``, ...

As in PyTorch, ``sd.FloatTensor([1, 2])`` makes a float32 tensor from data,
``sd.FloatTensor(2, 3)`` an uninitialised one of that size, and ``isinstance(t,
sd.LongTensor)`` tests the dtype.

>>> import shendu as sd
>>> sd.LongTensor([1, 2])
tensor([1, 2])
>>> sd.FloatTensor(2, 3).shape
(2, 3)
>>> isinstance(sd.tensor([1.0]), sd.FloatTensor)
True
"""
from __future__ import annotations

import numbers

import numpy as np

from . import dtypes
from .tensor import Tensor


class _TypedTensorMeta(type):
    def __call__(cls, *args, device=None):
        if len(args) == 1 and isinstance(args[0], (tuple, list)) and args[0] and \
                all(isinstance(a, Tensor) for a in args[0]):
            args = (np.stack([np.asarray(a) for a in args[0]]),)
        if not args:
            return Tensor(dtype=cls.dtype, device=device)
        if all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in args):
            # sizes: an uninitialised tensor, as PyTorch (zeros here, for reproducibility)
            return Tensor(*args, dtype=cls.dtype, device=device)
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}: expected data (a list, array or tensor) or sizes "
                            f"(integers), got {len(args)} arguments")
        data = args[0]
        if isinstance(data, Tensor):
            data = data.detach()
        return Tensor(data, dtype=cls.dtype, device=device)

    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype


def _typed(name, dtype):
    return _TypedTensorMeta(name, (), {"dtype": dtypes.as_dtype(dtype),
                                       "__doc__": f"A {dtype} tensor (legacy constructor)."})


FloatTensor = _typed("FloatTensor", "float32")
DoubleTensor = _typed("DoubleTensor", "float64")
HalfTensor = _typed("HalfTensor", "float16")
LongTensor = _typed("LongTensor", "int64")
IntTensor = _typed("IntTensor", "int32")
ShortTensor = _typed("ShortTensor", "int16")
CharTensor = _typed("CharTensor", "int8")
ByteTensor = _typed("ByteTensor", "uint8")
BoolTensor = _typed("BoolTensor", "bool")

__all__ = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor",
           "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor"]

"""Tensor element types: ``sd.float32`` prints as ``shendu.float32`` (in a repr, an error
message, anywhere) and is interchangeable with NumPy's dtype: it compares and hashes
equal to ``np.dtype("float32")``, and NumPy accepts it wherever a dtype goes (through
NumPy's ``.dtype`` attribute protocol), so ``t.dtype == np.float32`` also holds.

>>> import numpy as np
>>> import shendu as sd
>>> sd.float32, sd.ones(2, dtype=sd.float64).dtype
(shendu.float32, shendu.float64)
>>> sd.float32 == np.float32, np.zeros(2, sd.int64).dtype
(True, dtype('int64'))
"""
from __future__ import annotations

import builtins

import numpy as np


class dtype:  # noqa: N801 - PyTorch's name for the class of sd.float32
    """An element type; ``.dtype`` is the NumPy dtype it stands for."""

    __slots__ = ("dtype",)

    def __init__(self, np_dtype):
        self.dtype = np.dtype(np_dtype)

    def __repr__(self):
        return f"shendu.{self.dtype.name}"

    __str__ = __repr__

    def __eq__(self, other):
        if isinstance(other, dtype):
            return self.dtype == other.dtype
        if other is None:  # (np.dtype(None) is float64)
            return False
        try:
            return self.dtype == np.dtype(other)
        except TypeError:
            return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.dtype)

    def __getattr__(self, name):  # kind, itemsize, name, char, type, ...
        return getattr(object.__getattribute__(self, "dtype"), name)

    def __reduce__(self):
        return (_of, (self.dtype.name,))

    @property
    def is_floating_point(self) -> builtins.bool:
        return self.dtype.kind == "f"

    @property
    def is_signed(self) -> builtins.bool:
        return self.dtype.kind in "fi"


_BY_NUMPY: dict = {}


def _of(np_dtype) -> dtype:
    """The shendu dtype of a NumPy dtype (one object per dtype)."""
    d = _BY_NUMPY.get(np_dtype)
    if d is None:
        nd = np.dtype(np_dtype)
        d = _BY_NUMPY.get(nd)
        if d is None:
            d = _BY_NUMPY[nd] = dtype(nd)
    return d


float16 = half = _of("float16")
float32 = float = _of("float32")  # noqa: A001 - PyTorch's alias
float64 = double = _of("float64")
int8 = _of("int8")
uint8 = _of("uint8")
int16 = short = _of("int16")
int32 = int = _of("int32")  # noqa: A001
int64 = long = _of("int64")
bool = _of("bool")  # noqa: A001

_SUPPORTED = {float16, float32, float64, int8, uint8, int16, int32, int64, bool}
_default = [float32.dtype]


def get_default_dtype() -> dtype:
    """The dtype that floating-point tensors get when none is given (float32 unless changed)."""
    return _of(_default[0])


def set_default_dtype(dtype) -> None:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {_of(dt)}")
    _default[0] = dt


def as_dtype(dtype) -> np.dtype:
    """Accept ``sd.float32``, ``np.float32``, ``'float32'`` or Python's ``float``/``int``/``bool``.
    """
    if dtype is builtins.float:
        return _default[0]
    dt = np.dtype(dtype)
    if dt not in _SUPPORTED:
        raise TypeError(f"unsupported dtype {_of(dt)}; expected one of "
                        f"{sorted(map(str, _SUPPORTED))}")
    return dt


def is_floating(dtype) -> builtins.bool:
    return np.dtype(dtype).kind == "f"

"""``finfo`` and ``iinfo``: the numeric limits of a dtype, as Python numbers (as PyTorch).

>>> import shendu as sd
>>> sd.finfo(sd.float32).eps
1.1920928955078125e-07
>>> sd.iinfo(sd.int8).max
127
"""
from __future__ import annotations

import numpy as np

from . import dtypes


class finfo:  # noqa: N801 - PyTorch's name
    """Limits of a floating dtype (the default dtype when none is given): ``bits``, ``eps``,
    ``max``, ``min``, ``tiny`` (= ``smallest_normal``), ``resolution`` and ``dtype`` (its
    name)."""

    def __init__(self, type=None):  # noqa: A002 - PyTorch's argument name
        dt = dtypes.get_default_dtype() if type is None else _dtype("finfo", type)
        if dt.kind != "f":
            raise TypeError(f"finfo: expected a floating-point dtype, got {dt} (use iinfo "
                            "for integer types)")
        info = np.finfo(dt)
        self.bits = int(info.bits)
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        self.resolution = 10.0 ** -int(info.precision)
        self.dtype = str(dt)

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.smallest_normal:g}, "
                f"tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:  # noqa: N801
    """Limits of an integer dtype: ``bits``, ``max``, ``min`` and ``dtype`` (its name)."""

    def __init__(self, type):  # noqa: A002
        dt = _dtype("iinfo", type)
        if dt.kind not in "iu":
            raise TypeError(f"iinfo: expected an integer dtype, got {dt} (use finfo for "
                            "floating-point types)")
        info = np.iinfo(dt)
        self.bits = int(info.bits)
        self.max = int(info.max)
        self.min = int(info.min)
        self.dtype = str(dt)

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"


def _dtype(op, type):  # noqa: A002
    try:
        return dtypes.as_dtype(type)
    except TypeError as e:
        raise TypeError(f"{op}: {e}") from None

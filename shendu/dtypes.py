"""Tensor element types. They are NumPy dtypes, so ``t.dtype == np.float32`` also holds."""
from __future__ import annotations

import builtins

import numpy as np

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")  # noqa: A001 - PyTorch's alias
float64 = double = np.dtype("float64")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
int16 = short = np.dtype("int16")
int32 = int = np.dtype("int32")  # noqa: A001
int64 = long = np.dtype("int64")
bool = np.dtype("bool")  # noqa: A001

_SUPPORTED = {float16, float32, float64, int8, uint8, int16, int32, int64, bool}
_default = [float32]


def get_default_dtype() -> np.dtype:
    """The dtype that floating-point tensors get when none is given (float32 unless changed)."""
    return _default[0]


def set_default_dtype(dtype) -> None:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dt}")
    _default[0] = dt


def as_dtype(dtype) -> np.dtype:
    """Accept ``sd.float32``, ``np.float32``, ``'float32'`` or Python's ``float``/``int``/``bool``.
    """
    if dtype is builtins.float:
        return _default[0]
    dt = np.dtype(dtype)
    if dt not in _SUPPORTED:
        raise TypeError(f"unsupported dtype {dt}; expected one of {sorted(map(str, _SUPPORTED))}")
    return dt


def is_floating(dtype) -> builtins.bool:
    return np.dtype(dtype).kind == "f"

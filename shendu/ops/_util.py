"""Small helpers shared by the op files."""
from __future__ import annotations

import numbers

import numpy as np

from ..backend import cuda, get_array_module
from ..tensor import Tensor, _asarray

Scalar = (numbers.Number, np.generic)


def xp_of(a):
    """The array module of ``a``; NumPy without any check when CuPy was never loaded."""
    return np if cuda.ndarray_type is None else get_array_module(a)


def is_channel_major(a) -> bool:
    """Whether (N, C, H, W) ``a`` is stored as a C-contiguous (C, N, H, W) array: the layout
    conv outputs travel in (see ``_conv_patches``), kept by the elementwise ops after them."""
    return a.ndim == 4 and not a.flags.c_contiguous and a.transpose(1, 0, 2, 3).flags.c_contiguous


def as_tensor_like(x, like: Tensor | None = None) -> Tensor:
    """Wrap arrays, lists and numbers as tensors; a number next to a float tensor takes
    that tensor's dtype (so ``x32 * 2.0`` stays float32), and results follow ``like``'s device."""
    if isinstance(x, Tensor):
        return x
    if like is None:
        return Tensor._wrap(_asarray(x))
    xp = xp_of(like._data)
    if isinstance(x, Scalar) and like._data.dtype.kind == "f" and not isinstance(x, bool):
        return Tensor._wrap(xp.asarray(x, dtype=like._data.dtype))
    t = Tensor._wrap(_asarray(x))
    return t if xp is np else Tensor._wrap(xp.asarray(t._data))


def unbroadcast(g, shape):
    """Sum ``g`` over the axes along which an input of ``shape`` was broadcast."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes)
    return g.reshape(shape)


def sum_to(g: Tensor, shape) -> Tensor:
    """``unbroadcast`` on a Tensor (recorded): sum ``g`` down to an input's ``shape``."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(dim=axes)
    return g.reshape(tuple(shape))


def norm_axes(dim, ndim, op: str):
    """``dim``/``axis`` as a sorted tuple of non-negative axes, or ``None`` for all."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        d = int(d)
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"{op}: dimension {d} is out of range for a tensor with "
                             f"{ndim} dimensions (expected -{max(ndim, 1)} to {max(ndim, 1) - 1})")
        out.append(d % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dimension repeated in {dims}")
    return tuple(sorted(out))


def norm_dim(dim, ndim, op: str) -> int:
    return norm_axes(dim, ndim, op)[0]


def pick(op: str, dim, axis, default=None):
    """Accept either PyTorch's ``dim`` or NumPy's ``axis`` (not both)."""
    if dim is not None and axis is not None:
        raise TypeError(f"{op}: pass dim or axis, not both")
    return dim if dim is not None else (axis if axis is not None else default)


def add_tangents(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def bcast(t, shape, xp):
    """Broadcast a tangent to an output shape (tangents of broadcast inputs are smaller)."""
    return t if t is None or t.shape == shape else xp.broadcast_to(t, shape)

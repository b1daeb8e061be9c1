"""Searching and binning (not differentiable): ``searchsorted``, ``bucketize``, ``isin``,
``argwhere``, ``histc``.

>>> import shendu as sd
>>> sd.searchsorted(sd.tensor([1, 3, 5, 7]), sd.tensor([3, 6]))
tensor([1, 3])
>>> sd.bucketize(sd.tensor([0.5, 3.0, 9.0]), sd.tensor([1.0, 3.0, 5.0]))
tensor([0, 1, 3])
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, DTypeError, ShapeError
from ..tensor import Tensor
from ._util import xp_of

__all__ = ["argwhere", "bucketize", "histc", "isin", "searchsorted"]


def _arr(x, like=None):
    if isinstance(x, Tensor):
        return x._data
    return (xp_of(like) if like is not None else np).asarray(x)


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None):
    """Indices where ``input``'s values would be inserted into ``sorted_sequence`` (sorted
    along its last dimension) to keep it sorted: the first such place, or the last with
    ``right=True`` / ``side='right'``. A N-D sequence is searched row by row, with ``input``
    holding one row of values per sequence row."""
    seq = _arr(sorted_sequence)
    vals = _arr(input, seq)
    if side is not None:
        if side not in ("left", "right"):
            raise ArgumentError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise ArgumentError("searchsorted: right=True contradicts side='left'")
        right = side == "right"
    how = "right" if right else "left"
    xp = xp_of(seq)
    if sorter is not None:
        seq = xp.take_along_axis(seq, _arr(sorter, seq), axis=-1)
    if seq.ndim <= 1:
        out = xp.searchsorted(seq, vals, side=how)
    else:
        if seq.shape[:-1] != vals.shape[:-1]:
            raise ShapeError(f"searchsorted: a {seq.ndim}-D sorted_sequence of shape "
                             f"{tuple(seq.shape)} needs values with the same leading "
                             f"dimensions, got shape {tuple(vals.shape)}")
        rows_s = seq.reshape(-1, seq.shape[-1])
        rows_v = vals.reshape(-1, vals.shape[-1])
        out = xp.stack([xp.searchsorted(s, v, side=how) for s, v in zip(rows_s, rows_v)])
        out = out.reshape(vals.shape)
    return Tensor._wrap(xp.asarray(out).astype(np.int32 if out_int32 else np.int64))


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The bucket index of each value for 1-D sorted ``boundaries``: ``i`` such that
    ``boundaries[i-1] < x <= boundaries[i]`` (or ``boundaries[i-1] <= x < boundaries[i]``
    with ``right=True``), as PyTorch."""
    b = _arr(boundaries)
    if b.ndim != 1:
        raise ShapeError(f"bucketize: boundaries must be 1-D, got shape {tuple(b.shape)}")
    return searchsorted(b, input, out_int32=out_int32, right=right)


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """True where an element of ``elements`` occurs in ``test_elements``."""
    a = _arr(elements)
    return Tensor._wrap(xp_of(a).isin(a, _arr(test_elements, a), assume_unique=assume_unique,
                                      invert=invert))


def argwhere(input):
    """The indices of the non-zero elements, one row per element: (n, input.ndim)."""
    from .selection import nonzero

    return nonzero(input)


def histc(input, bins=100, min=0, max=0):  # noqa: A002 - PyTorch's names
    """Histogram of ``input`` with ``bins`` equal-width bins over [min, max] (the data's
    range when both are 0); values outside are ignored. Returns ``input``'s dtype."""
    a = input._data
    if a.dtype.kind != "f":
        raise DTypeError(f"histc: expected a floating-point tensor, got {input.dtype}")
    xp = xp_of(a)
    lo, hi = float(min), float(max)
    if lo == hi == 0 and a.size:
        lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1  # as PyTorch: a degenerate range is widened by 1
    if lo > hi:
        raise ArgumentError(f"histc: max ({hi}) must be larger than min ({lo})")
    counts, _ = xp.histogram(a.reshape(-1), bins=int(bins), range=(lo, hi))
    return Tensor._wrap(counts.astype(a.dtype))

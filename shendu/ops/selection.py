"""Gather and scatter along a dimension, ``index_select``, ``masked_fill``, ``nonzero``,
``one_hot`` and sorting (``sort``, ``argsort``, ``topk``), as PyTorch names them.

Indices are integer tensors (or sequences) on the input's device; an index out of range
raises an ``IndexError`` that names the op, the bad index and the valid range.

>>> import shendu as sd
>>> sd.gather(sd.tensor([[1.0, 2.0], [3.0, 4.0]]), 1, sd.tensor([[1], [0]])).tolist()
[[2.0], [3.0]]
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.tracing import data_dependent
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import norm_dim, xp_of
from .movement import expand, flatten
from .reduce import ValuesIndices

__all__ = ["argsort", "gather", "index_select", "masked_fill", "nonzero", "one_hot", "scatter",
           "scatter_add", "sort", "take_along_dim", "topk"]


def _along(index, axis):
    """Full advanced index addressing ``index``'s entries along ``axis`` (as torch.gather)."""
    xp = xp_of(index)
    parts = []
    for d, n in enumerate(index.shape):
        if d == axis:
            parts.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            parts.append(xp.arange(n).reshape(shape))
    return tuple(parts)


class Gather(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, index, axis):
        ctx.idx, ctx.in_shape = _along(index, axis), a.shape
        return a[ctx.idx]

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        gx = xp.zeros(ctx.in_shape, g.dtype)
        xp.add.at(gx, ctx.idx, g)
        return gx

    @staticmethod
    def jvp(ctx, da):
        return da[ctx.idx]


class Scatter(Function):
    """Out-of-place ``scatter`` (``add=False``: overwrite) or ``scatter_add``."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a, src, index, axis, add):
        idx = _along(index, axis)
        sub = src[tuple(slice(0, n) for n in index.shape)]
        out = a.copy()
        if add:
            xp_of(a).add.at(out, idx, sub)
        else:
            out[idx] = sub
        ctx.idx, ctx.add, ctx.src_shape, ctx.index_shape = idx, add, src.shape, index.shape
        ctx.out_shape = out.shape
        return out

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        ga = g
        if not ctx.add:
            ga = g.copy()
            ga[ctx.idx] = 0
        gs = xp.zeros(ctx.src_shape, g.dtype)
        gs[tuple(slice(0, n) for n in ctx.index_shape)] = g[ctx.idx]
        return ga, gs

    @staticmethod
    def jvp(ctx, da, ds):
        ref = da if da is not None else ds
        xp = xp_of(ref)
        out = xp.zeros(ctx.out_shape, ref.dtype) if da is None else da.copy()
        if ds is not None:
            sub = ds[tuple(slice(0, n) for n in ctx.index_shape)]
            if ctx.add:
                xp.add.at(out, ctx.idx, sub)
            else:
                out[ctx.idx] = sub
        elif not ctx.add:
            out[ctx.idx] = 0
        return out


class IndexSelect(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, index, axis):
        ctx.index, ctx.axis, ctx.in_shape = index, axis, a.shape
        return xp_of(a).take(a, index, axis=axis)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        gx = xp.zeros(ctx.in_shape, g.dtype)
        if xp is np and ctx.index.ndim == 1 and ctx.index.size:  # CuPy has no reduceat
            # Sort the picks, sum each run of equal indices with ``reduceat`` and write each
            # sum once: whole slices at a time, where ``add.at`` goes element by element.
            index = ctx.index % ctx.in_shape[ctx.axis]
            order = xp.argsort(index, kind="stable")
            picked = index[order]
            starts = xp.flatnonzero(xp.r_[True, picked[1:] != picked[:-1]])
            sums = xp.add.reduceat(xp.take(g, order, axis=ctx.axis), starts, axis=ctx.axis)
            where = [slice(None)] * g.ndim
            where[ctx.axis] = picked[starts]
            gx[tuple(where)] = sums
            return gx
        xp.add.at(xp.moveaxis(gx, ctx.axis, 0), ctx.index, xp.moveaxis(g, ctx.axis, 0))
        return gx

    @staticmethod
    def jvp(ctx, da):
        return xp_of(da).take(da, ctx.index, axis=ctx.axis)


def _index_array(index, op, like=None):
    arr = index._data if isinstance(index, Tensor) else xp_of(index).asarray(index)
    if like is not None and xp_of(like._data) is not np:
        arr = xp_of(like._data).asarray(arr)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got {arr.dtype}")
    return arr


def gather(input, dim, index):
    """``out[i][j][k] = input[i][index[i][j][k]][k]`` for ``dim=1`` (as torch.gather)."""
    idx = _index_array(index, "gather", input)
    d = norm_dim(dim, input.ndim, "gather")
    if idx.ndim != input.ndim or any(idx.shape[i] > input.shape[i] for i in range(idx.ndim)
                                     if i != d):
        raise ShapeError(f"gather: index of shape {idx.shape} does not fit input of shape "
                         f"{input.shape} along dims other than {d}")
    try:
        return Gather.apply(input, index=idx, axis=d)
    except IndexError:
        raise IndexError(_out_of_range("gather", idx, input.shape[d], d, input.shape)) from None


def take_along_dim(input, indices, dim=None):
    """Pick values along ``dim`` at ``indices`` (as ``np.take_along_axis``): ``input`` and
    ``indices`` broadcast against each other except along ``dim``; with ``dim=None`` both
    are flattened first (PyTorch's ``take_along_dim``).

    >>> import shendu as sd
    >>> x = sd.tensor([[10., 30., 20.], [60., 40., 50.]])
    >>> sd.take_along_dim(x, sd.argmax(x, dim=1, keepdim=True), dim=1).tolist()
    [[30.0], [60.0]]
    """
    idx = _index_array(indices, "take_along_dim", input)
    if dim is None:
        return gather(flatten(input), 0, idx.reshape(-1))
    d = norm_dim(dim, input.ndim, "take_along_dim")
    if idx.ndim != input.ndim:
        raise ValueError(f"take_along_dim: indices of shape {idx.shape} must have as many "
                         f"dimensions as the input of shape {input.shape}")
    try:
        shape = np.broadcast_shapes(input.shape[:d] + (1,) + input.shape[d + 1:],
                                    idx.shape[:d] + (1,) + idx.shape[d + 1:])
    except ValueError:
        raise ValueError(f"take_along_dim: input of shape {input.shape} and indices of shape "
                         f"{idx.shape} cannot be broadcast outside dim {d}") from None
    xs = shape[:d] + (input.shape[d],) + shape[d + 1:]
    ishape = shape[:d] + (idx.shape[d],) + shape[d + 1:]
    xp = xp_of(input._data)
    return gather(expand(input, xs), d, xp.broadcast_to(idx, ishape))


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """Out-of-place scatter: ``out[i][index[i][j]] = src[i][j]`` for ``dim=1``."""
    if src is None:
        src = value
    idx = _index_array(index, "scatter", input)
    d = norm_dim(dim, input.ndim, "scatter")
    if not isinstance(src, Tensor):
        src = Tensor._wrap(xp_of(input._data).full(idx.shape, src, input.dtype))
    if reduce not in (None, "add", "sum"):
        raise ValueError(f"scatter: reduce must be None or 'add', got {reduce!r}")
    return Scatter.apply(input, src.type(input.dtype), index=idx, axis=d,
                         add=reduce is not None)


def scatter_add(input, dim, index, src):
    return scatter(input, dim, index, src, reduce="add")


def index_select(input, dim, index):
    idx = _index_array(index, "index_select", input)
    if idx.ndim != 1:
        raise ShapeError(f"index_select: index must be 1-D, got shape {idx.shape}")
    d = norm_dim(dim, input.ndim, "index_select")
    try:
        return IndexSelect.apply(input, index=idx, axis=d)
    except IndexError:
        raise IndexError(_out_of_range("index_select", idx, input.shape[d], d, input.shape)
                         ) from None


def _out_of_range(op, idx, size, dim, shape):
    bad = idx[(idx >= size) | (idx < -size)]
    first = int(bad.ravel()[0]) if bad.size else "?"
    return (f"{op}: index {first} is out of range for dimension {dim} of size {size} "
            f"(input of shape {shape}; valid indices are -{size} to {size - 1})")


def masked_fill(input, mask, value):
    """``value`` where ``mask`` is True, ``input`` elsewhere."""
    from .elementwise import where

    m = mask._data if isinstance(mask, Tensor) else xp_of(input._data).asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {m.dtype}")
    try:
        np.broadcast_shapes(m.shape, input.shape)
    except ValueError:
        raise ShapeError(f"masked_fill: mask of shape {m.shape} does not broadcast to input "
                         f"of shape {input.shape}") from None
    if isinstance(value, Tensor):
        value = value.type(input.dtype)
    out = where(Tensor._wrap(m), value, input)
    return out if out.shape == input.shape else expand(out, input.shape)


def nonzero(input, as_tuple=False):
    data_dependent("nonzero", input)
    idx = xp_of(input._data).nonzero(input._data)
    if as_tuple:
        return tuple(Tensor._wrap(i.astype(np.int64)) for i in idx)
    return Tensor._wrap(xp_of(input._data).stack(idx, axis=1).astype(np.int64))


def one_hot(tensor, num_classes=-1):
    """Class indices -> one-hot rows (int64), as ``F.one_hot``."""
    idx = _index_array(tensor, "one_hot")
    xp = xp_of(idx)
    n = int(idx.max()) + 1 if num_classes < 0 and idx.size else max(num_classes, 0)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"one_hot: class values must be in [0, {n}), got "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    out = xp.zeros(idx.shape + (n,), np.int64)
    xp.put_along_axis(out, idx[..., None], 1, axis=-1)
    return Tensor._wrap(out)


def sort(input, dim=-1, descending=False, stable=True):
    d = norm_dim(dim, input.ndim, "sort")
    a = input._data
    idx = xp_of(a).argsort(-a if descending else a, axis=d, kind="stable")
    return ValuesIndices(gather(input, d, idx), Tensor._wrap(idx.astype(np.int64)))


def argsort(input, dim=-1, descending=False, stable=True):
    return sort(input, dim, descending, stable).indices


def topk(input, k, dim=-1, largest=True, sorted=True):
    d = norm_dim(dim, input.ndim, "topk")
    if not 0 <= k <= input.shape[d]:
        raise ShapeError(f"topk: k={k} is out of range for dimension {d} of size "
                         f"{input.shape[d]}")
    a = input._data
    xp = xp_of(a)
    idx = xp.argsort(-a if largest else a, axis=d, kind="stable")
    idx = xp.take(idx, xp.arange(k), axis=d)
    return ValuesIndices(gather(input, d, idx), Tensor._wrap(idx.astype(np.int64)))

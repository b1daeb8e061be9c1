"""``scatter_reduce``: reduce ``src`` into ``input`` at ``index`` along a dimension with
'sum', 'prod', 'mean', 'amax' or 'amin' (as ``torch.scatter_reduce``).

Each output element is a reduction over its contributors: the input element itself (when
``include_self``) and the ``src`` elements scattered to it. The op is linear in its
contributors' tangents with a weight per contributor (1 for sum; 1/count for mean; a share
of the tied extremes for amax/amin; the product of the others for prod). Forward computes
those weights once; backward and forward mode both apply them.

>>> import shendu as sd
>>> sd.scatter_reduce(sd.zeros(3), 0, sd.tensor([0, 0, 2]), sd.tensor([1.0, 4.0, 2.0]),
...                   "amax", include_self=False)
tensor([4., 0., 2.])
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..errors import ArgumentError, DTypeError, ShapeError
from ..tensor import Tensor, _asarray
from ._util import norm_dim, xp_of
from .selection import _along, _index_array

__all__ = ["scatter_reduce"]

_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _prod_weights(xp, a, sub, idx, scattered, include_self):
    """d(product)/d(contributor) = product of the other contributors, also with zeros."""
    self_part = include_self | ~scattered
    zero_self = (a == 0) & self_part
    nzero = zero_self.astype(np.int64)
    xp.add.at(nzero, idx, (sub == 0).astype(np.int64))
    nonzero_prod = xp.where(self_part & (a != 0), a, 1).astype(a.dtype)
    xp.multiply.at(nonzero_prod, idx, xp.where(sub == 0, 1, sub))

    def weight(v, nz, prod):  # a contributor's value, zeros and nonzero product at its target
        safe = xp.where(v == 0, 1, v)
        return xp.where(nz == 0, prod / safe, xp.where((nz == 1) & (v == 0), prod, 0))

    w_self = xp.where(self_part, weight(a, nzero, nonzero_prod), 0)
    w_src = weight(sub, nzero[idx], nonzero_prod[idx])
    return w_self.astype(a.dtype), w_src.astype(a.dtype)


class ScatterReduce(Function):
    @staticmethod
    def forward(ctx, a, src, index, axis, reduce, include_self):
        xp = xp_of(a)
        idx = _along(index, axis)
        sub = src[tuple(slice(0, n) for n in index.shape)]
        scattered = xp.zeros(a.shape, bool)
        scattered[idx] = True
        count = xp.zeros(a.shape, a.dtype)
        xp.add.at(count, idx, 1)
        if include_self:
            count = count + 1
        start = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf, "amin": np.inf}[reduce]
        out = a.copy() if include_self else xp.where(scattered, xp.asarray(start, a.dtype), a)
        ufunc = {"sum": xp.add, "mean": xp.add, "prod": xp.multiply, "amax": xp.maximum,
                 "amin": xp.minimum}[reduce]
        ufunc.at(out, idx, sub)
        self_w = (include_self | ~scattered).astype(a.dtype)
        if reduce == "sum":
            w_self, w_src = self_w, xp.ones(sub.shape, a.dtype)
        elif reduce == "mean":
            c = xp.where(scattered, xp.maximum(count, 1), 1)
            out = xp.where(scattered, out / c, out).astype(a.dtype)
            w_self, w_src = self_w / c, 1 / c[idx]
        elif reduce in ("amax", "amin"):
            hit_self = (a == out) & (include_self | ~scattered)
            ties = hit_self.astype(a.dtype)
            hit_src = sub == out[idx]
            xp.add.at(ties, idx, hit_src.astype(a.dtype))
            w_self = hit_self / xp.maximum(ties, 1)
            w_src = hit_src / xp.maximum(ties, 1)[idx]
        else:
            w_self, w_src = _prod_weights(xp, a, sub, idx, scattered, include_self)
        ctx.idx, ctx.w_self, ctx.w_src = idx, w_self.astype(a.dtype), w_src.astype(a.dtype)
        ctx.src_shape, ctx.index_shape = src.shape, index.shape
        return out

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        gs = xp.zeros(ctx.src_shape, g.dtype)
        gs[tuple(slice(0, n) for n in ctx.index_shape)] = g[ctx.idx] * ctx.w_src
        return g * ctx.w_self, gs

    @staticmethod
    def jvp(ctx, da, ds):
        ref = da if da is not None else ds
        xp = xp_of(ref)
        t = xp.zeros(ctx.w_self.shape, ref.dtype) if da is None else da * ctx.w_self
        if ds is not None:
            sub = ds[tuple(slice(0, n) for n in ctx.index_shape)]
            xp.add.at(t, ctx.idx, sub * ctx.w_src)
        return t


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """Reduce the elements of ``src`` into ``input`` at positions ``index`` along ``dim``
    (``out[i][index[i][j]] = reduce(out[i][index[i][j]], src[i][j])`` for ``dim=1``).

    Args:
        reduce: 'sum', 'prod', 'mean', 'amax' or 'amin'.
        include_self: whether the input's own value takes part in the reduction where
            something is scattered (elements nothing is scattered to keep their value).
    """
    if reduce not in _REDUCTIONS:
        raise ArgumentError(f"scatter_reduce: reduce must be one of {_REDUCTIONS}, got {reduce!r}")
    if input._data.dtype.kind != "f":
        raise DTypeError(f"scatter_reduce: expected a floating-point input, got {input.dtype}")
    idx = _index_array(index, "scatter_reduce", input)
    d = norm_dim(dim, input.ndim, "scatter_reduce")
    if not isinstance(src, Tensor):
        src = Tensor._wrap(_asarray(src))
    if idx.ndim != input.ndim or src.ndim != input.ndim or any(
            idx.shape[i] > src.shape[i] or (i != d and idx.shape[i] > input.shape[i])
            for i in range(idx.ndim)):
        raise ShapeError(f"scatter_reduce: index of shape {tuple(idx.shape)} must have as many "
                         f"dimensions as input {tuple(input.shape)} and src "
                         f"{tuple(src.shape)}, and fit inside src (and input, off dim {d})")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= input.shape[d]):
        raise IndexError(f"scatter_reduce: index values must be in [0, {input.shape[d]}) for "
                         f"dimension {d}, got [{int(idx.min())}, {int(idx.max())}]")
    return ScatterReduce.apply(input, src.type(input.dtype), index=idx, axis=d, reduce=reduce,
                               include_self=bool(include_self))

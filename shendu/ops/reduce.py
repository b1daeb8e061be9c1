"""Reductions: sum, mean, var/std, max/min, prod, logsumexp, norm, cumsum and friends.

``dim``/``keepdim`` (PyTorch) and ``axis``/``keepdims`` (NumPy) are both accepted.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import norm_axes, pick, xp_of

__all__ = ["all", "amax", "amin", "any", "argmax", "argmin", "count_nonzero", "cumsum",
           "logsumexp", "max", "mean", "min", "norm", "prod", "std", "sum", "var"]

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _expand_back(g, in_shape, axes, keepdims):
    """Broadcast a reduced gradient back over the reduced axes (a read-only view)."""
    if axes is None:
        return xp_of(g).broadcast_to(g.reshape((1,) * len(in_shape)), in_shape)
    if not keepdims:
        shape = list(in_shape)
        for ax in axes:
            shape[ax] = 1
        g = g.reshape(shape)
    return xp_of(g).broadcast_to(g, in_shape)


def _count(shape, axes):
    if axes is None:
        return math.prod(shape)
    return math.prod(shape[a] for a in axes)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, axes, keepdims
        return a.sum(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return _expand_back(g, ctx.shape, ctx.axes, ctx.keepdims)

    @staticmethod
    def jvp(ctx, da):
        return da.sum(axis=ctx.axes, keepdims=ctx.keepdims)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, axes, keepdims
        return a.mean(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        n = _count(ctx.shape, ctx.axes)
        return _expand_back(g / builtins.max(n, 1), ctx.shape, ctx.axes, ctx.keepdims)

    @staticmethod
    def jvp(ctx, da):
        return da.mean(axis=ctx.axes, keepdims=ctx.keepdims)


class Var(Function):
    """Variance with ``correction`` (1 = unbiased); ``std=True`` gives its square root."""

    @staticmethod
    def forward(ctx, a, axes, correction, keepdims, std):
        mean = a.mean(axis=axes, keepdims=True)
        diff = a - mean
        denom = builtins.max(_count(a.shape, axes) - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (diff * diff).sum(axis=axes, keepdims=keepdims) / denom
            if std:
                out = xp_of(a).sqrt(out)
        ctx.save_for_backward(diff)
        ctx.axes, ctx.keepdims, ctx.denom, ctx.std, ctx.out = axes, keepdims, denom, std, out
        return out.astype(a.dtype, copy=False)

    @staticmethod
    def _scale(ctx):
        # d var / d x = 2 diff / denom;  d std / d x = diff / (denom * std)
        out = ctx.out if ctx.keepdims or ctx.axes is None else \
            _expand_back(ctx.out, ctx.saved[0].shape, ctx.axes, False)
        return 1 / (ctx.denom * out) if ctx.std else 2 / ctx.denom

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        gx = _expand_back(g, diff.shape, ctx.axes, ctx.keepdims)
        return (gx * diff * Var._scale(ctx)).astype(diff.dtype, copy=False)

    @staticmethod
    def jvp(ctx, da):
        diff = ctx.saved[0]
        ddiff = da - da.mean(axis=ctx.axes, keepdims=True)
        t = (diff * ddiff).sum(axis=ctx.axes, keepdims=ctx.keepdims)
        if ctx.std:
            return t / (ctx.denom * ctx.out)
        return 2 * t / ctx.denom


class MaxAlong(Function):
    """Max (or min) along one axis; the gradient goes to the selected index."""

    @staticmethod
    def forward(ctx, a, axis, keepdims, largest):
        xp = xp_of(a)
        idx = (a.argmax if largest else a.argmin)(axis=axis)
        idx_k = xp.expand_dims(idx, axis)
        out = xp.take_along_axis(a, idx_k, axis=axis)
        ctx.idx_k, ctx.shape, ctx.axis, ctx.keepdims = idx_k, a.shape, axis, keepdims
        ctx.indices = idx_k if keepdims else idx
        return out if keepdims else out.squeeze(axis)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        gx = xp.zeros(ctx.shape, g.dtype)
        if not ctx.keepdims:
            g = xp.expand_dims(g, ctx.axis)
        xp.put_along_axis(gx, ctx.idx_k, g, axis=ctx.axis)
        return gx

    @staticmethod
    def jvp(ctx, da):
        out = xp_of(da).take_along_axis(da, ctx.idx_k, axis=ctx.axis)
        return out if ctx.keepdims else out.squeeze(ctx.axis)


class Amax(Function):
    """Max (or min) over several axes; tied maxima share the gradient equally."""

    @staticmethod
    def forward(ctx, a, axes, keepdims, largest):
        if a.size == 0 and (axes is None or builtins.any(a.shape[ax] == 0 for ax in axes)):
            # (reducing the non-empty axes of an empty tensor is fine: the result is empty)
            raise RuntimeError(f"{'amax' if largest else 'amin'}: cannot reduce over a "
                               f"dimension of size 0 (tensor of shape {a.shape}); expected "
                               "every reduced dimension to be non-empty")
        out = (a.max if largest else a.min)(axis=axes, keepdims=True)
        w = (a == out).astype(a.dtype)
        ctx.weights = w / w.sum(axis=axes, keepdims=True)
        ctx.axes, ctx.keepdims, ctx.shape = axes, keepdims, a.shape
        return out if keepdims else (out.reshape(()) if axes is None else out.squeeze(axes))

    @staticmethod
    def backward(ctx, g):
        return _expand_back(g, ctx.shape, ctx.axes, ctx.keepdims) * ctx.weights

    @staticmethod
    def jvp(ctx, da):
        return (da * ctx.weights).sum(axis=ctx.axes, keepdims=ctx.keepdims)


class Prod(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdims):
        ctx.save_for_backward(a)
        ctx.axes, ctx.keepdims = axes, keepdims
        return a.prod(axis=axes, keepdims=keepdims)

    @staticmethod
    def _partials(a, axes):
        """d prod / d a_i = product of the other elements, also where some are zero."""
        xp = xp_of(a)
        zero = a == 0
        nzero = zero.sum(axis=axes, keepdims=True)
        prod_nonzero = xp.where(zero, 1, a).prod(axis=axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            no_zero = prod_nonzero / xp.where(zero, 1, a)
        one_zero = xp.where(zero, prod_nonzero, 0)
        return xp.where(nzero == 0, no_zero, xp.where(nzero == 1, one_zero, 0)).astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return _expand_back(g, a.shape, ctx.axes, ctx.keepdims) * Prod._partials(a, ctx.axes)

    @staticmethod
    def jvp(ctx, da):
        a = ctx.saved[0]
        return (da * Prod._partials(a, ctx.axes)).sum(axis=ctx.axes, keepdims=ctx.keepdims)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdims):
        xp = xp_of(a)
        m = a.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        out = xp.log(xp.exp(a - m).sum(axis=axes, keepdims=True)) + m
        ctx.save_for_backward(a)
        ctx.out_k, ctx.axes, ctx.keepdims = out, axes, keepdims
        if keepdims:
            return out
        return out.reshape(()) if axes is None else out.squeeze(axes)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        soft = xp_of(a).exp(a - ctx.out_k)
        return _expand_back(g, a.shape, ctx.axes, ctx.keepdims) * soft

    @staticmethod
    def jvp(ctx, da):
        soft = xp_of(da).exp(ctx.saved[0] - ctx.out_k)
        return (da * soft).sum(axis=ctx.axes, keepdims=ctx.keepdims)


class Norm2(Function):
    """Euclidean / Frobenius norm; the gradient at a zero vector is taken as zero."""

    @staticmethod
    def forward(ctx, a, axes, keepdims):
        xp = xp_of(a)
        out = xp.sqrt((a * a).sum(axis=axes, keepdims=True))
        ctx.save_for_backward(a)
        ctx.out_k, ctx.axes, ctx.keepdims = out, axes, keepdims
        if keepdims:
            return out
        return out.reshape(()) if axes is None else out.squeeze(axes)

    @staticmethod
    def _unit(a, out_k):
        xp = xp_of(a)
        return a / xp.where(out_k == 0, 1, out_k)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return _expand_back(g, a.shape, ctx.axes, ctx.keepdims) * Norm2._unit(a, ctx.out_k)

    @staticmethod
    def jvp(ctx, da):
        unit = Norm2._unit(ctx.saved[0], ctx.out_k)
        return (da * unit).sum(axis=ctx.axes, keepdims=ctx.keepdims)


class Cumsum(Function):
    @staticmethod
    def forward(ctx, a, axis):
        ctx.axis = axis
        return a.cumsum(axis=axis)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        return xp.flip(xp.flip(g, ctx.axis).cumsum(axis=ctx.axis), ctx.axis)

    @staticmethod
    def jvp(ctx, da):
        return da.cumsum(axis=ctx.axis)


# ---------------------------------------------------------------------- public functions
def _kd(keepdim, keepdims):
    return bool(keepdim or keepdims)


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    """Sum over ``dim`` (all dimensions when None)."""
    axes = norm_axes(pick("sum", dim, axis), input.ndim, "sum")
    if dtype is not None:
        input = input.type(dtype)
    elif input._data.dtype.kind in "bu" or input._data.dtype == np.int32:
        input = input.type(np.int64)
    return Sum.apply(input, axes=axes, keepdims=_kd(keepdim, keepdims))


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    axes = norm_axes(pick("mean", dim, axis), input.ndim, "mean")
    if dtype is not None:
        input = input.type(dtype)
    if input._data.dtype.kind not in "fc":
        raise TypeError(f"mean: expected a floating-point tensor, got {input.dtype} "
                        "(convert with .float())")
    return Mean.apply(input, axes=axes, keepdims=_kd(keepdim, keepdims))


def _correction(op, unbiased, correction, ddof):
    given = [v for v in (unbiased, correction, ddof) if v is not None]
    if len(given) > 1:
        raise TypeError(f"{op}: pass only one of unbiased, correction and ddof")
    if correction is not None:
        return correction
    if ddof is not None:
        return ddof
    return 1 if unbiased is None or unbiased else 0


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=False, ddof=None):
    """Variance; unbiased (divides by N-1) unless ``unbiased=False`` / ``correction=0``."""
    axes = norm_axes(pick("var", dim, axis), input.ndim, "var")
    c = _correction("var", unbiased, correction, ddof)
    return Var.apply(input, axes=axes, correction=c, keepdims=_kd(keepdim, keepdims), std=False)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=False, ddof=None):
    axes = norm_axes(pick("std", dim, axis), input.ndim, "std")
    c = _correction("std", unbiased, correction, ddof)
    return Var.apply(input, axes=axes, correction=c, keepdims=_kd(keepdim, keepdims), std=True)


def _max_min(name, largest, input, dim, keepdim, axis, keepdims):
    if isinstance(dim, Tensor):  # torch.max(a, b) is the elementwise maximum
        from .elementwise import maximum, minimum

        return maximum(input, dim) if largest else minimum(input, dim)
    d = pick(name, dim, axis)
    kd = _kd(keepdim, keepdims)
    if d is None:
        return Amax.apply(input, axes=None, keepdims=kd, largest=largest)
    ax = norm_axes(d, input.ndim, name)[0]
    if input.shape[ax] == 0:
        raise IndexError(f"{name}: cannot reduce dimension {ax} of size 0 (shape {input.shape})")
    values = MaxAlong.apply(input, axis=ax, keepdims=kd, largest=largest)
    idx = _indices(input, ax, kd, largest)
    return ValuesIndices(values, idx)


def _indices(input, ax, kd, largest):
    a = input._data
    idx = (a.argmax if largest else a.argmin)(axis=ax)
    if kd:
        idx = xp_of(a).expand_dims(idx, ax)
    return Tensor._wrap(idx.astype(np.int64, copy=False))


def max(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """``max(x)`` -> the largest element; ``max(x, dim)`` -> ``(values, indices)``;
    ``max(x, y)`` -> elementwise maximum."""
    return _max_min("max", True, input, dim, keepdim, axis, keepdims)


def min(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    return _max_min("min", False, input, dim, keepdim, axis, keepdims)


def amax(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    axes = norm_axes(pick("amax", dim, axis), input.ndim, "amax")
    return Amax.apply(input, axes=axes, keepdims=_kd(keepdim, keepdims), largest=True)


def amin(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    axes = norm_axes(pick("amin", dim, axis), input.ndim, "amin")
    return Amax.apply(input, axes=axes, keepdims=_kd(keepdim, keepdims), largest=False)


def _arg(name, largest, input, dim, keepdim, axis, keepdims):
    d = pick(name, dim, axis)
    a = input._data
    if d is None:
        idx = (a.argmax if largest else a.argmin)()
        out = idx.reshape((1,) * a.ndim) if _kd(keepdim, keepdims) else idx
        return Tensor._wrap(xp_of(a).asarray(out, dtype=np.int64))
    return _indices(input, norm_axes(d, a.ndim, name)[0], _kd(keepdim, keepdims), largest)


def argmax(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """Index of the largest element (over the flattened tensor when ``dim`` is None)."""
    return _arg("argmax", True, input, dim, keepdim, axis, keepdims)


def argmin(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    return _arg("argmin", False, input, dim, keepdim, axis, keepdims)


def prod(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    axes = norm_axes(pick("prod", dim, axis), input.ndim, "prod")
    return Prod.apply(input, axes=axes, keepdims=_kd(keepdim, keepdims))


def logsumexp(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` computed without overflow."""
    axes = norm_axes(pick("logsumexp", dim, axis), input.ndim, "logsumexp")
    return LogSumExp.apply(input, axes=axes, keepdims=_kd(keepdim, keepdims))


def norm(input, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=False, ord=None):
    """Vector/Frobenius norms: p = 2 / 'fro' (default), 1, inf, -inf, 0 or any p > 0."""
    if ord is not None:
        p = ord
    d = pick("norm", dim, axis)
    axes = norm_axes(d, input.ndim, "norm")
    kd = _kd(keepdim, keepdims)
    if p in ("fro", 2, 2.0, None):
        return Norm2.apply(input, axes=axes, keepdims=kd)
    if p == "nuc":
        raise NotImplementedError("norm: the nuclear norm is not implemented")
    a = input.abs()
    if p in (1, 1.0):
        return a.sum(dim=axes, keepdim=kd)
    if p == float("inf"):
        return amax(a, dim=axes, keepdim=kd)
    if p == float("-inf"):
        return amin(a, dim=axes, keepdim=kd)
    if p == 0:
        return (a != 0).type(input.dtype).sum(dim=axes, keepdim=kd)
    return (a ** p).sum(dim=axes, keepdim=kd) ** (1.0 / p)


def cumsum(input, dim=None, *, axis=None, dtype=None):
    d = pick("cumsum", dim, axis)
    if d is None:
        raise TypeError("cumsum: dim is required")
    if dtype is not None:
        input = input.type(dtype)
    return Cumsum.apply(input, axis=norm_axes(d, input.ndim, "cumsum")[0])


def all(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    axes = norm_axes(pick("all", dim, axis), input.ndim, "all")
    return Tensor._wrap(input._data.all(axis=axes, keepdims=_kd(keepdim, keepdims)))


def any(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    axes = norm_axes(pick("any", dim, axis), input.ndim, "any")
    return Tensor._wrap(input._data.any(axis=axes, keepdims=_kd(keepdim, keepdims)))


def count_nonzero(input, dim=None):
    axes = norm_axes(dim, input.ndim, "count_nonzero")
    return Tensor._wrap(xp_of(input._data).count_nonzero(input._data, axis=axes)
                        .astype(np.int64))

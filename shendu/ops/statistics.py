"""Order statistics and running products: ``median``, ``nanmedian``, ``quantile``,
``nanquantile``, ``mode`` and ``cumprod``, with PyTorch's semantics.

The order statistics pick elements with ``sort`` and ``gather``, so their gradient flows to
the chosen elements through those primitives. ``median`` returns the lower of the two middle
values for an even count, as PyTorch does (not their mean, as NumPy does).

>>> import shendu as sd
>>> x = sd.tensor([[3.0, 1.0, 2.0], [9.0, 7.0, 8.0]])
>>> sd.median(x, dim=1)
ValuesIndices(values=tensor([2., 8.]), indices=tensor([2, 2]))
>>> sd.quantile(x[0], 0.25)
tensor(1.5000)
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..autograd.function import Function
from ..errors import ArgumentError, DTypeError, ShapeError
from ..tensor import Tensor
from ._util import norm_dim, pick, xp_of
from .movement import movedim, reshape, squeeze, unsqueeze
from .reduce import ValuesIndices
from .selection import gather, sort

__all__ = ["aminmax", "cummax", "cummin", "cumprod", "logcumsumexp", "median", "mode",
           "nanmean", "nanmedian", "nanquantile", "nansum", "quantile", "std_mean", "var_mean"]


# ---------------------------------------------------------------------- cumprod
class Cumprod(Function):
    """Running product along ``axis``. The gradient is exact also when the input holds
    zeros: with z the first zero of a slice, position k < z gets
    ``sum_{j>=k} g_j out_j / x_k``, position z gets ``sum_{j>=z} g_j prod_{i<=j, i!=z} x_i``,
    and positions after z get 0."""

    @staticmethod
    def forward(ctx, a, axis):
        out = xp_of(a).cumprod(a, axis=axis)
        ctx.save_for_backward(a, out)
        ctx.axis = axis
        return out

    @staticmethod
    def _parts(a, axis):
        """(x, position, first-zero position, x with that zero set to 1, safe x) with the
        axis moved last."""
        xp = xp_of(a)
        x = xp.moveaxis(a, axis, -1)
        n = x.shape[-1]
        pos = xp.arange(n)
        zero = x == 0
        z = xp.where(zero.any(axis=-1), zero.argmax(axis=-1), n)[..., None]
        x_skip = xp.where(pos == z, 1, x).astype(x.dtype, copy=False)
        x_safe = xp.where(zero, 1, x).astype(x.dtype, copy=False)
        return x, pos, z, x_skip, x_safe

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved_tensors
        xp = xp_of(a)
        x, pos, z, x_skip, x_safe = Cumprod._parts(a, ctx.axis)
        gm = xp.moveaxis(g, ctx.axis, -1)
        om = xp.moveaxis(out, ctx.axis, -1)
        rev_cumsum = xp.flip(xp.cumsum(xp.flip(gm * om, -1), axis=-1), -1)
        before = xp.where(pos < z, rev_cumsum / x_safe, 0)
        skip_prod = xp.cumprod(x_skip, axis=-1)  # prod_{i<=j, i!=z} x_i
        at_zero = (gm * skip_prod * (pos >= z)).sum(axis=-1, keepdims=True)
        gx = xp.where(pos == z, at_zero, before).astype(g.dtype, copy=False)
        return xp.moveaxis(gx, -1, ctx.axis)

    @staticmethod
    def jvp(ctx, da):
        a, out = ctx.saved
        xp = xp_of(a)
        x, pos, z, x_skip, x_safe = Cumprod._parts(a, ctx.axis)
        dm = xp.moveaxis(da, ctx.axis, -1)
        om = xp.moveaxis(out, ctx.axis, -1)
        before = om * xp.cumsum(dm / x_safe, axis=-1)
        dz = xp.take_along_axis(dm, xp.minimum(z, x.shape[-1] - 1), axis=-1)
        after = dz * xp.cumprod(x_skip, axis=-1)
        t = xp.where(pos < z, before, after).astype(da.dtype, copy=False)
        return xp.moveaxis(t, -1, ctx.axis)


def cumprod(input, dim=None, *, axis=None, dtype=None):
    """The running product along ``dim``: ``out[i] = x[0] * x[1] * ... * x[i]``.

    >>> import shendu as sd
    >>> sd.cumprod(sd.tensor([1.0, 2.0, 3.0]), dim=0)
    tensor([1., 2., 6.])
    """
    dim = pick("cumprod", dim, axis)
    if dim is None:
        raise TypeError("cumprod: missing the dimension (dim=...)")
    if dtype is not None:
        input = input.type(dtype)
    elif input._data.dtype.kind in "biu":
        input = input.type(np.int64)  # as PyTorch: integer products accumulate in int64
    if input.ndim == 0:
        return input.clone()
    return Cumprod.apply(input, axis=norm_dim(dim, input.ndim, "cumprod"))


# ---------------------------------------------------------------------- median and mode
def _last(input, dim, op):
    """``input`` with ``dim`` moved last (flattened when ``dim`` is None), and the dim."""
    if dim is None:
        return reshape(input, -1), None
    d = norm_dim(dim, input.ndim, op)
    return (movedim(input, d, -1) if input.ndim else reshape(input, 1)), d


def _finish(t, d, keepdim, ndim):
    """Undo ``_last`` for a result with the reduced axis already removed."""
    if d is None or ndim == 0:
        return t
    t = movedim(unsqueeze(t, -1), -1, d)
    return t if keepdim else squeeze(t, d)


def _median(op, input, dim, keepdim, ignore_nan):
    if input.numel() == 0 and (dim is None or input.ndim == 0 or input.shape[dim] == 0):
        raise IndexError(f"{op}: cannot take the median of an empty tensor "
                         f"(shape {tuple(input.shape)})")
    x, d = _last(input, dim, op)
    xp = xp_of(x._data)
    s, order = sort(x, -1)  # NaN sorts last
    nan = xp.isnan(s._data) if s._data.dtype.kind == "f" else xp.zeros(s.shape, bool)
    n = s.shape[-1]
    if ignore_nan:
        count = n - nan.sum(axis=-1, keepdims=True)
        k = xp.maximum(count - 1, 0) // 2  # an all-NaN slice gives its first NaN
    else:
        # a NaN anywhere makes the median NaN: pick the first NaN (after the numbers)
        first_nan = n - nan.sum(axis=-1, keepdims=True)
        k = xp.where(nan.any(axis=-1, keepdims=True), first_nan, (n - 1) // 2)
    k = k.astype(np.int64)
    values = squeeze(gather(s, -1, Tensor._wrap(k)), -1)
    indices = Tensor._wrap(xp.take_along_axis(order._data, k, axis=-1)[..., 0])
    if d is None:
        return values
    return ValuesIndices(_finish(values, d, keepdim, input.ndim),
                         _finish(indices, d, keepdim, input.ndim))


def median(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """The median: the lower of the two middle values for an even count (as PyTorch).

    Without ``dim`` a 0-d tensor over all elements; with ``dim`` a ``(values, indices)``
    named tuple. A NaN in a slice makes its median NaN (see ``nanmedian``).
    """
    return _median("median", input, pick("median", dim, axis), keepdim or keepdims, False)


def nanmedian(input, dim=None, keepdim=False, *, axis=None, keepdims=False):
    """``median`` ignoring NaN (NaN only for an all-NaN slice)."""
    return _median("nanmedian", input, pick("nanmedian", dim, axis), keepdim or keepdims, True)


def mode(input, dim=-1, keepdim=False):
    """The most frequent value along ``dim`` (the smallest one on a tie) and the index of
    its last occurrence, as a ``(values, indices)`` named tuple (as PyTorch on CPU).

    >>> import shendu as sd
    >>> sd.mode(sd.tensor([3, 1, 3, 2, 1]))
    ValuesIndices(values=tensor(1), indices=tensor(4))
    """
    if input.ndim and input.shape[norm_dim(dim, input.ndim, "mode")] == 0:
        raise IndexError(f"mode: dimension {dim} of shape {tuple(input.shape)} is empty")
    x, d = _last(input, dim, "mode")
    a = x._data
    xp = xp_of(a)
    n = a.shape[-1]
    s = xp.sort(a, axis=-1)
    # run lengths in the sorted rows: the end of each run holds its length
    new_run = xp.ones(s.shape, bool)
    new_run[..., 1:] = s[..., 1:] != s[..., :-1]
    start = xp.maximum.accumulate(xp.where(new_run, xp.arange(n), 0), axis=-1)
    length = xp.arange(n) - start + 1
    best = length.argmax(axis=-1)[..., None]  # first maximum: the smallest value on a tie
    value = xp.take_along_axis(s, best, axis=-1)
    # index of the value's last occurrence in the original order
    pos = xp.where(a == value, xp.arange(n), -1).max(axis=-1, keepdims=True)
    values = squeeze(gather(x, -1, Tensor._wrap(pos)), -1)
    indices = Tensor._wrap(pos[..., 0].astype(np.int64))
    return ValuesIndices(_finish(values, d, keepdim, input.ndim),
                         _finish(indices, d, keepdim, input.ndim))


# ---------------------------------------------------------------------- quantile
_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(op, input, q, dim, keepdim, interpolation, ignore_nan):
    if input._data.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point input, got {input.dtype}")
    if interpolation not in _INTERPOLATIONS:
        raise ArgumentError(f"{op}: interpolation must be one of {_INTERPOLATIONS}, "
                            f"got {interpolation!r}")
    xp = xp_of(input._data)
    scalar_q = not isinstance(q, Tensor) and np.ndim(q) == 0
    qa = xp.asarray(q._data if isinstance(q, Tensor) else q, dtype=input._data.dtype)
    if qa.ndim > 1:
        raise ShapeError(f"{op}: q must be a number or a 1-D tensor, got shape {qa.shape}")
    qa = qa.reshape(-1)
    if qa.size and (bool((qa < 0).any()) or bool((qa > 1).any())):
        raise ArgumentError(f"{op}: q values must be in [0, 1], got {qa.tolist()}")
    x, d = _last(input, dim, op)
    if x.shape[-1] == 0:
        raise IndexError(f"{op}: cannot take quantiles of an empty dimension "
                         f"(input shape {tuple(input.shape)})")
    s = sort(x, -1).values  # NaN sorts last
    nan = xp.isnan(s._data)
    n = s.shape[-1]
    count = (n - nan.sum(axis=-1, keepdims=True)) if ignore_nan else xp.full(
        s.shape[:-1] + (1,), n)
    pos = qa * (xp.maximum(count, 1) - 1).astype(qa.dtype)  # (..., nq)
    lo = xp.floor(pos)
    hi = xp.ceil(pos)
    if interpolation == "lower":
        hi = lo
    elif interpolation == "higher":
        lo = hi
    elif interpolation == "nearest":
        lo = hi = xp.round(pos)  # round half to even, as PyTorch
    v_lo = gather(s, -1, Tensor._wrap(lo.astype(np.int64)))
    v_hi = gather(s, -1, Tensor._wrap(hi.astype(np.int64)))
    if interpolation == "midpoint":
        w = xp.where(hi > lo, 0.5, 0.0).astype(qa.dtype)
    else:
        w = (pos - lo).astype(qa.dtype)
    out = v_lo + (v_hi - v_lo) * Tensor._wrap(w)
    # NaN where a slice holds NaN (quantile) or holds only NaN (nanquantile)
    bad = (count == 0) if ignore_nan else nan.any(axis=-1, keepdims=True)
    if bool(bad.any()):
        out = out.masked_fill(Tensor._wrap(xp.broadcast_to(bad, out.shape)), float("nan"))
    out = movedim(out, -1, 0)  # (nq, ...)
    if d is None:
        if keepdim:
            out = reshape(out, (out.shape[0],) + (1,) * input.ndim)
    else:
        out = movedim(unsqueeze(out, -1), -1, d + 1)
        if not keepdim:
            out = squeeze(out, d + 1)
    return squeeze(out, 0) if scalar_q else out


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The ``q``-quantiles of ``input`` along ``dim`` (of all elements when ``dim`` is None).

    ``q`` is a number or a 1-D tensor in [0, 1]; a tensor ``q`` adds a leading dimension of
    its length. ``interpolation`` is one of 'linear', 'lower', 'higher', 'midpoint',
    'nearest'. A slice holding NaN gives NaN (see ``nanquantile``).
    """
    return _quantile("quantile", input, q, dim, keepdim, interpolation, False)


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """``quantile`` ignoring NaN (NaN only for an all-NaN slice)."""
    return _quantile("nanquantile", input, q, dim, keepdim, interpolation, True)



# ---------------------------------------------------------------------- NaN-aware and paired
def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """``sum`` treating NaN as zero (NaN elements get zero gradient)."""
    from .compare import isnan
    from .elementwise import where

    x = where(isnan(input), 0.0, input) if input._data.dtype.kind == "f" else input
    return x.sum(dim=dim, keepdim=keepdim, dtype=dtype)


def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """``mean`` over the non-NaN elements (NaN for an all-NaN slice)."""
    from .compare import isnan, logical_not

    if input._data.dtype.kind != "f":
        raise DTypeError(f"nanmean: expected a floating-point tensor, got {input.dtype}")
    count = logical_not(isnan(input)).type(input.dtype).sum(dim=dim, keepdim=keepdim)
    with np.errstate(invalid="ignore"):  # an all-NaN slice is 0 / 0: NaN, as PyTorch
        return nansum(input, dim, keepdim, dtype=dtype) / count


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(var, mean)`` with ``var``'s arguments, as one call."""
    return (input.var(dim, unbiased, keepdim, correction=correction),
            input.mean(dim=dim, keepdim=keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(std, mean)`` with ``std``'s arguments, as one call."""
    return (input.std(dim, unbiased, keepdim, correction=correction),
            input.mean(dim=dim, keepdim=keepdim))


MinMax = namedtuple("MinMax", ["min", "max"])


def aminmax(input, *, dim=None, keepdim=False):
    """``(min, max)`` of ``input`` (along ``dim``) as a named tuple."""
    from .reduce import amax, amin

    return MinMax(amin(input, dim=dim, keepdim=keepdim), amax(input, dim=dim, keepdim=keepdim))


def _cumulative_extreme(op, input, dim, largest):
    d = norm_dim(dim, input.ndim, op)
    if input.ndim == 0:
        return ValuesIndices(input.clone(), Tensor._wrap(np.zeros((), np.int64)))
    a = input._data
    xp = xp_of(a)
    x = xp.moveaxis(a, d, -1)
    running = (xp.maximum if largest else xp.minimum).accumulate(x, axis=-1)
    pos = xp.arange(x.shape[-1])
    # the last position (so far) holding the running extreme, as PyTorch
    idx = xp.maximum.accumulate(xp.where(x == running, pos, 0), axis=-1)
    idx = xp.moveaxis(idx, -1, d).astype(np.int64)
    return ValuesIndices(gather(input, d, Tensor._wrap(idx)), Tensor._wrap(idx))


def cummax(input, dim):
    """Running maximum along ``dim`` and the index where it was reached, as a named tuple.

    >>> import shendu as sd
    >>> sd.cummax(sd.tensor([1, 3, 2, 5]), 0).values
    tensor([1, 3, 3, 5])
    """
    return _cumulative_extreme("cummax", input, dim, True)


def cummin(input, dim):
    """Running minimum along ``dim`` and the index where it was reached, as a named tuple."""
    return _cumulative_extreme("cummin", input, dim, False)


# ---------------------------------------------------------------------- logcumsumexp
def _log_cumsum_exp(xp, a, axis, reverse=False):
    """``log(cumsum(exp(a)))`` along ``axis`` without overflow (a running logaddexp)."""
    if reverse:
        return xp.flip(xp.logaddexp.accumulate(xp.flip(a, axis), axis=axis), axis)
    return xp.logaddexp.accumulate(a, axis=axis)


def _signed_log_sum(xp, w, log_scale, axis, reverse):
    """``sum w_i exp(log_scale_i)`` accumulated along ``axis``, computed in log space for
    the positive and negative parts of ``w`` separately: returns (log of positive part,
    log of negative part)."""
    with np.errstate(divide="ignore"):
        log_pos = xp.where(w > 0, xp.log(xp.where(w > 0, w, 1)), -np.inf) + log_scale
        log_neg = xp.where(w < 0, xp.log(xp.where(w < 0, -w, 1)), -np.inf) + log_scale
    return (_log_cumsum_exp(xp, log_pos, axis, reverse),
            _log_cumsum_exp(xp, log_neg, axis, reverse))


class LogCumSumExp(Function):
    """``out_j = log(sum_{i<=j} exp(x_i))``. The derivative ``d out_j / d x_i =
    exp(x_i - out_j)`` is at most 1; sums of it are taken in log space (split by the sign of
    the incoming gradient) so that neither very large nor very small inputs overflow."""

    @staticmethod
    def forward(ctx, a, axis):
        xp = xp_of(a)
        out = _log_cumsum_exp(xp, a, axis)
        ctx.save_for_backward(a, out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved_tensors
        xp = xp_of(a)
        # grad_i = sum_{j>=i} g_j exp(x_i - out_j)
        pos, neg = _signed_log_sum(xp, g, -out, ctx.axis, reverse=True)
        with np.errstate(over="ignore", invalid="ignore"):
            return (xp.exp(a + pos) - xp.exp(a + neg)).astype(g.dtype, copy=False)

    @staticmethod
    def jvp(ctx, da):
        a, out = ctx.saved
        xp = xp_of(a)
        # t_j = sum_{i<=j} dx_i exp(x_i - out_j)
        pos, neg = _signed_log_sum(xp, da, a, ctx.axis, reverse=False)
        return (xp.exp(pos - out) - xp.exp(neg - out)).astype(da.dtype, copy=False)


def logcumsumexp(input, dim):
    """``log(cumsum(exp(input)))`` along ``dim``, computed without overflow.

    >>> import shendu as sd
    >>> sd.logcumsumexp(sd.tensor([0.0, 0.0]), 0)
    tensor([0.0000, 0.6931])
    """
    if input._data.dtype.kind != "f":
        raise DTypeError(f"logcumsumexp: expected a floating-point tensor, got {input.dtype}")
    if input.ndim == 0:
        return input.clone()
    return LogCumSumExp.apply(input, axis=norm_dim(dim, input.ndim, "logcumsumexp"))

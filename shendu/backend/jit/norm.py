"""Batch normalisation over channel blocks: the statistics, the normalisation and the
backward, each one pass per channel over memory instead of NumPy's several.

``x`` is viewed as (A, C, B) C-contiguous: A = 1 and B = N*H*W for a channel-major
activation (stored (C, N, H, W), which is how convolutions hand them over), A = N and
B = H*W for an NCHW one. Channel c's values are then A runs of B elements; the threads
split the channels, so each channel's data is read from memory once and the second pass
over it (variance about the mean, the input gradient) finds it in the cache.

Sums are accumulated in float64 whatever the data's dtype, and the variance is the
two-pass one (about the mean already computed), as NumPy's ``var``.
"""
from __future__ import annotations

from numba import njit, prange

from .elementwise import HELPER, kernel

# The sums reassociated, so that they vectorise (NaN and inf still propagate).
_REDUCE = dict(HELPER, fastmath={"reassoc", "nsz"})


@njit(**_REDUCE)
def _sum(row):
    s = 0.0
    for j in range(row.size):
        s += row[j]
    return s


@njit(**_REDUCE)
def _squares_about(row, m):
    q = 0.0
    for j in range(row.size):
        d = row[j] - m
        q += d * d
    return q


@njit(**_REDUCE)
def _sums_for_grad(g, x, m):
    """sum(g) and sum(g * (x - m))."""
    s1 = 0.0
    s2 = 0.0
    for j in range(g.size):
        v = g[j]
        s1 += v
        s2 += v * (x[j] - m)
    return s1, s2


@kernel
def batch_norm_stats(x, mean, var):
    """``mean[c]``, ``var[c]`` (biased) of channel c of ``x`` (A, C, B)."""
    a_, c_, b_ = x.shape
    n = a_ * b_
    for c in prange(c_):
        s = 0.0
        for a in range(a_):
            s += _sum(x[a, c])
        m = s / n
        q = 0.0
        for a in range(a_):
            q += _squares_about(x[a, c], m)
        mean[c] = m
        var[c] = q / n


@kernel
def channel_affine(x, shift_in, scale, shift_out, out):
    """``out = (x - shift_in[c]) * scale[c] + shift_out[c]`` over (A, C, B) arrays: the
    normalisation ((x - mean) * invstd * w + b) and the eval-mode input gradient."""
    a_, c_, b_ = x.shape
    for c in prange(c_):
        m, s, t = shift_in[c], scale[c], shift_out[c]
        for a in range(a_):
            src, dst = x[a, c], out[a, c]
            for j in range(b_):
                dst[j] = (src[j] - m) * s + t


@kernel
def batch_norm_backward(g, x, mean, invstd, scale, training, gx, gsum, gxhat_sum):
    """From the output gradient ``g`` and the input ``x`` (both (A, C, B)):
    ``gsum[c]`` = sum of g, ``gxhat_sum[c]`` = sum of g * xhat (xhat = (x - mean) * invstd;
    the bias and weight gradients), and, unless ``gx`` is empty, the input gradient
    ``gx = (g - gsum/n - xhat * gxhat_sum/n) * scale`` in training (``scale`` = invstd * w),
    ``g * scale`` in eval."""
    a_, c_, b_ = g.shape
    n = a_ * b_
    want_x = gx.size > 0
    for c in prange(c_):
        m = mean[c]
        s1 = 0.0
        s2 = 0.0
        for a in range(a_):
            p1, p2 = _sums_for_grad(g[a, c], x[a, c], m)
            s1 += p1
            s2 += p2
        istd = invstd[c]
        gsum[c] = s1
        gxhat_sum[c] = s2 * istd
        if not want_x:
            continue
        k = scale[c]
        if training:
            # gx = g*k - (gsum/n)*k - (x - m) * (istd^2 * s2 / n) * k, in x's dtype
            shift = scale.dtype.type(k * (s1 / n))
            slope = scale.dtype.type(k * (istd * istd * s2 / n))
            for a in range(a_):
                gr, xr, dst = g[a, c], x[a, c], gx[a, c]
                for j in range(b_):
                    dst[j] = gr[j] * k - shift - (xr[j] - m) * slope
        else:
            for a in range(a_):
                gr, dst = g[a, c], gx[a, c]
                for j in range(b_):
                    dst[j] = gr[j] * k


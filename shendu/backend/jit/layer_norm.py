"""LayerNorm over the rows of an (M, N) array, forward and backward.

The NumPy reference (``backend.cpu.layer_norm``) makes a pass per operation (mean,
centre, square, mean, scale, then weight and bias), each on one thread. These kernels
take a share of the rows per thread and keep each row in cache across its passes.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .elementwise import kernel


@kernel
def layer_norm_forward(x, w, b, affine, eps, out, xhat, invstd):
    """For C-contiguous (M, N) ``x``: ``xhat = (x - mean) * invstd`` per row, ``invstd =
    1 / sqrt(var + eps)`` (M,), and ``out = xhat * w + b`` when ``affine`` (else ``out``
    is not written)."""
    m, n = x.shape
    one = x.dtype.type(1)
    for i in prange(m):
        row, h = x[i], xhat[i]
        mean = row.dtype.type(0)
        for j in range(n):
            mean += row[j]
        mean /= n
        var = row.dtype.type(0)
        for j in range(n):
            d = row[j] - mean
            var += d * d
        r = one / np.sqrt(var / n + eps)
        invstd[i] = r
        for j in range(n):
            h[j] = (row[j] - mean) * r
        if affine:
            o = out[i]
            for j in range(n):
                o[j] = h[j] * w[j] + b[j]


@kernel
def layer_norm_backward(g, xhat, invstd, w, affine, gx, gw_parts, gb_parts, threads):
    """``gx`` (M, N) from the output gradient ``g`` and the forward's ``xhat`` and
    ``invstd``: ``(gh - mean(gh) - xhat * mean(gh * xhat)) * invstd`` per row with
    ``gh = g * w`` (``g`` when not ``affine``); thread t adds its rows' ``g * xhat`` and
    ``g`` into ``gw_parts[t]`` and ``gb_parts[t]`` (the caller sums the parts)."""
    m, n = g.shape
    for t in prange(threads):
        gw, gb = gw_parts[t], gb_parts[t]
        gw[:] = 0
        gb[:] = 0
        for i in range(t * m // threads, (t + 1) * m // threads):
            gr, h, out = g[i], xhat[i], gx[i]
            s1 = g.dtype.type(0)
            s2 = g.dtype.type(0)
            for j in range(n):
                gh = gr[j] * w[j] if affine else gr[j]
                s1 += gh
                s2 += gh * h[j]
                gw[j] += gr[j] * h[j]
                gb[j] += gr[j]
            s1 /= n
            s2 /= n
            r = invstd[i]
            for j in range(n):
                gh = gr[j] * w[j] if affine else gr[j]
                out[j] = (gh - s1 - h[j] * s2) * r

"""Max pooling with non-overlapping windows (kernel size = stride, no padding), over
image planes: ``x`` is (P, H, W) with P = N*C in whatever order the planes are stored."""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from .elementwise import kernel


@kernel
def max_pool_tiled_forward(x, kh, kw, out, code):
    """``out[p, i, j]`` = max of window (i, j); ``code`` = its flat offset in the window
    (the first maximum; a NaN wins and a later NaN replaces it, as in PyTorch)."""
    planes, oh, ow = out.shape
    for p in prange(planes):
        for i in range(oh):
            for j in range(ow):
                best = x[p, i * kh, j * kw]
                at = 0
                for a in range(kh):
                    row = x[p, i * kh + a]
                    for b in range(kw):
                        v = row[j * kw + b]
                        if v > best or math.isnan(v):
                            best = v
                            at = a * kw + b
                out[p, i, j] = best
                code[p, i, j] = at


@kernel
def max_pool2x2_forward(x, out, code, threads, relu):
    """``max_pool_tiled_forward`` for 2x2 windows (the common case), on ``threads``
    threads. Each pair of input rows is first split into its even and odd columns, so the
    comparisons run on contiguous vectors as selects (much faster than loading the
    stride-2 pairs inside the comparison loop). With ``relu``, a ReLU after the max:
    windows whose max is not positive give 0 (a NaN stays) and code 4 (no element: no
    gradient)."""
    planes, oh, ow = out.shape
    for t in prange(threads):
        a0, a1 = np.empty(ow, x.dtype), np.empty(ow, x.dtype)
        b0, b1 = np.empty(ow, x.dtype), np.empty(ow, x.dtype)
        for p in range(t * planes // threads, (t + 1) * planes // threads):
            for i in range(oh):
                top, bottom = x[p, 2 * i], x[p, 2 * i + 1]
                for j in range(ow):
                    a0[j], a1[j] = top[2 * j], top[2 * j + 1]
                    b0[j], b1[j] = bottom[2 * j], bottom[2 * j + 1]
                orow, crow = out[p, i], code[p, i]
                for j in range(ow):
                    # v != v: a NaN wins, and a later NaN replaces an earlier one
                    best, v = a0[j], a1[j]
                    take = (v > best) | (v != v)
                    best = v if take else best
                    at = np.uint8(1) if take else np.uint8(0)
                    v = b0[j]
                    take = (v > best) | (v != v)
                    best = v if take else best
                    at = np.uint8(2) if take else at
                    v = b1[j]
                    take = (v > best) | (v != v)
                    orow[j] = v if take else best
                    crow[j] = np.uint8(3) if take else at
                if relu:  # a loop of its own: inside the one above it stopped vectorising
                    for j in range(ow):
                        best = orow[j]
                        crow[j] = crow[j] if best > 0 else np.uint8(4)
                        orow[j] = 0 if best <= 0 else best


@kernel
def max_pool2x2_backward(g, code, gx, threads):
    """``max_pool_tiled_backward`` for 2x2 windows covering ``gx`` exactly."""
    planes, oh, ow = g.shape
    for t in prange(threads):
        for p in range(t * planes // threads, (t + 1) * planes // threads):
            for i in range(oh):
                grow, crow = g[p, i], code[p, i]
                top, bottom = gx[p, 2 * i], gx[p, 2 * i + 1]
                for j in range(ow):
                    v, k = grow[j], crow[j]
                    top[2 * j] = v if k == 0 else 0
                    top[2 * j + 1] = v if k == 1 else 0
                    bottom[2 * j] = v if k == 2 else 0
                    bottom[2 * j + 1] = v if k == 3 else 0


@kernel
def max_pool_tiled_backward(g, code, kh, kw, gx):
    """Each input element gets the gradient of its window if it held the maximum, else 0
    (also the rows and columns that no window covers)."""
    planes, oh, ow = g.shape
    for p in prange(planes):
        for i in range(oh):
            grow = g[p, i]
            crow = code[p, i]
            for a in range(kh):
                row = gx[p, i * kh + a]
                for j in range(ow):
                    v = grow[j]
                    k = crow[j] - a * kw
                    for b in range(kw):
                        row[j * kw + b] = v if k == b else 0
                row[ow * kw:] = 0
        gx[p, oh * kh:] = 0

"""Max pooling with non-overlapping windows (kernel size = stride, no padding), over
image planes: ``x`` is (P, H, W) with P = N*C in whatever order the planes are stored."""
from __future__ import annotations

import math

from numba import njit, prange

from .elementwise import KERNEL


@njit(**KERNEL)
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


@njit(**KERNEL)
def max_pool2x2_forward(x, out, code):
    """``max_pool_tiled_forward`` for 2x2 windows, unrolled (the common case)."""
    planes, oh, ow = out.shape
    for p in prange(planes):
        for i in range(oh):
            top = x[p, 2 * i]
            bottom = x[p, 2 * i + 1]
            for j in range(ow):
                best = top[2 * j]
                at = 0
                v = top[2 * j + 1]
                if v > best or math.isnan(v):
                    best = v
                    at = 1
                v = bottom[2 * j]
                if v > best or math.isnan(v):
                    best = v
                    at = 2
                v = bottom[2 * j + 1]
                if v > best or math.isnan(v):
                    best = v
                    at = 3
                out[p, i, j] = best
                code[p, i, j] = at


@njit(**KERNEL)
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

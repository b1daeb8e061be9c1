"""Nearest-neighbour upsampling by whole factors (each pixel repeated ``fh x fw`` times) and
its gradient, over image planes: arrays are (P, H, W) with P = N*C in storage order."""
from __future__ import annotations

import numpy as np
from numba import prange

from .elementwise import kernel


@kernel
def repeat_nearest_forward(x, fh, fw, threads, out):
    """``out[p, i*fh + a, j*fw + b] = x[p, i, j]``: each input row is widened once, then
    copied to the other ``fh - 1`` rows it fills."""
    planes, h, w = x.shape
    for t in prange(threads):
        for p in range(t * planes // threads, (t + 1) * planes // threads):
            for i in range(h):
                src, first = x[p, i], out[p, i * fh]
                for j in range(w):
                    v = src[j]
                    for b in range(fw):
                        first[j * fw + b] = v
                for a in range(1, fh):
                    row = out[p, i * fh + a]
                    for q in range(w * fw):
                        row[q] = first[q]


@kernel
def repeat_nearest_backward(g, fh, fw, threads, gx):
    """``gx[p, i, j]`` = the sum of ``g`` over the ``fh x fw`` block pixel (i, j) filled:
    the block's rows added first (vectors), then each run of ``fw`` neighbours."""
    planes, h, w = gx.shape
    for t in prange(threads):
        rows = np.empty(w * fw, g.dtype)
        for p in range(t * planes // threads, (t + 1) * planes // threads):
            for i in range(h):
                top = g[p, i * fh]
                for q in range(w * fw):
                    rows[q] = top[q]
                for a in range(1, fh):
                    row = g[p, i * fh + a]
                    for q in range(w * fw):
                        rows[q] += row[q]
                dst = gx[p, i]
                for j in range(w):
                    total = rows[j * fw]
                    for b in range(1, fw):
                        total += rows[j * fw + b]
                    dst[j] = total

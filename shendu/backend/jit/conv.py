"""Patch matrices for convolution (see ``shendu/ops/_conv_patches.py`` for the layouts).

The NumPy path pads the input into a scratch array and then copies ``kh*kw`` strided
views; here padding is never materialised: rows and columns that fall outside the image
are written as zeros (im2col) or skipped (col2im), and each copied row is one contiguous
run when the stride is 1.
"""
from __future__ import annotations

from numba import njit

from .elementwise import KERNEL


@njit(**KERNEL)
def _valid_cols(ow, sw, off, width):
    """The range [lo, hi) of output columns x whose input column x*sw + off lies in
    [0, width)."""
    lo = 0 if off >= 0 else (-off + sw - 1) // sw
    last = width - 1 - off  # x*sw <= last
    hi = 0 if last < 0 else min(ow, last // sw + 1)
    return min(lo, ow), max(hi, min(lo, ow))


@njit(**KERNEL)
def im2col(src, channel_major, n0, kh, kw, sh, sw, dh, dw, pt, pl, cols):
    """Fill ``cols`` (C, kh, kw, m, OH, OW) with the patches of images ``n0:n0+m`` of the
    (N, C, H, W) input whose C-contiguous storage is ``src``: (C, N, H, W) when
    ``channel_major`` else (N, C, H, W). ``pt``/``pl``: zero padding above and left."""
    c_, _, _, m, oh, ow = cols.shape
    h, w = src.shape[2], src.shape[3]
    for c in range(c_):
        for i in range(kh):
            for j in range(kw):
                lo, hi = _valid_cols(ow, sw, j * dw - pl, w)
                off = j * dw - pl
                for n in range(m):
                    img = src[c, n0 + n] if channel_major else src[n0 + n, c]
                    dst = cols[c, i, j, n]
                    for y in range(oh):
                        row = dst[y]
                        iy = y * sh - pt + i * dh
                        if iy < 0 or iy >= h:
                            row[:] = 0
                            continue
                        srow = img[iy]
                        row[:lo] = 0
                        for x in range(lo, hi):
                            row[x] = srow[x * sw + off]
                        row[hi:] = 0


@njit(**KERNEL)
def col2im(cols, n0, kh, kw, sh, sw, dh, dw, pt, pl, dst):
    """The adjoint of ``im2col`` into images ``n0:n0+m`` of ``dst`` (C, N, H, W),
    C-contiguous: each image plane is *set* to the sum of the patch entries that read it
    (entries that read the padding are dropped)."""
    c_, _, _, m, oh, ow = cols.shape
    h, w = dst.shape[2], dst.shape[3]
    for c in range(c_):
        for n in range(m):
            plane = dst[c, n0 + n]
            plane[:, :] = 0
            for i in range(kh):
                for j in range(kw):
                    lo, hi = _valid_cols(ow, sw, j * dw - pl, w)
                    off = j * dw - pl
                    src = cols[c, i, j, n]
                    for y in range(oh):
                        iy = y * sh - pt + i * dh
                        if iy < 0 or iy >= h:
                            continue
                        prow = plane[iy]
                        srow = src[y]
                        for x in range(lo, hi):
                            prow[x * sw + off] += srow[x]

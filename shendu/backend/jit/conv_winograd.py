"""Stride-1 3x3 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray,
2016): 16 multiplications per 2x2 output block and channel pair where the direct
convolution takes 36, so 2.25 times fewer.

An output block Y (2x2) of one output channel is, summed over input channels,

    Y = A^T [ (G g G^T) * (B^T d B) ] A

where d is the 4x4 input tile under the block, g the 3x3 filter and ``*`` elementwise:

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

The sum over input channels of the elementwise products is, for each of the 16 positions
``xi`` of the 4x4 transformed tile, a matrix product: M[xi] (tiles, O) = V[xi] (tiles, C)
@ U[xi] (C, O), with U = G g G^T per channel pair (``winograd_filter``) and V = B^T d B
per tile and channel. So the work is 16 GEMMs with K = C, which MKL runs near its peak,
between two transforms that only add and subtract (G halves, exactly): the rounding is
that of the direct sum plus a few additions per value.

The transforms run along rows of tiles with each pixel's channels side by side, so that
every loop is long and contiguous: each thread copies a chunk of images into its scratch
channels-last, padded, even and odd columns apart (``_channels_last``); then a tile row's
B^T d for all its tiles is a sum of two whole padded rows, and (B^T d) B a sum of the even
or odd half of such a row and the same half one column on (``_input_tiles``). The inverse
transform works on the products the same way and writes the output block rows back
channel-major, with the bias and ReLU (``_output_tiles``). Layouts as in ``conv.py``: the
input's C-contiguous storage is (C, N, H, W) when ``channel_major`` else (N, C, H, W); the
output is (O, N*OH*OW).

The input gradient of a stride-1 convolution is a convolution too: of the output
gradient, padded by 2 - p, with every filter turned 180 degrees and the channels swapped
(O in, C out). ``winograd_filter(w, turned=True, ...)`` transforms those filters from
``w`` as it stands, and the same kernel runs it. The weight gradient runs through the
direct kernels (``backend.cpu``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .conv_compact import _plane_at
from .elementwise import HELPER, kernel
from .mkl import N as _N_CONST
from .mkl import gemm_raw as _gemm
from .mkl import threads_here as _mkl_threads_here

_N = np.int64(_N_CONST)
# The 16 blocks of V and of M are this many elements further apart than their size: the
# transforms touch all 16 at once, and blocks a multiple of 4 KB apart would compete for
# the same few cache sets.
_SKEW = 16


@njit(**HELPER)
def _sizes(c, o, chunk, oh, ow):
    """Per thread: elements of the channels-last images, of V, of M, and of the rows
    the transforms work in."""
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    tiles = chunk * th * tw
    images = chunk * (2 * th + 2) * 2 * (tw + 1) * c
    return (images, 16 * (tiles * c + _SKEW), 16 * (tiles * o + _SKEW),
            (tw + 1) * (8 * c + 10 * o) + o * (oh * ow + _SKEW))


def winograd_scratch_size(c, o, chunk, oh, ow, threads) -> int:
    """Elements of scratch for ``threads`` threads taking ``chunk`` images at a time."""
    return threads * sum(_sizes.py_func(c, o, chunk, oh, ow))


@kernel
def winograd_filter(w, turned, u):
    """G g G^T for each (O, C, 3, 3) filter g of ``w`` (C-contiguous), position ``xi =
    4*row + column`` of the 4x4 result first: ``u`` (16, C, O), the (in, out) products of
    the convolution by ``w``; with ``turned``, ``u`` (16, O, C) for each filter turned 180
    degrees, the products of the convolution that gives the input gradient (O channels
    in, C out). Each input (each output, ``turned``) channel's filters are gathered into
    tap-major rows, so that the transform runs along them, vectorised."""
    o_, c_ = w.shape[0], w.shape[1]
    wf = w.reshape(-1)
    half = w.dtype.type(0.5)
    outer, n = (o_, c_) if turned else (c_, o_)
    for i in prange(outer):
        taps = np.empty((9, n), w.dtype)
        if turned:  # output channel i's filters, read in order, last tap first
            for j in range(n):
                for k in range(9):
                    taps[k, j] = wf[(i * c_ + j) * 9 + 8 - k]
        else:  # input channel i's filters, one from each output channel
            for j in range(n):
                for k in range(9):
                    taps[k, j] = wf[(j * c_ + i) * 9 + k]
        g = np.empty((3, n), w.dtype)
        for r in range(4):  # row r of G g, then row r of (G g) G^T
            for k in range(3):
                if r == 0 or r == 3:
                    src = taps[k] if r == 0 else taps[6 + k]
                    for j in range(n):
                        g[k, j] = src[j]
                else:
                    sign = half if r == 1 else -half
                    for j in range(n):
                        g[k, j] = half * (taps[k, j] + taps[6 + k, j]) + sign * taps[3 + k, j]
            # u indexed, not through views: views made in a prange loop count as aliases
            # of its arrays, and LLVM then leaves the loop unvectorised
            for j in range(n):
                a0, a1, a2 = g[0, j], g[1, j], g[2, j]
                u[4 * r, i, j] = a0
                u[4 * r + 1, i, j] = half * (a0 + a2) + half * a1
                u[4 * r + 2, i, j] = half * (a0 + a2) - half * a1
                u[4 * r + 3, i, j] = a2


@njit(**HELPER)
def _channels_last(x, channel_major, n0, m, pt, pl, hp, half, lines, xt):
    """Images ``n0 .. n0+m`` of ``x`` into ``xt`` (m, hp, 2, half, C) flat: padded pixel
    (r, q) of image n at [n, r, q % 2, q // 2], its channels side by side, the image's
    pixel (y, x) at padded (y + pt, x + pl). The border is left as it is (zero).
    ``lines`` (16, W): scratch. A block of 16 channels' rows is copied into it first (16
    contiguous copies), then written pixel by pixel as runs of 16 channels."""
    c_ = x.shape[0] if channel_major else x.shape[1]
    h, w = x.shape[2], x.shape[3]
    xf = x.reshape(-1)
    block = lines.shape[0]
    for n in range(m):
        for r in range(h):
            row = (n * hp + pt + r) * 2
            for c0 in range(0, c_, block):
                nc = min(block, c_ - c0)
                for cc in range(nc):
                    src = xf[_plane_at(x, channel_major, c0 + cc, n0 + n) + r * w:]
                    line = lines[cc]
                    for q in range(w):
                        line[q] = src[q]
                for q in range(w):
                    p = q + pl
                    dst = xt[((row + p % 2) * half + p // 2) * c_ + c0:]
                    for cc in range(nc):
                        dst[cc] = lines[cc, q]


@njit(**HELPER)
def _combine(dst, d, a, sa, b, sb, n):
    """``dst[d:d+n] = a[sa:sa+n] + b[sb:sb+n]``: one store stream per loop, and views
    indexed from 0 (no index that might be negative), so that LLVM vectorises it."""
    dv, av, bv = dst[d:d + n], a[sa:sa + n], b[sb:sb + n]
    for e in range(n):
        dv[e] = av[e] + bv[e]


@njit(**HELPER)
def _difference(dst, d, a, sa, b, sb, n):
    """``dst[d:d+n] = a[sa:sa+n] - b[sb:sb+n]``."""
    dv, av, bv = dst[d:d + n], a[sa:sa + n], b[sb:sb + n]
    for e in range(n):
        dv[e] = av[e] - bv[e]


@njit(**HELPER)
def _add3(dst, d, a, sa, b, sb, c, sc, n):
    """``dst[d:d+n] = a[sa:] + b[sb:] + c[sc:]`` over n elements."""
    dv, av, bv, cv = dst[d:d + n], a[sa:sa + n], b[sb:sb + n], c[sc:sc + n]
    for e in range(n):
        dv[e] = av[e] + bv[e] + cv[e]


@njit(**HELPER)
def _sub3(dst, d, a, sa, b, sb, c, sc, n):
    """``dst[d:d+n] = a[sa:] - b[sb:] - c[sc:]`` over n elements."""
    dv, av, bv, cv = dst[d:d + n], a[sa:sa + n], b[sb:sb + n], c[sc:sc + n]
    for e in range(n):
        dv[e] = av[e] - bv[e] - cv[e]


@njit(**HELPER)
def _input_tiles(xt, m, th, tw, hp, c_, rows, v):
    """``v`` (16, tiles, C) flat, block ``xi`` ``_SKEW`` elements past the last: B^T d B
    of every tile of the ``m`` images in ``xt`` (``_channels_last``), tile (k, t) of an
    image reading padded rows ``2k ..`` and columns ``2t ..``. ``rows`` (8, half*C):
    scratch, where B^T d of a tile row goes, even and odd columns apart."""
    half = tw + 1
    line = half * c_  # one parity of a padded row
    stride = m * th * tw * c_ + _SKEW
    for n in range(m):
        for k in range(th):
            at = (n * th + k) * tw * c_  # the tile row's first tile in each block of v
            for cp in range(2):  # rows of B^T d: row(2k) - row(2k+2), ...
                r0 = ((n * hp + 2 * k) * 2 + cp) * line
                r1, r2, r3 = r0 + 2 * line, r0 + 4 * line, r0 + 6 * line
                _difference(rows, (0 + cp) * line, xt, r0, xt, r2, line)
                _combine(rows, (2 + cp) * line, xt, r1, xt, r2, line)
                _difference(rows, (4 + cp) * line, xt, r2, xt, r1, line)
                _difference(rows, (6 + cp) * line, xt, r1, xt, r3, line)
            n_tw = tw * c_
            for a in range(4):  # columns: tile t reads even t, odd t, even t+1, odd t+1
                ev, od = 2 * a * line, (2 * a + 1) * line
                d = 4 * a * stride + at
                _difference(v, d, rows, ev, rows, ev + c_, n_tw)
                _combine(v, d + stride, rows, od, rows, ev + c_, n_tw)
                _difference(v, d + 2 * stride, rows, ev + c_, rows, od, n_tw)
                _difference(v, d + 3 * stride, rows, od, rows, od + c_, n_tw)


@njit(**HELPER)
def _output_tiles(mm, n0, m, bias, relu, oh, ow, th, tw, work, out):
    """A^T M A of every tile of images ``n0 .. n0+m`` from ``mm`` (16, tiles, O) flat into
    ``out`` (O, N*OH*OW), plus ``bias`` unless empty, then a ReLU if ``relu``. ``work``:
    scratch, 10*tw*O for rows of A^T M A and O*(OH*OW + _SKEW) for an image's planes."""
    o_, total = out.shape
    flat = out.reshape(-1)
    n_tw = tw * o_
    stride = m * th * tw * o_ + _SKEW
    p = oh * ow
    plane = p + _SKEW
    planes = work[10 * n_tw:10 * n_tw + o_ * plane]
    zero = mm.dtype.type(0)
    for n in range(m):
        for k in range(th):
            at = (n * th + k) * n_tw
            for b in range(4):  # rows of A^T M: m0 + m1 + m2, m1 - m2 - m3
                s0 = b * stride + at
                s1, s2, s3 = s0 + 4 * stride, s0 + 8 * stride, s0 + 12 * stride
                _add3(work, b * n_tw, mm, s0, mm, s1, mm, s2, n_tw)
                _sub3(work, (4 + b) * n_tw, mm, s1, mm, s2, mm, s3, n_tw)
            for a in range(2):  # columns, then the bias and ReLU
                y = 2 * k + a
                if y >= oh:
                    break
                t0, t1, t2, t3 = (4 * a) * n_tw, (4 * a + 1) * n_tw, (4 * a + 2) * n_tw, \
                    (4 * a + 3) * n_tw
                left, right = 8 * n_tw, 9 * n_tw
                _add3(work, left, work, t0, work, t1, work, t2, n_tw)
                _sub3(work, right, work, t1, work, t2, work, t3, n_tw)
                lv, rv = work[left:left + n_tw], work[right:right + n_tw]
                if bias.size or relu:
                    for t in range(tw):
                        lt, rt = lv[t * o_:(t + 1) * o_], rv[t * o_:(t + 1) * o_]
                        for o in range(o_):
                            b0 = bias[o] if bias.size else zero
                            v0, v1 = lt[o] + b0, rt[o] + b0
                            if relu:  # (a NaN stays NaN, as in the other kernels)
                                v0 = zero if v0 <= 0 else v0
                                v1 = zero if v1 <= 0 else v1
                            lt[o], rt[o] = v0, v1
                # into the image's planes (O, OH*OW) in the cache, rows _SKEW apart
                for t in range(tw):
                    lt, rt = lv[t * o_:(t + 1) * o_], rv[t * o_:(t + 1) * o_]
                    even = planes[y * ow + 2 * t:]
                    for o in range(o_):
                        even[o * plane] = lt[o]
                    if 2 * t + 1 < ow:
                        odd = planes[y * ow + 2 * t + 1:]
                        for o in range(o_):
                            odd[o * plane] = rt[o]
        # then a whole plane per channel into ``out``: written value by value, straight
        # from the tiles, the channels' rows (far apart) thrashed the cache and the TLB
        s = (n0 + n) * p
        for o in range(o_):
            dst, src = flat[o * total + s:o * total + s + p], planes[o * plane:]
            for q in range(p):
                dst[q] = src[q]


@kernel
def conv2d_forward_winograd(x, channel_major, u, bias, relu, pt, pl, oh, ow, chunk, threads,
                            scratch, out):
    """``out`` (O, N*OH*OW) = the stride-1 3x3 convolution of ``x`` (C channels) by the
    filters ``winograd_filter`` transformed into ``u`` (16, C, O), plus ``bias`` unless it
    is empty, then a ReLU if ``relu``, on up to ``threads`` threads, ``chunk`` images at a time.
    ``scratch``: ``winograd_scratch_size`` elements."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    _, c_, o_ = u.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    hp, half = 2 * th + 2, tw + 1
    n_xt, n_v, n_m, n_rows = _sizes(c_, o_, chunk, oh, ow)
    per = n_xt + n_v + n_m + n_rows
    for t in prange(threads):
        before = _mkl_threads_here(1)
        mine = scratch[t * per:(t + 1) * per]
        xt, v = mine[:n_xt], mine[n_xt:n_xt + n_v]
        mm, work = mine[n_xt + n_v:n_xt + n_v + n_m], mine[n_xt + n_v + n_m:per]
        xt[:] = 0  # the borders stay zero: the padding
        lines = np.empty((16, x.shape[3]), x.dtype)
        for n0 in range(t * chunk, n_img, threads * chunk):
            m = min(chunk, n_img - n0)
            tiles = m * th * tw
            _channels_last(x, channel_major, n0, m, pt, pl, hp, half, lines, xt)
            _input_tiles(xt, m, th, tw, hp, c_, work, v)
            for xi in range(16):  # M[xi] (tiles, O) = V[xi] (tiles, C) @ U[xi] (C, O)
                _gemm(_N, _N, tiles, o_, c_, v[xi * (tiles * c_ + _SKEW):], c_, u[xi], o_,
                      0.0, mm[xi * (tiles * o_ + _SKEW):], o_)
            _output_tiles(mm, n0, m, bias, relu, oh, ow, th, tw, work, out)
        _mkl_threads_here(before)

"""Stride-1 convolution, forward and backward, as per-thread im2col + MKL GEMM on chunks
of a few images, so that the patch matrix never leaves the thread's cache.

The NumPy path (``shendu/ops/_conv_patches.py``) builds the patch matrix of a whole batch
(5 MB for LeNet's first layer, 75 MB for a 32-channel CIFAR layer) and multiplies it in one
GEMM: the matrix is written to memory and read back, at memory speed. Here each thread
takes a chunk of images (``chunk``, sized so its patches fit in L2), builds its patches
in its own scratch, calls MKL's single-threaded GEMM on them (MKL runs sequentially
inside an OpenMP region) and moves on: the threads share nothing but the weights.

"Wide" patches. With stride 1 the patches of tap (i, j) for one image are the padded
image plane read from offset ``i*dh*Wp + j*dw`` on: one contiguous run if each output
row is allowed ``Wp`` columns instead of ``OW`` (the extra ``Wp - OW`` columns compute
values nobody reads). The copies then stream at full speed instead of ``OW``-element
pieces (LeNet's 10 and 28 are shorter than a vector loop's stride), for ``Wp / OW`` more
GEMM work (1.07x for 3x3 'same' on 32x32, 1.14x for LeNet's first layer). Outputs are
compacted to ``OW`` columns (adding the bias) when leaving the scratch; gradients are
expanded with zeros, so the extra columns contribute nothing to dW and dX.

Layouts: the input's C-contiguous storage is (C, N, H, W) when ``channel_major`` else
(N, C, H, W); outputs and input gradients are channel-major (C, N, H, W).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elementwise import HELPER, kernel
from .elementwise import vector_sum as _sum
from .mkl import N as _N_CONST
from .mkl import T as _T_CONST
from .mkl import gemm_raw as _gemm
from .mkl import threads_here as _mkl_threads_here

# As run-time ints, not constants: numba would compile MKL's wrapper once per constant pair
_N, _T = np.int64(_N_CONST), np.int64(_T_CONST)


def scratch_size(c, o, k, chunk, hp, wp, oh, threads) -> int:
    """Elements of scratch ``conv2d_forward``/``conv2d_backward`` need for ``threads``
    threads: per thread a padded chunk, its wide patches and the GEMM's wide result."""
    ln = oh * wp
    return threads * (c * chunk * hp * wp + k * chunk * ln + o * chunk * ln)


@njit(**HELPER)
def _split(scratch, t, c_, o_, k, chunk, m, hp, wp, ln):
    """Thread ``t``'s padded chunk (C, m, Hp, Wp), patches (K, m*L), result (O, m*L)."""
    a, b = c_ * chunk * hp * wp, k * chunk * ln
    mine = scratch[t * (a + b + o_ * chunk * ln):]
    return (mine[:c_ * m * hp * wp].reshape(c_, m, hp, wp),
            mine[a:a + k * m * ln].reshape(k, m * ln),
            mine[a + b:a + b + o_ * m * ln].reshape(o_, m * ln))


@njit(**HELPER)
def _pad_chunk(x, channel_major, n0, m, pt, pl, xp):
    """Images ``n0:n0+m`` of ``x`` into ``xp`` (C, m, Hp, Wp), zero around them."""
    c_, _, hp, wp = xp.shape
    h = min(x.shape[2], hp - pt)
    w = min(x.shape[3], wp - pl)
    xp[:] = 0
    for c in range(c_):
        for n in range(m):
            img = x[c, n0 + n] if channel_major else x[n0 + n, c]
            for y in range(h):
                dst = xp[c, n, pt + y, pl:pl + w]
                src = img[y]
                for q in range(w):
                    dst[q] = src[q]


@njit(**HELPER)
def _wide_patches(xp, kh, kw, dh, dw, oh, ow, cols):
    """``cols`` (C*kh*kw, m*L), L = OH*Wp: row (c, i, j) holds, per image, the padded
    plane from offset i*dh*Wp + j*dw on; the columns past the plane's end are zeroed."""
    c_, m, hp, wp = xp.shape
    plane = xp.reshape(c_, m, hp * wp)
    ln = oh * wp
    run = (oh - 1) * wp + ow  # what stays inside the plane
    for c in range(c_):
        for i in range(kh):
            for j in range(kw):
                row = cols[(c * kh + i) * kw + j]
                off = i * dh * wp + j * dw
                for n in range(m):
                    dst = row[n * ln:(n + 1) * ln]
                    src = plane[c, n, off:off + run]
                    for q in range(run):
                        dst[q] = src[q]
                    for q in range(run, ln):
                        dst[q] = 0


@njit(**HELPER)
def _add_wide_patches(cols, kh, kw, dh, dw, oh, ow, xp):
    """The adjoint of ``_wide_patches``: ``xp`` (C, m, Hp, Wp) = the sum of the patch
    entries that read each padded pixel."""
    c_, m, hp, wp = xp.shape
    plane = xp.reshape(c_, m, hp * wp)
    ln = oh * wp
    run = (oh - 1) * wp + ow
    xp[:] = 0
    for c in range(c_):
        for n in range(m):
            dst = plane[c, n]
            for i in range(kh):
                for j in range(kw):
                    src = cols[(c * kh + i) * kw + j, n * ln:n * ln + run]
                    off = i * dh * wp + j * dw
                    part = dst[off:off + run]
                    for q in range(run):
                        part[q] += src[q]


@njit(**HELPER)
def _chunk_product(x, channel_major, w2, kh, kw, dh, dw, pt, pl, oh, ow, chunk, scratch, t,
                   n0, m):
    """Thread ``t``'s product for images ``n0 .. n0+m``: (O, m*OH*Wp) "wide" rows in its
    scratch (each output row followed by the ``Wp - OW`` columns a caller drops)."""
    c_ = x.shape[0] if channel_major else x.shape[1]
    o_, k = w2.shape
    hp, wp = oh + (kh - 1) * dh, ow + (kw - 1) * dw
    ln = oh * wp
    xp, cols, res = _split(scratch, t, c_, o_, k, chunk, m, hp, wp, ln)
    _pad_chunk(x, channel_major, n0, m, pt, pl, xp)
    _wide_patches(xp, kh, kw, dh, dw, oh, ow, cols)
    _gemm(_N, _N, o_, m * ln, k, w2, k, cols, m * ln, 0.0, res, m * ln)
    return res


@njit(**HELPER)
def _store_wide(res, n0, m, oh, ow, wp, bias, relu, out):
    """Wide result rows ``res`` (O, m*OH*Wp) of images ``n0 .. n0+m`` into ``out``
    (O, N*OH*OW): each row's ``Wp - OW`` extra columns dropped, the bias added (unless
    ``bias`` is empty), then a ReLU if ``relu``."""
    ln = oh * wp
    for o in range(res.shape[0]):
        b = bias[o] if bias.size else out.dtype.type(0)
        for n in range(m):
            for y in range(oh):
                dst = out[o, ((n0 + n) * oh + y) * ow:]
                src = res[o, n * ln + y * wp:]
                if relu:
                    for q in range(ow):
                        v = src[q] + b
                        dst[q] = 0 if v <= 0 else v
                else:
                    for q in range(ow):
                        dst[q] = src[q] + b


@njit(**HELPER)
def _load_wide(g, relu_out, n0, m, oh, ow, wp, gwide, gb):
    """The inverse of :func:`_store_wide`: images ``n0 .. n0+m`` of ``g`` (O, N*OH*OW) as
    wide rows into ``gwide`` (O, m*OH*Wp), zero in the ``Wp - OW`` extra columns and, when
    ``relu_out`` is not empty, where the fused ReLU's output was 0; each channel's sum
    (the bias gradient) is added to ``gb`` (O,)."""
    ln = oh * wp
    zero = g.dtype.type(0)
    for o in range(gwide.shape[0]):
        for n in range(m):
            for r in range(oh):
                at = ((n0 + n) * oh + r) * ow
                src = g[o, at:]
                dst = gwide[o, n * ln + r * wp:]
                if relu_out.size:
                    on = relu_out[o, at:]
                    for q in range(ow):
                        dst[q] = src[q] if on[q] > 0 else zero
                else:
                    for q in range(ow):
                        dst[q] = src[q]
                for q in range(ow, wp):
                    dst[q] = zero
        gb[o] += _sum(gwide[o, :m * ln])


@kernel
def conv2d_forward(x, channel_major, w2, bias, relu, kh, kw, dh, dw, pt, pl, oh, ow, chunk,
                   threads, scratch, out):
    """``out`` (O, N*OH*OW) = the stride-1 convolution of ``x`` with ``w2`` (O, C*kh*kw),
    plus ``bias`` unless it is empty, then a ReLU if ``relu``, on up to ``threads``
    threads. ``scratch``: flat, ``scratch_size`` elements for ``threads``."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    wp = ow + (kw - 1) * dw
    for t in prange(threads):
        before = _mkl_threads_here(1)
        for n0 in range(t * chunk, n_img, threads * chunk):
            m = min(chunk, n_img - n0)
            res = _chunk_product(x, channel_major, w2, kh, kw, dh, dw, pt, pl, oh, ow, chunk,
                                 scratch, t, n0, m)
            _store_wide(res, n0, m, oh, ow, wp, bias, relu, out)
        _mkl_threads_here(before)


@kernel
def conv2d_pool_forward(x, channel_major, w2, bias, relu, kh, kw, dh, dw, pt, pl, oh, ow,
                        chunk, threads, scratch, ph, pw, out, code):
    """``conv2d_forward`` followed by 2x2 max pooling (then a ReLU if ``relu``), pooled
    as each chunk's result leaves the scratch: ``out`` and ``code`` (O, N*PH*PW) are what
    ``max_pool2x2_forward`` gives on the convolution's output, which is never written."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    wp = ow + (kw - 1) * dw
    ln = oh * wp
    for t in prange(threads):
        before = _mkl_threads_here(1)
        for n0 in range(t * chunk, n_img, threads * chunk):
            m = min(chunk, n_img - n0)
            res = _chunk_product(x, channel_major, w2, kh, kw, dh, dw, pt, pl, oh, ow, chunk,
                                 scratch, t, n0, m)
            _pool_rows(res, bias, relu, n0, m, wp, ln, ph, pw, out, code)
        _mkl_threads_here(before)


@njit(**HELPER)
def _pool_rows(res, bias, relu, n0, m, wp, ln, ph, pw, out, code):
    """The 2x2 max pooling of a chunk's wide result rows plus the bias (as
    ``max_pool2x2_forward``: the first maximum, a NaN wins and a later one replaces it)."""
    for o in range(res.shape[0]):
        b = bias[o] if bias.size else res.dtype.type(0)
        for n in range(m):
            for i in range(ph):
                top = res[o, n * ln + 2 * i * wp:]
                bottom = res[o, n * ln + (2 * i + 1) * wp:]
                at0 = ((n0 + n) * ph + i) * pw
                orow, crow = out[o, at0:at0 + pw], code[o, at0:at0 + pw]
                for j in range(pw):
                    best = top[2 * j] + b
                    v = top[2 * j + 1] + b
                    take = (v > best) | (v != v)
                    best = v if take else best
                    at = np.uint8(1) if take else np.uint8(0)
                    v = bottom[2 * j] + b
                    take = (v > best) | (v != v)
                    best = v if take else best
                    at = np.uint8(2) if take else at
                    v = bottom[2 * j + 1] + b
                    take = (v > best) | (v != v)
                    orow[j] = v if take else best
                    crow[j] = np.uint8(3) if take else at
                if relu:
                    for j in range(pw):
                        best = orow[j]
                        crow[j] = crow[j] if best > 0 else np.uint8(4)
                        orow[j] = 0 if best <= 0 else best


@kernel
def conv2d_backward(x, channel_major, w2, g, relu_out, kh, kw, dh, dw, pt, pl, oh, ow, chunk,
                    scratch, gw_parts, gb_parts, want_x, gx):
    """Gradients of ``conv2d_forward`` from ``g`` (O, N*OH*OW): ``gw_parts[t]`` (O, K) and
    ``gb_parts[t]`` (O,) are thread t's shares of dW and the bias gradient (the caller sums
    them); with ``want_x``, ``gx`` (C, N, H, W) the input's gradient. ``relu_out`` (like ``g``):
    the output of a ReLU-fused forward, whose zeros mask ``g``; empty without the ReLU."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    c_ = x.shape[0] if channel_major else x.shape[1]
    h, w = x.shape[2], x.shape[3]
    o_, k = w2.shape
    hp, wp = oh + (kh - 1) * dh, ow + (kw - 1) * dw
    ln = oh * wp
    threads = gw_parts.shape[0]
    for t in prange(threads):
        before = _mkl_threads_here(1)
        gw_parts[t][:] = 0
        gb_parts[t][:] = 0
        for n0 in range(t * chunk, n_img, threads * chunk):
            m = min(chunk, n_img - n0)
            xp, cols, gwide = _split(scratch, t, c_, o_, k, chunk, m, hp, wp, ln)
            _pad_chunk(x, channel_major, n0, m, pt, pl, xp)
            _wide_patches(xp, kh, kw, dh, dw, oh, ow, cols)
            _load_wide(g, relu_out, n0, m, oh, ow, wp, gwide, gb_parts[t])
            # dW += dOut @ patches.T
            _gemm(_N, _T, o_, k, m * ln, gwide, m * ln, cols, m * ln, 1.0, gw_parts[t], k)
            if want_x:
                # patch gradients W.T @ dOut (into the patches' buffer), scattered back
                _gemm(_T, _N, k, m * ln, o_, w2, k, gwide, m * ln, 0.0, cols, m * ln)
                _add_wide_patches(cols, kh, kw, dh, dw, oh, ow, xp)
                rows = min(h, hp - pt)
                width = min(w, wp - pl)
                for c in range(c_):
                    for n in range(m):
                        dst = gx[c, n0 + n]
                        src = xp[c, n]
                        for y in range(rows):
                            d = dst[y]
                            s_ = src[pt + y, pl:]
                            for q in range(width):
                                d[q] = s_[q]
                        for y in range(rows, h):  # rows no output reads
                            dst[y, :] = 0
                        if width < w:
                            for y in range(rows):
                                dst[y, width:] = 0
        _mkl_threads_here(before)

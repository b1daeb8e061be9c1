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

Row blocks. When one image's patches alone exceed the cache budget (a U-Net's 16 channels
on 128x128 maps: 9.6 MB), a chunk is one image taken ``rows`` output rows at a time: the
patches of output rows ``r0 .. r0+rows`` are the same contiguous runs, started ``r0*Wp``
further on. The thread pads its image once and goes down it block by block, so the patch
matrix stays in its cache instead of streaming through memory three times a step.

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


def scratch_size(c, o, k, chunk, rows, hp, wp, threads, backward=False) -> int:
    """Elements of scratch ``conv2d_forward``/``conv2d_backward`` need for ``threads``
    threads: per thread a padded chunk, the wide patches and GEMM result of ``rows`` output
    rows of it, and (``backward``) the padded chunk's gradient."""
    planes = c * chunk * hp * wp
    return threads * (planes + (k + o) * chunk * rows * wp + (planes if backward else 0))


@njit(**HELPER)
def _split(scratch, t, c_, o_, k, chunk, rows, m, hp, wp, backward):
    """Thread ``t``'s padded chunk (C, m, Hp, Wp), room for a block's patches and result
    (flat: ``_block`` shapes them) and, with ``backward``, the padded chunk's gradient."""
    planes, block = c_ * chunk * hp * wp, chunk * rows * wp
    mine = scratch[t * (planes * (2 if backward else 1) + (k + o_) * block):]
    xp = mine[:c_ * m * hp * wp].reshape(c_, m, hp, wp)
    at = planes + (k + o_) * block
    grad_planes = c_ if backward else 0
    gxp = mine[at:at + grad_planes * m * hp * wp].reshape(grad_planes, m, hp, wp)
    return xp, mine[planes:planes + k * block], mine[planes + k * block:at], gxp


@njit(**HELPER)
def _block(flat, rows_of_matrix, columns):
    """The first ``rows_of_matrix * columns`` entries of a flat buffer as a matrix."""
    return flat[:rows_of_matrix * columns].reshape(rows_of_matrix, columns)


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
def _wide_patches(xp, kh, kw, dh, dw, oh, ow, r0, rr, cols):
    """``cols`` (C*kh*kw, m*rr*Wp), the wide patches of output rows ``r0 .. r0+rr``: row
    (c, i, j) holds, per image, the padded plane from offset (r0 + i*dh)*Wp + j*dw on; the
    columns past the last output of the plane are zeroed."""
    c_, m, hp, wp = xp.shape
    plane = xp.reshape(c_, m, hp * wp)
    ln = rr * wp
    run = min(ln, (oh - 1 - r0) * wp + ow)  # what stays inside the plane
    for c in range(c_):
        for i in range(kh):
            for j in range(kw):
                row = cols[(c * kh + i) * kw + j]
                off = (r0 + i * dh) * wp + j * dw
                for n in range(m):
                    dst = row[n * ln:(n + 1) * ln]
                    src = plane[c, n, off:off + run]
                    for q in range(run):
                        dst[q] = src[q]
                    for q in range(run, ln):
                        dst[q] = 0


@njit(**HELPER)
def _add_wide_patches(cols, kh, kw, dh, dw, oh, ow, r0, rr, gxp):
    """The adjoint of ``_wide_patches``: adds to ``gxp`` (C, m, Hp, Wp) the patch entries
    of output rows ``r0 .. r0+rr`` that read each padded pixel."""
    c_, m, hp, wp = gxp.shape
    plane = gxp.reshape(c_, m, hp * wp)
    ln = rr * wp
    run = min(ln, (oh - 1 - r0) * wp + ow)
    for c in range(c_):
        for n in range(m):
            dst = plane[c, n]
            for i in range(kh):
                for j in range(kw):
                    src = cols[(c * kh + i) * kw + j, n * ln:n * ln + run]
                    off = (r0 + i * dh) * wp + j * dw
                    part = dst[off:off + run]
                    for q in range(run):
                        part[q] += src[q]


@njit(**HELPER)
def _block_product(xp, w2, kh, kw, dh, dw, oh, ow, r0, rr, cols_flat, res_flat):
    """The padded chunk ``xp``'s product for output rows ``r0 .. r0+rr``: (O, m*rr*Wp)
    "wide" rows (each output row followed by the ``Wp - OW`` columns a caller drops)."""
    o_, k = w2.shape
    ln = xp.shape[1] * rr * xp.shape[3]
    cols, res = _block(cols_flat, k, ln), _block(res_flat, o_, ln)
    _wide_patches(xp, kh, kw, dh, dw, oh, ow, r0, rr, cols)
    _gemm(_N, _N, o_, ln, k, w2, k, cols, ln, 0.0, res, ln)
    return res


@njit(**HELPER)
def _store_wide(res, n0, m, oh, ow, wp, r0, rr, bias, relu, out):
    """Wide result rows ``res`` (O, m*rr*Wp), output rows ``r0 .. r0+rr`` of images
    ``n0 .. n0+m``, into ``out`` (O, N*OH*OW): each row's ``Wp - OW`` extra columns
    dropped, the bias added (unless ``bias`` is empty), then a ReLU if ``relu``."""
    ln = rr * wp
    for o in range(res.shape[0]):
        b = bias[o] if bias.size else out.dtype.type(0)
        for n in range(m):
            for y in range(rr):
                dst = out[o, ((n0 + n) * oh + r0 + y) * ow:]
                src = res[o, n * ln + y * wp:]
                if relu:
                    for q in range(ow):
                        v = src[q] + b
                        dst[q] = 0 if v <= 0 else v
                else:
                    for q in range(ow):
                        dst[q] = src[q] + b


@njit(**HELPER)
def _load_wide(g, relu_out, n0, m, oh, ow, wp, r0, rr, gwide, gb):
    """The inverse of :func:`_store_wide`: output rows ``r0 .. r0+rr`` of images
    ``n0 .. n0+m`` of ``g`` (O, N*OH*OW) as wide rows into ``gwide`` (O, m*rr*Wp), zero in
    the ``Wp - OW`` extra columns and, when ``relu_out`` is not empty, where the fused
    ReLU's output was 0; each channel's sum (its share of the bias gradient) is added to
    ``gb`` (O,)."""
    ln = rr * wp
    zero = g.dtype.type(0)
    for o in range(gwide.shape[0]):
        for n in range(m):
            for r in range(rr):
                at = ((n0 + n) * oh + r0 + r) * ow
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
                   rows, threads, scratch, out):
    """``out`` (O, N*OH*OW) = the stride-1 convolution of ``x`` with ``w2`` (O, C*kh*kw),
    plus ``bias`` unless it is empty, then a ReLU if ``relu``, on up to ``threads``
    threads, ``chunk`` images and ``rows`` output rows at a time. ``scratch``: flat,
    ``scratch_size`` elements for ``threads``."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    c_ = x.shape[0] if channel_major else x.shape[1]
    o_, k = w2.shape
    hp, wp = oh + (kh - 1) * dh, ow + (kw - 1) * dw
    for t in prange(threads):
        before = _mkl_threads_here(1)
        for n0 in range(t * chunk, n_img, threads * chunk):
            m = min(chunk, n_img - n0)
            xp, cols, res, _ = _split(scratch, t, c_, o_, k, chunk, rows, m, hp, wp, False)
            _pad_chunk(x, channel_major, n0, m, pt, pl, xp)
            for r0 in range(0, oh, rows):
                rr = min(rows, oh - r0)
                block = _block_product(xp, w2, kh, kw, dh, dw, oh, ow, r0, rr, cols, res)
                _store_wide(block, n0, m, oh, ow, wp, r0, rr, bias, relu, out)
        _mkl_threads_here(before)


@kernel
def conv2d_pool_forward(x, channel_major, w2, bias, relu, kh, kw, dh, dw, pt, pl, oh, ow,
                        chunk, threads, scratch, ph, pw, out, code):
    """``conv2d_forward`` followed by 2x2 max pooling (then a ReLU if ``relu``), pooled
    as each chunk's result leaves the scratch: ``out`` and ``code`` (O, N*PH*PW) are what
    ``max_pool2x2_forward`` gives on the convolution's output, which is never written.
    Whole images at a time: ``scratch`` has ``scratch_size`` elements with ``rows = oh``."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    c_ = x.shape[0] if channel_major else x.shape[1]
    o_, k = w2.shape
    hp, wp = oh + (kh - 1) * dh, ow + (kw - 1) * dw
    ln = oh * wp
    for t in prange(threads):
        before = _mkl_threads_here(1)
        for n0 in range(t * chunk, n_img, threads * chunk):
            m = min(chunk, n_img - n0)
            xp, cols, res, _ = _split(scratch, t, c_, o_, k, chunk, oh, m, hp, wp, False)
            _pad_chunk(x, channel_major, n0, m, pt, pl, xp)
            block = _block_product(xp, w2, kh, kw, dh, dw, oh, ow, 0, oh, cols, res)
            _pool_rows(block, bias, relu, n0, m, wp, ln, ph, pw, out, code)
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
                    rows, scratch, gw_parts, gb_parts, want_x, gx):
    """Gradients of ``conv2d_forward`` from ``g`` (O, N*OH*OW), ``chunk`` images and
    ``rows`` output rows at a time: ``gw_parts[t]`` (O, K) and ``gb_parts[t]`` (O,) are
    thread t's shares of dW and the bias gradient (the caller sums them); with ``want_x``,
    ``gx`` (C, N, H, W) the input's gradient. ``relu_out`` (like ``g``): the output of a
    ReLU-fused forward, whose zeros mask ``g``; empty without the ReLU. ``scratch``:
    ``scratch_size(..., backward=True)`` elements."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    c_ = x.shape[0] if channel_major else x.shape[1]
    o_, k = w2.shape
    hp, wp = oh + (kh - 1) * dh, ow + (kw - 1) * dw
    threads = gw_parts.shape[0]
    for t in prange(threads):
        before = _mkl_threads_here(1)
        gw_parts[t][:] = 0
        gb_parts[t][:] = 0
        for n0 in range(t * chunk, n_img, threads * chunk):
            m = min(chunk, n_img - n0)
            xp, cols_flat, g_flat, gxp = _split(scratch, t, c_, o_, k, chunk, rows, m, hp, wp,
                                                True)
            _pad_chunk(x, channel_major, n0, m, pt, pl, xp)
            if want_x:
                gxp[:] = 0
            for r0 in range(0, oh, rows):
                rr = min(rows, oh - r0)
                ln = m * rr * wp
                cols, gwide = _block(cols_flat, k, ln), _block(g_flat, o_, ln)
                _wide_patches(xp, kh, kw, dh, dw, oh, ow, r0, rr, cols)
                _load_wide(g, relu_out, n0, m, oh, ow, wp, r0, rr, gwide, gb_parts[t])
                # dW += dOut @ patches.T
                _gemm(_N, _T, o_, k, ln, gwide, ln, cols, ln, 1.0, gw_parts[t], k)
                if want_x:
                    # patch gradients W.T @ dOut (into the patches' buffer), added back
                    _gemm(_T, _N, k, ln, o_, w2, k, gwide, ln, 0.0, cols, ln)
                    _add_wide_patches(cols, kh, kw, dh, dw, oh, ow, r0, rr, gxp)
            if want_x:
                _unpad_chunk(gxp, n0, pt, pl, gx)
        _mkl_threads_here(before)


@njit(**HELPER)
def _unpad_chunk(gxp, n0, pt, pl, gx):
    """The inverse of ``_pad_chunk``: the padded chunk's interior into images ``n0 ..`` of
    ``gx`` (C, N, H, W), zero where no output read the input."""
    c_, m, hp, wp = gxp.shape
    h, w = gx.shape[2], gx.shape[3]
    rows = min(h, hp - pt)
    width = min(w, wp - pl)
    for c in range(c_):
        for n in range(m):
            dst = gx[c, n0 + n]
            src = gxp[c, n]
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

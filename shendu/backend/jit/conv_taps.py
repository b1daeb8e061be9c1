"""Stride-1 convolution as one GEMM per kernel tap over the padded image: no patch matrix.

With stride 1, tap (i, j)'s "wide" patches of an image (``conv.py``) are its padded
channel planes read from offset ``off = i*dh*Wp + j*dw`` on: as a (C, OH*Wp) matrix that
is a view of the padded image (C, Hp, Wp) with row stride Hp*Wp. So

    out_wide (O, OH*Wp) = sum over taps of W[:, :, i, j] (O, C) @ view(i, j)

is kh*kw GEMMs with K = C, accumulated by MKL (beta 1), and the patch matrix (kh*kw times
the input: 38 M floats for ResNet's 64-channel 32x32 layer at batch 64) is never written.
With 64 or more channels MKL runs these products as fast as the single product on the
patches, so the copies are saved outright (``convolution.TAPS_CONV_MIN_CHANNELS``).

The columns past OW in each row ("wide" columns) are computed and dropped, as in
``conv.py``; the last tap's view runs ``(kw-1)*dw`` elements past the image's last plane,
into a zeroed tail (a column of the product reads only its own column of the view, so
those reads only reach dropped columns). Backward, per image: dW[:, :, i, j] +=
dOut_wide @ view(i, j).T and dX_padded[view(i, j)] += W[:, :, i, j].T @ dOut_wide, the
taps' regions overlapping and added in turn (dOut_wide's dropped columns are zero, so what
they add to a neighbouring row or plane is nothing).

Each thread takes whole images and runs single-threaded MKL on them. Layouts as in
``conv.py``: the input's C-contiguous storage is (C, N, H, W) when ``channel_major`` else
(N, C, H, W); outputs and input gradients are (C, N, H, W); weights arrive as
``wt`` (kh*kw, O, C), tap-major.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .conv import _load_wide, _pad_chunk, _store_wide
from .elementwise import kernel
from .mkl import N as _N_CONST
from .mkl import T as _T_CONST
from .mkl import gemm_raw as _gemm
from .mkl import threads_here as _mkl_threads_here

_N, _T = np.int64(_N_CONST), np.int64(_T_CONST)


def taps_scratch_size(c, o, hp, wp, oh, kw, dw, threads, backward) -> int:
    """Elements of scratch per call: per thread a padded image and its zero tail (twice
    for backward: the input and its gradient) and a wide result or gradient (O, OH*Wp)."""
    padded = c * hp * wp + (kw - 1) * dw
    return threads * ((2 if backward else 1) * padded + o * oh * wp)


@kernel
def conv2d_forward_taps(x, channel_major, wt, bias, relu, kh, kw, dh, dw, pt, pl, oh, ow,
                        threads, scratch, out):
    """``out`` (O, N*OH*OW) = the stride-1 convolution of ``x`` with the tap-major weights
    ``wt`` (kh*kw, O, C), plus ``bias`` unless it is empty, then a ReLU if ``relu``, on up
    to ``threads`` threads. ``scratch``: ``taps_scratch_size`` elements."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    taps, o_, c_ = wt.shape
    hp, wp = oh + (kh - 1) * dh, ow + (kw - 1) * dw
    ln, plane = oh * wp, hp * wp
    padded = c_ * plane + (kw - 1) * dw
    for t in prange(threads):
        before = _mkl_threads_here(1)
        mine = scratch[t * (padded + o_ * ln):(t + 1) * (padded + o_ * ln)]
        mine[c_ * plane:padded] = 0  # the tail the last tap reads into
        res = mine[padded:padded + o_ * ln]
        for n in range(t, n_img, threads):
            _pad_chunk(x, channel_major, n, 1, pt, pl, mine[:c_ * plane].reshape(c_, 1, hp, wp))
            for tap in range(taps):
                off = (tap // kw) * dh * wp + (tap % kw) * dw
                _gemm(_N, _N, o_, ln, c_, wt[tap], c_, mine[off:], plane,
                      0.0 if tap == 0 else 1.0, res, ln)
            _store_wide(res.reshape(o_, ln), n, 1, oh, ow, wp, 0, oh, bias, relu, out)
        _mkl_threads_here(before)


@kernel
def conv2d_backward_taps(x, channel_major, wt, g, relu_out, kh, kw, dh, dw, pt, pl, oh, ow,
                         scratch, gw_parts, gb_parts, want_x, gx):
    """Gradients of ``conv2d_forward_taps`` from ``g`` (O, N*OH*OW): ``gw_parts[t]``
    (kh*kw, O, C) and ``gb_parts[t]`` (O,) are thread t's shares of dW (tap-major) and the
    bias gradient (the caller sums them); with ``want_x``, ``gx`` (C, N, H, W) the input's
    gradient. ``relu_out`` (like ``g``): the output of a ReLU-fused forward, whose zeros
    mask ``g``; empty without the ReLU."""
    n_img = x.shape[1] if channel_major else x.shape[0]
    h, w = x.shape[2], x.shape[3]
    taps, o_, c_ = wt.shape
    hp, wp = oh + (kh - 1) * dh, ow + (kw - 1) * dw
    ln, plane = oh * wp, hp * wp
    padded = c_ * plane + (kw - 1) * dw
    threads = gw_parts.shape[0]
    per = 2 * padded + o_ * ln
    for t in prange(threads):
        before = _mkl_threads_here(1)
        gw_parts[t][:] = 0
        gb_parts[t][:] = 0
        zero = g.dtype.type(0)
        mine = scratch[t * per:(t + 1) * per]
        xs, dxs, gwide = mine[:padded], mine[padded:2 * padded], mine[2 * padded:per]
        xs[c_ * plane:] = 0
        for n in range(t, n_img, threads):
            _pad_chunk(x, channel_major, n, 1, pt, pl, xs[:c_ * plane].reshape(c_, 1, hp, wp))
            _load_wide(g, relu_out, n, 1, oh, ow, wp, 0, oh, gwide.reshape(o_, ln), gb_parts[t])
            if want_x:
                dxs[:] = 0
            for tap in range(taps):
                off = (tap // kw) * dh * wp + (tap % kw) * dw
                # dW[tap] += dOut_wide (O, L) @ view.T (L, C)
                _gemm(_N, _T, o_, c_, ln, gwide, ln, xs[off:], plane, 1.0, gw_parts[t, tap],
                      c_)
                if want_x:  # dX_padded[view] += W[tap].T (C, O) @ dOut_wide (O, L)
                    _gemm(_T, _N, c_, ln, o_, wt[tap], c_, gwide, ln, 1.0, dxs[off:], plane)
            if want_x:
                for c in range(c_):
                    src = dxs[c * plane:(c + 1) * plane].reshape(hp, wp)
                    dst = gx[c, n]
                    for y in range(h):
                        if pt + y < hp:
                            for q in range(w):
                                dst[y, q] = src[pt + y, pl + q] if pl + q < wp else zero
                        else:  # rows no output reads
                            dst[y, :] = zero
        _mkl_threads_here(before)

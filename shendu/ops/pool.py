"""Pooling over the last two dimensions of (N, C, H, W).

A k x k window is ``k*k`` strided views of the (padded) input, combined elementwise:
``np.maximum`` for max pooling, addition for average pooling. This beats reshaping into
windows and reducing by several times (PERFORMANCE.md), and handles any stride, padding
and dilation the same way. Outputs keep the memory layout of the input (``order="K"``), so
a channel-major activation from a convolution stays channel-major.

Max pooling with non-overlapping windows inside the input (the usual 2x2, stride 2) keeps
a uint8 code per output (which view held the maximum) instead of the input: backward
then writes each strided view of the gradient once, with no comparisons of the input and
no index arrays, and the input can be freed after forward. Both directions are one call
to ``backend/maxpool.py``, which runs the compiled kernel or the NumPy reference.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..backend import maxpool
from ._util import is_channel_major, xp_of


def pool_out_size(size, k, stride, pad, dilation, ceil_mode):
    span = size + 2 * pad - dilation * (k - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the input or the left padding
    return max(out, 0)


def _windows(x, k, stride, dilation, out_hw):
    """The ``kh*kw`` strided views whose elementwise combination is the pooled output."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = k, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield (i, j), x[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                            j * dw:j * dw + sw * (ow - 1) + 1:sw]


def _padded(xp, x, pad, out_hw, k, stride, dilation, fill):
    """Pad so that every window of the output lies inside the array."""
    n, c, h, w = x.shape
    need_h = (out_hw[0] - 1) * stride[0] + dilation[0] * (k[0] - 1) + 1
    need_w = (out_hw[1] - 1) * stride[1] + dilation[1] * (k[1] - 1) + 1
    bh = max(need_h - h - pad[0], 0)
    bw = max(need_w - w - pad[1], 0)
    if not (pad[0] or pad[1] or bh or bw):
        return x
    out = xp.full((n, c, h + pad[0] + bh, w + pad[1] + bw), fill, x.dtype)
    out[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    return out


class MaxPool2d(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, x, k, stride, pad, dilation, out_hw, relu=False):
        """``relu=True`` (graph mode's ``max_pool2d_relu``, tiled windows only): the ReLU
        of the result in the same pass; its off outputs pass no gradient."""
        if _tiles(x.shape, k, stride, pad, dilation, out_hw):
            return MaxPool2d._tiled_forward(ctx, x, k, out_hw, relu)
        if relu:
            raise ValueError("max_pool2d: relu=True needs non-overlapping windows inside "
                             "the input (kernel size = stride, no padding, no dilation)")
        xp = xp_of(x)
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xpd = _padded(xp, x, pad, out_hw, k, stride, dilation, fill)
        out = None
        for _, v in _windows(xpd, k, stride, dilation, out_hw):
            out = v.copy(order="K") if out is None else xp.maximum(out, v, out=out)
        ctx.save_for_backward(x, out)
        ctx.geom = (k, stride, pad, dilation, out_hw, xpd.shape)
        ctx.code = None
        return out

    @staticmethod
    def _tiled_forward(ctx, x, k, out_hw, relu=False):
        """Non-overlapping windows inside the input (2x2 stride 2, the common case): the
        max of the ``kh*kw`` strided views, and per output a uint8 code of which view held
        the (first) maximum, so that backward needs neither the input nor index arrays
        (with ``relu``, ``kh*kw`` where the ReLU is off: no element gets a gradient)."""
        ctx.geom = (k, k, (0, 0), (1, 1), out_hw, x.shape)
        out, ctx.code = maxpool.max_pool_tiled(x, k, out_hw, relu)
        return out

    @staticmethod
    def offsets(x, out, geom):
        """For every output element, which window offset held the (first) maximum."""
        k, stride, pad, dilation, out_hw, padded_shape = geom
        xp = xp_of(x)
        xpd = _padded(xp, x, pad, out_hw, k, stride, dilation, -np.inf)
        which = xp.full(out.shape, -1, np.int16)
        for (i, j), v in _windows(xpd, k, stride, dilation, out_hw):
            hit = (v == out) & (which < 0)
            which[hit] = i * k[1] + j
        return which

    @staticmethod
    def backward(ctx, g):
        k, stride, pad, dilation, out_hw, padded_shape = ctx.geom
        xp = xp_of(g)
        if ctx.code is not None:
            return MaxPool2d._tiled_backward(xp, g, ctx.code, k, out_hw, padded_shape)
        x, out = ctx.saved_tensors
        which = MaxPool2d.offsets(x, out, ctx.geom)
        gx = xp.zeros(padded_shape, g.dtype)
        for (i, j), v in _windows(gx, k, stride, dilation, out_hw):
            v += xp.where(which == i * k[1] + j, g, 0)
        n, c, h, w = x.shape
        return gx[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w]

    @staticmethod
    def _tiled_backward(xp, g, code, k, out_hw, x_shape):
        # Every covered input element belongs to exactly one window: write each view once.
        # The gradient takes the layout of the saved code (channel-major after a conv).
        n, c, h, w = x_shape
        cm = is_channel_major(code)
        gx = xp.empty((c, n, h, w), g.dtype).transpose(1, 0, 2, 3) if cm \
            else xp.empty(x_shape, g.dtype)
        maxpool.max_pool_tiled_backward(g, code, k, out_hw, gx)
        return gx

    @staticmethod
    def jvp(ctx, dx):
        k, stride, pad, dilation, out_hw, padded_shape = ctx.geom
        xp = xp_of(dx)
        if ctx.code is not None:
            views = [v for _, v in _windows(dx, k, k, (1, 1), out_hw)]
            t = views[0].copy(order="K")
            for i, v in enumerate(views[1:], 1):
                xp.copyto(t, v, where=ctx.code == i)
            xp.copyto(t, 0, where=ctx.code == len(views))  # a fused ReLU's off outputs
            return t
        x, out = ctx.saved
        which = MaxPool2d.offsets(x, out, ctx.geom)
        dpd = _padded(xp, dx, pad, out_hw, k, stride, dilation, 0)
        t = xp.zeros(out.shape, dx.dtype)
        for (i, j), v in _windows(dpd, k, stride, dilation, out_hw):
            t += xp.where(which == i * k[1] + j, v, 0)
        return t


def _tiles(shape, k, stride, pad, dilation, out_hw):
    """Whether the windows tile (part of) the input: no overlap, no padding, all inside."""
    return (tuple(k) == tuple(stride) and not any(pad) and tuple(dilation) == (1, 1)
            and k[0] * k[1] < 256  # the window codes are uint8
            and out_hw[0] * k[0] <= shape[2] and out_hw[1] * k[1] <= shape[3])


class AvgPool2d(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, x, k, stride, pad, out_hw, count_include_pad, divisor_override):
        xp = xp_of(x)
        xpd = _padded(xp, x, pad, out_hw, k, stride, (1, 1), 0)
        total = None
        for _, v in _windows(xpd, k, stride, (1, 1), out_hw):
            total = v.copy() if total is None else xp.add(total, v, out=total)
        div = AvgPool2d.divisor(xp, x.shape, k, stride, pad, out_hw, count_include_pad,
                                divisor_override, x.dtype)
        ctx.geom = (k, stride, pad, out_hw, xpd.shape, x.shape)
        ctx.div = div
        return total / div

    @staticmethod
    def divisor(xp, shape, k, stride, pad, out_hw, include_pad, override, dtype):
        if override:
            return dtype.type(override)
        h, w = shape[2:]
        # Count, per output cell, the window elements that fall inside the counted region:
        # the input plus its explicit padding (include_pad), or the input alone.
        lo_h, lo_w = (0, 0) if include_pad else pad
        hi_h = h + 2 * pad[0] if include_pad else h + pad[0]
        hi_w = w + 2 * pad[1] if include_pad else w + pad[1]
        rows = xp.arange(out_hw[0]) * stride[0]
        cols = xp.arange(out_hw[1]) * stride[1]
        ch = xp.clip(xp.minimum(rows + k[0], hi_h) - xp.maximum(rows, lo_h), 0, None)
        cw = xp.clip(xp.minimum(cols + k[1], hi_w) - xp.maximum(cols, lo_w), 0, None)
        div = (ch[:, None] * cw[None, :]).astype(dtype)
        if bool((div == k[0] * k[1]).all()):
            return dtype.type(k[0] * k[1])
        return div

    @staticmethod
    def backward(ctx, g):
        k, stride, pad, out_hw, padded_shape, x_shape = ctx.geom
        xp = xp_of(g)
        gd = g / ctx.div
        gx = xp.zeros(padded_shape, g.dtype)
        for _, v in _windows(gx, k, stride, (1, 1), out_hw):
            v += gd
        return gx[:, :, pad[0]:pad[0] + x_shape[2], pad[1]:pad[1] + x_shape[3]]

    @staticmethod
    def jvp(ctx, dx):
        k, stride, pad, out_hw, padded_shape, x_shape = ctx.geom
        xp = xp_of(dx)
        dpd = _padded(xp, dx, pad, out_hw, k, stride, (1, 1), 0)
        total = None
        for _, v in _windows(dpd, k, stride, (1, 1), out_hw):
            total = v.copy() if total is None else total + v
        return total / ctx.div


class AdaptiveAvgPool2d(Function):
    """Average over bins ``[floor(i*H/OH), ceil((i+1)*H/OH))`` as in PyTorch."""

    linear_backward = True

    @staticmethod
    def bins(size, out):
        return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]

    @staticmethod
    def forward(ctx, x, out_hw):
        xp = xp_of(x)
        n, c, h, w = x.shape
        rb, cb = AdaptiveAvgPool2d.bins(h, out_hw[0]), AdaptiveAvgPool2d.bins(w, out_hw[1])
        out = xp.empty((n, c) + tuple(out_hw), x.dtype)
        for i, (r0, r1) in enumerate(rb):
            for j, (c0, c1) in enumerate(cb):
                out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        ctx.geom = (x.shape, rb, cb)
        return out

    @staticmethod
    def backward(ctx, g):
        shape, rb, cb = ctx.geom
        xp = xp_of(g)
        gx = xp.zeros(shape, g.dtype)
        for i, (r0, r1) in enumerate(rb):
            for j, (c0, c1) in enumerate(cb):
                gx[:, :, r0:r1, c0:c1] += (g[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[:, :, None,
                                                                                    None]
        return gx

    @staticmethod
    def jvp(ctx, dx):
        shape, rb, cb = ctx.geom
        xp = xp_of(dx)
        out = xp.empty(shape[:2] + (len(rb), len(cb)), dx.dtype)
        for i, (r0, r1) in enumerate(rb):
            for j, (c0, c1) in enumerate(cb):
                out[:, :, i, j] = dx[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        return out


class AdaptiveMaxPool2d(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, x, out_hw):
        xp = xp_of(x)
        n, c, h, w = x.shape
        rb, cb = AdaptiveAvgPool2d.bins(h, out_hw[0]), AdaptiveAvgPool2d.bins(w, out_hw[1])
        out = xp.empty((n, c) + tuple(out_hw), x.dtype)
        idx = []
        for i, (r0, r1) in enumerate(rb):
            for j, (c0, c1) in enumerate(cb):
                win = x[:, :, r0:r1, c0:c1].reshape(n, c, -1)
                a = win.argmax(axis=2)
                idx.append(a)
                out[:, :, i, j] = xp.take_along_axis(win, a[..., None], axis=2)[..., 0]
        ctx.geom = (x.shape, rb, cb, idx)
        return out

    @staticmethod
    def backward(ctx, g):
        shape, rb, cb, idx = ctx.geom
        xp = xp_of(g)
        gx = xp.zeros(shape, g.dtype)
        t = 0
        for i, (r0, r1) in enumerate(rb):
            for j, (c0, c1) in enumerate(cb):
                win = xp.zeros(shape[:2] + ((r1 - r0) * (c1 - c0),), g.dtype)
                xp.put_along_axis(win, idx[t][..., None], g[:, :, i, j][..., None], axis=2)
                gx[:, :, r0:r1, c0:c1] += win.reshape(shape[:2] + (r1 - r0, c1 - c0))
                t += 1
        return gx

    @staticmethod
    def jvp(ctx, dx):
        shape, rb, cb, idx = ctx.geom
        xp = xp_of(dx)
        out = xp.empty(shape[:2] + (len(rb), len(cb)), dx.dtype)
        t = 0
        for i, (r0, r1) in enumerate(rb):
            for j, (c0, c1) in enumerate(cb):
                win = dx[:, :, r0:r1, c0:c1].reshape(shape[0], shape[1], -1)
                out[:, :, i, j] = xp.take_along_axis(win, idx[t][..., None], axis=2)[..., 0]
                t += 1
        return out

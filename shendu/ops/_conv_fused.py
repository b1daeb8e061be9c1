"""The fused stride-1 convolution of ``backend/jit/conv.py``, called by ``Conv2d``.

Taken when the compiled kernels are on, MKL is loaded, the stride is 1 and there is one
group (LeNet's and the CIFAR CNN's layers); everything else goes through the batch-chunked
im2col + GEMM of ``conv.py``. Inputs may be NCHW or channel-major; outputs and input
gradients are channel-major, like the other path's.
"""
from __future__ import annotations

import numpy as np

from ..backend import jit
from ._conv_patches import give, take
from ._util import is_channel_major

# Bytes of (wide) patches per chunk of images: small enough to stay in the L2 cache next
# to MKL's packed blocks. Measured on LeNet's and the CIFAR CNN's layers: chunks of
# 256-384 KB were fastest; 1.5 MB and more, 10-30% slower.
CHUNK_BYTES = 384 << 10


def usable(x, w, stride, groups) -> bool:
    return (stride == (1, 1) and groups == 1 and jit.on_all(x, w)
            and jit.mkl_gemm_available())


def _storage(x):
    """``(src, channel_major)``: the C-contiguous array holding ``x``'s elements."""
    if x.flags.c_contiguous:
        return x, False
    if is_channel_major(x):
        return x.transpose(1, 0, 2, 3), True
    return np.ascontiguousarray(x), False


def _plan(x, w, out_hw, dilation):
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    oh, ow = out_hw
    hp, wp = oh + (kh - 1) * dilation[0], ow + (kw - 1) * dilation[1]
    per_image = c * kh * kw * oh * wp * x.itemsize
    chunk = max(1, min(n, CHUNK_BYTES // per_image))
    threads = max(1, min(jit.num_threads(), -(-n // chunk)))
    size = jit.scratch_size(c, o, c * kh * kw, chunk, hp, wp, oh, threads)
    return chunk, threads, size


def forward(x, w, bias, pads, dilation, out_hw, relu=False):
    """The (O, N, OH, OW) C-contiguous output of the convolution (then a ReLU if
    ``relu``)."""
    src, cm = _storage(x)
    o, _, kh, kw = w.shape
    chunk, threads, size = _plan(x, w, out_hw, dilation)
    out = np.empty((o, x.shape[0]) + tuple(out_hw), x.dtype)
    b = bias if bias is not None else np.empty(0, x.dtype)
    scratch = take(np, size, x.dtype)
    w2 = np.ascontiguousarray(w.reshape(o, -1))  # MKL reads it with row stride C*kh*kw
    jit.conv2d_forward(src, cm, w2, b, relu, kh, kw, *dilation, pads[0][0],
                       pads[1][0], *out_hw, chunk, threads, scratch, out.reshape(o, -1))
    give(scratch)
    return out


def backward(x, w, gt, pads, dilation, want_x, y=None):
    """``(gx, gw, gb)`` from the channel-major output gradient ``gt`` (O, N, OH, OW): gx as
    (C, N, H, W) (None unless ``want_x``), gw shaped like ``w``, gb the bias gradient.
    ``y``: the forward's output (O, N, OH, OW) when it ended in a ReLU."""
    src, cm = _storage(x)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    out_hw = gt.shape[2:]
    chunk, threads, size = _plan(x, w, out_hw, dilation)
    parts = np.empty((threads, o, c * kh * kw), x.dtype)
    bias_parts = np.empty((threads, o), x.dtype)
    gx = np.empty((c, n, h, wd) if want_x else (0, 0, 0, 0), x.dtype)
    mask = np.empty((0, 0), x.dtype) if y is None else y.reshape(o, -1)
    w2 = np.ascontiguousarray(w.reshape(o, -1))
    scratch = take(np, size, x.dtype)
    jit.conv2d_backward(src, cm, w2, gt.reshape(o, -1), mask, kh, kw, *dilation, pads[0][0],
                        pads[1][0], *out_hw, chunk, scratch, parts, bias_parts, want_x, gx)
    give(scratch)
    gw = (parts[0] if threads == 1 else parts.sum(axis=0)).reshape(w.shape)
    return (gx if want_x else None), gw, bias_parts.sum(axis=0)

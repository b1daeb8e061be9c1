"""The convolution's dispatch: :func:`conv2d`, :func:`conv2d_pool` and
:func:`conv2d_backward` run a compiled kernel (``backend/jit/conv*.py``, with MKL's GEMM)
where one takes the arrays, else the op's NumPy reference, which ``ops/conv.py`` passes in
(its batch-chunked im2col + GEMM, shared with its derivatives). Each reports its choice
to ``runtime.trace_paths()`` as ``('conv2d' | 'conv2d_pool' | 'conv2d_backward', path)``,
``path`` one of ``'numba'``, ``'winograd'`` or ``'numpy'``; the rest of the fast CPU ops
dispatch in ``backend/cpu.py``.

>>> import shendu as sd
>>> from shendu.backend import runtime
>>> with runtime.trace_paths() as log:
...     y = sd.nn.functional.conv2d(sd.ones(1, 1, 4, 4), sd.ones(1, 1, 3, 3))
>>> y.numpy().ravel().tolist(), log[0][0], log[0][1] in ("numba", "numpy")
([9.0, 9.0, 9.0, 9.0], 'conv2d', True)
"""
from __future__ import annotations

import numpy as np

from . import jit, runtime
from .cpu import _note, relu_grad
from .maxpool import max_pool_tiled
from .scratch import give, take

__all__ = ["conv2d", "conv2d_pool", "conv2d_backward"]

# Three kernels: "wide" (``jit/conv.py``, stride 1), "taps" (``jit/conv_taps.py``, stride
# 1, one GEMM per tap over the padded image) and "compact" (``jit/conv_compact.py``, any
# stride). The wide and taps kernels compute Wp - OW wasted columns per output row, which
# their contiguous patches repay where the waste is small (or, for the wide kernel, the
# patch rows are short: C*kh*kw < FUSED_CONV_LONG_PATCH); taps where there are enough
# channels for its K = C products to run at full speed, so no patch matrix is written.
# Elsewhere (ResNet's 3x3 layers on 8x8 and 4x4 maps, waste 1.25x and 1.5x, and every
# strided convolution) the compact kernel, whose GEMM does no wasted work
# (benchmarks/results/resnet18-layers-*.json).
FUSED_CONV_LONG_PATCH = 1024
FUSED_CONV_MAX_WASTE = 1.2
TAPS_CONV_MIN_CHANNELS = 64
# Wide kernel: bytes of patches per chunk of images, few enough to stay in the L2 cache
# next to MKL's packed blocks (see benchmarks/ for the measurements).
FUSED_CONV_CHUNK_BYTES = 384 << 10
# Compact kernel: columns (output pixels) per chunk at least this many, so that MKL's GEMM
# runs at full speed on 4x4 maps, and patches of at most COMPACT_CONV_CHUNK_BYTES beyond that.
COMPACT_CONV_MIN_COLUMNS = 512
COMPACT_CONV_CHUNK_BYTES = 1 << 20
# Winograd's F(2x2, 3x3) (``jit/conv_winograd.py``) runs the forward of stride-1 3x3
# convolutions with at least this many input and output channels: 2.25 times fewer
# multiplications, whose saving its transforms eat below that (ResNet's 64-channel layer
# on 32x32 maps ran slower than the taps kernel), and of their input gradients; the weight
# gradients stay with the direct kernels.
WINOGRAD_MIN_CHANNELS = 64
# Tiles per chunk: enough for MKL's products (O, C) @ (C, tiles) to run at full speed
# (16 tiles took twice as long as 64 on ResNet's 4x4 maps), few enough that a thread's
# transformed tiles and products stay in its cache.
WINOGRAD_CHUNK_TILES = 64


def _conv_kernel(x, w, stride, groups, dilation, ow, pads) -> str | None:
    """Which kernel runs the forward of a convolution whose output rows are ``ow`` wide:
    ``'winograd'``, or the direct kernel that also runs its backward."""
    if (w.shape[2:] == (3, 3) and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and min(w.shape[:2]) >= WINOGRAD_MIN_CHANNELS and runtime.winograd_on()
            and jit.on_all(x, w) and runtime.mkl_loaded()):
        return "winograd"
    return _direct_kernel(x, w, stride, groups, dilation, ow, pads)


def _direct_kernel(x, w, stride, groups, dilation, ow, pads) -> str | None:
    """Which direct kernel runs a convolution (forward and backward) whose output rows are
    ``ow`` wide: ``'wide'``, ``'taps'``, ``'compact'``, or None (the NumPy reference)."""
    if not (groups == 1 and jit.on_all(x, w) and runtime.mkl_loaded()):
        return None
    if stride != (1, 1):
        return "compact"
    _, c, kh, kw = w.shape
    waste = (ow + (kw - 1) * dilation[1]) / max(ow, 1)
    # (taps: the last tap's reads past a plane's end land in the next plane's padding)
    if (c >= TAPS_CONV_MIN_CHANNELS and waste <= FUSED_CONV_MAX_WASTE
            and (pads[0][0] > 0 or pads[1][0] >= (kw - 1) * dilation[1])):
        return "taps"
    return "wide" if _wide_takes(x, w, stride, groups, dilation, ow) else "compact"


def _wide_takes(x, w, stride, groups, dilation, ow) -> bool:
    """Whether the wide kernel (and its conv + pool) may run a convolution whose output
    rows are ``ow`` wide."""
    if not (stride == (1, 1) and groups == 1 and jit.on_all(x, w) and runtime.mkl_loaded()):
        return False
    _, c, kh, kw = w.shape
    waste = (ow + (kw - 1) * dilation[1]) / max(ow, 1)
    return c * kh * kw < FUSED_CONV_LONG_PATCH or waste <= FUSED_CONV_MAX_WASTE


def _storage(x):
    """``(src, channel_major)``: the C-contiguous array holding ``x``'s elements."""
    if x.flags.c_contiguous:
        return x, False
    if x.transpose(1, 0, 2, 3).flags.c_contiguous:
        return x.transpose(1, 0, 2, 3), True
    return np.ascontiguousarray(x), False


def _conv_plan(x, w, out_hw, dilation, backward=False, whole_images=False):
    """``(chunk, rows, threads, scratch size)`` of the wide kernel: as many images per
    chunk as keep its patches within FUSED_CONV_CHUNK_BYTES, or, when one image's exceed
    that (and not ``whole_images``), one image ``rows`` output rows at a time."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    oh, ow = out_hw
    hp, wp = oh + (kh - 1) * dilation[0], ow + (kw - 1) * dilation[1]
    per_row = c * kh * kw * wp * x.itemsize
    chunk = max(1, min(n, FUSED_CONV_CHUNK_BYTES // (per_row * oh)))
    rows = oh if whole_images else max(1, min(oh, FUSED_CONV_CHUNK_BYTES // per_row))
    threads = max(1, min(jit.parts(), -(-n // chunk)))
    size = jit.scratch_size(c, o, c * kh * kw, chunk, rows, hp, wp, threads, backward)
    return chunk, rows, threads, size


def _compact_plan(x, w, out_hw, backward):
    """``(chunk, threads, scratch size)`` of the compact kernel: chunks of at least
    COMPACT_CONV_MIN_COLUMNS output pixels, up to COMPACT_CONV_CHUNK_BYTES of patches, and
    no bigger than a thread's share of the batch."""
    n = x.shape[0]
    o, c, kh, kw = w.shape
    p = out_hw[0] * out_hw[1]
    k = c * kh * kw
    chunk = max(-(-COMPACT_CONV_MIN_COLUMNS // p), COMPACT_CONV_CHUNK_BYTES // (k * p * x.itemsize))
    threads = max(1, min(jit.parts(), n))
    chunk = max(1, min(chunk, -(-n // threads)))
    threads = max(1, min(threads, -(-n // chunk)))
    return chunk, threads, jit.compact_scratch_size(k, o, chunk, p, threads, backward)


def _taps_plan(x, w, out_hw, dilation, backward):
    """``(threads, scratch size)`` of the taps kernel: whole images per thread."""
    o, c, kh, kw = w.shape
    oh, ow = out_hw
    hp, wp = oh + (kh - 1) * dilation[0], ow + (kw - 1) * dilation[1]
    threads = max(1, min(jit.parts(), x.shape[0]))
    return threads, jit.taps_scratch_size(c, o, hp, wp, oh, kw, dilation[1], threads, backward)


def _tap_major(w):
    """(O, C, kh, kw) weights as (kh*kw, O, C): one (O, C) matrix per tap."""
    o, c, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(kh * kw, o, c)


def conv2d(x, w, bias, stride, pads, dilation, groups, out_hw, relu, numpy_conv, *args):
    """``(out, kernel)``: the (O, N, OH, OW) C-contiguous output of the convolution (then a
    ReLU if ``relu``), by the wide kernel (``jit/conv.py``: stride 1, where its wide patches
    pay) or the compact one (``jit/conv_compact.py``: any stride), both for one group with
    MKL loaded, ``kernel`` naming it; else by the op's NumPy reference ``numpy_conv(x, w,
    bias, stride, pads, dilation, groups, out_hw, relu, *args)`` (the batch-chunked im2col
    + GEMM of ``ops/conv.py``, too long to live here), ``kernel`` None."""
    runtime.tick()
    kind = _conv_kernel(x, w, stride, groups, dilation, out_hw[1], pads)
    if kind is None:
        _note("conv2d", "numpy")
        return numpy_conv(x, w, bias, stride, pads, dilation, groups, out_hw, relu, *args), None
    _note("conv2d", "winograd" if kind == "winograd" else "numba")
    o, _, kh, kw = w.shape
    out = np.empty((o, x.shape[0]) + tuple(out_hw), x.dtype)
    b = bias if bias is not None else np.empty(0, x.dtype)
    if kind == "winograd":
        _winograd(x, w, False, b, relu, pads[0][0], pads[1][0], out_hw, out.reshape(o, -1))
        return out, kind
    src, cm = _storage(x)
    w2 = np.ascontiguousarray(w.reshape(o, -1))  # MKL reads it with row stride C*kh*kw
    if kind == "taps":
        threads, size = _taps_plan(x, w, out_hw, dilation, False)
        scratch = take(np, size, x.dtype)
        jit.conv2d_forward_taps(src, cm, _tap_major(w), b, relu, kh, kw, *dilation, pads[0][0],
                                pads[1][0], *out_hw, threads, scratch, out.reshape(o, -1))
    elif kind == "compact":
        chunk, threads, size = _compact_plan(x, w, out_hw, False)
        scratch = take(np, size, x.dtype)
        jit.conv2d_forward_compact(src, cm, w2, b, relu, kh, kw, *stride, *dilation,
                                   pads[0][0], pads[1][0], *out_hw, chunk, threads, scratch,
                                   out.reshape(o, -1))
    else:
        chunk, rows, threads, size = _conv_plan(x, w, out_hw, dilation)
        scratch = take(np, size, x.dtype)
        jit.conv2d_forward(src, cm, w2, b, relu, kh, kw, *dilation, pads[0][0],
                           pads[1][0], *out_hw, chunk, rows, threads, scratch,
                           out.reshape(o, -1))
    give(scratch)
    return out, kind


def _winograd(x, w, turned, bias, relu, pt, pl, out_hw, out):
    """``out`` (channels, N*OH*OW) = the stride-1 3x3 convolution of ``x`` (padded ``pt``
    above, ``pl`` left) by ``w``'s filters, or (``turned``) by them turned 180 degrees
    with their channels swapped, by Winograd's F(2x2, 3x3)."""
    src, cm = _storage(x)
    o, c = w.shape[:2]
    c_in, c_out = (o, c) if turned else (c, o)
    u_buffer = take(np, 16 * o * c, x.dtype)
    u = u_buffer[:16 * o * c].reshape(16, c_in, c_out)
    jit.winograd_filter(np.ascontiguousarray(w), turned, u)
    n = x.shape[0]
    per_image = ((out_hw[0] + 1) // 2) * ((out_hw[1] + 1) // 2)
    chunk = max(1, min(-(-WINOGRAD_CHUNK_TILES // per_image), -(-n // jit.parts())))
    threads = max(1, min(jit.parts(), -(-n // chunk)))
    scratch = take(np, jit.winograd_scratch_size(c_in, c_out, chunk, *out_hw, threads), x.dtype)
    jit.conv2d_forward_winograd(src, cm, u, bias, relu, pt, pl, *out_hw, chunk, threads,
                                scratch, out)
    give(scratch)
    give(u_buffer)


def conv2d_pool(x, w, bias, stride, pads, dilation, groups, out_hw, pool_hw, relu,
                numpy_conv, *args):
    """``(out, code, kernel)``: the convolution followed by 2x2 max pooling (then a ReLU if
    ``relu``), ``out`` and the pooling's ``code`` as (N, O, PH, PW) views. Where the wide
    convolution kernel runs, one kernel pools each chunk of the convolution's result as it
    leaves the thread's scratch (the full-size output is never written); else the two ops,
    :func:`conv2d` (with ``numpy_conv`` and ``args``) and tiled max pooling."""
    runtime.tick()
    if not _wide_takes(x, w, stride, groups, dilation, out_hw[1]):
        full, kind = conv2d(x, w, bias, stride, pads, dilation, groups, out_hw, False,
                            numpy_conv, *args)
        out, code = max_pool_tiled(full.transpose(1, 0, 2, 3), (2, 2), pool_hw, relu)
        return out, code, kind
    _note("conv2d_pool", "numba")
    src, cm = _storage(x)
    o, _, kh, kw = w.shape
    chunk, _, threads, size = _conv_plan(x, w, out_hw, dilation, whole_images=True)
    shape = (o, x.shape[0]) + tuple(pool_hw)
    out, code = np.empty(shape, x.dtype), np.empty(shape, np.uint8)
    b = bias if bias is not None else np.empty(0, x.dtype)
    scratch = take(np, size, x.dtype)
    w2 = np.ascontiguousarray(w.reshape(o, -1))
    jit.conv2d_pool_forward(src, cm, w2, b, relu, kh, kw, *dilation, pads[0][0], pads[1][0],
                            *out_hw, chunk, threads, scratch, *pool_hw, out.reshape(o, -1),
                            code.reshape(o, -1))
    give(scratch)
    return out.transpose(1, 0, 2, 3), code.transpose(1, 0, 2, 3), "wide"


def conv2d_backward(x, w, gt, stride, pads, dilation, groups, needs, y, kind, numpy_grads,
                    *args):
    """``(gx, gw, gb)`` of the convolution from the channel-major output gradient ``gt``
    (O, N, OH, OW): gx as (C, N, H, W) (None unless ``needs[0]``), gw shaped like ``w``
    (None unless ``needs[1]``), gb the bias gradient (the kernels always form it; the
    reference only when a third input needs it); ``y`` the forward's output when it ended in
    a ReLU. By the kernel the forward ran (``kind``: ``'wide'``, ``'taps'`` or ``'compact'``;
    after ``'winograd'``, dX by Winograd and dW by the direct kernel) when it takes ``gt``,
    else by the op's NumPy reference ``numpy_grads(x, w, gt, stride, pads,
    dilation, groups, needs, y, *args)``."""
    runtime.tick()
    if kind == "winograd":  # dX by Winograd too where its padding allows, dW directly
        kind = _direct_kernel(gt, w, stride, groups, dilation, gt.shape[3], pads)
        if (needs[0] and max(pads[0] + pads[1]) <= 2  # (and the switches still let it)
                and _conv_kernel(x, w, stride, groups, dilation, x.shape[3], pads) == "winograd"):
            if y is not None:  # the fused ReLU's mask, applied once for both gradients
                gt, y = relu_grad(gt, y), None
            gx = _winograd_input_grad(x, w, gt, pads)
            if not needs[1]:  # frozen weights: no dW pass
                wants_b = len(needs) > 2 and needs[2]
                return gx, None, gt.reshape(gt.shape[0], -1).sum(axis=1) if wants_b else None
            _, gw, gb = conv2d_backward(x, w, gt, stride, pads, dilation, groups,
                                        (False,) + tuple(needs[1:]), None, kind, numpy_grads,
                                        *args)
            return gx, gw, gb
    takes = (_wide_takes(gt, w, stride, groups, dilation, gt.shape[3]) if kind == "wide" else
             kind and _direct_kernel(gt, w, stride, groups, dilation, gt.shape[3], pads) == kind)
    if not takes:
        _note("conv2d_backward", "numpy")
        return numpy_grads(x, w, gt, stride, pads, dilation, groups, needs, y, *args)
    _note("conv2d_backward", "numba")
    src, cm = _storage(x)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    out_hw = gt.shape[2:]
    want_x = needs[0]
    gx = np.empty((c, n, h, wd) if want_x else (0, 0, 0, 0), x.dtype)
    mask = np.empty((0, 0), x.dtype) if y is None else y.reshape(o, -1)
    if kind == "taps":
        threads, size = _taps_plan(x, w, out_hw, dilation, True)
        parts = np.empty((threads, kh * kw, o, c), x.dtype)
        bias_parts = np.empty((threads, o), x.dtype)
        scratch = take(np, size, x.dtype)
        jit.conv2d_backward_taps(src, cm, _tap_major(w), gt.reshape(o, -1), mask, kh, kw,
                                 *dilation, pads[0][0], pads[1][0], *out_hw, scratch, parts,
                                 bias_parts, want_x, gx)
        give(scratch)
        gw = (parts[0] if threads == 1 else parts.sum(axis=0)).reshape(kh, kw, o, c)
        gw = np.ascontiguousarray(gw.transpose(2, 3, 0, 1))
        return (gx if want_x else None), (gw if needs[1] else None), bias_parts.sum(axis=0)
    if kind == "compact":
        chunk, threads, size = _compact_plan(x, w, out_hw, True)
    else:
        chunk, rows, threads, size = _conv_plan(x, w, out_hw, dilation, backward=True)
    parts = np.empty((threads, o, c * kh * kw), x.dtype)
    bias_parts = np.empty((threads, o), x.dtype)
    w2 = np.ascontiguousarray(w.reshape(o, -1))
    scratch = take(np, size, x.dtype)
    if kind == "compact":
        jit.conv2d_backward_compact(src, cm, w2, gt.reshape(o, -1), mask, kh, kw, *stride,
                                    *dilation, pads[0][0], pads[1][0], *out_hw, chunk,
                                    scratch, parts, bias_parts, want_x, gx)
    else:
        jit.conv2d_backward(src, cm, w2, gt.reshape(o, -1), mask, kh, kw, *dilation,
                            pads[0][0], pads[1][0], *out_hw, chunk, rows, scratch, parts,
                            bias_parts, want_x, gx)
    give(scratch)
    gw = (parts[0] if threads == 1 else parts.sum(axis=0)).reshape(w.shape)
    return (gx if want_x else None), (gw if needs[1] else None), bias_parts.sum(axis=0)


def _winograd_input_grad(x, w, gt, pads):
    """dX (C, N, H, W) of a stride-1 3x3 convolution from its channel-major output gradient
    ``gt``: the convolution of ``gt``, padded by 2 - p, with the filters turned and their
    channels swapped."""
    _note("conv2d_backward", "winograd")
    n, c, h, wd = x.shape
    gx = np.empty((c, n, h, wd), x.dtype)
    _winograd(gt.transpose(1, 0, 2, 3), w, True, np.empty(0, x.dtype), False,
              2 - pads[0][0], 2 - pads[1][0], (h, wd), gx.reshape(c, -1))
    return gx

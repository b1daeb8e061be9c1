"""Conv, ConvTranspose, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.

2-D convolutions run shendu's conv kernels (1-D ones as 2-D with a height of 1). Pooling
takes shendu's 2-D kernels in the plain symmetric case and otherwise a general N-d path:
pad, gather every window through an index array, reduce the window axis. Both paths are
differentiable.
"""
from __future__ import annotations

import math

import numpy as np

from ... import ops as O
from ...nn import functional as F
from ...ops.movement import Pad
from ._registry import arr, const, is_float, register


def _geometry(node, spatial, kernel):
    nd = len(spatial)
    strides = list(node.get("strides") or [1] * nd)
    dilations = list(node.get("dilations") or [1] * nd)
    auto = node.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
    elif auto == "VALID":
        begin, end = [0] * nd, [0] * nd
    else:
        pads = list(node.get("pads") or [0] * (2 * nd))
        begin, end = pads[:nd], pads[nd:]
    return strides, dilations, begin, end


def _zero_pad(x, begin, end, value=0.0):
    width = ((0, 0), (0, 0)) + tuple(zip(begin, end))
    if not any(begin) and not any(end):
        return x
    if is_float(x):
        return Pad.apply(x, width=width, mode="constant", value=value)
    return const(np.pad(arr(x), width, constant_values=value))


def _as_2d(x, nd):
    """1-D problems run as 2-D ones with a height of 1."""
    return O.unsqueeze(x, 2) if nd == 1 else x


@register("Conv")
def conv(node, x, w, b=None):
    nd = x.ndim - 2
    if nd not in (1, 2):
        raise node.error(f"only 1-D and 2-D convolution is supported, got input {x.shape}")
    strides, dil, begin, end = _geometry(node, x.shape[2:], w.shape[2:])
    group = node.get("group", 1)
    if begin != end:  # asymmetric padding: pad first
        x, begin = _zero_pad(x, begin, end), [0] * nd
    if nd == 1:
        y = F.conv2d(_as_2d(x, 1), _as_2d(w, 1), b, (1, strides[0]), (0, begin[0]),
                     (1, dil[0]), group)
        return O.squeeze(y, 2)
    return F.conv2d(x, w, b, tuple(strides), tuple(begin), tuple(dil), group)


@register("ConvTranspose")
def conv_transpose(node, x, w, b=None):
    nd = x.ndim - 2
    if nd not in (1, 2):
        raise node.error(f"only 1-D and 2-D transposed convolution is supported, got "
                         f"input {x.shape}")
    spatial, kernel = x.shape[2:], w.shape[2:]
    strides = list(node.get("strides") or [1] * nd)
    dil = list(node.get("dilations") or [1] * nd)
    opad = list(node.get("output_padding") or [0] * nd)
    full = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip(spatial, strides, kernel, dil)]
    auto = node.get("auto_pad", "NOTSET")
    out_shape = node.get("output_shape")
    if out_shape is not None:
        out_shape = list(out_shape)[-nd:]
    if node.get("pads") is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = out_shape or [n * s for n, s in zip(spatial, strides)]
        total = [f + p - o for f, p, o in zip(full, opad, out_shape)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        begin = small if auto == "SAME_UPPER" else big
    else:
        pads = list(node.get("pads") or [0] * (2 * nd))
        begin = pads[:nd]
        if out_shape is None:
            out_shape = [f + p - pb - pe for f, p, pb, pe in zip(full, opad, pads[:nd],
                                                                pads[nd:])]
    # The full (unpadded) transposed convolution, then the window ONNX asks for: rows past
    # its end (output_padding) are zeros plus bias.
    w2, x2 = _as_2d(w, nd), _as_2d(x, nd)
    s2 = (1, strides[0]) if nd == 1 else tuple(strides)
    d2 = (1, dil[0]) if nd == 1 else tuple(dil)
    y = F.conv_transpose2d(x2, w2, None, s2, 0, 0, node.get("group", 1), d2)
    if nd == 1:
        y = O.squeeze(y, 2)
    extra = [max(pb + o - f, 0) for pb, o, f in zip(begin, out_shape, full)]
    y = _zero_pad(y, [0] * nd, extra)
    y = y[(slice(None), slice(None)) + tuple(slice(pb, pb + o) for pb, o in zip(begin,
                                                                              out_shape))]
    if b is not None:
        y = O.add(y, O.reshape(b, (1, -1) + (1,) * nd))
    return y


def _pool_plan(node, x):
    nd = x.ndim - 2
    kernel = list(node.get("kernel_shape"))
    strides, dil, begin, end = _geometry(node, x.shape[2:], kernel)
    ceil = bool(node.get("ceil_mode", 0))
    out = []
    for n, k, s, d, pb, pe in zip(x.shape[2:], kernel, strides, dil, begin, end):
        span = n + pb + pe - (k - 1) * d - 1
        o = (-(-span // s) if ceil else span // s) + 1
        if ceil and (o - 1) * s >= n + pb:
            o -= 1  # a window may not start in the end padding
        out.append(o)
    return nd, kernel, strides, dil, begin, end, out


def _window_index(padded, kernel, strides, dil, out):
    """Flat positions in the padded spatial block of every window: (prod(out), prod(k))."""
    pos = None
    for ax, (k, s, d, o) in enumerate(zip(kernel, strides, dil, out)):
        p = (np.arange(o)[:, None] * s + np.arange(k)[None, :] * d)  # (o, k)
        stride = math.prod(padded[ax + 1:])
        p = p * stride
        if pos is None:
            pos = p
        else:
            pos = (pos[:, None, :, None] + p[None, :, None, :]).reshape(
                pos.shape[0] * o, pos.shape[1] * k)
    return pos


def _gathered(x, nd, kernel, strides, dil, begin, end, out, fill):
    extra = [max((o - 1) * s + (k - 1) * d + 1 - (n + pb + pe), 0) for o, s, k, d, n, pb, pe
             in zip(out, strides, kernel, dil, x.shape[2:], begin, end)]
    xp = _zero_pad(x, begin, [pe + e for pe, e in zip(end, extra)], fill)
    padded = xp.shape[2:]
    idx = _window_index(padded, kernel, strides, dil, out)
    flat = O.reshape(xp, xp.shape[:2] + (-1,))
    return flat[:, :, idx] if is_float(x) else const(arr(flat)[:, :, idx]), idx, padded


def _fill_low(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


@register("MaxPool")
def max_pool(node, x):
    nd, kernel, strides, dil, begin, end, out = _pool_plan(node, x)
    if (nd == 2 and node.n_outputs == 1 and begin == end and not node.get("ceil_mode", 0)
            and is_float(x) and all(2 * p <= k for p, k in zip(begin, kernel))):
        return F.max_pool2d(x, tuple(kernel), tuple(strides), tuple(begin), tuple(dil))
    g, idx, padded = _gathered(x, nd, kernel, strides, dil, begin, end, out,
                               _fill_low(np.dtype(x.dtype)))
    y = O.amax(g, dim=-1) if is_float(x) else const(arr(g).max(-1))
    y = O.reshape(y, x.shape[:2] + tuple(out))
    if node.n_outputs == 1:
        return y
    # Indices: positions in the whole (unpadded) input, flattened; storage_order=1 numbers
    # the spatial positions column-major
    which = np.take_along_axis(idx[None, None], arr(g).argmax(-1)[..., None], -1)[..., 0]
    coords = [c - pb for c, pb in zip(np.unravel_index(which, padded), begin)]
    spatial = list(x.shape[2:])
    if node.get("storage_order", 0):
        coords, spatial = coords[::-1], spatial[::-1]
    plane = np.ravel_multi_index(coords, spatial)
    n_, c_ = np.indices(which.shape[:2])
    flat = (n_[..., None] * x.shape[1] + c_[..., None]) * math.prod(spatial) + plane
    return y, const(flat.reshape(y.shape).astype(np.int64))


@register("AveragePool")
def avg_pool(node, x):
    nd, kernel, strides, dil, begin, end, out = _pool_plan(node, x)
    include_pad = bool(node.get("count_include_pad", 0))
    if (nd == 2 and begin == end and not node.get("ceil_mode", 0) and dil == [1, 1]
            and all(2 * p <= k for p, k in zip(begin, kernel))):
        return F.avg_pool2d(x, tuple(kernel), tuple(strides), tuple(begin),
                            count_include_pad=include_pad)
    g, idx, padded = _gathered(x, nd, kernel, strides, dil, begin, end, out, 0.0)
    # The divisor counts the window's cells inside the input (or inside input + padding)
    mask = np.zeros(padded, dtype=np.dtype(x.dtype))
    lo = [0] * nd if include_pad else begin
    hi = [n + pb + pe if include_pad else n + pb
          for n, pb, pe in zip(x.shape[2:], begin, end)]
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = 1
    count = mask.reshape(-1)[idx].sum(-1)
    y = O.div(O.sum(g, dim=-1), const(count))
    return O.reshape(y, x.shape[:2] + tuple(out))


@register("GlobalAveragePool")
def global_avg_pool(node, x):
    return O.mean(x, dim=tuple(range(2, x.ndim)), keepdim=True)


@register("GlobalMaxPool")
def global_max_pool(node, x):
    return O.amax(x, dim=tuple(range(2, x.ndim)), keepdim=True)

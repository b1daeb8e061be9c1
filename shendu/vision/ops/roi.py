"""Region-of-interest pooling: ``roi_align`` and ``roi_pool`` with torchvision's CPU
kernels' conventions, differentiable with respect to the feature map.

RoI Align is bilinear sampling averaged over a grid per output bin. The bilinear weight
of a sample is a product of a row weight and a column weight, and a sample outside the map
has zero weight in either, so for one RoI the output is ``Wy @ F[c] @ Wx.T / count`` with
``Wy`` (rows of bins x rows of the map) and ``Wx`` built from the sample positions. The
backward is the transpose, ``Wy.T @ G[c] @ Wx / count``; both are linear in the map.

>>> import shendu as sd
>>> from shendu.vision.ops import roi_align
>>> x = sd.arange(16.).reshape(1, 1, 4, 4)
>>> roi_align(x, sd.tensor([[0., 0., 0., 2., 2.]]), 1, aligned=True)
tensor([[[[2.5000]]]])
"""
from __future__ import annotations

import math

import numpy as np

import shendu as sd  # noqa: F401  (the examples below use it)
from shendu.autograd.function import Function
from shendu.nn.module import Module
from shendu.ops._util import xp_of
from shendu.tensor import Tensor

_FLT_MAX = float(np.finfo(np.float32).max)  # torchvision starts each bin's max at -FLT_MAX


def _pair(op, v):
    if isinstance(v, int):
        v = (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2 or min(v) <= 0:
        raise ValueError(f"{op}: output_size must be a positive int or (height, width), "
                         f"got {v!r}")
    return v


def _rois(op, input, boxes):
    """The ``(K, 5)`` array ``(batch index, x1, y1, x2, y2)`` from a Tensor[K, 5] or a list of
    Tensor[L, 4] (one per image), in the feature map's dtype."""
    if not isinstance(input, Tensor) or input.ndim != 4:
        shape = tuple(input.shape) if hasattr(input, "shape") else type(input).__name__
        raise ValueError(f"{op}: input must be a Tensor of shape (N, C, H, W), got {shape}")
    dtype = np.dtype(input._data.dtype)
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor) or b.ndim != 2 or b.shape[1] != 4:
                shape = tuple(b.shape) if hasattr(b, "shape") else type(b).__name__
                raise ValueError(f"{op}: boxes[{i}] must be a Tensor of shape (L, 4), "
                                 f"got {shape}")
            arr = np.asarray(b.detach().cpu(), dtype)
            parts.append(np.concatenate([np.full((len(arr), 1), i, dtype), arr], 1))
        return np.concatenate(parts, 0) if parts else np.zeros((0, 5), dtype)
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 5:
        shape = tuple(boxes.shape) if hasattr(boxes, "shape") else type(boxes).__name__
        raise ValueError(f"{op}: boxes must be a Tensor of shape (K, 5) (batch index, x1, y1, "
                         f"x2, y2) or a list of Tensor[L, 4], got {shape}")
    rois = np.asarray(boxes.detach().cpu(), dtype)
    bad = (rois[:, 0] < 0) | (rois[:, 0] >= input.shape[0])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{op}: box {k} has batch index {rois[k, 0]} but input has "
                         f"{input.shape[0]} images")
    return rois


# ---------------------------------------------------------------------------- roi_align
def _axis_weights(start, size, bins, grid, length, dtype):
    """``(bins, length)`` summed bilinear weights of the ``grid`` samples per bin along one
    axis (torchvision's ``bilinear_interpolate``, split by axis)."""
    w = np.zeros((bins, length), dtype)
    if grid <= 0:
        return w
    bin_size = size / bins
    p = np.arange(bins)[:, None]
    i = np.arange(grid)[None, :]
    pos = (start + p * bin_size + (i + 0.5) * bin_size / grid).astype(dtype)
    inside = (pos >= -1.0) & (pos <= length)
    pos = np.maximum(pos, 0)
    low = pos.astype(np.int64)
    top = low >= length - 1
    low = np.where(top, length - 1, low)
    high = np.where(top, length - 1, low + 1)
    pos = np.where(top, low.astype(dtype), pos)
    frac = pos - low
    rows = np.broadcast_to(p, pos.shape)
    np.add.at(w, (rows[inside], low[inside]), (1 - frac)[inside])
    np.add.at(w, (rows[inside], high[inside]), frac[inside])
    return w


def _align_plan(rois, out_hw, scale, sampling_ratio, aligned, hw, dtype, like):
    """Per RoI: its image and the row/column weight matrices (built on the host, then
    moved to the device of ``like``)."""
    offset = 0.5 if aligned else 0.0
    plan = []
    xp = xp_of(like)
    for r in rois:
        x1, y1, x2, y2 = (r[1:] * dtype.type(scale)).astype(dtype) - dtype.type(offset)
        w, h = x2 - x1, y2 - y1
        if not aligned:  # torchvision forces malformed RoIs to 1x1
            w, h = max(w, dtype.type(1)), max(h, dtype.type(1))
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(h / out_hw[0])
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(w / out_hw[1])
        count = max(gh * gw, 1)
        wy = _axis_weights(y1, h, out_hw[0], gh, hw[0], dtype)
        wx = _axis_weights(x1, w, out_hw[1], gw, hw[1], dtype)
        plan.append((int(r[0]), xp.asarray(wy / dtype.type(count)), xp.asarray(wx)))
    return plan


class _RoIAlign(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, x, rois, out_hw, scale, sampling_ratio, aligned):
        plan = _align_plan(rois, out_hw, scale, sampling_ratio, aligned, x.shape[2:], x.dtype,
                           x)
        ctx.plan, ctx.shape, ctx.out_hw = plan, x.shape, out_hw
        return _align_apply(x, plan, out_hw)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        gx = xp.zeros(ctx.shape, g.dtype)
        for k, (b, wy, wx) in enumerate(ctx.plan):
            gx[b] += wy.T @ g[k] @ wx
        return gx

    @staticmethod
    def jvp(ctx, t):
        return _align_apply(t, ctx.plan, ctx.out_hw)


def _align_apply(x, plan, out_hw):
    xp = xp_of(x)
    out = xp.zeros((len(plan), x.shape[1]) + tuple(out_hw), x.dtype)
    for k, (b, wy, wx) in enumerate(plan):
        out[k] = wy @ x[b] @ wx.T
    return out


def roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """Average of bilinear samples over each bin of each RoI (Mask R-CNN's RoIAlign).

    Args:
        input: ``(N, C, H, W)`` feature map.
        boxes: ``Tensor[K, 5]`` of ``(batch index, x1, y1, x2, y2)`` or a list of
            ``Tensor[L, 4]`` boxes, one per image, in input-image coordinates.
        output_size: ``int`` or ``(height, width)`` of the output per RoI.
        spatial_scale: factor from image coordinates to the map (``1/16`` for stride 16).
        sampling_ratio: samples per bin along each axis; ``<= 0`` means
            ``ceil(roi_size / output_size)``.
        aligned: shift box corners by ``-0.5`` after scaling (pixel centres); when False
            RoIs narrower than one cell are widened to one.

    Returns ``(K, C, output_height, output_width)``; samples more than one cell outside the
    map contribute zero, those within one cell are clamped to the border.
    """
    rois = _rois("roi_align", input, boxes)
    out_hw = _pair("roi_align", output_size)
    return _RoIAlign.apply(input, rois=rois, out_hw=out_hw, scale=float(spatial_scale),
                           sampling_ratio=int(sampling_ratio), aligned=bool(aligned))


# ---------------------------------------------------------------------------- roi_pool
def _round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _bin_edges(size, bins, start, length, dtype):
    """Per bin, the [first, last) cells of the map it covers along one axis (clipped)."""
    step = dtype.type(size) / bins
    p = np.arange(bins)
    lo = np.floor(p * step).astype(np.int64) + start
    hi = np.ceil((p + 1) * step).astype(np.int64) + start
    return np.clip(lo, 0, length), np.clip(hi, 0, length)


class _RoIPool(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, x, rois, out_hw, scale):
        n, c, h, w = x.shape
        ph_n, pw_n = out_hw
        out = np.zeros((len(rois), c, ph_n, pw_n), x.dtype)
        arg = np.full(out.shape, -1, np.int64)  # flat index into x, -1 for empty bins
        corners = _round_half_away((rois[:, 1:] * x.dtype.type(scale)).astype(x.dtype))
        chan = np.arange(c)[:, None]
        for k, r in enumerate(rois):
            b = int(r[0])
            xs, ys, xe, ye = (int(v) for v in corners[k])
            rh, rw = max(ye - ys + 1, 1), max(xe - xs + 1, 1)
            hb = _bin_edges(rh, ph_n, ys, h, x.dtype)
            wb = _bin_edges(rw, pw_n, xs, w, x.dtype)
            top, bottom = hb[0].min(), hb[1].max()
            if bottom <= top:
                continue
            # The first maximum in row-major order, in two passes: within each row over each
            # bin's columns (first column on ties), then over each bin's rows (first row).
            rows = x[b, :, top:bottom]
            m1 = np.full((c, bottom - top, pw_n), -np.inf, x.dtype)
            col = np.zeros(m1.shape, np.int64)
            for pw, (w0, w1) in enumerate(zip(*wb)):
                if w1 > w0:
                    j = rows[:, :, w0:w1].argmax(2)
                    col[:, :, pw] = w0 + j
                    m1[:, :, pw] = np.take_along_axis(rows[:, :, w0:w1], j[..., None], 2)[..., 0]
            for ph, (h0, h1) in enumerate(zip(*hb)):
                if h1 <= h0:
                    continue
                seg = m1[:, h0 - top:h1 - top]
                i = seg.argmax(1)  # (c, pw_n)
                m = np.take_along_axis(seg, i[:, None], 1)[:, 0]
                cols = np.take_along_axis(col[:, h0 - top:h1 - top], i[:, None], 1)[:, 0]
                ok = (m > -_FLT_MAX) & (wb[1] > wb[0])
                out[k, :, ph] = np.where(ok, m, np.where(wb[1] > wb[0], -_FLT_MAX, 0))
                flat = ((b * c + chan) * h + h0 + i) * w + cols
                arg[k, :, ph] = np.where(ok, flat, -1)
        ctx.arg, ctx.shape = arg, x.shape
        return out

    @staticmethod
    def backward(ctx, g):
        gx = np.zeros(int(np.prod(ctx.shape)), g.dtype)
        hit = ctx.arg >= 0
        np.add.at(gx, ctx.arg[hit], g[hit])
        return gx.reshape(ctx.shape)

    @staticmethod
    def jvp(ctx, t):
        out = np.zeros(ctx.arg.shape, t.dtype)
        hit = ctx.arg >= 0
        out[hit] = t.reshape(-1)[ctx.arg[hit]]
        return out


def roi_pool(input: Tensor, boxes, output_size, spatial_scale: float = 1.0) -> Tensor:
    """Max over each bin of each RoI (Fast R-CNN's RoI pooling).

    Box corners are scaled and rounded half away from zero; the RoI includes both corner
    cells; a bin covering no cell of the map gives 0; the gradient goes to the first
    maximum (row-major) of each bin.

    Args:
        input: ``(N, C, H, W)`` feature map.
        boxes: ``Tensor[K, 5]`` of ``(batch index, x1, y1, x2, y2)`` or a list of
            ``Tensor[L, 4]``, one per image.
        output_size: ``int`` or ``(height, width)``.
        spatial_scale: factor from image coordinates to the map.

    >>> x = sd.arange(16.).reshape(1, 1, 4, 4)
    >>> roi_pool(x, [sd.tensor([[0., 0., 3., 3.]])], 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    rois = _rois("roi_pool", input, boxes)
    out_hw = _pair("roi_pool", output_size)
    return _RoIPool.apply(input, rois=rois, out_hw=out_hw, scale=float(spatial_scale))


class RoIAlign(Module):
    """Module form of :func:`roi_align`.

    >>> RoIAlign(2, 1.0, 2)(sd.ones(1, 3, 8, 8), [sd.tensor([[0., 0., 4., 4.]])]).shape
    (1, 3, 2, 2)
    """

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int,
                 aligned: bool = False):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


class RoIPool(Module):
    """Module form of :func:`roi_pool`.

    >>> RoIPool((2, 3), 0.5)(sd.ones(2, 1, 8, 8), sd.tensor([[1., 0., 0., 9., 9.]])).shape
    (1, 1, 2, 3)
    """

    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"

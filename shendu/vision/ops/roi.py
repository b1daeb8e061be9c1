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

import numpy as np

import shendu as sd  # noqa: F401  (the examples below use it)
from shendu.autograd.function import Function
from shendu.backend import vision as vision_backend
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
    """``(K, bins, length)`` summed bilinear weights of the ``grid`` samples per bin along
    one axis for ``K`` RoIs starting at ``start`` ``(K,)`` of extent ``size`` ``(K,)``
    (torchvision's ``bilinear_interpolate``, split by axis)."""
    k = len(start)
    w = np.zeros((k, bins, length), dtype)
    if grid <= 0 or k == 0:
        return w
    bin_size = (size / dtype.type(bins))[:, None, None]
    p = np.arange(bins)[None, :, None]
    i = np.arange(grid)[None, None, :]
    pos = (start[:, None, None] + p * bin_size + (i + 0.5) * bin_size / grid).astype(dtype)
    inside = (pos >= -1.0) & (pos <= length)
    pos = np.maximum(pos, 0)
    low = pos.astype(np.int64)
    top = low >= length - 1
    low = np.where(top, length - 1, low)
    high = np.where(top, length - 1, low + 1)
    pos = np.where(top, low.astype(dtype), pos)
    frac = pos - low
    roi, rows = np.broadcast_to(np.arange(k)[:, None, None], pos.shape), \
        np.broadcast_to(p, pos.shape)
    np.add.at(w, (roi[inside], rows[inside], low[inside]), (1 - frac)[inside])
    np.add.at(w, (roi[inside], rows[inside], high[inside]), frac[inside])
    return w


def _align_plan(rois, out_hw, scale, sampling_ratio, aligned, hw, dtype, like):
    """The RoIs' images ``(K,)``, their row ``(K, out_h, H)`` and column ``(K, out_w, W)``
    weight matrices (built on the host for all RoIs at once, then moved to the device of
    ``like``), and where each weight row is nonzero (for the compiled loops; on the host)."""
    offset = 0.5 if aligned else 0.0
    xp = xp_of(like)
    corners = (rois[:, 1:] * dtype.type(scale)).astype(dtype) - dtype.type(offset)
    x1, y1 = corners[:, 0], corners[:, 1]
    w, h = corners[:, 2] - x1, corners[:, 3] - y1
    if not aligned:  # torchvision forces malformed RoIs to 1x1
        w, h = np.maximum(w, dtype.type(1)), np.maximum(h, dtype.type(1))
    if sampling_ratio > 0:
        gh = gw = np.full(len(rois), sampling_ratio)
    else:  # an adaptive grid: ceil(roi size / bins) samples per bin, RoI by RoI
        gh = np.ceil(h / out_hw[0]).astype(np.int64)
        gw = np.ceil(w / out_hw[1]).astype(np.int64)
    wy = np.zeros((len(rois), out_hw[0], hw[0]), dtype)
    wx = np.zeros((len(rois), out_hw[1], hw[1]), dtype)
    for grid in np.unique(gh):
        sel = np.flatnonzero(gh == grid)
        wy[sel] = _axis_weights(y1[sel], h[sel], out_hw[0], int(grid), hw[0], dtype)
    for grid in np.unique(gw):
        sel = np.flatnonzero(gw == grid)
        wx[sel] = _axis_weights(x1[sel], w[sel], out_hw[1], int(grid), hw[1], dtype)
    count = np.maximum(gh * gw, 1).astype(dtype)
    wy /= count[:, None, None]
    return (xp.asarray(rois[:, 0].astype(np.int64)), xp.asarray(wy), xp.asarray(wx),
            vision_backend.nonzero_spans(wy, wx))


class _RoIAlign(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, x, rois, out_hw, scale, sampling_ratio, aligned):
        ctx.plan = _align_plan(rois, out_hw, scale, sampling_ratio, aligned, x.shape[2:],
                               x.dtype, x)
        ctx.shape = x.shape
        return vision_backend.roi_align(x, *ctx.plan)

    @staticmethod
    def backward(ctx, g):
        return vision_backend.roi_align_backward(g, *ctx.plan, ctx.shape)

    @staticmethod
    def jvp(ctx, t):
        return vision_backend.roi_align(t, *ctx.plan)


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

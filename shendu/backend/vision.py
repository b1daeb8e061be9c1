"""Region ops for detection: one dispatch function per op, which runs the compiled loop
(``jit/vision.py``) or the reference written here, and reports which to
``runtime.trace_paths()`` as ``(op, 'numba' | 'numpy')``. The kernels take NumPy
float32/float64 arrays when the kernels are on.

- ``nms_sorted`` (``'nms'``; ``shendu/vision/ops/nms.py``): greedy non-maximum suppression
  over boxes already sorted by decreasing score. Both paths give the same positions: IoU in
  the boxes' dtype, ``inter / (area_i + area_j - inter)``, compared with the threshold in
  that dtype, a box dropped when it is strictly above.
- ``roi_align`` and ``roi_align_backward`` (``'roi_align'``, ``'roi_align_backward'``;
  ``shendu/vision/ops/roi.py``, which builds the plan): each RoI's output is
  ``Wy @ F @ Wx.T`` for its image's map ``F`` and its row and column weights. The
  reference batches these products per image (on NumPy or CuPy); the kernels visit only
  the nonzero span of each weight row, so the two agree to rounding.

>>> import numpy as np
>>> from shendu.backend import runtime, vision
>>> b = np.array([[0., 0., 2., 2.], [0., 0., 2., 1.9], [3., 3., 4., 4.]])
>>> with runtime.trace_paths() as log:
...     kept = vision.nms_sorted(b, 0.5)
>>> kept.tolist(), log[0][0]
([0, 2], 'nms')
"""
from __future__ import annotations

import numpy as np

from . import jit
from .cpu import _note, _xp

__all__ = ["nms_sorted", "nonzero_spans", "roi_align", "roi_align_backward"]

_PAIRWISE_MAX = 2048  # boxes up to which the reference builds the whole IoU matrix


def nms_sorted(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """int64 positions (ascending) of the boxes that greedy NMS keeps; ``boxes`` (N, 4)
    xyxy float, best first."""
    threshold = boxes.dtype.type(threshold)
    if jit.on(boxes):
        _note("nms", "numba")
        keep = np.empty(len(boxes), np.int64)
        return keep[:jit.nms_sorted(np.ascontiguousarray(boxes), threshold, keep)]
    _note("nms", "numpy")
    return _nms_reference(boxes, threshold)


def roi_align(x, images, wy, wx, spans):
    """``(K, C, out_h, out_w)``: RoI ``k`` is ``wy[k] @ x[images[k], c] @ wx[k].T`` per
    channel (``wy`` ``(K, out_h, H)``, ``wx`` ``(K, out_w, W)``; ``spans`` from
    ``nonzero_spans(wy, wx)``)."""
    if jit.on_all(x, wy, wx) and type(images) is np.ndarray:
        _note("roi_align", "numba")
        out = np.empty((len(images), wy.shape[1], wx.shape[1], x.shape[1]), x.dtype)
        jit.roi_align_forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), images, wy, wx,
                              *spans, out)
        return out.transpose(0, 3, 1, 2)  # (K, C, oh, ow), stored channels-last
    _note("roi_align", "numpy")
    return _roi_align_reference(x, images, wy, wx)


def roi_align_backward(g, images, wy, wx, spans, shape):
    """The gradient of ``roi_align`` for the map of ``shape``: ``wy[k].T @ g[k, c] @ wx[k]``
    summed into each RoI's image."""
    if jit.on_all(g, wy, wx) and type(images) is np.ndarray:
        _note("roi_align_backward", "numba")
        n, c, h, w = shape
        gx = np.zeros((n, h, w, c), g.dtype)
        chunk = -(-c // jit.parts())
        jit.roi_align_backward(np.ascontiguousarray(g.transpose(0, 2, 3, 1)), images, wy, wx,
                               *spans, gx, chunk)
        return gx.transpose(0, 3, 1, 2)
    _note("roi_align_backward", "numpy")
    return _roi_align_backward_reference(g, images, wy, wx, shape)


def nonzero_spans(wy, wx):
    """``(ylo, yhi, xlo, xhi)``: for each row of the host weight matrices ``wy`` and
    ``wx``, its first and one-past-last nonzero column (``(K, bins)`` int64; ``0, 0`` for
    an all-zero row). Computed once per plan, for forward and backward."""
    spans = []
    for w in (wy, wx):
        nz = w != 0
        lo, hi = nz.argmax(2), w.shape[2] - nz[..., ::-1].argmax(2)
        empty = ~nz.any(2)
        lo[empty], hi[empty] = 0, 0
        spans += [lo, hi]
    return tuple(spans)


# ---------------------------------------------------------------------- references
def _roi_align_reference(x, images, wy, wx):
    xp = _xp(x)
    out = xp.zeros((len(images), x.shape[1], wy.shape[1], wx.shape[1]), x.dtype)
    # per RoI Wy @ F[c] @ Wx.T, batched over the RoIs and channels of each image
    for b in xp.unique(images).tolist():
        sel = xp.flatnonzero(images == b)
        out[sel] = xp.matmul(xp.matmul(wy[sel][:, None], x[b]),
                             wx[sel].transpose(0, 2, 1)[:, None])
    return out


def _roi_align_backward_reference(g, images, wy, wx, shape):
    xp = _xp(g)
    gx = xp.zeros(shape, g.dtype)
    # per RoI Wy.T @ G[c] @ Wx, summed into its image (image by image: a batch of all
    # RoIs' full-size maps could be large)
    for b in xp.unique(images).tolist():
        sel = xp.flatnonzero(images == b)
        part = xp.matmul(xp.matmul(wy[sel].transpose(0, 2, 1)[:, None], g[sel]),
                         wx[sel][:, None])
        gx[b] += part.sum(0)
    return gx


def _overlaps(box, others, areas_box, areas_others):
    w = np.maximum(np.minimum(box[..., 2], others[:, 2]) - np.maximum(box[..., 0], others[:, 0]),
                   0)
    h = np.maximum(np.minimum(box[..., 3], others[:, 3]) - np.maximum(box[..., 1], others[:, 1]),
                   0)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (areas_box + areas_others - inter)


def _areas(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _nms_reference(b, threshold):
    """The greedy pass. Up to ``_PAIRWISE_MAX`` boxes it reads rows of the whole IoU
    matrix, computed at once; beyond, each kept box's IoUs with the later ones (memory
    O(N))."""
    areas = _areas(b)
    over = _overlaps(b[:, None], b, areas[:, None], areas) > threshold \
        if len(b) <= _PAIRWISE_MAX else None
    suppressed = np.zeros(len(b), bool)
    keep = []
    for i in range(len(b)):
        if suppressed[i]:
            continue
        keep.append(i)
        if over is not None:
            suppressed |= over[i]
            continue
        rest = i + 1 + np.flatnonzero(~suppressed[i + 1:])
        suppressed[rest[_overlaps(b[i], b[rest], areas[i], areas[rest]) > threshold]] = True
    return np.asarray(keep, np.int64)

"""Region kernels for detection (``backend/vision.py`` dispatches; its NumPy references
are the test oracles):

- greedy non-maximum suppression over boxes sorted by decreasing score: the loop of
  torchvision's CPU kernel, one box against the later ones, with no IoU matrix; on one
  thread, since each box's fate depends on the boxes kept before it;
- RoIAlign forward and backward as the products of ``ops/roi.py``'s per-RoI row and column
  weight matrices, skipping their zeros.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elementwise import SERIAL, at_kernel_level, kernel


@at_kernel_level
@njit(**SERIAL)
def nms_sorted(boxes, threshold, keep):
    """Write the positions of the kept boxes to ``keep`` and return how many there are.
    ``boxes`` (N, 4) xyxy, best first; a box is dropped when its IoU with a kept one,
    computed in the boxes' dtype, is strictly above ``threshold`` (of that dtype too)."""
    n = boxes.shape[0]
    zero = boxes.dtype.type(0)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(n, np.bool_)
    count = 0
    for i in range(n):
        if suppressed[i]:
            continue
        keep[count] = i
        count += 1
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        for j in range(i + 1, n):
            if suppressed[j]:
                continue
            w = max(min(x2, boxes[j, 2]) - max(x1, boxes[j, 0]), zero)
            h = max(min(y2, boxes[j, 3]) - max(y1, boxes[j, 1]), zero)
            inter = w * h
            if inter / (areas[i] + areas[j] - inter) > threshold:
                suppressed[j] = True
    return count


@kernel
def roi_align_forward(x, images, wy, wx, ylo, yhi, xlo, xhi, out):
    """``out[k, i, j, :] = sum_y sum_x wy[k, i, y] wx[k, j, x] x[images[k], y, x, :]`` over
    each weight row's nonzero span ``[lo, hi)``, with the map and the output channels-last
    (``(N, H, W, C)``, ``(K, oh, ow, C)``): every term is a whole channel vector, and a
    bin's bilinear samples touch only a few rows and columns, which dense products would
    multiply by zero."""
    rois, oh, ow, channels = out.shape
    for k in prange(rois):
        b = images[k]
        out[k] = 0
        for i in range(oh):
            for y in range(ylo[k, i], yhi[k, i]):
                for j in range(ow):
                    for col in range(xlo[k, j], xhi[k, j]):
                        weight = wy[k, i, y] * wx[k, j, col]
                        for c in range(channels):
                            out[k, i, j, c] += weight * x[b, y, col, c]


@kernel
def roi_align_backward(g, images, wy, wx, ylo, yhi, xlo, xhi, gx, chunk):
    """``gx[images[k], y, x, :] += wy[k, i, y] wx[k, j, x] g[k, i, j, :]`` over the RoIs in
    order, channels-last as in the forward; threads take ``chunk`` channels each, so no two
    write the same cell and the order of the additions is fixed."""
    rois, oh, ow, channels = g.shape
    for part in prange((channels + chunk - 1) // chunk):
        c0, c1 = part * chunk, min(channels, (part + 1) * chunk)
        for k in range(rois):
            b = images[k]
            for i in range(oh):
                for y in range(ylo[k, i], yhi[k, i]):
                    for j in range(ow):
                        for col in range(xlo[k, j], xhi[k, j]):
                            weight = wy[k, i, y] * wx[k, j, col]
                            for c in range(c0, c1):
                                gx[b, y, col, c] += weight * g[k, i, j, c]

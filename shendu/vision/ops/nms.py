"""Non-maximum suppression, as torchvision's CPU kernel does it.

Boxes are visited in decreasing score (a stable sort: of equal scores the lower index comes
first); each kept box suppresses the later ones whose IoU with it is strictly above the
threshold. IoU is computed in the boxes' dtype with areas ``(x2 - x1) * (y2 - y1)``.

>>> import shendu as sd
>>> from shendu.vision.ops import nms
>>> boxes = sd.tensor([[0., 0., 2., 2.], [0., 0., 2., 1.9], [3., 3., 4., 4.]])
>>> nms(boxes, sd.tensor([0.9, 0.8, 0.1]), 0.5)
tensor([0, 2])
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu.backend import vision as vision_backend
from shendu.tensor import Tensor


def _arrays(op, boxes, scores):
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[-1] != 4:
        shape = tuple(boxes.shape) if hasattr(boxes, "shape") else type(boxes).__name__
        raise ValueError(f"{op}: boxes must be a Tensor of shape (N, 4), got {shape}")
    if not isinstance(scores, Tensor) or scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        shape = tuple(scores.shape) if hasattr(scores, "shape") else type(scores).__name__
        raise ValueError(f"{op}: scores must be a Tensor of shape ({boxes.shape[0]},) "
                         f"matching boxes {tuple(boxes.shape)}, got {shape}")
    b = np.asarray(boxes.detach().cpu())
    s = np.asarray(scores.detach().cpu())
    if s.dtype.kind == "f" and np.isnan(s).any():
        raise ValueError(f"{op}: scores contain NaN at index "
                         f"{int(np.flatnonzero(np.isnan(s))[0])}")
    if b.dtype.kind != "f":
        b = b.astype(np.float32)
    return b, s


def _order(s):
    return np.argsort(-s if s.dtype.kind == "f" else -s.astype(np.float64), kind="stable")


def _nms(b, s, iou_threshold):
    """Kept indices into ``b``, in decreasing score."""
    order = _order(s)
    return order[vision_backend.nms_sorted(b[order], iou_threshold)]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64, decreasing score) of the boxes kept by non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` xyxy boxes.
        scores: ``(N,)`` scores.
        iou_threshold: boxes overlapping a kept box with IoU strictly above this are dropped.
    """
    b, s = _arrays("nms", boxes, scores)
    return sd.tensor(_nms(b, s, float(iou_threshold)))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category: boxes with different ``idxs`` never
    suppress each other. Returns int64 indices sorted by decreasing score (ties: lower
    index first).

    >>> boxes = sd.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.], [0., 0., 2., 2.]])
    >>> batched_nms(boxes, sd.tensor([0.5, 0.9, 0.7]), sd.tensor([0, 0, 1]), 0.5)
    tensor([1, 2])
    """
    b, s = _arrays("batched_nms", boxes, scores)
    if not isinstance(idxs, Tensor) or tuple(idxs.shape) != (len(b),):
        shape = tuple(idxs.shape) if hasattr(idxs, "shape") else type(idxs).__name__
        raise ValueError(f"batched_nms: idxs must be a Tensor of shape ({len(b)},), "
                         f"got {shape}")
    ids = np.asarray(idxs.detach().cpu())
    keep = np.zeros(len(b), bool)
    for c in np.unique(ids):
        members = np.flatnonzero(ids == c)
        keep[members[_nms(b[members], s[members], float(iou_threshold))]] = True
    kept = np.flatnonzero(keep)
    return sd.tensor(kept[_order(s[kept])].astype(np.int64))

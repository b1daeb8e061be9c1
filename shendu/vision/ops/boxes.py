"""Box arithmetic with torchvision's names and conventions.

Boxes are ``(N, 4)`` tensors in ``(x1, y1, x2, y2)`` order unless a format says otherwise.
Areas have no ``+1`` (a box from 0 to 1 has width 1). Everything is written with Tensor
ops, so IoU values are differentiable with respect to the boxes.

>>> import shendu as sd
>>> from shendu.vision.ops import box_iou
>>> box_iou(sd.tensor([[0., 0., 2., 2.]]), sd.tensor([[1., 1., 3., 3.]]))
tensor([[0.1429]])
"""
from __future__ import annotations

import math

import numpy as np

import shendu as sd
from shendu.tensor import Tensor

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(op: str, boxes, name: str = "boxes") -> Tensor:
    if not isinstance(boxes, Tensor):
        boxes = sd.tensor(np.asarray(boxes))
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{op}: {name} must have shape (N, 4), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.to(sd.float32)  # torchvision upcasts integer boxes before dividing
    return boxes


def box_area(boxes: Tensor) -> Tensor:
    """Area of each ``(x1, y1, x2, y2)`` box: ``(x2 - x1) * (y2 - y1)``, no ``+1``.

    Args:
        boxes: ``(N, 4)`` boxes.

    >>> box_area(sd.tensor([[0., 0., 2., 3.]]))
    tensor([6.])
    """
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[-1] != 4:
        shape = tuple(boxes.shape) if hasattr(boxes, "shape") else type(boxes).__name__
        raise ValueError(f"box_area: boxes must be a Tensor of shape (N, 4), got {shape}")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _inter_union(op, boxes1, boxes2):
    boxes1 = _check_boxes(op, boxes1, "boxes1")
    boxes2 = _check_boxes(op, boxes2, "boxes2")
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = sd.maximum(boxes1[:, None, :2], boxes2[:, :2])
    rb = sd.minimum(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return boxes1, boxes2, inter, union


def _enclosing_wh(boxes1, boxes2):
    lti = sd.minimum(boxes1[:, None, :2], boxes2[:, :2])
    rbi = sd.maximum(boxes1[:, None, 2:], boxes2[:, 2:])
    return (rbi - lti).clamp(min=0)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair: an ``(N, M)`` matrix.

    Args:
        boxes1: ``(N, 4)`` boxes, ``(x1, y1, x2, y2)``.
        boxes2: ``(M, 4)`` boxes.

    >>> box_iou(sd.tensor([[0., 0., 2., 2.]]), sd.tensor([[0., 0., 2., 1.]]))
    tensor([[0.5000]])
    """
    _, _, inter, union = _inter_union("box_iou", boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalized IoU of every pair: ``iou - (C - union) / C`` with ``C`` the area of the
    smallest box enclosing both; in ``[-1, 1]``.

    >>> generalized_box_iou(sd.tensor([[0., 0., 1., 1.]]), sd.tensor([[2., 0., 3., 1.]]))
    tensor([[-0.3333]])
    """
    b1, b2, inter, union = _inter_union("generalized_box_iou", boxes1, boxes2)
    whi = _enclosing_wh(b1, b2)
    area_c = whi[:, :, 0] * whi[:, :, 1]
    return inter / union - (area_c - union) / area_c


def _diou_iou(op, boxes1, boxes2, eps):
    b1, b2, inter, union = _inter_union(op, boxes1, boxes2)
    iou = inter / union
    whi = _enclosing_wh(b1, b2)
    diag2 = whi[:, :, 0] ** 2 + whi[:, :, 1] ** 2 + eps
    cx1, cy1 = (b1[:, 0] + b1[:, 2]) / 2, (b1[:, 1] + b1[:, 3]) / 2
    cx2, cy2 = (b2[:, 0] + b2[:, 2]) / 2, (b2[:, 1] + b2[:, 3]) / 2
    centers2 = (cx1[:, None] - cx2[None, :]) ** 2 + (cy1[:, None] - cy2[None, :]) ** 2
    return iou - centers2 / diag2, iou, b1, b2


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Distance IoU of every pair: ``iou - d^2 / c^2`` with ``d`` the distance between the
    centres and ``c`` the diagonal of the enclosing box (``eps`` added to ``c^2``).

    >>> distance_box_iou(sd.tensor([[0., 0., 2., 2.]]), sd.tensor([[0., 0., 2., 2.]]))
    tensor([[1.]])
    """
    return _diou_iou("distance_box_iou", boxes1, boxes2, eps)[0]


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of every pair: distance IoU minus ``alpha * v``, where ``v`` measures
    the aspect-ratio mismatch and ``alpha = v / (1 - iou + v + eps)`` is a constant (no
    gradient flows through it, as in torchvision).

    >>> complete_box_iou(sd.tensor([[0., 0., 2., 2.]]), sd.tensor([[0., 0., 2., 2.]]))
    tensor([[1.]])
    """
    diou, iou, b1, b2 = _diou_iou("complete_box_iou", boxes1, boxes2, eps)
    w1, h1 = b1[:, None, 2] - b1[:, None, 0], b1[:, None, 3] - b1[:, None, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    v = (4 / math.pi ** 2) * (sd.atan(w1 / h1) - sd.atan(w2 / h2)) ** 2
    with sd.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou - alpha.detach() * v


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``'xyxy'`` (corners), ``'xywh'`` (top-left corner, width,
    height) and ``'cxcywh'`` (centre, width, height).

    >>> box_convert(sd.tensor([[1., 2., 3., 6.]]), "xyxy", "cxcywh")
    tensor([[2., 4., 2., 4.]])
    """
    if in_fmt not in _FORMATS or out_fmt not in _FORMATS:
        raise ValueError(f"box_convert: unsupported bounding box conversion from {in_fmt!r} "
                         f"to {out_fmt!r}; formats are {_FORMATS}")
    if not isinstance(boxes, Tensor) or boxes.shape[-1:] != (4,):
        shape = tuple(boxes.shape) if hasattr(boxes, "shape") else type(boxes).__name__
        raise ValueError(f"box_convert: boxes must be a Tensor of shape (..., 4), got {shape}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == "xyxy":
        out = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    else:
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return sd.stack(out, -1)


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip ``(..., 4)`` xyxy boxes to an image of ``size = (height, width)``.

    >>> clip_boxes_to_image(sd.tensor([[-1., 2., 9., 12.]]), (10, 8))
    tensor([[ 0.,  2.,  8., 10.]])
    """
    if not isinstance(boxes, Tensor) or boxes.shape[-1:] != (4,):
        shape = tuple(boxes.shape) if hasattr(boxes, "shape") else type(boxes).__name__
        raise ValueError(f"clip_boxes_to_image: boxes must be a Tensor of shape (..., 4), "
                         f"got {shape}")
    if len(size) != 2:
        raise ValueError(f"clip_boxes_to_image: size must be (height, width), got {size!r}")
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return sd.stack((x, y), -1).reshape(boxes.shape)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (int64) of the boxes whose width and height are both at least ``min_size``.

    >>> remove_small_boxes(sd.tensor([[0., 0., 1., 5.], [0., 0., 3., 3.]]), 2.0)
    tensor([1])
    """
    boxes = _check_boxes("remove_small_boxes", boxes)
    arr = np.asarray(boxes.detach())
    ws, hs = arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]
    return sd.tensor(np.nonzero((ws >= min_size) & (hs >= min_size))[0].astype(np.int64))

"""IoU losses between matched boxes (``boxes1[i]`` against ``boxes2[i]``), torchvision's
``generalized_box_iou_loss``, ``distance_box_iou_loss`` and ``complete_box_iou_loss``.

>>> import shendu as sd
>>> from shendu.vision.ops import generalized_box_iou_loss
>>> generalized_box_iou_loss(sd.tensor([[0., 0., 1., 1.]]), sd.tensor([[2., 0., 3., 1.]]))
tensor([1.3333])
"""
from __future__ import annotations

import math

import shendu as sd
from shendu.tensor import Tensor

_REDUCTIONS = ("none", "mean", "sum")


def _pair(op, boxes1, boxes2):
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, Tensor) or b.shape[-1:] != (4,):
            shape = tuple(b.shape) if hasattr(b, "shape") else type(b).__name__
            raise ValueError(f"{op}: {name} must be a Tensor of shape (..., 4), got {shape}")
    if boxes1.shape != boxes2.shape:
        raise ValueError(f"{op}: boxes1 {tuple(boxes1.shape)} and boxes2 "
                         f"{tuple(boxes2.shape)} must have the same shape (matched pairs)")
    if not boxes1.is_floating_point():
        boxes1 = boxes1.to(sd.float32)
    if not boxes2.is_floating_point():
        boxes2 = boxes2.to(sd.float32)
    return boxes1.unbind(-1), boxes2.unbind(-1)


def _reduce(op, loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{op}: invalid reduction {reduction!r}; expected one of {_REDUCTIONS}")


def _inter_union(a, g):
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, g
    xk1, yk1 = sd.maximum(x1, x1g), sd.maximum(y1, y1g)
    xk2, yk2 = sd.minimum(x2, x2g), sd.minimum(y2, y2g)
    inter = sd.where((yk2 > yk1) & (xk2 > xk1), (xk2 - xk1) * (yk2 - yk1), 0.0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _enclosing(a, g):
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, g
    return (sd.minimum(x1, x1g), sd.minimum(y1, y1g), sd.maximum(x2, x2g),
            sd.maximum(y2, y2g))


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                             eps: float = 1e-7) -> Tensor:
    """``1 - GIoU`` of matched xyxy boxes, in ``[0, 2]``.

    Args:
        boxes1, boxes2: ``(..., 4)`` boxes of the same shape.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        eps: added to denominators.
    """
    a, g = _pair("generalized_box_iou_loss", boxes1, boxes2)
    inter, union = _inter_union(a, g)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing(a, g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    loss = 1 - (iou - (area_c - union) / (area_c + eps))
    return _reduce("generalized_box_iou_loss", loss, reduction)


def _diou_loss(a, g, eps):
    inter, union = _inter_union(a, g)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing(a, g)
    diag2 = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, g
    centers2 = ((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2
    return 1 - iou + centers2 / diag2, iou


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> Tensor:
    """``1 - DIoU`` of matched xyxy boxes: ``1 - iou + d^2 / c^2``.

    >>> distance_box_iou_loss(sd.tensor([[0., 0., 1., 1.]]), sd.tensor([[1., 0., 2., 1.]]))
    tensor([1.2000])
    """
    a, g = _pair("distance_box_iou_loss", boxes1, boxes2)
    return _reduce("distance_box_iou_loss", _diou_loss(a, g, eps)[0], reduction)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> Tensor:
    """``1 - CIoU`` of matched xyxy boxes: the distance-IoU loss plus ``alpha * v`` for the
    aspect-ratio mismatch, ``alpha`` held constant (no gradient), as in torchvision.

    >>> complete_box_iou_loss(sd.tensor([[0., 0., 1., 1.]]), sd.tensor([[1., 0., 2., 1.]]))
    tensor([1.2000])
    """
    a, g = _pair("complete_box_iou_loss", boxes1, boxes2)
    loss, iou = _diou_loss(a, g, eps)
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, g
    v = (4 / math.pi ** 2) * (sd.atan((x2g - x1g) / (y2g - y1g))
                              - sd.atan((x2 - x1) / (y2 - y1))) ** 2
    with sd.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce("complete_box_iou_loss", loss + alpha.detach() * v, reduction)

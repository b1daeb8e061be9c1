"""Box and region ops with torchvision's names (``torchvision.ops``): box conversion,
areas and IoU variants, IoU losses, non-maximum suppression, RoI Align and RoI pooling,
and the feature pyramid network.

>>> import shendu as sd
>>> from shendu.vision import ops
>>> ops.box_area(ops.box_convert(sd.tensor([[0., 0., 2., 3.]]), "xywh", "xyxy"))
tensor([6.])
"""
from .boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
    remove_small_boxes,
)
from .feature_pyramid import FeaturePyramidNetwork
from .losses import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss
from .nms import batched_nms, nms
from .roi import RoIAlign, RoIPool, roi_align, roi_pool

__all__ = [
    "box_area", "box_convert", "box_iou", "clip_boxes_to_image", "complete_box_iou",
    "distance_box_iou", "generalized_box_iou", "remove_small_boxes",
    "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss",
    "nms", "batched_nms", "roi_align", "roi_pool", "RoIAlign", "RoIPool",
    "FeaturePyramidNetwork",
]

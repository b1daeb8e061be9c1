"""Faster R-CNN (torchvision's ``FasterRCNN``): a backbone's feature map, a region
proposal network, RoIAlign and a box head, trained end to end (the four losses summed).

>>> import shendu as sd
>>> from shendu.vision.detection import fasterrcnn_canvas
>>> model = fasterrcnn_canvas(num_classes=3).eval()
>>> sorted(model(sd.zeros(1, 1, 64, 64))[0])
['boxes', 'labels', 'scores']
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu import nn

from ._checks import as_batch, check_targets
from .anchors import AnchorGenerator
from .backbone import BackboneWithFPN, CanvasBackbone
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from .rpn import RegionProposalNetwork, RPNHead


class FasterRCNN(nn.Module):
    """Two-stage detector.

    Args:
        backbone: returns a list with one feature map (its ``out_channels[0]`` channels,
            stride ``1 / spatial_scale``); any trunk wrapped to do so works.
        num_classes: classes including the background.
        rpn_anchor_generator: anchors for the RPN (default: sizes 16, 32, 64 at ratios
            1/2, 1, 2).
        spatial_scale: feature-map size over image size.
        image_mean, image_std: per-channel normalisation applied first.
        representation_size: width of the box head's two layers.
        **kwargs: passed to ``RoIHeads`` (score_thresh, nms_thresh, ...).

    ``forward(images, targets=None)``: losses ``loss_objectness``, ``loss_rpn_box_reg``,
    ``loss_classifier``, ``loss_box_reg`` in training mode, detections in eval mode.
    """

    def __init__(self, backbone, num_classes: int, rpn_anchor_generator=None,
                 spatial_scale: float = 1 / 8, image_mean=(0.0,), image_std=(1.0,),
                 representation_size: int = 256, rpn_kwargs=None, **kwargs):
        super().__init__()
        self.backbone, self.num_classes = backbone, num_classes
        anchors = rpn_anchor_generator or AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),))
        channels = backbone.out_channels[0]
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
            **(rpn_kwargs or {}))
        self.roi_heads = RoIHeads(TwoMLPHead(channels * 49, representation_size),
                                  FastRCNNPredictor(representation_size, num_classes),
                                  spatial_scale=spatial_scale, **kwargs)
        self.image_mean = np.asarray(image_mean, np.float32).reshape(1, -1, 1, 1)
        self.image_std = np.asarray(image_std, np.float32).reshape(1, -1, 1, 1)

    def forward(self, images, targets=None):
        images = as_batch("FasterRCNN", images)
        truths = check_targets("FasterRCNN", images.shape[0], targets, self.num_classes) \
            if self.training else None
        x = (images - sd.tensor(self.image_mean)) / sd.tensor(self.image_std)
        features = self.backbone(x)
        proposals, rpn_losses = self.rpn(images, features, truths)
        dets, head_losses = self.roi_heads(features[0], proposals, tuple(images.shape[-2:]),
                                           truths)
        return {**rpn_losses, **head_losses} if self.training else dets


def fasterrcnn_canvas(num_classes: int = 21, in_channels: int = 1,
                      widths=(16, 64, 128), canvas_size: int = 128,
                      fpn_channels: int | None = 64, **kwargs) -> FasterRCNN:
    """A Faster R-CNN sized for the canvases: the RPN and RoIAlign read one stride-4 map
    (fine enough for RoIAlign to see the small objects: a 7x7 pool of a stride-8 map would
    blur a 10-pixel box into two cells); RPN anchors of 12, 24 and 48 pixels on a 128-pixel
    canvas (scaled with ``canvas_size``) at ratios 1/2, 1, 2 and 3, centred in their cells.

    The map is the finest level of a ``FeaturePyramidNetwork`` (``fpn_channels`` wide) over
    the ``CanvasBackbone``'s stages from stride 4 down, so the box head also sees what the
    deeper stages saw (1000 steps on 64-pixel canvases: mAP@0.5 0.716 against 0.693 without
    it, for 9% more time a step). ``fpn_channels=None`` reads the last stage directly, at
    stride ``2 ** len(widths)``."""
    if fpn_channels:  # the stride-4 level of a pyramid over the deeper stages
        backbone = BackboneWithFPN(CanvasBackbone(in_channels, widths,
                                                  return_stages=range(1, len(widths))),
                                   fpn_channels, return_levels=(0,))
    else:
        backbone = CanvasBackbone(in_channels, widths, return_stages=(len(widths) - 1,))
    stride = 4 if fpn_channels else 2 ** len(widths)
    f = canvas_size / 128
    anchors = AnchorGenerator((tuple(max(4, round(s * f)) for s in (12, 24, 48)),),
                              ((0.5, 1.0, 2.0, 3.0),), offset=0.5)
    return FasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors,
                      spatial_scale=1 / stride, **kwargs)

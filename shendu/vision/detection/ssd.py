"""Single-shot detection (SSD, torchvision's ``SSD`` / ``SSDHead`` names): one pass of a
backbone gives feature maps at several strides; a 3x3 convolution per level predicts, for
every anchor, class logits and box offsets. Training labels anchors by IoU (each ground
truth also keeps its best anchor), regresses positives with smooth L1 and mines the hardest
negatives (3 per positive) for the classification loss.

>>> import shendu as sd
>>> from shendu.vision.detection import ssd_canvas
>>> model = ssd_canvas(num_classes=3).eval()
>>> out = model(sd.zeros(1, 1, 64, 64))
>>> sorted(out[0])
['boxes', 'labels', 'scores']
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu import nn
from shendu.nn import functional as F

from ..ops import box_iou
from ._checks import as_batch, check_targets
from .anchors import AnchorGenerator
from .backbone import BackboneWithFPN, CanvasBackbone
from .box_coder import BoxCoder
from .postprocess import filter_detections


def _flatten_level(x, k):
    """``(N, A * K, H, W)`` -> ``(N, H * W * A, K)``: anchors ordered as the generator's."""
    n, _, h, w = x.shape
    return x.reshape(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


class SSDScoringHead(nn.Module):
    """One 3x3 convolution per level predicting ``K`` numbers per anchor."""

    def __init__(self, in_channels, num_anchors, num_columns: int):
        super().__init__()
        self.module_list = nn.ModuleList([nn.Conv2d(c, a * num_columns, 3, padding=1)
                                          for c, a in zip(in_channels, num_anchors)])
        self.num_columns = num_columns

    def forward(self, features):
        return sd.cat([_flatten_level(m(f), self.num_columns)
                       for m, f in zip(self.module_list, features)], 1)


class SSDHead(nn.Module):
    """Classification (``num_classes`` logits, background included) and regression (4
    offsets) for every anchor of every level."""

    def __init__(self, in_channels, num_anchors, num_classes: int):
        super().__init__()
        self.classification_head = SSDScoringHead(in_channels, num_anchors, num_classes)
        self.regression_head = SSDScoringHead(in_channels, num_anchors, 4)

    def forward(self, features) -> dict:
        return {"bbox_regression": self.regression_head(features),
                "cls_logits": self.classification_head(features)}


class SSD(nn.Module):
    """A single-shot detector.

    Args:
        backbone: returns a list of feature maps; has ``out_channels`` (one per map).
        anchor_generator: an ``AnchorGenerator`` with one level per feature map.
        num_classes: classes including the background (label 0).
        image_mean, image_std: per-channel normalisation applied first.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: post-processing.
        iou_thresh: anchors with IoU at or above this with a ground truth are positives.
        neg_to_pos_ratio: negatives kept per positive by hard negative mining.

    ``forward(images, targets=None)``: in training mode returns ``{"bbox_regression",
    "classification"}`` losses; in eval mode one dict of ``boxes``, ``scores``, ``labels``
    per image.
    """

    def __init__(self, backbone, anchor_generator, num_classes: int, image_mean=(0.0,),
                 image_std=(1.0,), score_thresh: float = 0.01, nms_thresh: float = 0.45,
                 detections_per_img: int = 100, iou_thresh: float = 0.5,
                 topk_candidates: int = 100, neg_to_pos_ratio: int = 3, head=None):
        super().__init__()
        self.backbone = backbone
        self.anchor_generator = anchor_generator
        self.num_classes = num_classes
        self.head = head or SSDHead(backbone.out_channels,
                                    anchor_generator.num_anchors_per_location(), num_classes)
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.image_mean = np.asarray(image_mean, np.float32).reshape(1, -1, 1, 1)
        self.image_std = np.asarray(image_std, np.float32).reshape(1, -1, 1, 1)
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.iou_thresh, self.neg_to_pos_ratio = iou_thresh, neg_to_pos_ratio

    def match(self, gt_boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """Index of the matched ground truth per anchor, -1 for background."""
        if len(gt_boxes) == 0:
            return np.full(len(anchors), -1, np.int64)
        iou = np.asarray(box_iou(sd.tensor(gt_boxes), sd.tensor(anchors)))
        matches = iou.argmax(0)
        matches[iou.max(0) < self.iou_thresh] = -1
        best = iou.argmax(1)  # every ground truth keeps its best anchor
        matches[best] = np.arange(len(gt_boxes))
        return matches

    def compute_loss(self, truths, head_outputs, anchors: np.ndarray) -> dict:
        reg, logits = head_outputs["bbox_regression"], head_outputs["cls_logits"]
        n, a = reg.shape[:2]
        labels = np.zeros((n, a), np.int64)
        pos_rows, pos_targets = [], []
        for i, (gt, lab) in enumerate(truths):
            matches = self.match(gt, anchors)
            fg = np.flatnonzero(matches >= 0)
            labels[i, fg] = lab[matches[fg]]
            pos_rows.append(i * a + fg)
            pos_targets.append(np.asarray(self.box_coder.encode_single(
                sd.tensor(gt[matches[fg]], dtype=reg.dtype),
                sd.tensor(anchors[fg], dtype=reg.dtype))))
        pos_rows = np.concatenate(pos_rows)
        num_pos = max(1, len(pos_rows))
        box_loss = F.smooth_l1_loss(reg.reshape(-1, 4)[pos_rows],
                                    sd.tensor(np.concatenate(pos_targets), dtype=reg.dtype),
                                    reduction="sum")
        cls = F.cross_entropy(logits.reshape(n * a, -1), sd.tensor(labels.reshape(-1)),
                              reduction="none").reshape(n, a)
        # hard negative mining: per image the highest-loss background anchors
        neg_loss = np.asarray(cls.detach()).copy()
        fg_mask = labels > 0
        neg_loss[fg_mask] = -np.inf
        rank = np.argsort(np.argsort(-neg_loss, 1, kind="stable"), 1)
        keep = fg_mask | (rank < self.neg_to_pos_ratio * fg_mask.sum(1, keepdims=True))
        cls_loss = (cls * sd.tensor(keep.astype(np.float32), dtype=cls.dtype)).sum()
        return {"bbox_regression": box_loss / num_pos, "classification": cls_loss / num_pos}

    def postprocess_detections(self, head_outputs, anchors, image_size) -> list:
        reg = head_outputs["bbox_regression"].detach()
        probs = sd.softmax(head_outputs["cls_logits"].detach(), -1)
        anchors_t = sd.tensor(anchors, dtype=reg.dtype)
        out = []
        for i in range(reg.shape[0]):
            boxes = self.box_coder.decode_single(reg[i], anchors_t)
            c = self.num_classes - 1
            boxes = boxes.reshape(-1, 1, 4).expand(boxes.shape[0], c, 4)
            out.append(filter_detections(boxes, probs[i][:, 1:], image_size, self.score_thresh,
                                         self.nms_thresh, self.detections_per_img,
                                         topk_candidates=self.topk_candidates))
        return out

    def forward(self, images, targets=None):
        images = as_batch("SSD", images)
        truths = check_targets("SSD", images.shape[0], targets, self.num_classes) \
            if self.training else None
        x = (images - sd.tensor(self.image_mean)) / sd.tensor(self.image_std)
        features = self.backbone(x)
        head_outputs = self.head(features)
        anchors = np.asarray(self.anchor_generator(images, features)[0])
        if self.training:
            return self.compute_loss(truths, head_outputs, anchors)
        return self.postprocess_detections(head_outputs, anchors, tuple(images.shape[-2:]))


def ssd_canvas(num_classes: int = 21, in_channels: int = 1, widths=(24, 48, 96, 128),
               canvas_size: int = 128, fpn_channels: int | None = None, **kwargs) -> SSD:
    """An SSD sized for the canvases: feature maps at strides 4, 8 and 16 of a
    ``CanvasBackbone``, anchors of 10-64 pixels on a 128-pixel canvas (scaled with
    ``canvas_size``) at aspect ratios 1/2, 1, 2 and 3, centred in their cells; anchors with
    IoU >= 0.4 (not SSD's 0.5) with an object are its positives. ``fpn_channels`` puts a
    ``FeaturePyramidNetwork`` between the trunk and the heads.

    Why these: the objects' boxes are about 4-56 pixels a side on a 128 canvas (tight around
    the ink: a trouser is a third as wide as tall), so the levels stop at stride 16; a
    stride-32 level would be a 4x4 (on 64 pixels 2x2) grid whose corner-centred anchors
    overlap few objects well. On such a grid a small object overlaps few anchors by 0.5, so
    it trains few of them: in 1500-step trials on 64-pixel canvases the 0.4 threshold took
    mAP@0.5 from 0.625 to 0.685, and the wider trunk (24-128 channels, was 16-128) from 0.701
    to 0.748 for 30% more time a step; a pyramid or a third anchor size per level did not
    help."""
    kwargs.setdefault("iou_thresh", 0.4)
    backbone = CanvasBackbone(in_channels, widths, return_stages=(1, 2, 3))
    if fpn_channels:
        backbone = BackboneWithFPN(backbone, fpn_channels)
    f = canvas_size / 128
    sizes = tuple(tuple(max(4, round(s * f)) for s in level)
                  for level in ((10, 16), (22, 32), (44, 64)))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0, 3.0),) * 3, offset=0.5)
    return SSD(backbone, anchors, num_classes, **kwargs)

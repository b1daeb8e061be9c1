"""The second stage of Faster R-CNN (torchvision's ``RoIHeads``, ``TwoMLPHead``,
``FastRCNNPredictor``): features of each proposal pooled by RoIAlign, two fully connected
layers, then class logits and per-class box offsets. Training adds the ground truths to the
proposals, labels them by IoU (>= 0.5 foreground, else background), samples 25%
foreground, and uses cross-entropy plus smooth L1 on the true class's offsets.

>>> import shendu as sd
>>> from shendu.vision.detection import FastRCNNPredictor
>>> [t.shape for t in FastRCNNPredictor(8, 3)(sd.zeros(2, 8))]
[(2, 3), (2, 12)]
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu import nn
from shendu.nn import functional as F

from ..ops import box_iou, roi_align
from .box_coder import BoxCoder
from .matcher import BalancedPositiveNegativeSampler, Matcher
from .postprocess import postprocess_detections


class TwoMLPHead(nn.Module):
    """Flatten the pooled features, then two Linear + ReLU layers."""

    def __init__(self, in_channels: int, representation_size: int):
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x):
        return F.relu(self.fc7(F.relu(self.fc6(x.reshape(x.shape[0], -1)))))


class FastRCNNPredictor(nn.Module):
    """``cls_score`` (``num_classes`` logits) and ``bbox_pred`` (4 per class)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x):
        return self.cls_score(x), self.bbox_pred(x)


class RoIHeads(nn.Module):
    """Box classification and refinement of proposals.

    Args:
        box_head, box_predictor: a ``TwoMLPHead`` and a ``FastRCNNPredictor``.
        output_size, spatial_scale, sampling_ratio: ``roi_align`` settings.
        fg_iou_thresh, bg_iou_thresh, batch_size_per_image, positive_fraction: sampling.
        score_thresh, nms_thresh, detections_per_img: post-processing.
    """

    def __init__(self, box_head, box_predictor, output_size=(7, 7), spatial_scale=1 / 8,
                 sampling_ratio: int = 2, fg_iou_thresh: float = 0.5,
                 bg_iou_thresh: float = 0.5, batch_size_per_image: int = 64,
                 positive_fraction: float = 0.25, score_thresh: float = 0.01,
                 nms_thresh: float = 0.5, detections_per_img: int = 100):
        super().__init__()
        self.box_head, self.box_predictor = box_head, box_predictor
        self.output_size, self.spatial_scale = tuple(output_size), spatial_scale
        self.sampling_ratio = sampling_ratio
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, False)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image,
                                                             positive_fraction)
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img = detections_per_img

    def select_training_samples(self, proposals, truths):
        """Proposals (with the ground truths added), their labels and regression targets,
        subsampled."""
        out_props, out_labels, out_targets = [], [], []
        for props, (gt, lab) in zip(proposals, truths):
            p = np.concatenate([np.asarray(props), gt]) if len(gt) else np.asarray(props)
            if len(gt):
                idx = np.asarray(self.proposal_matcher(box_iou(sd.tensor(gt), sd.tensor(p))))
                labels = lab[idx.clip(0)].copy()
                labels[idx < 0] = 0
                matched = gt[idx.clip(0)]
            else:
                labels, matched = np.zeros(len(p), np.int64), np.zeros_like(p)
            pos, neg = self.fg_bg_sampler([sd.tensor(labels)])
            keep = np.flatnonzero(np.asarray(pos[0]) | np.asarray(neg[0]))
            p_t = sd.tensor(p[keep], dtype=sd.float32)
            out_props.append(p_t)
            out_labels.append(labels[keep])
            out_targets.append(self.box_coder.encode_single(
                sd.tensor(matched[keep], dtype=sd.float32), p_t))
        return out_props, out_labels, out_targets

    def box_features(self, features, proposals):
        pooled = roi_align(features, [p.to(features.dtype) for p in proposals],
                           self.output_size, self.spatial_scale, self.sampling_ratio)
        return self.box_predictor(self.box_head(pooled))

    def forward(self, features, proposals, image_size, truths=None):
        """``features``: the ``(N, C, H, W)`` map; returns ``(detections, losses)``."""
        if self.training:
            proposals, labels, targets = self.select_training_samples(proposals, truths)
            class_logits, box_regression = self.box_features(features, proposals)
            labels = np.concatenate(labels)
            loss_cls = F.cross_entropy(class_logits, sd.tensor(labels))
            pos = np.flatnonzero(labels > 0)
            reg = box_regression.reshape(len(labels), -1, 4)[pos, labels[pos]]
            loss_box = F.smooth_l1_loss(reg, sd.cat(targets, 0)[pos], beta=1 / 9,
                                        reduction="sum") / max(1, len(labels))
            return [], {"loss_classifier": loss_cls, "loss_box_reg": loss_box}
        class_logits, box_regression = self.box_features(features, proposals)
        dets = postprocess_detections(class_logits, box_regression, proposals,
                                      [image_size] * len(proposals), self.box_coder,
                                      self.score_thresh, self.nms_thresh,
                                      self.detections_per_img)
        return dets, {}

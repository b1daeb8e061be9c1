"""Region proposal network (torchvision's ``RPNHead`` / ``RegionProposalNetwork``): a 3x3
convolution over the feature map, then per anchor an objectness logit and 4 offsets. The
best-scoring decoded anchors, clipped and thinned by NMS, are the proposals. Training
samples 256 anchors per image (half positive at most; IoU >= 0.7 or a ground truth's best
anchor is positive, < 0.3 negative) for a binary cross-entropy and a smooth-L1 loss.

>>> import shendu as sd
>>> from shendu.vision.detection import AnchorGenerator, RPNHead, RegionProposalNetwork
>>> rpn = RegionProposalNetwork(AnchorGenerator(((8, 16),), ((1.0,),)), RPNHead(4, 2))
>>> rpn.eval()(sd.zeros(1, 1, 32, 32), [sd.zeros(1, 4, 8, 8)])[0][0].shape[1]
4
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu import nn
from shendu.nn import functional as F

from ..ops import box_iou, clip_boxes_to_image, nms, remove_small_boxes
from .box_coder import BoxCoder
from .matcher import BalancedPositiveNegativeSampler, Matcher


class RPNHead(nn.Module):
    """Shared 3x3 conv + ReLU, then ``cls_logits`` (A per cell) and ``bbox_pred`` (4A)."""

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features):
        logits, deltas = [], []
        for f in features:
            t = F.relu(self.conv(f))
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def _flatten(x, k):
    n, _, h, w = x.shape
    return x.reshape(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


class RegionProposalNetwork(nn.Module):
    """Proposals from anchors.

    Args:
        anchor_generator, head: an ``AnchorGenerator`` and an ``RPNHead``.
        fg_iou_thresh, bg_iou_thresh: anchor labelling thresholds.
        batch_size_per_image, positive_fraction: anchors sampled for the loss.
        pre_nms_top_n, post_nms_top_n: dicts ``{"training": n, "testing": n}``.
        nms_thresh: IoU for suppressing proposals.
        min_size: proposals with a side below this are dropped.

    ``forward(images, features, targets=None)`` returns ``(proposals, losses)``: one
    ``(P, 4)`` tensor per image (detached) and ``{"loss_objectness", "loss_rpn_box_reg"}``
    in training mode (``{}`` otherwise). ``targets`` are ``(boxes, labels)`` NumPy pairs.
    """

    def __init__(self, anchor_generator, head, fg_iou_thresh: float = 0.7,
                 bg_iou_thresh: float = 0.3, batch_size_per_image: int = 256,
                 positive_fraction: float = 0.5, pre_nms_top_n=None, post_nms_top_n=None,
                 nms_thresh: float = 0.7, min_size: float = 1e-3):
        super().__init__()
        self.anchor_generator, self.head = anchor_generator, head
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh,
                                        allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image,
                                                             positive_fraction)
        self._pre_nms_top_n = pre_nms_top_n or {"training": 400, "testing": 300}
        self._post_nms_top_n = post_nms_top_n or {"training": 128, "testing": 100}
        self.nms_thresh, self.min_size = nms_thresh, min_size

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def filter_proposals(self, proposals: np.ndarray, objectness: np.ndarray, image_size):
        """Top scores, clip, drop tiny boxes, NMS, keep the best ``post_nms_top_n``."""
        out = []
        for boxes, scores in zip(proposals, objectness):
            top = np.argsort(-scores, kind="stable")[:self.pre_nms_top_n()]
            b = clip_boxes_to_image(sd.tensor(boxes[top]), image_size)
            s = sd.tensor(scores[top])
            keep = np.asarray(remove_small_boxes(b, self.min_size))
            b, s = b[keep], s[keep]
            keep = np.asarray(nms(b, s, self.nms_thresh))[:self.post_nms_top_n()]
            out.append(b[keep])
        return out

    def assign_targets(self, anchors: np.ndarray, truths):
        labels, matched = [], []
        for gt, _ in truths:
            if len(gt) == 0:
                labels.append(np.zeros(len(anchors), np.float32))
                matched.append(np.zeros((len(anchors), 4), np.float32))
                continue
            idx = np.asarray(self.proposal_matcher(box_iou(sd.tensor(gt), sd.tensor(anchors))))
            lab = (idx >= 0).astype(np.float32)
            lab[idx == Matcher.BETWEEN_THRESHOLDS] = -1
            labels.append(lab)
            matched.append(gt[idx.clip(0)])
        return labels, matched

    def compute_loss(self, objectness, deltas, anchors, truths) -> dict:
        labels, matched = self.assign_targets(anchors, truths)
        pos, neg = self.fg_bg_sampler([sd.tensor(lab) for lab in labels])
        n, a = objectness.shape[0], len(anchors)
        pos_idx = np.concatenate([i * a + np.flatnonzero(np.asarray(p))
                                  for i, p in enumerate(pos)])
        neg_idx = np.concatenate([i * a + np.flatnonzero(np.asarray(q))
                                  for i, q in enumerate(neg)])
        sampled = np.concatenate([pos_idx, neg_idx])
        all_anchors = np.tile(anchors, (n, 1))
        targets = self.box_coder.encode_single(
            sd.tensor(np.concatenate(matched)[pos_idx], dtype=deltas.dtype),
            sd.tensor(all_anchors[pos_idx], dtype=deltas.dtype))
        box_loss = F.smooth_l1_loss(deltas.reshape(-1, 4)[pos_idx], targets, beta=1 / 9,
                                    reduction="sum") / max(1, len(sampled))
        obj_loss = F.binary_cross_entropy_with_logits(
            objectness.reshape(-1)[sampled],
            sd.tensor(np.concatenate(labels)[sampled], dtype=objectness.dtype))
        return {"loss_objectness": obj_loss, "loss_rpn_box_reg": box_loss}

    def forward(self, images, features, targets=None):
        logits, deltas = self.head(features)
        anchors = np.asarray(self.anchor_generator(images, features)[0])
        objectness = sd.cat([_flatten(t, 1) for t in logits], 1).reshape(logits[0].shape[0], -1)
        deltas = sd.cat([_flatten(t, 4) for t in deltas], 1)
        n = objectness.shape[0]
        decoded = self.box_coder.decode_single(deltas.detach().reshape(-1, 4),
                                               sd.tensor(np.tile(anchors, (n, 1)),
                                                         dtype=deltas.dtype))
        proposals = np.asarray(decoded).reshape(n, -1, 4)
        boxes = self.filter_proposals(proposals, np.asarray(objectness.detach()),
                                      tuple(images.shape[-2:]))
        losses = self.compute_loss(objectness, deltas, anchors, targets) \
            if self.training else {}
        return boxes, losses

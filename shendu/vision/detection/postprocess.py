"""Turning raw detector outputs into detections: decode offsets, drop low scores and tiny
boxes, per-class non-maximum suppression, keep the top ``k`` (torchvision's
``RoIHeads.postprocess_detections`` order of steps).

>>> import shendu as sd
>>> from shendu.vision.detection import filter_detections
>>> boxes = sd.tensor([[[0., 0., 10., 10.]], [[1., 0., 10., 10.]]])  # (K, C, 4)
>>> out = filter_detections(boxes, sd.tensor([[0.9], [0.8]]), (20, 20))
>>> out["boxes"], out["labels"]
(tensor([[ 0.,  0., 10., 10.]]), tensor([1]))
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu.tensor import Tensor

from ..ops import batched_nms, clip_boxes_to_image, remove_small_boxes


def filter_detections(boxes: Tensor, scores: Tensor, image_shape, score_thresh: float = 0.05,
                      nms_thresh: float = 0.5, detections_per_img: int = 100,
                      min_size: float = 1e-2, label_offset: int = 1,
                      topk_candidates: int | None = None) -> dict:
    """Detections of one image from per-class boxes and scores.

    Args:
        boxes: ``(K, C, 4)`` xyxy boxes, one per candidate and foreground class.
        scores: ``(K, C)`` class probabilities (background already removed).
        image_shape: ``(H, W)``; boxes are clipped to it.
        score_thresh: candidates scoring at or below this are dropped.
        nms_thresh: IoU above which a lower-scoring box of the same class is suppressed.
        detections_per_img: the most detections kept, best first.
        min_size: boxes with a side shorter than this are dropped.
        label_offset: the label of column 0 (1 when class 0 is the background).
        topk_candidates: before NMS, keep at most this many best candidates per class
            (torchvision's SSD does so).

    Returns a dict of ``boxes`` ``(D, 4)``, ``scores`` ``(D,)`` and ``labels`` ``(D,)``
    (int64) sorted by decreasing score.
    """
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or tuple(scores.shape) != tuple(boxes.shape[:2]):
        raise ValueError(f"filter_detections: boxes must be (K, C, 4) and scores (K, C), got "
                         f"{tuple(boxes.shape)} and {tuple(scores.shape)}")
    s_np = np.asarray(scores.detach().cpu())
    if np.isnan(s_np).any():
        k, c = np.argwhere(np.isnan(s_np))[0]
        raise ValueError(f"filter_detections: NaN score for candidate {k}, class {c}")
    k, c = scores.shape
    boxes = clip_boxes_to_image(boxes.detach().reshape(-1, 4), tuple(image_shape))
    scores = scores.detach().reshape(-1)
    labels = np.tile(np.arange(c, dtype=np.int64) + label_offset, k)
    keep = np.flatnonzero(s_np.reshape(-1) > score_thresh)
    if topk_candidates is not None and len(keep):
        s_kept, lab_kept = s_np.reshape(-1)[keep], labels[keep]
        order = np.lexsort((np.arange(len(keep)), -s_kept, lab_kept))  # by class, then score
        rank = np.arange(len(order)) - np.searchsorted(lab_kept[order], lab_kept[order])
        keep = np.sort(keep[order[rank < topk_candidates]])
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = np.asarray(remove_small_boxes(boxes, min_size))
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = np.asarray(batched_nms(boxes, scores, sd.tensor(labels), nms_thresh))
    keep = keep[:detections_per_img]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": sd.tensor(labels[keep])}


def postprocess_detections(class_logits: Tensor, box_regression: Tensor, proposals,
                           image_shapes, box_coder, score_thresh: float = 0.05,
                           nms_thresh: float = 0.5, detections_per_img: int = 100) -> list:
    """Detections per image from a box head's outputs (torchvision's
    ``RoIHeads.postprocess_detections``): softmax over classes, decode each class's offsets
    against its proposal, drop the background column, then ``filter_detections``.

    Args:
        class_logits: ``(K, C + 1)`` logits, column 0 the background.
        box_regression: ``(K, 4 * (C + 1))`` offsets.
        proposals: one ``(K_i, 4)`` tensor per image, ``sum K_i = K``.
        image_shapes: one ``(H, W)`` per image.
        box_coder: a ``BoxCoder``.

    Returns one dict of ``boxes``, ``scores``, ``labels`` per image.
    """
    if len(proposals) != len(image_shapes):
        raise ValueError(f"postprocess_detections: {len(proposals)} proposal sets but "
                         f"{len(image_shapes)} image shapes")
    num_classes = class_logits.shape[-1]
    pred_boxes = box_coder.decode(box_regression.detach(), proposals)
    pred_scores = sd.softmax(class_logits.detach(), -1)
    out, start = [], 0
    for props, shape in zip(proposals, image_shapes):
        n = len(props)
        b = pred_boxes[start:start + n].reshape(n, num_classes, 4)[:, 1:]
        s = pred_scores[start:start + n][:, 1:]
        out.append(filter_detections(b, s, shape, score_thresh, nms_thresh, detections_per_img))
        start += n
    return out

"""Labelling anchors: each prediction (anchor or proposal) gets the ground truth it
overlaps most, or a negative/ignore label by IoU thresholds (torchvision's ``Matcher``), and
a balanced random subset of positives and negatives is drawn for the loss
(``BalancedPositiveNegativeSampler``).

>>> import shendu as sd
>>> from shendu.vision.detection import Matcher
>>> iou = sd.tensor([[0.9, 0.5, 0.1], [0.2, 0.6, 0.25]])  # 2 ground truths x 3 anchors
>>> Matcher(0.7, 0.3)(iou)
tensor([ 0, -2, -1])
>>> Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
tensor([ 0,  1, -1])
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu.tensor import Tensor


class Matcher:
    """Match predictions to ground truths by a ``(M ground truths, N predictions)`` quality
    matrix (IoU). Returns ``(N,)`` int64: the matched ground-truth index, ``-1``
    (``BELOW_LOW_THRESHOLD``: a negative) or ``-2`` (``BETWEEN_THRESHOLDS``: ignored).

    Args:
        high_threshold: a best IoU at or above this is a match.
        low_threshold: a best IoU below this is a negative; between the two, ignored.
        allow_low_quality_matches: also match, for each ground truth, the predictions that
            reach its highest IoU (so no ground truth is left without an anchor); such a
            prediction keeps its own best ground truth.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float,
                 allow_low_quality_matches: bool = False):
        if low_threshold > high_threshold:
            raise ValueError(f"Matcher: low_threshold {low_threshold} is above "
                             f"high_threshold {high_threshold}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        q = np.asarray(match_quality_matrix.detach().cpu())
        if q.ndim != 2:
            raise ValueError(f"Matcher: the quality matrix must be (ground truths, "
                             f"predictions), got shape {q.shape}")
        if q.size == 0:
            if q.shape[0] == 0:
                raise ValueError("Matcher: no ground-truth boxes available for one of the "
                                 "images during training")
            raise ValueError("Matcher: no proposal boxes available for one of the images "
                             "during training")
        best = q.max(0)
        matches = q.argmax(0).astype(np.int64)  # the first ground truth on ties
        all_matches = matches.copy()
        matches[best < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        matches[(best >= self.low_threshold) & (best < self.high_threshold)] = \
            self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            preds = np.nonzero(q == q.max(1, keepdims=True))[1]
            matches[preds] = all_matches[preds]
        return sd.tensor(matches)


class BalancedPositiveNegativeSampler:
    """Draw at most ``batch_size_per_image`` labelled predictions per image, a
    ``positive_fraction`` of them positive when there are enough positives (negatives fill
    the rest). Labels: ``>= 1`` positive, ``0`` negative, ``-1`` ignored.

    Returns two lists of uint8 masks (positives, negatives), one per image. Draws use
    shendu's random generator (``sd.manual_seed``).

    >>> _ = sd.manual_seed(0)
    >>> pos, neg = BalancedPositiveNegativeSampler(4, 0.25)([sd.tensor([1, 1, 0, 0, 0, -1])])
    >>> int(pos[0].sum()), int(neg[0].sum()), int(neg[0][5])
    (1, 3, 0)
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float):
        if batch_size_per_image <= 0 or not 0 <= positive_fraction <= 1:
            raise ValueError(f"BalancedPositiveNegativeSampler: need batch_size_per_image > 0 "
                             f"and 0 <= positive_fraction <= 1, got {batch_size_per_image}, "
                             f"{positive_fraction}")
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(self, matched_idxs):
        pos_masks, neg_masks = [], []
        for labels in matched_idxs:
            lab = np.asarray(labels.detach().cpu())
            positive, negative = np.flatnonzero(lab >= 1), np.flatnonzero(lab == 0)
            num_pos = min(len(positive), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(len(negative), self.batch_size_per_image - num_pos)
            pick_pos = positive[sd.randperm(len(positive)).numpy()[:num_pos]]
            pick_neg = negative[sd.randperm(len(negative)).numpy()[:num_neg]]
            pm, nm = np.zeros(len(lab), np.uint8), np.zeros(len(lab), np.uint8)
            pm[pick_pos], nm[pick_neg] = 1, 1
            pos_masks.append(sd.tensor(pm))
            neg_masks.append(sd.tensor(nm))
        return pos_masks, neg_masks

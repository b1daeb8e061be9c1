"""Box regression targets: offsets of a box relative to an anchor (torchvision's
``BoxCoder``, the R-CNN parametrisation).

``encode`` gives ``(wx * dx / w_a, wy * dy / h_a, ww * log(w / w_a), wh * log(h / h_a))``
with ``dx, dy`` the shift between centres; ``decode`` inverts it, clamping the log-scale
terms at ``bbox_xform_clip`` so that ``exp`` cannot overflow. Decoding is differentiable in
the offsets.

>>> import shendu as sd
>>> from shendu.vision.detection import BoxCoder
>>> coder = BoxCoder((10., 10., 5., 5.))
>>> anchors = sd.tensor([[0., 0., 10., 10.]])
>>> codes = coder.encode_single(sd.tensor([[1., 1., 11., 21.]]), anchors)
>>> coder.decode_single(codes, anchors)
tensor([[ 1.,  1., 11., 21.]])
"""
from __future__ import annotations

import math

import shendu as sd
from shendu.tensor import Tensor


def _centres(boxes):
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return w, h, boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h


class BoxCoder:
    """Encode boxes as offsets from reference boxes (anchors/proposals) and back.

    Args:
        weights: ``(wx, wy, ww, wh)`` multiplying the four offsets.
        bbox_xform_clip: the largest log-scale offset applied when decoding.
    """

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip=math.log(1000.0 / 16)):
        if len(weights) != 4:
            raise ValueError(f"BoxCoder: weights must be (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Offsets ``(K, 4)`` that move each of ``proposals`` onto ``reference_boxes``
        (the ground truth matched to it)."""
        if reference_boxes.shape != proposals.shape or reference_boxes.shape[-1:] != (4,):
            raise ValueError(f"BoxCoder.encode: reference_boxes {tuple(reference_boxes.shape)}"
                             f" and proposals {tuple(proposals.shape)} must both be (K, 4)")
        wx, wy, ww, wh = self.weights
        aw, ah, ax, ay = _centres(proposals)
        gw, gh, gx, gy = _centres(reference_boxes)
        return sd.stack([wx * (gx - ax) / aw, wy * (gy - ay) / ah,
                         ww * sd.log(gw / aw), wh * sd.log(gh / ah)], 1)

    def encode(self, reference_boxes, proposals):
        """``encode_single`` over per-image lists; returns one tensor per image."""
        sizes = [len(b) for b in reference_boxes]
        codes = self.encode_single(sd.cat(list(reference_boxes), 0), sd.cat(list(proposals), 0))
        return list(codes.split(sizes, 0))

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Boxes ``(K, 4 * C)`` from offsets ``(K, 4 * C)`` relative to ``boxes`` ``(K, 4)``
        (``C`` sets of offsets per box, one per class, as in a box head)."""
        if rel_codes.ndim != 2 or rel_codes.shape[1] % 4 or rel_codes.shape[0] != len(boxes):
            raise ValueError(f"BoxCoder.decode: rel_codes {tuple(rel_codes.shape)} must be "
                             f"(K, 4 * C) with K = {len(boxes)} boxes")
        boxes = boxes.to(rel_codes.dtype)
        wx, wy, ww, wh = self.weights
        w, h, cx, cy = (v[:, None] for v in _centres(boxes))
        dx, dy = rel_codes[:, 0::4] / wx, rel_codes[:, 1::4] / wy
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)
        px, py = dx * w + cx, dy * h + cy
        half_w, half_h = 0.5 * sd.exp(dw) * w, 0.5 * sd.exp(dh) * h
        out = sd.stack([px - half_w, py - half_h, px + half_w, py + half_h], 2)
        return out.reshape(rel_codes.shape[0], -1)

    def decode(self, rel_codes: Tensor, boxes) -> Tensor:
        """Decode offsets for a per-image list of reference boxes: ``(K, C, 4)``."""
        ref = sd.cat(list(boxes), 0)
        k = ref.shape[0]
        pred = self.decode_single(rel_codes.reshape(k, -1), ref)
        return pred.reshape(k, -1, 4) if k > 0 else pred.reshape(0, -1, 4)

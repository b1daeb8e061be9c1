"""Multi-scale inference for segmentation (DeepLab's test-time scales): run the model on the
images resized by each scale, bring the scores back to the images' size and average the
class probabilities. Objects of many sizes are each seen once near the size the model
segments best, at the cost of one forward pass per scale.

>>> import shendu as sd
>>> from shendu.vision.segmentation import UNet, predict_multiscale
>>> model = UNet(1, 3, widths=(4, 8)).eval()
>>> predict_multiscale(model, sd.zeros(2, 1, 16, 16), scales=(0.5, 1.0), size_multiple=2).shape
(2, 3, 16, 16)
"""
from __future__ import annotations

import shendu as sd
from shendu.nn import functional as F

__all__ = ["predict_multiscale"]


def _scaled_side(side: int, scale: float, multiple: int) -> int:
    return max(multiple, multiple * round(side * scale / multiple))


def predict_multiscale(model, images, scales=(1.0,), *, flip: bool = False,
                       size_multiple: int = 1):
    """Class probabilities ``(N, C, H, W)`` averaged over the scales (and mirror images).

    Args:
        model: maps ``(N, C_in, h, w)`` images to ``(N, C, h, w)`` class scores (logits).
        images: ``(N, C_in, H, W)`` tensor.
        scales: factors to resize the images by (bilinear); ``1.0`` is the images as given.
        flip: also run each scale on the left-right mirror images, mirrored back. It helps
            only where the classes look the same mirrored (not for digits or text).
        size_multiple: each resized side is rounded to a multiple of this (a U-Net with
            ``L`` levels needs ``2 ** (L - 1)``).

    Runs without recording gradients; the scores are brought back to ``(H, W)`` bilinearly
    before the softmax, so every scale's vote is a probability.
    """
    if images.ndim != 4:
        raise ValueError(f"predict_multiscale: expected (N, C, H, W) images, got shape "
                         f"{tuple(images.shape)}")
    scales = tuple(float(s) for s in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"predict_multiscale: scales must be positive numbers, got {scales}")
    if int(size_multiple) < 1:
        raise ValueError(f"predict_multiscale: size_multiple must be >= 1, got {size_multiple}")
    height, width = images.shape[2:]
    total, runs = None, 0
    with sd.no_grad():
        for scale in scales:
            size = (_scaled_side(height, scale, size_multiple),
                    _scaled_side(width, scale, size_multiple))
            resized = images if size == (height, width) else F.interpolate(
                images, size=size, mode="bilinear", align_corners=False)
            for mirrored in (False, True) if flip else (False,):
                x = sd.flip(resized, dims=(3,)) if mirrored else resized
                scores = model(x)
                if mirrored:
                    scores = sd.flip(scores, dims=(3,))
                if size != (height, width):
                    scores = F.interpolate(scores, size=(height, width), mode="bilinear",
                                           align_corners=False)
                probs = sd.softmax(scores, 1)
                total = probs if total is None else total + probs
                runs += 1
    return total / runs

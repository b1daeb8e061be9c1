"""Fully convolutional network, FCN-8s style: class scores from the stride-32 features are
upsampled 2x by a transposed convolution (initialised to bilinear interpolation), added to
scores from the stride-16 features, upsampled 2x again, added to stride-8 scores, and
upsampled 8x to the input size.

>>> import shendu as sd
>>> from shendu.vision.segmentation import FCN
>>> FCN(num_classes=3, widths=(8, 8, 8, 8, 8))(sd.zeros(2, 1, 32, 32)).shape
(2, 3, 32, 32)
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu import nn

from ..detection.backbone import CanvasBackbone


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> np.ndarray:
    """``(in, out, k, k)`` weights making ``ConvTranspose2d(k, stride=k // 2)`` a bilinear
    upsampling of each channel onto itself (zero across channels).

    >>> bilinear_kernel(1, 1, 4)[0, 0, 0]
    array([0.0625, 0.1875, 0.1875, 0.0625], dtype=float32)
    """
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.arange(kernel_size)
    filt1 = 1 - np.abs(og - centre) / factor
    filt = filt1[:, None] * filt1[None, :]
    weight = np.zeros((in_channels, out_channels, kernel_size, kernel_size), np.float32)
    for c in range(min(in_channels, out_channels)):
        weight[c, c] = filt
    return weight


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable ``factor``-times upsampling initialised to bilinear interpolation."""
    k = 2 * factor
    up = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=factor // 2,
                            bias=False)
    with sd.no_grad():
        up.weight.copy_(sd.tensor(bilinear_kernel(channels, channels, k)))
    return up


class FCN(nn.Module):
    """FCN-8s over a ``CanvasBackbone`` (strides 8, 16 and 32).

    Args:
        num_classes: classes including the background.
        in_channels: image channels.
        widths: the backbone's stage widths (five stages).

    ``forward(x)`` returns ``(N, num_classes, H, W)`` logits for ``H, W`` divisible by 32.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, widths=(16, 32, 64, 128, 128)):
        super().__init__()
        self.backbone = CanvasBackbone(in_channels, widths, return_stages=(2, 3, 4))
        c8, c16, c32 = self.backbone.out_channels
        self.score32 = nn.Conv2d(c32, num_classes, 1)
        self.score16 = nn.Conv2d(c16, num_classes, 1)
        self.score8 = nn.Conv2d(c8, num_classes, 1)
        self.up32 = bilinear_upsampler(num_classes, 2)
        self.up16 = bilinear_upsampler(num_classes, 2)
        self.up8 = bilinear_upsampler(num_classes, 8)

    def forward(self, x):
        f8, f16, f32 = self.backbone(x)
        s = self.up32(self.score32(f32)) + self.score16(f16)
        s = self.up16(s) + self.score8(f8)
        return self.up8(s)

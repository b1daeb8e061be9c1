"""U-Net: an encoder of (conv, conv, max-pool) stages and a decoder that upsamples with
transposed convolutions and concatenates the encoder features of the same size before its
convolutions, ending in a 1x1 convolution to class scores. With ``deep_scores`` every
decoder level also scores the classes, and the scores are upsampled and summed from the
coarsest level down (FCN-8s's skips on a U-Net's decoder), so the class decision, made where
the receptive field covers a whole object, need not squeeze through the finest level's few
channels.

>>> import shendu as sd
>>> from shendu.vision.segmentation import UNet
>>> UNet(1, 3, widths=(4, 8))(sd.zeros(1, 1, 16, 16)).shape
(1, 3, 16, 16)
"""
from __future__ import annotations

import shendu as sd
from shendu import nn
from shendu.nn import functional as F


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two (3x3 conv, BN, ReLU) layers."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """U-Net with ``len(widths) - 1`` down- and up-sampling steps.

    Args:
        in_channels: image channels.
        num_classes: classes including the background.
        widths: channels per level, finest first.
        deep_scores: also score the classes at every decoder level and add them, upsampled
            (nearest), into the finest level's scores.

    ``forward(x)`` returns ``(N, num_classes, H, W)`` logits; ``H, W`` must be divisible
    by ``2 ** (len(widths) - 1)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, widths=(16, 32, 64, 128),
                 deep_scores: bool = False):
        super().__init__()
        self.down = nn.ModuleList([double_conv(c_in, c_out) for c_in, c_out in
                                   zip((in_channels, *widths[:-1]), widths)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(len(widths) - 1))])
        self.merge = nn.ModuleList([double_conv(2 * widths[i], widths[i])
                                    for i in reversed(range(len(widths) - 1))])
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        # coarsest level first; the finest level's scores come from ``head``
        self.coarse_heads = nn.ModuleList([nn.Conv2d(widths[i], num_classes, 1)
                                           for i in range(len(widths) - 1, 0, -1)]) \
            if deep_scores else None
        self.depth = len(widths) - 1
        self.widths = tuple(widths)

    def encode(self, x):
        """The encoder alone: ``(skips, bottom)``, the features each level passes across to
        the decoder (finest first) and the coarsest level's map (``widths[-1]`` channels).
        A classifier on ``bottom`` (pooled) can pre-train the encoder, as FCNs start from a
        classification network."""
        f = 2 ** self.depth
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"UNet: input size {tuple(x.shape[-2:])} must be divisible by "
                             f"{f} ({self.depth} poolings)")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        return skips, x

    def forward(self, x):
        skips, x = self.encode(x)
        scores = self.coarse_heads[0](x) if self.coarse_heads is not None else None
        for level, (up, merge, skip) in enumerate(zip(self.up, self.merge, reversed(skips))):
            x = merge(sd.cat([up(x), skip], 1))
            if scores is not None:
                head = self.coarse_heads[level + 1] if level + 1 < self.depth else self.head
                scores = F.interpolate(scores, scale_factor=2) + head(x)
        return self.head(x) if scores is None else scores

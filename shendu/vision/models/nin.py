"""Network in Network (Lin et al., 2013) in d2l's layout: a plain ``Sequential`` of NiN
blocks (a convolution followed by two 1x1 convolutions, each with ReLU), max-pools,
dropout, and global average pooling over one channel per class instead of dense layers."""
from __future__ import annotations

from ... import nn
from ._utils import check_input_size, load_weights

__all__ = ["NiN", "nin_block", "nin"]


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int,
              padding: int) -> nn.Sequential:
    """A convolution and two 1x1 convolutions (per-pixel dense layers), each with ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU())


class NiN(nn.Sequential):
    """d2l's NiN: keys ``0.0.weight`` ... ``7.4.bias`` as in the book's ``nn.Sequential``.

    Args:
        num_classes: channels of the last NiN block, averaged into the logits.
        in_channels: image channels (1: d2l trains it on Fashion-MNIST).
        dropout: dropout probability before the last block.
    """

    # 11x11/4 then three 3x3/2 pools: below 67 px one of them gets no window
    min_input_size = 67

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 dropout: float = 0.5) -> None:
        super().__init__(
            nin_block(in_channels, 96, 11, 4, 0), nn.MaxPool2d(3, stride=2),
            nin_block(96, 256, 5, 1, 2), nn.MaxPool2d(3, stride=2),
            nin_block(256, 384, 3, 1, 1), nn.MaxPool2d(3, stride=2),
            nn.Dropout(dropout),
            nin_block(384, num_classes, 3, 1, 1),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())

    def forward(self, x):
        check_input_size("NiN", x, self.min_input_size)
        return super().forward(x)


def nin(*, weights=None, **kwargs) -> NiN:
    """Network in Network as d2l builds it (default input 1x224x224, 10 classes).

    At 1x224x224 with 10 classes: 1,992,166 parameters, 0.76 G multiply-adds.

    Args:
        weights: path of a state dict to load, strictly; None keeps random weights.
        **kwargs: ``num_classes``, ``in_channels``, ``dropout`` (see :class:`NiN`).

    >>> import shendu as sd
    >>> nin().eval()(sd.zeros(1, 1, 67, 67)).shape
    (1, 10)
    """
    return load_weights(NiN(**kwargs), weights)

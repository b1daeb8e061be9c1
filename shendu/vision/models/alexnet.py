"""AlexNet (Krizhevsky et al., 2012) in torchvision's layout: the key indices of
``features`` and ``classifier`` count the ReLU, pooling and dropout positions too, so
torchvision's state dicts load as they are."""
from __future__ import annotations

from ... import nn
from ._utils import check_input_size, load_weights

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """Five convolutions (11x11 stride 4 first), three max-pools, a 6x6 adaptive average
    pool and three dense layers with dropout.

    Args:
        num_classes: outputs of the last layer.
        dropout: dropout probability before the first two dense layers.
        in_channels: image channels (a shendu addition; 3 as torchvision).
    """

    # 11x11/4 then three 3x3/2 pools: below 63 px one of the pools gets no window
    min_input_size = 63

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, *,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        check_input_size("AlexNet", x, self.min_input_size)
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def alexnet(*, weights=None, **kwargs) -> AlexNet:
    """AlexNet as torchvision builds it.

    At 3x224x224 with 1000 classes: 61,100,840 parameters, 0.71 G multiply-adds.

    Args:
        weights: path of a state dict (``.safetensors``, shendu file, or ``.pth`` where
            :func:`shendu.load` reads it) to load, strictly; None keeps random weights.
        **kwargs: ``num_classes``, ``dropout``, ``in_channels`` (see :class:`AlexNet`).

    >>> import shendu as sd
    >>> alexnet(num_classes=10).eval()(sd.zeros(1, 3, 63, 63)).shape
    (1, 10)
    """
    return load_weights(AlexNet(**kwargs), weights)

"""VGG (Simonyan and Zisserman, 2014), configurations A/B/D/E = VGG-11/13/16/19, with and
without batch norm, in torchvision's layout (``features.N`` counts every layer)."""
from __future__ import annotations

from ... import nn
from ...nn import init
from ._utils import check_input_size, load_weights

__all__ = ["VGG", "make_layers", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16",
           "vgg16_bn", "vgg19", "vgg19_bn"]

# output channels of each 3x3 convolution; "M" is a 2x2 max-pool
CFGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(cfg: list, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The convolutional trunk for a configuration list such as ``CFGS['D']``."""
    layers: list = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A VGG trunk, a 7x7 adaptive average pool and three dense layers with dropout.

    Args:
        features: the trunk (:func:`make_layers`).
        num_classes: outputs of the last layer.
        init_weights: torchvision's initialisation (Kaiming convolutions, N(0, 0.01) dense).
        dropout: dropout probability after the first two dense layers.
    """

    # five 2x2 pools: 32 px is the smallest image that keeps a pixel
    min_input_size = 32

    def __init__(self, features: nn.Module, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes))
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    init.normal_(m.weight, 0, 0.01)
                    init.zeros_(m.bias)

    def forward(self, x):
        check_input_size("VGG", x, self.min_input_size)
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _vgg(cfg: str, batch_norm: bool, weights, kwargs) -> VGG:
    in_channels = kwargs.pop("in_channels", 3)
    model = VGG(make_layers(CFGS[cfg], batch_norm, in_channels), **kwargs)
    return load_weights(model, weights)


def vgg11(*, weights=None, **kwargs) -> VGG:
    """VGG-11 (configuration A).

    At 3x224x224 with 1000 classes: 132,863,336 parameters, 7.61 G multiply-adds.

    Args:
        weights: path of a state dict (``.safetensors``, shendu file, or ``.pth`` where
            :func:`shendu.load` reads it) to load, strictly; None keeps random weights.
        **kwargs: ``num_classes``, ``init_weights``, ``dropout`` (see :class:`VGG`) and
            ``in_channels`` (a shendu addition).

    >>> import shendu as sd
    >>> vgg11(num_classes=10).eval()(sd.zeros(1, 3, 32, 32)).shape
    (1, 10)
    """
    return _vgg("A", False, weights, kwargs)


def vgg11_bn(*, weights=None, **kwargs) -> VGG:
    """VGG-11 with batch norm after each convolution.

    At 3x224x224 with 1000 classes: 132,868,840 parameters, 7.61 G multiply-adds.

    Args as :func:`vgg11`.

    >>> make_layers(CFGS["A"], batch_norm=True)[1]  # its trunk
    BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    """
    return _vgg("A", True, weights, kwargs)


def vgg13(*, weights=None, **kwargs) -> VGG:
    """VGG-13 (configuration B).

    At 3x224x224 with 1000 classes: 133,047,848 parameters, 11.31 G multiply-adds.

    Args as :func:`vgg11`.

    >>> len(make_layers(CFGS["B"]))  # its trunk: 10 convs, 10 ReLUs, 5 pools
    25
    """
    return _vgg("B", False, weights, kwargs)


def vgg13_bn(*, weights=None, **kwargs) -> VGG:
    """VGG-13 with batch norm.

    At 3x224x224 with 1000 classes: 133,053,736 parameters, 11.31 G multiply-adds.

    Args as :func:`vgg11`.

    >>> len(make_layers(CFGS["B"], batch_norm=True))
    35
    """
    return _vgg("B", True, weights, kwargs)


def vgg16(*, weights=None, **kwargs) -> VGG:
    """VGG-16 (configuration D).

    At 3x224x224 with 1000 classes: 138,357,544 parameters, 15.47 G multiply-adds.

    Args as :func:`vgg11`.

    >>> make_layers(CFGS["D"])[28]  # its trunk's last convolution
    Conv2d(512, 512, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    return _vgg("D", False, weights, kwargs)


def vgg16_bn(*, weights=None, **kwargs) -> VGG:
    """VGG-16 with batch norm.

    At 3x224x224 with 1000 classes: 138,365,992 parameters, 15.47 G multiply-adds.

    Args as :func:`vgg11`.

    >>> len(make_layers(CFGS["D"], batch_norm=True))
    44
    """
    return _vgg("D", True, weights, kwargs)


def vgg19(*, weights=None, **kwargs) -> VGG:
    """VGG-19 (configuration E).

    At 3x224x224 with 1000 classes: 143,667,240 parameters, 19.63 G multiply-adds.

    Args as :func:`vgg11`.

    >>> len(make_layers(CFGS["E"]))
    37
    """
    return _vgg("E", False, weights, kwargs)


def vgg19_bn(*, weights=None, **kwargs) -> VGG:
    """VGG-19 with batch norm.

    At 3x224x224 with 1000 classes: 143,678,248 parameters, 19.63 G multiply-adds.

    Args as :func:`vgg11`.

    >>> len(make_layers(CFGS["E"], batch_norm=True))
    53
    """
    return _vgg("E", True, weights, kwargs)

"""ResNet (He et al., 2015) with torchvision's module names, so its state dicts load as
they are. ResNet-50/101 are "v1.5": the bottleneck's stride sits on the 3x3 convolution.

``small_input=True`` is the CIFAR-style stem for 28-32 px images: a 3x3 stride-1 first
convolution and no first max-pool (the key names stay; ``conv1.weight`` is 3x3).
"""
from __future__ import annotations

from ... import nn
from ...nn import init
from ._utils import check_input_size, load_weights

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50",
           "resnet101"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride: v1.5), 1x1 expand by 4, plus the shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A residual network: stem, four stages of ``block`` (64-512 planes), global average
    pool and a linear classifier.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        num_classes: outputs of ``fc``.
        zero_init_residual: start each block's last BN scale at 0 (the block begins as
            the identity), as torchvision's option.
        in_channels: image channels (3; 1 for grey images), a shendu addition.
        small_input: 3x3 stride-1 stem without max-pool, for 28-32 px images.
        width: planes of the first stage (64; the stages double it). A shendu addition for
            cheap experiments: only the default loads torchvision's weights.
    """

    def __init__(self, block, layers: list[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, *, in_channels: int = 3,
                 small_input: bool = False, width: int = 64) -> None:
        super().__init__()
        self.inplanes = w = width
        self.small_input = small_input
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, w, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, w, layers[0])
        self.layer2 = self._make_layer(block, 2 * w, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * w, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * w, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * w * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else \
                    getattr(m, "bn2", None) if isinstance(m, BasicBlock) else None
                if last is not None:
                    init.zeros_(last.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    # every stride-2 stage maps 1 pixel to 1 pixel, so any size survives
    min_input_size = 1

    def forward(self, x):
        check_input_size(type(self).__name__, x, self.min_input_size)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _resnet(block, layers, weights, kwargs):
    return load_weights(ResNet(block, layers, **kwargs), weights)


def resnet18(*, weights=None, **kwargs) -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2].

    At 3x224x224 with 1000 classes: 11,689,512 parameters, 1.81 G multiply-adds.
    With ``small_input=True, num_classes=10`` at 3x32x32: 11,173,962 parameters,
    0.56 G multiply-adds.

    Args:
        weights: path of a state dict (``.safetensors``, shendu file, or ``.pth`` where
            :func:`shendu.load` reads it) to load, strictly; None keeps random weights.
        **kwargs: ``num_classes``, ``zero_init_residual``, ``in_channels``, ``small_input``,
            ``width`` (see :class:`ResNet`).

    >>> import shendu as sd
    >>> resnet18(num_classes=10, small_input=True)(sd.zeros(2, 3, 32, 32)).shape
    (2, 10)
    """
    return _resnet(BasicBlock, [2, 2, 2, 2], weights, kwargs)


def resnet34(*, weights=None, **kwargs) -> ResNet:
    """ResNet-34: BasicBlocks [3, 4, 6, 3].

    At 3x224x224 with 1000 classes: 21,797,672 parameters, 3.66 G multiply-adds.

    Args as :func:`resnet18`.

    >>> resnet34(num_classes=5).fc
    Linear(in_features=512, out_features=5, bias=True)
    """
    return _resnet(BasicBlock, [3, 4, 6, 3], weights, kwargs)


def resnet50(*, weights=None, **kwargs) -> ResNet:
    """ResNet-50 (v1.5): Bottlenecks [3, 4, 6, 3].

    At 3x224x224 with 1000 classes: 25,557,032 parameters, 4.09 G multiply-adds.

    Args as :func:`resnet18`.

    >>> resnet50().layer2[0].conv2.stride  # v1.5: the 3x3 convolution carries the stride
    (2, 2)
    """
    return _resnet(Bottleneck, [3, 4, 6, 3], weights, kwargs)


def resnet101(*, weights=None, **kwargs) -> ResNet:
    """ResNet-101 (v1.5): Bottlenecks [3, 4, 23, 3].

    At 3x224x224 with 1000 classes: 44,549,160 parameters, 7.80 G multiply-adds.

    Args as :func:`resnet18`.

    >>> len(resnet101().layer3)
    23
    """
    return _resnet(Bottleneck, [3, 4, 23, 3], weights, kwargs)

"""GoogLeNet / Inception v1 (Szegedy et al., 2014) in torchvision's layout and details:
convolutions without bias followed by batch norm with eps 1e-3, the "5x5" branch built
with a 3x3 convolution (as in torchvision's weights), pools with ``ceil_mode=True``, and two
auxiliary classifiers used in training when ``aux_logits=True``."""
from __future__ import annotations

from collections import namedtuple

from ... import nn
from ...nn import functional as F
from ...nn import init
from ._utils import check_input_size, load_weights

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "Inception", "InceptionAux", "BasicConv2d",
           "googlenet"]

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(nn.Module):
    """Convolution (no bias), batch norm (eps 1e-3), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1x1; 1x1 then 3x3; 1x1 then the
    "5x5" (a 3x3, as torchvision); 3x3 max-pool then 1x1."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        from ... import cat
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool, 1x1 conv to 128, two dense layers."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4))).flatten(1)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """Inception v1.

    Args:
        num_classes: outputs of ``fc`` (and of the auxiliary classifiers).
        aux_logits: build ``aux1``/``aux2``; in training mode ``forward`` then returns
            ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``, in eval mode the logits.
        transform_input: re-normalise inputs from ImageNet's statistics to (x - 0.5) / 0.5
            per channel, as torchvision's pretrained weights expect.
        init_weights: torchvision's truncated-normal (std 0.01) initialisation.
        dropout, dropout_aux: dropout before ``fc`` and in the auxiliary classifiers.
        in_channels: image channels (a shendu addition; 3 as torchvision).
    """

    # 7x7/2 and four ceil-mode pools: below 15 px the last pool gets no window
    min_input_size = 15

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True,
                 transform_input: bool = False, init_weights: bool = True,
                 dropout: float = 0.2, dropout_aux: float = 0.7, *,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        if init_weights:
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    init.ones_(m.weight)
                    init.zeros_(m.bias)

    def _transform_input(self, x):
        from ... import cat
        if not self.transform_input:
            return x
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        return cat([x[:, i:i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5
                    for i in range(3)], 1)

    def forward(self, x):
        check_input_size("GoogLeNet", x, self.min_input_size)
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        return GoogLeNetOutputs(x, aux2, aux1) if aux else x


def googlenet(*, weights=None, **kwargs) -> GoogLeNet:
    """GoogLeNet (Inception v1) as torchvision builds it.

    At 3x224x224 with 1000 classes (auxiliary classifiers included): 13,004,888
    parameters, 1.50 G multiply-adds.

    Args:
        weights: path of a state dict (``.safetensors``, shendu file, or ``.pth`` where
            :func:`shendu.load` reads it) to load, strictly; None keeps random weights.
        **kwargs: ``num_classes``, ``aux_logits``, ``transform_input``, ``init_weights``,
            ``dropout``, ``dropout_aux``, ``in_channels`` (see :class:`GoogLeNet`).

    >>> import shendu as sd
    >>> googlenet(num_classes=10).eval()(sd.zeros(1, 3, 32, 32)).shape
    (1, 10)
    """
    return load_weights(GoogLeNet(**kwargs), weights)

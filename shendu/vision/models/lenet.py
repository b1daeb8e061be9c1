"""LeNet-5 (LeCun et al., 1998): two convolution/pooling stages and three dense layers.

The modern form (default) uses ReLU and max pooling, the "classic" form tanh and average
pooling as in the paper (without its partial C3 connectivity and RBF output layer).
For 28x28 inputs the first convolution pads by 2, which reproduces the paper's 32x32
geometry: 28x28 -> conv5 (pad 2) -> 6@28x28 -> pool -> 6@14x14 -> conv5 -> 16@10x10 ->
pool -> 16@5x5 = 400 features -> 120 -> 84 -> classes.
"""
from __future__ import annotations

from ...nn.containers import Flatten, Sequential
from ...nn.layers.activation import ReLU, Tanh
from ...nn.layers.conv import Conv2d
from ...nn.layers.dropout import Dropout
from ...nn.layers.linear import Linear
from ...nn.layers.pool import AvgPool2d, MaxPool2d
from ...nn.module import Module
from ...tensor import Tensor

__all__ = ["LeNet5"]


class LeNet5(Module):
    """LeNet-5 for small images (MNIST-style 28x28 by default, or 32x32 like CIFAR-10).

    Args:
        num_classes: size of the output layer (logits; pair with ``F.cross_entropy``).
        in_channels: 1 for greyscale, 3 for colour images.
        classic: tanh and average pooling (LeCun 1998) instead of ReLU and max pooling.
        dropout: dropout probability before each of the two hidden dense layers' outputs
            are used (0 disables it).
        input_size: height/width of the (square) input; 28 pads the first convolution
            by 2, 32 needs no padding.

    ``features`` holds the convolutional part, ``classifier`` the dense part.

    >>> import shendu as sd
    >>> net = LeNet5()
    >>> net(sd.zeros(4, 1, 28, 28)).shape, net.num_parameters()
    ((4, 10), 61706)
    >>> LeNet5(in_channels=3, input_size=32, classic=True)(sd.zeros(1, 3, 32, 32)).shape
    (1, 10)
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, classic: bool = False,
                 dropout: float = 0.0, input_size: int = 28):
        super().__init__()
        if input_size < 12:
            raise ValueError(f"LeNet5: input_size must be at least 12, got {input_size}")
        act = Tanh if classic else ReLU
        pool = AvgPool2d if classic else MaxPool2d
        pad = max(0, (32 - input_size) // 2)
        side = ((input_size + 2 * pad - 4) // 2 - 4) // 2
        self.classic = classic
        self.features = Sequential(
            Conv2d(in_channels, 6, 5, padding=pad), act(), pool(2),
            Conv2d(6, 16, 5), act(), pool(2))
        layers: list[Module] = [Flatten(), Linear(16 * side * side, 120), act()]
        if dropout:
            layers.append(Dropout(dropout))
        layers += [Linear(120, 84), act()]
        if dropout:
            layers.append(Dropout(dropout))
        layers.append(Linear(84, num_classes))
        self.classifier = Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))

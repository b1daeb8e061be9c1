"""A multilayer perceptron classifier: Flatten, then Linear + activation blocks."""
from __future__ import annotations

from collections.abc import Sequence

from ...nn.containers import Flatten, Sequential
from ...nn.layers import activation as A
from ...nn.layers.dropout import Dropout
from ...nn.layers.linear import Linear
from ...nn.module import Module
from ...tensor import Tensor

__all__ = ["MLP"]

_ACTIVATIONS = {"relu": A.ReLU, "leaky_relu": A.LeakyReLU, "elu": A.ELU, "gelu": A.GELU,
                "silu": A.SiLU, "tanh": A.Tanh, "sigmoid": A.Sigmoid, "selu": A.SELU}


class MLP(Module):
    """Fully connected network: inputs are flattened, so images can be fed directly.

    Args:
        in_features: inputs per sample after flattening (784 for 28x28 images).
        hidden_sizes: width of each hidden layer (empty: softmax regression).
        num_classes: outputs (logits).
        activation: ``'relu'``, ``'leaky_relu'``, ``'elu'``, ``'gelu'``, ``'silu'``,
            ``'tanh'``, ``'sigmoid'`` or ``'selu'``.
        dropout: dropout probability after each hidden activation (0 disables it).

    >>> import shendu as sd
    >>> net = MLP(2, hidden_sizes=(2,), num_classes=1, activation="tanh")  # XOR-sized
    >>> net(sd.zeros(5, 2)).shape, net.num_parameters()
    ((5, 1), 9)
    """

    def __init__(self, in_features: int, hidden_sizes: Sequence[int] = (512, 512),
                 num_classes: int = 10, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose from "
                             f"{sorted(_ACTIVATIONS)}")
        layers: list[Module] = [Flatten()]
        width = in_features
        for h in hidden_sizes:
            layers += [Linear(width, h), _ACTIVATIONS[activation]()]
            if dropout:
                layers.append(Dropout(dropout))
            width = h
        layers.append(Linear(width, num_classes))
        self.net = Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

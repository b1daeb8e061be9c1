"""Dropout layers: ``Dropout`` (activations), ``Dropout1d``/``Dropout2d`` (whole channels)
and ``DropConnect`` (the weights of a linear layer).

All use inverted scaling: kept values are multiplied by ``1 / (1 - p)`` during training, so
the expected output is unchanged and evaluation mode is the identity (no rescaling).
"""
from __future__ import annotations

from ...tensor import Tensor
from .. import functional as F
from ..module import Module
from .linear import Linear

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "DropConnect"]


def _check_p(layer: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{layer}: dropout probability has to be between 0 and 1, got {p}")
    return p


class _DropoutNd(Module):
    _fn = staticmethod(F.dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = _check_p(type(self).__name__, p)
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        if self.inplace and self.training:
            return input._inplace(lambda x: self._fn(x, self.p, True))
        return self._fn(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """During training, zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; in eval mode, return the input unchanged.

    Args:
        p: probability of zeroing an element (default 0.5).
        inplace: overwrite the input tensor instead of allocating a new one.

    >>> import shendu as sd
    >>> drop = sd.nn.layers.Dropout(0.5)
    >>> y = drop(sd.ones(1000))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> drop.eval()(sd.ones(3))
    tensor([1., 1., 1.])
    """


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) (or (C, H, W)) inputs with probability ``p``,
    scaling the rest by ``1 / (1 - p)``: neighbouring pixels are correlated, so dropping
    single pixels regularises a convolutional layer little.

    >>> import shendu as sd
    >>> y = sd.nn.layers.Dropout2d(0.5)(sd.ones(1, 8, 2, 2))
    >>> sorted(set(y.sum(dim=(2, 3)).flatten().tolist())) in ([0.0, 8.0], [0.0], [8.0])
    True
    """

    _fn = staticmethod(F.dropout2d)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) (or (C, L)) inputs with probability ``p``.

    >>> import shendu as sd
    >>> sd.nn.layers.Dropout1d(0.2).eval()(sd.ones(1, 2, 3)).shape
    (1, 2, 3)
    """

    _fn = staticmethod(F.dropout1d)


class DropConnect(Linear):
    """A ``Linear`` layer whose *weights* are dropped (Wan et al., 2013), not its outputs.

    In training, each forward call zeroes every weight independently with probability ``p``
    (one mask shared by the mini-batch) and scales the kept ones by ``1 / (1 - p)``; the
    bias is not dropped. In eval mode the layer is a plain ``Linear`` with the full
    weights. Parameters and initialisation are ``Linear``'s, so its ``state_dict`` is too.

    Args:
        in_features, out_features, bias: as ``Linear``.
        p: probability of dropping each weight (default 0.5).

    >>> import shendu as sd
    >>> layer = sd.nn.layers.DropConnect(4, 3, p=0.25)
    >>> layer
    DropConnect(in_features=4, out_features=3, bias=True, p=0.25)
    >>> layer(sd.ones(2, 4)).shape
    (2, 3)
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, bias: bool = True,
                 device=None, dtype=None) -> None:
        self.p = _check_p("DropConnect", p)
        super().__init__(in_features, out_features, bias, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        # Dropping the weight matrix (not the output) is the whole difference from Dropout;
        # the mask is not differentiated, so dropped weights get zero gradient this step.
        weight = F.dropout(self.weight, self.p, self.training)
        return F.linear(input, weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}"

"""Layers that run a Linear or a Conv2d and the ReLU after it as one op.

``nn.utils.fuse(model)`` puts them in place of a ``Linear``/``Conv2d`` followed by a
``ReLU``; nothing else creates them, so a model runs exactly the modules it shows. They
hold the same parameters under the same names as the layer they replace, so state dicts
load either way.
"""
from __future__ import annotations

from ...tensor import Tensor
from .. import functional as F
from .conv import Conv2d
from .linear import Linear

__all__ = ["FusedLinearReLU", "FusedConv2dReLU"]


def _share(cls, layer):
    """A ``cls`` module holding ``layer``'s parameters, settings and hooks-free state."""
    new = cls.__new__(cls)
    new.__dict__.update(layer.__dict__)
    d = new.__dict__
    for key in ("_parameters", "_buffers", "_modules"):
        d[key] = dict(d[key])  # the same tensors, in dicts of its own
    for key in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
        d[key] = {}
    d["_non_persistent_buffers_set"] = set(d["_non_persistent_buffers_set"])
    d["_hooks_with_kwargs"] = set()
    return new


class FusedLinearReLU(Linear):
    """``relu(linear(x))`` as one op: the bias and the ReLU are one pass over the product,
    and backward masks the gradient with the saved output.

    >>> import shendu as sd
    >>> m = FusedLinearReLU.from_modules(sd.nn.Linear(2, 3))
    >>> m
    FusedLinearReLU(in_features=2, out_features=3, bias=True)
    >>> bool((m(sd.randn(4, 2)) >= 0).all())
    True
    """

    @classmethod
    def from_modules(cls, linear: Linear, relu=None) -> FusedLinearReLU:
        """The fused layer sharing ``linear``'s parameters."""
        return _share(cls, linear)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear_relu(input, self.weight, self.bias)


class FusedConv2dReLU(Conv2d):
    """``relu(conv2d(x))`` as one op: the fused kernel applies the ReLU as it writes the
    output and masks the gradient as it reads it.

    >>> import shendu as sd
    >>> m = FusedConv2dReLU.from_modules(sd.nn.Conv2d(1, 2, 3))
    >>> m
    FusedConv2dReLU(1, 2, kernel_size=(3, 3), stride=(1, 1))
    >>> m(sd.randn(1, 1, 5, 5)).shape
    (1, 2, 3, 3)
    """

    @classmethod
    def from_modules(cls, conv: Conv2d, relu=None) -> FusedConv2dReLU:
        """The fused layer sharing ``conv``'s parameters."""
        return _share(cls, conv)

    def forward(self, input: Tensor) -> Tensor:
        x, pad = self._conv_input(input)
        return F.conv2d_relu(x, self.weight, self.bias, self.stride, pad, self.dilation,
                             self.groups)

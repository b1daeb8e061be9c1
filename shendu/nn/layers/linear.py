"""Fully connected layers: ``Linear`` (``y = x W^T + b``), ``Bilinear`` and ``Maxout``.

Weights use PyTorch's layouts and default initialisation, so a PyTorch ``state_dict`` loads
into these layers unchanged.
"""
from __future__ import annotations

import math

from ... import creation
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["Linear", "Bilinear", "Maxout"]


def _param(*shape: int, device=None, dtype=None) -> Parameter:
    """An uninitialised parameter; ``reset_parameters`` fills it."""
    return Parameter(creation.empty(*shape, device=device, dtype=dtype))


def _uniform_bias(bias: Tensor | None, fan_in: int) -> None:
    # PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), zero for fan_in 0.
    if bias is not None:
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class Linear(Module):
    """Affine map ``y = x W^T + b`` over the last dimension.

    Args:
        in_features: size of each input sample's last dimension.
        out_features: size of each output sample's last dimension.
        bias: learn an additive bias (default True).
        device, dtype: where and in which dtype to create the parameters.

    ``weight`` is (out_features, in_features) and ``bias`` (out_features,), both drawn from
    U(-1/sqrt(in_features), 1/sqrt(in_features)) as in PyTorch.

    >>> import shendu as sd
    >>> layer = sd.nn.layers.Linear(3, 2)
    >>> layer
    Linear(in_features=3, out_features=2, bias=True)
    >>> layer(sd.ones(5, 3)).shape
    (5, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _param(out_features, in_features, device=device, dtype=dtype)
        if bias:
            self.bias = _param(out_features, device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw the weight (Kaiming uniform, a=sqrt(5)) and bias as PyTorch does."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        _uniform_bias(self.bias, self.in_features)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    """Bilinear map ``y_k = x1^T W_k x2 + b_k`` of two inputs of shape (N, in1) and (N, in2).

    Args:
        in1_features, in2_features: sizes of the two inputs' feature dimensions.
        out_features: number of outputs.
        bias: learn an additive bias (default True).

    ``weight`` is (out_features, in1_features, in2_features); weight and bias are drawn from
    U(-1/sqrt(in1_features), 1/sqrt(in1_features)) as in PyTorch.

    >>> import shendu as sd
    >>> sd.nn.layers.Bilinear(3, 4, 2)(sd.ones(5, 3), sd.ones(5, 4)).shape
    (5, 2)
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        self.weight = _param(out_features, in1_features, in2_features, device=device,
                             dtype=dtype)
        if bias:
            self.bias = _param(out_features, device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        if (input1.shape[:-1] != input2.shape[:-1] or input1.shape[-1:] != (self.in1_features,)
                or input2.shape[-1:] != (self.in2_features,)):
            raise ValueError(f"Bilinear: expected inputs (..., {self.in1_features}) and "
                             f"(..., {self.in2_features}) with equal leading dimensions, got "
                             f"{input1.shape} and {input2.shape}")
        # One GEMM: contract x1 with W viewed as (in1, out * in2), then dot with x2 per output.
        w = self.weight.permute(1, 0, 2).reshape(self.in1_features, -1)
        t = F.linear(input1, w.T).reshape(*input1.shape[:-1], self.out_features,
                                          self.in2_features)
        out = (t * input2.unsqueeze(-2)).sum(-1)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Maxout(Module):
    """Maxout unit (Goodfellow et al., 2013): a linear map to ``out_features * pool_size``
    values, then the max over each group of ``pool_size`` consecutive pieces.

    A maxout unit learns its own convex piecewise-linear activation; with ``pool_size=2``
    it can represent ReLU, leaky ReLU and ``|x|``.

    Args:
        in_features: size of each input's last dimension.
        out_features: number of maxout units.
        pool_size: linear pieces per unit.
        bias: learn a bias for each piece.

    ``weight`` is (out_features * pool_size, in_features): rows ``k * pool_size`` to
    ``(k + 1) * pool_size - 1`` are unit k's pieces. Initialised as ``Linear``.

    >>> import shendu as sd
    >>> m = Maxout(4, 3, pool_size=2)
    >>> m
    Maxout(in_features=4, out_features=3, pool_size=2, bias=True)
    >>> m(sd.ones(5, 4)).shape
    (5, 3)
    """

    def __init__(self, in_features: int, out_features: int, pool_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        if pool_size < 1:
            raise ValueError(f"Maxout: pool_size must be >= 1, got {pool_size}")
        self.in_features, self.out_features = in_features, out_features
        self.pool_size = pool_size
        n = out_features * pool_size
        self.weight = Parameter(creation.empty(n, in_features, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(n, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        _uniform_bias(self.bias, self.in_features)

    def forward(self, input: Tensor) -> Tensor:
        return F.maxout(F.linear(input, self.weight, self.bias), self.pool_size, dim=-1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"pool_size={self.pool_size}, bias={self.bias is not None}")

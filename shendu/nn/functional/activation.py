"""Activation functions (stateless): the elementwise ones and the softmax family."""
from __future__ import annotations

from ...errors import ShapeError
from ...ops import elementwise as E
from ...ops import nn_ops
from ...ops._util import norm_dim
from ...tensor import Tensor

relu = E.relu
leaky_relu = E.leaky_relu
elu = E.elu
gelu = E.gelu
sigmoid = E.sigmoid
tanh = E.tanh
softplus = E.softplus


def relu6(input: Tensor) -> Tensor:
    return E.clamp(input, 0.0, 6.0)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return E.clamp(input, min_val, max_val)


def silu(input: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return input * E.sigmoid(input)


def mish(input: Tensor) -> Tensor:
    return input * E.tanh(E.softplus(input))


def selu(input: Tensor) -> Tensor:
    return 1.0507009873554804934193349852946 * E.elu(input, 1.6732632423543772848170429916717)


def softsign(input: Tensor) -> Tensor:
    return input / (1 + E.abs(input))


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x)) = -softplus(-x)``, finite for any x."""
    return -E.softplus(-input)


def step(input: Tensor) -> Tensor:
    """The perceptron's threshold unit: 1 where x > 0, else 0 (no useful gradient)."""
    return (input > 0).type(input.dtype if input.is_floating_point() else "float32")


def _dim(input, dim, op):
    if dim is None:  # PyTorch's legacy implicit choice
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return norm_dim(dim, input.ndim, op)


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, computed stably.

    >>> import shendu as sd
    >>> sd.nn.functional.softmax(sd.tensor([1000.0, 1000.0]), dim=0)
    tensor([0.5000, 0.5000])
    """
    if dtype is not None:
        input = input.type(dtype)
    return nn_ops.Softmax.apply(input, axis=_dim(input, dim, "softmax"))


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``x - logsumexp(x)`` along ``dim``; finite even for inputs of +-1000."""
    if dtype is not None:
        input = input.type(dtype)
    return nn_ops.LogSoftmax.apply(input, axis=_dim(input, dim, "log_softmax"))


def softmin(input: Tensor, dim: int | None = None) -> Tensor:
    return softmax(-input, dim)


def maxout(input: Tensor, pool_size: int, dim: int = 1) -> Tensor:
    """Maxout unit: the max over groups of ``pool_size`` consecutive features along ``dim``."""
    d = norm_dim(dim, input.ndim, "maxout")
    n = input.shape[d]
    if n % pool_size:
        raise ShapeError(f"maxout: dimension {d} of size {n} is not divisible by pool_size "
                         f"{pool_size}")
    shape = input.shape[:d] + (n // pool_size, pool_size) + input.shape[d + 1:]
    return input.reshape(shape).amax(dim=d + 1)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    a, b = input.chunk(2, dim)
    return a * E.sigmoid(b)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``max(0, x) + weight * min(0, x)`` with a learned slope per channel (dim 1), or one
    slope for every element when ``weight`` has one entry.

    >>> import shendu as sd
    >>> sd.nn.functional.prelu(sd.tensor([[-2.0, 3.0]]), sd.tensor([0.25]))
    tensor([[-0.5000,  3.0000]])
    """
    n = weight.numel()
    if weight.ndim > 1:
        raise ValueError(f"prelu: weight must be 0-D or 1-D, got shape {weight.shape}")
    if n != 1:
        channels = input.shape[1] if input.ndim >= 2 else 1
        if n != channels:
            raise ValueError(f"prelu: weight has {n} slopes but input of shape {input.shape} "
                             f"has {channels} channels (dim 1); use 1 slope or one per channel")
        weight = weight.reshape((n,) + (1,) * (input.ndim - 2))
    elif input.ndim == 0:
        weight = weight.reshape(())
    return E.where(input > 0, input, weight * input)

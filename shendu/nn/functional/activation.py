"""Activation functions (stateless): the elementwise ones and the softmax family."""
from __future__ import annotations

from ...errors import ShapeError
from ...ops import elementwise as E
from ...ops import nn_ops
from ...ops._util import norm_dim
from ...tensor import Tensor

gelu = E.gelu
sigmoid = E.sigmoid
tanh = E.tanh
softplus = E.softplus


def _apply(fn, input, inplace, op):
    """``fn(input)``, or with ``inplace`` its result written into ``input`` (PyTorch's
    ``inplace=True``): the same tensor comes back, its version counter bumped; autograd
    refuses it on a leaf that requires grad, and a tensor an op saved for backward then
    fails at backward, as in PyTorch."""
    if inplace:
        return input._inplace(fn, op=op)
    return fn(input)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(0, x)``.

    >>> import shendu as sd
    >>> import shendu.nn.functional as F
    >>> x = sd.tensor([-1.0, 2.0])
    >>> F.relu(x, inplace=True) is x, x
    (True, tensor([0., 2.]))
    """
    return _apply(E.relu, input, inplace, "relu_")


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where positive, else ``negative_slope * x``."""
    return _apply(lambda x: E.leaky_relu(x, negative_slope), input, inplace, "leaky_relu_")


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    return _apply(lambda x: E.elu(x, alpha), input, inplace, "elu_")


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(0, x), 6)``."""
    return _apply(lambda x: E.clamp(x, 0.0, 6.0), input, inplace, "relu6")


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """``x`` clamped to ``[min_val, max_val]``."""
    return _apply(lambda x: E.clamp(x, min_val, max_val), input, inplace, "hardtanh_")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return _apply(lambda x: x * E.sigmoid(x), input, inplace, "silu")


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return _apply(lambda x: x * E.tanh(E.softplus(x)), input, inplace, "mish")


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """Scaled ELU with the self-normalising constants."""
    return _apply(lambda x: 1.0507009873554804934193349852946 *
                  E.elu(x, 1.6732632423543772848170429916717), input, inplace, "selu_")


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise ZeroDivisionError("celu: alpha must not be 0 (it divides x)")
    return _apply(lambda x: alpha * E.elu(x / alpha, 1.0), input, inplace, "celu_")


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``."""
    return _apply(lambda x: E.where(x > threshold, x, value), input, inplace, "threshold_")


# PyTorch's in-place spellings
def relu_(input: Tensor) -> Tensor:
    return relu(input, inplace=True)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(input, negative_slope, inplace=True)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return elu(input, alpha, inplace=True)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return hardtanh(input, min_val, max_val, inplace=True)


def threshold_(input: Tensor, threshold_value: float, value: float) -> Tensor:
    return threshold(input, threshold_value, value, inplace=True)


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

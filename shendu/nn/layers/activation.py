"""Activation modules: ``ReLU``, ``Sigmoid``, ``Softmax``, ... (``Maxout`` is in ``linear``).

Each is a thin module over the function of the same name in ``shendu.nn.functional``;
``inplace=True`` overwrites the input tensor, as in PyTorch.
"""
from __future__ import annotations

from ... import creation
from ...tensor import Tensor
from .. import functional as F
from .. import init as nn_init
from ..module import Module
from ..parameter import Parameter

__all__ = ["ReLU", "LeakyReLU", "ELU", "SELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
           "Softplus", "Softsign", "LogSigmoid", "Hardtanh", "ReLU6", "Softmax", "LogSoftmax",
           "Softmin", "GLU", "Step", "PReLU", "CELU", "Threshold"]


class _Activation(Module):
    """``forward`` applies ``self._f(input)``; with ``inplace`` the result overwrites input."""

    inplace = False

    def _f(self, input: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        if self.inplace:
            return input._inplace(self._f)
        return self._f(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Activation):
    """``max(0, x)``.

    >>> import shendu as sd
    >>> sd.nn.layers.ReLU()(sd.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _f(self, input):
        return F.relu(input)


class LeakyReLU(_Activation):
    """``x`` for x >= 0, ``negative_slope * x`` otherwise.

    >>> import shendu as sd
    >>> sd.nn.layers.LeakyReLU(0.1)(sd.tensor([-1.0, 2.0]))
    tensor([-0.1000,  2.0000])
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def _f(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace
                                                          else "")


class ELU(_Activation):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise.

    >>> import shendu as sd
    >>> sd.nn.layers.ELU()(sd.tensor([0.0, 1.0]))
    tensor([0., 1.])
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def _f(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SELU(_Activation):
    """Scaled ELU with the self-normalising constants (Klambauer et al., 2017).

    >>> import shendu as sd
    >>> SELU()(sd.tensor([0.0, 1.0]))
    tensor([0.0000, 1.0507])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _f(self, input):
        return F.selu(input)


class GELU(_Activation):
    """``x * Phi(x)`` (Gaussian CDF), or its tanh approximation with ``approximate='tanh'``.

    >>> import shendu as sd
    >>> sd.nn.layers.GELU()
    GELU(approximate='none')
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _f(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_Activation):
    """``x * sigmoid(x)`` (swish).

    >>> import shendu as sd
    >>> SiLU()(sd.tensor([0.0, 2.0]))
    tensor([0.0000, 1.7616])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _f(self, input):
        return F.silu(input)


class Mish(_Activation):
    """``x * tanh(softplus(x))``.

    >>> import shendu as sd
    >>> Mish()(sd.tensor([0.0, 1.0]))
    tensor([0.0000, 0.8651])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _f(self, input):
        return F.mish(input)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``.

    >>> import shendu as sd
    >>> sd.nn.layers.Sigmoid()(sd.tensor([0.0]))
    tensor([0.5000])
    """

    def _f(self, input):
        return F.sigmoid(input)


class Tanh(_Activation):
    """Hyperbolic tangent, squashing to (-1, 1).

    >>> import shendu as sd
    >>> Tanh()(sd.tensor([0.0, 100.0]))
    tensor([0., 1.])
    """

    def _f(self, input):
        return F.tanh(input)


class Softsign(_Activation):
    """``x / (1 + |x|)``.

    >>> import shendu as sd
    >>> Softsign()(sd.tensor([-1.0, 3.0]))
    tensor([-0.5000,  0.7500])
    """

    def _f(self, input):
        return F.softsign(input)


class LogSigmoid(_Activation):
    """``log(sigmoid(x))``, computed stably (finite for x = -1000).

    >>> import shendu as sd
    >>> LogSigmoid()(sd.tensor([-1000.0]))
    tensor([-1000.])
    """

    def _f(self, input):
        return F.logsigmoid(input)


class Softplus(_Activation):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``.

    >>> import shendu as sd
    >>> Softplus()(sd.tensor([0.0, 30.0]))
    tensor([ 0.6931, 30.0000])
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def _f(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(_Activation):
    """``x`` clipped to ``[min_val, max_val]``.

    >>> import shendu as sd
    >>> sd.nn.layers.Hardtanh()(sd.tensor([-3.0, 0.5, 3.0]))
    tensor([-1.0000,  0.5000,  1.0000])
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0,
                 inplace: bool = False) -> None:
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val "
                             f"({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def _f(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return (f"min_val={self.min_val}, max_val={self.max_val}"
                + (", inplace=True" if self.inplace else ""))


class ReLU6(Hardtanh):
    """``min(max(0, x), 6)``.

    >>> import shendu as sd
    >>> ReLU6()(sd.tensor([-1.0, 3.0, 9.0]))
    tensor([0., 3., 6.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class CELU(_Activation):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    >>> import shendu as sd
    >>> sd.nn.CELU()(sd.tensor([0.0, 2.0]))
    tensor([0., 2.])
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def _f(self, input):
        return F.celu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Threshold(_Activation):
    """``x`` where ``x > threshold``, else ``value``.

    >>> import shendu as sd
    >>> sd.nn.Threshold(0.5, -1.0)(sd.tensor([0.2, 0.9]))
    tensor([-1.0000,  0.9000])
    """

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def _f(self, input):
        return F.threshold(input, self.threshold, self.value)

    def extra_repr(self) -> str:
        return (f"threshold={self.threshold}, value={self.value}"
                + (", inplace=True" if self.inplace else ""))


class _SoftmaxBase(_Activation):
    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """``exp(x) / sum(exp(x))`` along ``dim`` (computed stably).

    >>> import shendu as sd
    >>> sd.nn.layers.Softmax(dim=-1)(sd.tensor([[0.0, 0.0]]))
    tensor([[0.5000, 0.5000]])
    """

    def _f(self, input):
        return F.softmax(input, self.dim)


class LogSoftmax(_SoftmaxBase):
    """``x - logsumexp(x)`` along ``dim`` (log-probabilities, for ``NLLLoss``).

    >>> import shendu as sd
    >>> LogSoftmax(dim=1)(sd.tensor([[0.0, 0.0]]))
    tensor([[-0.6931, -0.6931]])
    """

    def _f(self, input):
        return F.log_softmax(input, self.dim)


class Softmin(_SoftmaxBase):
    """``softmax(-x)`` along ``dim``.

    >>> import shendu as sd
    >>> Softmin(dim=0)(sd.tensor([0.0, 0.0]))
    tensor([0.5000, 0.5000])
    """

    def _f(self, input):
        return F.softmin(input, self.dim)


class GLU(_SoftmaxBase):
    """Gated linear unit: split ``dim`` in halves a, b and return ``a * sigmoid(b)``.

    >>> import shendu as sd
    >>> GLU()(sd.tensor([[2.0, 4.0, 0.0, 0.0]]))
    tensor([[1., 2.]])
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__(dim)

    def _f(self, input):
        return F.glu(input, self.dim)


class Step(_Activation):
    """The perceptron's threshold unit: 1 where x > 0, else 0 (its gradient is zero almost
    everywhere, which is why networks trained by backpropagation use smooth activations).

    >>> import shendu as sd
    >>> Step()(sd.tensor([-1.0, 0.0, 2.0]))
    tensor([0., 0., 1.])
    """

    def _f(self, input):
        return F.step(input)


class PReLU(Module):
    """Parametric ReLU: ``max(0, x) + a * min(0, x)`` with a learned slope ``a``.

    Args:
        num_parameters: 1 (one slope shared by every channel) or the number of channels
            (dim 1 of the input).
        init: the initial slope.

    >>> import shendu as sd
    >>> m = sd.nn.PReLU()
    >>> m
    PReLU(num_parameters=1)
    >>> m(sd.tensor([-4.0, 2.0]))
    tensor([-1.,  2.], grad_fn=<WhereBackward>)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None,
                 dtype=None) -> None:
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be >= 1, got {num_parameters}")
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(creation.empty(num_parameters, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every slope back to ``init``."""
        nn_init.constant_(self.weight, self.init)

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"

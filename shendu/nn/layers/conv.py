"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose1d``, ``ConvTranspose2d``.

Weights are (out_channels, in_channels / groups, *kernel) for convolutions and
(in_channels, out_channels / groups, *kernel) for transposed ones, initialised as PyTorch
does (Kaiming uniform with a=sqrt(5), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from ... import creation
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from .linear import _uniform_bias

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "replicate",
                  "circular": "circular"}


def _tuple(v, n: int, name: str, layer: str) -> tuple:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(a) for a in v)
    if len(v) != n:
        raise ValueError(f"{layer}: {name} must be an int or a {n}-tuple, got {v}")
    return v


class _ConvNd(Module):
    """Shared constructor, initialisation and repr of the convolution layers."""

    _nd = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding,
                 dilation, groups: int, bias: bool, padding_mode: str, output_padding=0,
                 device=None, dtype=None) -> None:
        super().__init__()
        name, n = type(self).__name__, self._nd
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must both be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {list(_PADDING_MODES)}, "
                             f"got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, n, "kernel_size", name)
        self.stride = _tuple(stride, n, "stride", name)
        self.dilation = _tuple(dilation, n, "dilation", name)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or "
                                 f"'valid', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _tuple(padding, n, "padding", name)
        self.output_padding = _tuple(output_padding, n, "output_padding", name)
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if self._transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(creation.empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self._pad = self._explicit_padding()
        self.reset_parameters()

    def _explicit_padding(self) -> list | None:
        """F.pad widths (last dim first) for a non-zero padding_mode, else None."""
        if self.padding_mode == "zeros" or self.padding == "valid":
            return None
        pad = []
        for i in reversed(range(self._nd)):
            if self.padding == "same":
                total = self.dilation[i] * (self.kernel_size[i] - 1)
                pad += [total // 2, total - total // 2]
            else:
                pad += [self.padding[i]] * 2
        return pad

    def reset_parameters(self) -> None:
        """Kaiming uniform (a=sqrt(5)) weight and fan-in-scaled uniform bias, as PyTorch."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        # fan_in from the weight's dims 1.. as PyTorch computes it (for transposed
        # convolutions that is out_channels / groups * kernel, PyTorch's convention).
        _uniform_bias(self.bias, self.weight.shape[1] * math.prod(self.kernel_size))

    def _conv_input(self, input: Tensor) -> tuple[Tensor, object]:
        """The input padded by ``padding_mode`` and the padding left for the conv op."""
        if self._pad is None:
            return input, self.padding
        return F.pad(input, self._pad, mode=self.padding_mode), 0

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) (or unbatched (C_in, H, W)) inputs.

    Args:
        in_channels, out_channels: channels of input and output.
        kernel_size: int or (kh, kw).
        stride, dilation: int or pair (default 1).
        padding: int, pair, ``'valid'`` (none) or ``'same'`` (output size = input size;
            stride 1 only). Default 0.
        groups: split the channels into this many independent convolutions.
        bias: learn a per-output-channel bias (default True).
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.

    >>> import shendu as sd
    >>> conv = sd.nn.layers.Conv2d(3, 6, 5, padding=2)
    >>> conv
    Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
    >>> conv(sd.zeros(1, 3, 28, 28)).shape
    (1, 6, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        x, pad = self._conv_input(input)
        return F.conv2d(x, self.weight, self.bias, self.stride, pad, self.dilation,
                        self.groups)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) (or unbatched (C_in, L)) inputs.

    Arguments as ``Conv2d``, with ints (or 1-tuples) for kernel_size, stride, padding and
    dilation.

    >>> import shendu as sd
    >>> conv = sd.nn.layers.Conv1d(4, 8, 3, padding="same")
    >>> conv(sd.zeros(2, 4, 10)).shape
    (2, 8, 10)
    """

    _nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        x, pad = self._conv_input(input)
        return F.conv1d(x, self.weight, self.bias, self.stride, pad, self.dilation,
                        self.groups)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding,
                 output_padding, groups, bias, dilation, padding_mode, device, dtype) -> None:
        if padding_mode != "zeros":
            raise ValueError(f'{type(self).__name__}: only "zeros" padding_mode is supported, '
                             f"got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device=device,
                         dtype=dtype)

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        """The output_padding giving ``output_size`` (PyTorch's ``forward(x, output_size)``)."""
        if output_size is None:
            return self.output_padding
        n = self._nd
        size = tuple(int(s) for s in output_size)[-n:]
        if len(size) != n:
            raise ValueError(f"{type(self).__name__}: output_size must have at least {n} "
                             f"entries, got {tuple(output_size)}")
        out = []
        for i in range(n):
            smallest = ((input.shape[input.ndim - n + i] - 1) * self.stride[i]
                        - 2 * self.padding[i] + self.dilation[i] * (self.kernel_size[i] - 1)
                        + 1)
            extra = size[i] - smallest
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"{type(self).__name__}: requested output_size {size} is not reachable "
                    f"from input of shape {input.shape}: dimension {i} must be in "
                    f"[{smallest}, {smallest + max(self.stride[i], self.dilation[i]) - 1}]")
            out.append(extra)
        return tuple(out)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution (the gradient of ``Conv2d``), e.g. for upsampling.

    Output size per dim: ``(H - 1) * stride - 2 * padding + dilation * (k - 1) +
    output_padding + 1``; ``forward(x, output_size=...)`` picks output_padding for you.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as
            ``Conv2d`` (padding int or pair only).
        output_padding: extra size added to one side of the output (< stride or dilation).

    >>> import shendu as sd
    >>> up = sd.nn.layers.ConvTranspose2d(8, 4, 2, stride=2)
    >>> up(sd.zeros(1, 8, 5, 5)).shape
    (1, 4, 10, 10)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups, bias, dilation, padding_mode, device, dtype)

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        opad = self.output_padding if output_size is None else \
            self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  opad, self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution over (N, C_in, L); arguments as ``ConvTranspose2d``.

    >>> import shendu as sd
    >>> sd.nn.layers.ConvTranspose1d(2, 3, 4, stride=2, padding=1)(sd.zeros(1, 2, 5)).shape
    (1, 3, 10)
    """

    _nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups, bias, dilation, padding_mode, device, dtype)

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        opad = self.output_padding if output_size is None else \
            self._output_padding(input, output_size)
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride[0],
                                  self.padding[0], opad[0], self.groups, self.dilation[0])

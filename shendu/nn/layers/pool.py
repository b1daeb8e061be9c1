"""Pooling and resampling layers: max/average pools (1-D, 2-D, adaptive) and ``Upsample``.

These layers hold no parameters; they store their geometry (as PyTorch does, so ``repr``
reads the same) and call ``shendu.nn.functional``.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...tensor import Tensor
from .. import functional as F
from ..module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
           "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "Upsample",
           "UpsamplingNearest2d", "UpsamplingBilinear2d"]

_Size = int | Sequence[int]


def _single(v) -> tuple:
    return (int(v),) if isinstance(v, int) else tuple(int(a) for a in v)


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool2d(_MaxPoolNd):
    """Max over ``kernel_size`` windows of (N, C, H, W) inputs.

    Args:
        kernel_size: window size, int or (kh, kw).
        stride: step between windows (default: ``kernel_size``).
        padding: implicit -inf padding on both sides (at most half the kernel).
        dilation: spacing between window elements.
        return_indices: also return the flat H*W position of each maximum.
        ceil_mode: round the output size up instead of down.

    >>> import shendu as sd
    >>> pool = sd.nn.layers.MaxPool2d(2)
    >>> pool
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> pool(sd.arange(16.0).reshape(1, 1, 4, 4))
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """

    def __init__(self, kernel_size: _Size, stride: _Size | None = None, padding: _Size = 0,
                 dilation: _Size = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)

    def forward(self, input: Tensor):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L) inputs; arguments as ``MaxPool2d`` with ints.

    >>> import shendu as sd
    >>> sd.nn.layers.MaxPool1d(2)(sd.tensor([[[1.0, 3.0, 2.0, 0.0]]]))
    tensor([[[3., 2.]]])
    """

    def __init__(self, kernel_size: _Size, stride: _Size | None = None, padding: _Size = 0,
                 dilation: _Size = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)

    def forward(self, input: Tensor):
        if not self.return_indices:
            return F.max_pool1d(input, self.kernel_size, self.stride, self.padding,
                                self.dilation, self.ceil_mode)
        # A 1-D pool is a 2-D pool over a height-1 image, whose flat indices are positions.
        out, idx = F.max_pool2d(input.unsqueeze(-2), (1, _single(self.kernel_size)[0]),
                                (1, _single(self.stride)[0]), (0, _single(self.padding)[0]),
                                (1, _single(self.dilation)[0]), self.ceil_mode, True)
        return out.squeeze(-2), idx.squeeze(-2)


class AvgPool2d(Module):
    """Average over ``kernel_size`` windows of (N, C, H, W) inputs.

    Args:
        kernel_size, stride, padding, ceil_mode: as ``MaxPool2d`` (zero padding).
        count_include_pad: count padded zeros in the divisor (default True).
        divisor_override: divide by this instead of the window size.

    >>> import shendu as sd
    >>> sd.nn.layers.AvgPool2d(2)(sd.arange(16.0).reshape(1, 1, 4, 4))
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """

    def __init__(self, kernel_size: _Size, stride: _Size | None = None, padding: _Size = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(Module):
    """Average over windows of (N, C, L) inputs; arguments as ``AvgPool2d`` with ints.

    >>> import shendu as sd
    >>> sd.nn.layers.AvgPool1d(2)(sd.tensor([[[1.0, 3.0, 2.0, 0.0]]]))
    tensor([[[2., 1.]]])
    """

    def __init__(self, kernel_size: _Size, stride: _Size | None = None, padding: _Size = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptivePool(Module):
    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool):
    """Average-pool (N, C, H, W) to a fixed ``output_size`` (int or (h, w); None keeps a dim)
    whatever the input size: window i covers ``[floor(i*H/h), ceil((i+1)*H/h))``.

    >>> import shendu as sd
    >>> sd.nn.layers.AdaptiveAvgPool2d(1)(sd.ones(2, 3, 7, 5)).shape
    (2, 3, 1, 1)
    """

    def __init__(self, output_size: int | None | Sequence[int | None]) -> None:
        super().__init__(output_size)

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveAvgPool1d(_AdaptivePool):
    """Average-pool (N, C, L) to ``output_size`` positions.

    >>> import shendu as sd
    >>> sd.nn.layers.AdaptiveAvgPool1d(2)(sd.tensor([[[1.0, 3.0, 2.0, 0.0]]]))
    tensor([[[2., 1.]]])
    """

    def __init__(self, output_size: int) -> None:
        super().__init__(output_size)

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(input, self.output_size)


def _no_indices(layer: str, return_indices: bool) -> None:
    if return_indices:
        raise NotImplementedError(f"{layer}: return_indices=True is not supported; use "
                                  "MaxPool2d/MaxPool1d(return_indices=True) when the input "
                                  "size is a multiple of output_size")


class AdaptiveMaxPool2d(_AdaptivePool):
    """Max-pool (N, C, H, W) to a fixed ``output_size`` (windows as ``AdaptiveAvgPool2d``).

    ``return_indices=True`` is not supported yet (a clear error says so).

    >>> import shendu as sd
    >>> sd.nn.layers.AdaptiveMaxPool2d((1, 2))(sd.arange(8.0).reshape(1, 1, 2, 4))
    tensor([[[[5., 7.]]]])
    """

    def __init__(self, output_size: int | None | Sequence[int | None],
                 return_indices: bool = False) -> None:
        _no_indices("AdaptiveMaxPool2d", return_indices)
        super().__init__(output_size)
        self.return_indices = False

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_max_pool2d(input, self.output_size)


class AdaptiveMaxPool1d(_AdaptivePool):
    """Max-pool (N, C, L) to ``output_size`` positions.

    >>> import shendu as sd
    >>> sd.nn.layers.AdaptiveMaxPool1d(2)(sd.tensor([[[1.0, 3.0, 2.0, 0.0]]]))
    tensor([[[3., 2.]]])
    """

    def __init__(self, output_size: int, return_indices: bool = False) -> None:
        _no_indices("AdaptiveMaxPool1d", return_indices)
        super().__init__(output_size)
        self.return_indices = False

    def forward(self, input: Tensor) -> Tensor:
        out = F.adaptive_max_pool2d(input.unsqueeze(-2), (1, _single(self.output_size)[0]))
        return out.squeeze(-2)


class Upsample(Module):
    """Resize (N, C, L), (N, C, H, W) or (N, C, D, H, W) inputs to ``size`` or by
    ``scale_factor`` (``F.interpolate`` as a layer).

    Args:
        size: output spatial size (or an int for every spatial dim).
        scale_factor: multiplier for the spatial dims (give this or ``size``).
        mode: ``'nearest'`` (default), ``'linear'`` (3-D input), ``'bilinear'`` (4-D) or
            ``'trilinear'`` (5-D).
        align_corners: for the linear modes, map corner pixels onto corner pixels.
        recompute_scale_factor: compute the sampling step from the rounded output size
            instead of ``scale_factor`` (PyTorch's option of the same name).

    >>> import shendu as sd
    >>> up = sd.nn.layers.Upsample(scale_factor=2)
    >>> up
    Upsample(scale_factor=2.0, mode='nearest')
    >>> up(sd.tensor([[[[1.0, 2.0]]]]))
    tensor([[[[1., 1., 2., 2.],
              [1., 1., 2., 2.]]]])
    """

    def __init__(self, size: _Size | None = None,
                 scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
                 align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of size and "
                             f"scale_factor (got size={size!r}, scale_factor={scale_factor!r})")
        if mode not in ("nearest", "linear", "bilinear", "trilinear"):
            raise ValueError(f"{type(self).__name__}: mode must be 'nearest', 'linear', "
                             f"'bilinear' or 'trilinear', got {mode!r}")
        if align_corners is not None and mode == "nearest":
            raise ValueError(f"{type(self).__name__}: align_corners only applies to the "
                             "linear modes")
        self.size = size
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode,
                             self.align_corners, self.recompute_scale_factor)

    def extra_repr(self) -> str:
        info = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample(mode='nearest')``."""

    def __init__(self, size: _Size | None = None,
                 scale_factor: float | Sequence[float] | None = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(mode='bilinear', align_corners=True)``."""

    def __init__(self, size: _Size | None = None,
                 scale_factor: float | Sequence[float] | None = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)

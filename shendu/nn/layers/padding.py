"""Padding layers: ``ReflectionPad``, ``ReplicationPad``, ``CircularPad``, ``ZeroPad`` and
``ConstantPad`` for 1-D (N, C, L), 2-D (N, C, H, W) and 3-D (N, C, D, H, W) inputs (also
unbatched), thin modules over ``F.pad``.

``padding`` is an int (every side) or a tuple in PyTorch's order: (left, right) for 1-D,
(left, right, top, bottom) for 2-D, (left, right, top, bottom, front, back) for 3-D.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...tensor import Tensor
from .. import functional as F
from ..module import Module

__all__ = ["ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d",
           "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d", "CircularPad2d",
           "CircularPad3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d",
           "ConstantPad2d", "ConstantPad3d"]

_SIDES = {1: "left, right", 2: "left, right, top, bottom",
          3: "left, right, top, bottom, front, back"}


class _PadNd(Module):
    _nd = 1
    _mode = "constant"

    def __init__(self, padding: int | Sequence[int], value: float = 0.0) -> None:
        super().__init__()
        n = 2 * self._nd
        if isinstance(padding, int):
            padding = (padding,) * n
        padding = tuple(int(p) for p in padding)
        if len(padding) != n:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a {n}-tuple "
                             f"({_SIDES[self._nd]}), got {padding}")
        self.padding, self.value = padding, value

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (self._nd + 1, self._nd + 2):
            raise ValueError(f"{type(self).__name__}: expected a {self._nd + 2}-D batched or "
                             f"{self._nd + 1}-D unbatched input, got shape {input.shape}")
        return F.pad(input, self.padding, self._mode, self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding, value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ReflectionPad1d(_PadNd):
    """Pad the last dim with its reflection (the edge is not repeated); each pad must be
    smaller than that dim.

    >>> import shendu as sd
    >>> sd.nn.ReflectionPad1d(2)(sd.tensor([[[1.0, 2.0, 3.0]]]))
    tensor([[[3., 2., 1., 2., 3., 2., 1.]]])
    """

    _mode = "reflect"

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding)


class ReflectionPad2d(ReflectionPad1d):
    """Pad the last two dims with their reflection; ``padding`` is (left, right, top, bottom).

    >>> import shendu as sd
    >>> sd.nn.ReflectionPad2d(1)(sd.zeros(1, 3, 4, 4)).shape
    (1, 3, 6, 6)
    """

    _nd = 2


class ReflectionPad3d(ReflectionPad1d):
    """Pad the last three dims with their reflection."""

    _nd = 3


class ReplicationPad1d(_PadNd):
    """Pad the last dim by repeating its edge values.

    >>> import shendu as sd
    >>> sd.nn.ReplicationPad1d((1, 2))(sd.tensor([[[1.0, 2.0]]]))
    tensor([[[1., 1., 2., 2., 2.]]])
    """

    _mode = "replicate"

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding)


class ReplicationPad2d(ReplicationPad1d):
    """Pad the last two dims by repeating their edges; ``padding`` is (left, right, top,
    bottom)."""

    _nd = 2


class ReplicationPad3d(ReplicationPad1d):
    """Pad the last three dims by repeating their edges."""

    _nd = 3


class CircularPad1d(_PadNd):
    """Pad the last dim by wrapping around (periodic boundary); each pad at most the dim.

    >>> import shendu as sd
    >>> sd.nn.CircularPad1d((1, 2))(sd.tensor([[[1.0, 2.0, 3.0]]]))
    tensor([[[3., 1., 2., 3., 1., 2.]]])
    """

    _mode = "circular"

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding)


class CircularPad2d(CircularPad1d):
    """Pad the last two dims by wrapping around."""

    _nd = 2


class CircularPad3d(CircularPad1d):
    """Pad the last three dims by wrapping around."""

    _nd = 3


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with ``value``.

    >>> import shendu as sd
    >>> sd.nn.ConstantPad1d((1, 0), 9.0)(sd.tensor([[1.0, 2.0]]))
    tensor([[9., 1., 2.]])
    """


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dims with ``value``; ``padding`` is (left, right, top, bottom)."""

    _nd = 2


class ConstantPad3d(_ConstantPadNd):
    """Pad the last three dims with ``value``."""

    _nd = 3


class ZeroPad1d(_ConstantPadNd):
    """Pad the last dim with zeros."""

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ZeroPad1d):
    """Pad the last two dims with zeros; ``padding`` is (left, right, top, bottom).

    >>> import shendu as sd
    >>> sd.nn.ZeroPad2d((1, 0, 0, 1))(sd.ones(1, 1, 1, 1))
    tensor([[[[0., 1.],
              [0., 0.]]]])
    """

    _nd = 2


class ZeroPad3d(ZeroPad1d):
    """Pad the last three dims with zeros."""

    _nd = 3

"""Padding layers: ``ReflectionPad``, ``ReplicationPad``, ``ZeroPad`` and ``ConstantPad`` for
1-D (N, C, L) and 2-D (N, C, H, W) inputs (also unbatched), thin modules over ``F.pad``.

``padding`` is an int (every side) or a tuple in PyTorch's order: (left, right) for 1-D,
(left, right, top, bottom) for 2-D.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...tensor import Tensor
from .. import functional as F
from ..module import Module

__all__ = ["ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d",
           "ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d"]


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
                             f"(left, right{', top, bottom' if self._nd == 2 else ''}), got "
                             f"{padding}")
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


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with ``value``.

    >>> import shendu as sd
    >>> sd.nn.ConstantPad1d((1, 0), 9.0)(sd.tensor([[1.0, 2.0]]))
    tensor([[9., 1., 2.]])
    """


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dims with ``value``; ``padding`` is (left, right, top, bottom)."""

    _nd = 2


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

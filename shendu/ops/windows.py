"""Sliding windows: ``Tensor.unfold`` (a strided view) and im2col/col2im (``F.unfold``/``F.fold``).

``x.unfold(dim, size, step)`` is a view: windows ``step`` apart along ``dim`` become a new
last dimension of length ``size``. When windows overlap (``step < size``) several view
elements share one memory location, so, as for ``expand``, the view is read-only.

>>> import shendu as sd
>>> sd.arange(5.0).unfold(0, 2, 1)
tensor([[0., 1.],
        [1., 2.],
        [2., 3.],
        [3., 4.]])
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..errors import ArgumentError, ShapeError
from ..tensor import Tensor
from ._util import norm_dim, xp_of

__all__: list[str] = []  # Tensor.unfold is a method only, as in PyTorch


def _windows(a, dim, size, step):
    n = (a.shape[dim] - size) // step + 1
    shape = a.shape[:dim] + (n,) + a.shape[dim + 1:] + (size,)
    strides = a.strides[:dim] + (a.strides[dim] * step,) + a.strides[dim + 1:] + \
        (a.strides[dim],)
    xp = xp_of(a)
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=step >= size
                                               and a.flags.writeable)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


class UnfoldWindows(Function):
    """Forward: the strided view. Backward: each window's gradient added back at its place
    (overlapping windows sum), one strided slice per position inside the window."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a, dim, size, step):
        ctx.shape, ctx.dim, ctx.size, ctx.step = a.shape, dim, size, step
        return _windows(a, dim, size, step)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        out = xp.zeros(ctx.shape, g.dtype)
        n = g.shape[ctx.dim]
        lead = (slice(None),) * ctx.dim
        for k in range(ctx.size):
            out[lead + (slice(k, k + ctx.step * (n - 1) + 1, ctx.step),)] += g[..., k]
        return out

    @staticmethod
    def jvp(ctx, da):
        return _windows(da, ctx.dim, ctx.size, ctx.step)


def tensor_unfold(self, dimension: int, size: int, step: int) -> Tensor:
    """A view holding every slice of length ``size`` along ``dimension``, ``step`` apart,
    as a new last dimension (PyTorch's ``Tensor.unfold``). Read-only when windows overlap.

    Args:
        dimension: the dimension to slide along.
        size: the length of each window.
        step: the distance between the starts of consecutive windows.

    >>> import shendu as sd
    >>> sd.arange(6).unfold(0, 3, 3)
    tensor([[0, 1, 2],
            [3, 4, 5]])
    """
    size, step = int(size), int(step)
    if self.ndim == 0:  # as PyTorch: one window of the one element
        norm_dim(dimension, 1, "unfold")
        if size not in (0, 1) or step <= 0:
            raise ShapeError(f"unfold: a 0-d tensor takes size 0 or 1 and a positive step, "
                             f"got size {size} and step {step}")
        return self.reshape(1)[:size]
    d = norm_dim(dimension, self.ndim, "unfold")
    if step <= 0:
        raise ArgumentError(f"unfold: step must be positive, got {step}")
    if size < 0 or size > self.shape[d]:
        raise ShapeError(f"unfold: window size {size} does not fit dimension {d} of size "
                         f"{self.shape[d]} (shape {self.shape}); expected 0 <= size <= "
                         f"{self.shape[d]}")
    out = UnfoldWindows.apply(self, dim=d, size=size, step=step)
    out._version = self._version  # a view: writes through it (when allowed) bump both
    return out

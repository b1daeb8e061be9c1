"""Nearest-neighbour upsampling of (N, C, H, W) by whole factors: ``F.interpolate``'s
``mode='nearest'`` when every pixel is repeated in place (scale factor 2 in an FCN or U-Net
decoder). Forward and backward are one call each to ``backend/resample.py`` (compiled
kernel or NumPy reference); results keep the input's layout."""
from __future__ import annotations

from ..autograd.function import Function
from ..backend import resample


class RepeatNearest2d(Function):
    """``out[n, c, i*fh + a, j*fw + b] = x[n, c, i, j]``; the gradient sums each block."""
    linear_backward = True

    @staticmethod
    def forward(ctx, x, fh, fw):
        ctx.factors = (fh, fw)
        return resample.repeat_nearest(x, fh, fw)

    @staticmethod
    def backward(ctx, g):
        return resample.repeat_nearest_backward(g, *ctx.factors)

    @staticmethod
    def jvp(ctx, dx):
        return resample.repeat_nearest(dx, *ctx.factors)

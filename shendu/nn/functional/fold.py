"""``F.unfold`` (im2col) and ``F.fold`` (col2im): sliding 2-D blocks to columns and back.

``unfold`` turns (N, C, H, W) into (N, C * kh * kw, L), one column per block position (L
positions); ``fold`` sums such columns back into an image (overlapping blocks add), so it
is ``unfold``'s adjoint, and each is the other's backward.

>>> import shendu as sd
>>> import shendu.nn.functional as F
>>> x = sd.arange(16.0).reshape(1, 1, 4, 4)
>>> F.unfold(x, 2, stride=2).shape
(1, 4, 4)
>>> F.fold(F.unfold(x, 2, stride=2), (4, 4), 2, stride=2).equal(x)
True
"""
from __future__ import annotations

from ...autograd.function import Function
from ...errors import ShapeError
from ...ops._util import xp_of
from ...tensor import Tensor
from .conv import _pair


def _geometry(op, hw, kernel_size, dilation, padding, stride):
    k, d, p, s = (_pair(v, n, op) for v, n in ((kernel_size, "kernel_size"),
                                                (dilation, "dilation"), (padding, "padding"),
                                                (stride, "stride")))
    if min(k + d + s) <= 0 or min(p) < 0:
        raise ShapeError(f"{op}: kernel_size, dilation and stride must be positive and "
                         f"padding non-negative, got {k}, {d}, {s} and {p}")
    out = tuple((hw[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in (0, 1))
    if min(out) <= 0:
        raise ShapeError(f"{op}: a {k} kernel with dilation {d} does not fit a {tuple(hw)} "
                         f"image with padding {p}")
    return k, d, p, s, out


def _taps(geom):
    """(i, j, rows, cols): the padded-image slices that kernel tap (i, j) reads."""
    (kh, kw), (dh, dw), _, (sh, sw), (oh, ow) = geom
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), \
                slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)


def _im2col(x, geom):
    (kh, kw), _, (ph, pw), _, (oh, ow) = geom
    xp = xp_of(x)
    n, c = x.shape[:2]
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((n, c, kh, kw, oh, ow), x.dtype)
    for i, j, rows, colsl in _taps(geom):
        cols[:, :, i, j] = x[:, :, rows, colsl]
    return cols.reshape(n, c * kh * kw, oh * ow)


def _col2im(cols, geom, hw):
    (kh, kw), _, (ph, pw), _, (oh, ow) = geom
    xp = xp_of(cols)
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    out = xp.zeros((n, c, hw[0] + 2 * ph, hw[1] + 2 * pw), cols.dtype)
    for i, j, rows, colsl in _taps(geom):
        out[:, :, rows, colsl] += cols[:, :, i, j]
    return out[:, :, ph:ph + hw[0], pw:pw + hw[1]]


class Im2Col(Function):
    linear_backward = True  # linear: the backward is col2im, the forward-mode rule itself

    @staticmethod
    def forward(ctx, x, geom):
        ctx.geom, ctx.hw = geom, x.shape[2:]
        return _im2col(x, geom)

    @staticmethod
    def backward(ctx, g):
        return _col2im(g, ctx.geom, ctx.hw)

    @staticmethod
    def jvp(ctx, dx):
        return _im2col(dx, ctx.geom)


class Col2Im(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, cols, geom, hw):
        ctx.geom, ctx.hw = geom, hw
        return _col2im(cols, geom, hw)

    @staticmethod
    def backward(ctx, g):
        return _im2col(g, ctx.geom)

    @staticmethod
    def jvp(ctx, dcols):
        return _col2im(dcols, ctx.geom, ctx.hw)


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sliding ``kernel_size`` blocks of a (N, C, H, W) or (C, H, W) tensor as columns:
    (N, C * kh * kw, L), L the number of block positions (im2col).

    Args:
        kernel_size, dilation, padding, stride: an int or a pair, as for ``conv2d``.

    >>> import shendu as sd
    >>> import shendu.nn.functional as F
    >>> F.unfold(sd.ones(2, 3, 5, 5), (2, 3)).shape
    (2, 18, 12)
    """
    if input.ndim not in (3, 4):
        raise ShapeError(f"unfold: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got "
                         f"shape {input.shape}")
    if input.ndim == 3:
        return unfold(input.unsqueeze(0), kernel_size, dilation, padding, stride).squeeze(0)
    geom = _geometry("unfold", input.shape[2:], kernel_size, dilation, padding, stride)
    return Im2Col.apply(input, geom=geom)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sum columns (N, C * kh * kw, L) back into (N, C, H, W) images, ``(H, W) =
    output_size``; overlapping blocks add (col2im, ``unfold``'s adjoint).

    >>> import shendu as sd
    >>> import shendu.nn.functional as F
    >>> F.fold(sd.ones(1, 4, 9), (4, 4), 2, stride=1)[0, 0]
    tensor([[1., 2., 2., 1.],
            [2., 4., 4., 2.],
            [2., 4., 4., 2.],
            [1., 2., 2., 1.]])
    """
    if input.ndim not in (2, 3):
        raise ShapeError(f"fold: expected a 2-D (C * kh * kw, L) or 3-D (N, C * kh * kw, L) "
                         f"input, got shape {input.shape}")
    if input.ndim == 2:
        return fold(input.unsqueeze(0), output_size, kernel_size, dilation, padding,
                    stride).squeeze(0)
    hw = _pair(output_size, "output_size", "fold")
    geom = _geometry("fold", hw, kernel_size, dilation, padding, stride)
    (kh, kw), _, _, _, (oh, ow) = geom
    if input.shape[1] % (kh * kw) or input.shape[2] != oh * ow:
        raise ShapeError(f"fold: input of shape {input.shape} does not fit: expected (N, C * "
                         f"{kh * kw}, {oh * ow}) for a {(kh, kw)} kernel over output size "
                         f"{hw} ({oh} x {ow} block positions)")
    return Col2Im.apply(input, geom=geom, hw=hw)

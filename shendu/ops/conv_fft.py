"""conv2d by FFT (stride 1, dilation 1, one group): ``F.conv2d(..., algorithm="fft")``.

Cross-correlation is a product of spectra: with the input zero-padded to (Hp, Wp) and both
operands zero-extended to an FFT size of at least that, ``y[n, o] = irfft2(sum_c X[n, c] *
conj(W[o, c]))`` cropped to the valid (OH, OW) corner; the sum over channels is one complex
matrix product per frequency. No index wraps around: every shift the valid output needs is
smaller than the padded input. The work grows with the image size, not with the kernel's,
so it overtakes im2col (whose patch matrix grows with kh*kw) for large kernels; where the
two cross is measured in benchmarks/conv_fft.py.

Both gradients are the same kind of product (the spectra of the forward are kept):
  dX_padded = irfft2(sum_o G[n, o] * W[o, c])          (a full convolution of dOut with W)
  dW        = irfft2(sum_n conj(G[n, o]) * X[n, c])    (cross-correlation of X with dOut)
"""
from __future__ import annotations

from ..autograd.function import Function
from ._util import xp_of
from .conv import Conv2d


def fft_size(n: int) -> int:
    """The smallest m >= n with no prime factor above 5 (where FFTs are fastest)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _channel_product(a, b):
    """``out[i, k] = sum_j a[i, j] * b[j, k]`` at every frequency: a (I, J, h, f), b (J, K,
    h, f) -> (I, K, h, f), as one batched matrix product over the frequencies."""
    return (a.transpose(2, 3, 0, 1) @ b.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)


def correlate(x, w, pads):
    """``(y, spectra)``: the valid cross-correlation of zero-padded ``x`` (N, C, H, W) with
    ``w`` (O, C, kh, kw), and what backward reuses (the spectra of both, the FFT size)."""
    xp = xp_of(x)
    (pt, pb), (pl, pr) = pads
    xpad = xp.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if pt or pb or pl or pr else x
    hp, wp = xpad.shape[2:]
    kh, kw = w.shape[2:]
    size = (fft_size(hp), fft_size(wp))
    xf = xp.fft.rfft2(xpad, s=size)
    wf = xp.fft.rfft2(w, s=size)
    y = xp.fft.irfft2(_channel_product(xf, wf.conj().transpose(1, 0, 2, 3)), s=size)
    return xp.ascontiguousarray(y[:, :, :hp - kh + 1, :wp - kw + 1], dtype=x.dtype), \
        (xf, wf, size)


class Conv2dFFT(Function):
    """conv2d through FFTs; the same values as ``Conv2d`` up to rounding."""

    @staticmethod
    def forward(ctx, x, w, *bias, pads):
        y, ctx.spectra = correlate(x, w, pads)
        if bias:
            y += bias[0].reshape(1, -1, 1, 1)
        ctx.geom = ((1, 1), pads, (1, 1), 1)  # Conv2d's, for the recorded backward
        ctx.y = None  # (no fused ReLU there)
        ctx.save_for_backward(x, w)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        xf, wf, size = ctx.spectra
        needs = ctx.needs_input_grad
        xp = xp_of(g)
        gf = xp.fft.rfft2(g, s=size)
        gx = gw = None
        if needs[0]:
            (pt, _), (pl, _) = ctx.geom[1]
            full = xp.fft.irfft2(_channel_product(gf, wf), s=size)
            gx = xp.ascontiguousarray(full[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]],
                                      dtype=x.dtype)
        if needs[1]:
            kh, kw = w.shape[2:]
            corr = xp.fft.irfft2(_channel_product(gf.conj().transpose(1, 0, 2, 3), xf), s=size)
            gw = xp.ascontiguousarray(corr[:, :, :kh, :kw], dtype=w.dtype)
        if len(needs) > 2:
            return gx, gw, (g.sum(axis=(0, 2, 3)) if needs[2] else None)
        return gx, gw

    @staticmethod
    def jvp(ctx, dx, dw, *db):
        """d(conv(x, w) + b) = conv(dx, w) + conv(x, dw) + db, by linearity."""
        x, w = ctx.saved
        pads = ctx.geom[1]
        out = None
        if dx is not None:
            out = correlate(dx, w, pads)[0]
        if dw is not None:
            t = correlate(x, dw, pads)[0]
            out = t if out is None else out + t
        if db and db[0] is not None:
            t = db[0].reshape(1, -1, 1, 1)
            out = t + correlate(x, xp_of(w).zeros_like(w), pads)[0] if out is None else out + t
        return out

    # The gradients are the direct convolution's (recorded, with its second-order rules).
    backward_graph = staticmethod(Conv2d.backward_graph)

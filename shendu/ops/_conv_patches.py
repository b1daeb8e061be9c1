"""Patch matrices for convolution: im2col / col2im, a batch-chunked im2col, scratch buffers.

Layouts. Activations travel *channel-major*: a (N, C, H, W) array whose
``.transpose(1, 0, 2, 3)`` is C-contiguous, i.e. stored as (C, N, H, W). A GEMM over
channels then reads and writes plain 2-D blocks: ``(C, N*H*W)`` rows are the image planes.
The patch matrix of a chunk of ``m`` images has shape (C, kh, kw, m, OH, OW) = (K, m*OH*OW),
``K = C*kh*kw``, filled by ``kh*kw`` strided block copies (never a gather).

Why chunks. The patch matrix of a whole batch is large (75 MB for a 32-channel 3x3 layer
on 64 CIFAR images, 300 MB at batch 256): holding it costs memory, and writing it and
reading it back goes through main memory. Filling it for some images at a time bounds the
extra memory to one scratch buffer, recycled between calls rather than allocated (fresh
large buffers cost page faults), and keeps more of it in the cache between the copy that
fills it and the GEMM that reads it.
"""
from __future__ import annotations

from ..backend.scratch import (  # noqa: F401  (re-exported for conv.py)
    clear_buffer_pool,
    give,
    give_padded,
    give_root,
    take,
    take_padded,
)
from ._util import xp_of

# Bytes of patch matrix per chunk. Smaller chunks stay in the cache (16 MB shared L3) but
# need more GEMM calls, and every call must wake the BLAS threads, which then spin: on a
# machine shared with other work each call can cost a scheduler slice. On the CIFAR CNN
# smaller chunks helped training a little on one thread but hurt inference, and with 2
# BLAS threads on busy cores they were several times slower (benchmarks/README.md,
# "Measurements behind the code"). 64 MB bounds the scratch memory and keeps the number
# of calls small.
PATCH_CHUNK_BYTES = 64 << 20

# ---------------------------------------------------------------------- geometry
def out_size(size, k, stride, pad_lo, pad_hi, dilation):
    return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


def _taps(kh, kw, stride, dilation, oh, ow):
    """For each kernel tap (i, j): the strided (rows, cols) slices it reads of a padded image."""
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def im2col_cm(cols, src, kh, kw, stride, dilation):
    """Fill ``cols`` (C, kh, kw, m, OH, OW) from the padded channel-major ``src`` (C, m, H, W)."""
    oh, ow = cols.shape[-2:]
    for i, j, (rows, cs) in _taps(kh, kw, stride, dilation, oh, ow):
        cols[:, i, j] = src[:, :, rows, cs]
    return cols


def col2im_cm(dst, cols, kh, kw, stride, dilation):
    """Adjoint of ``im2col_cm``: add the patches ``cols`` into the padded ``dst`` (C, m, H, W)."""
    oh, ow = cols.shape[-2:]
    for i, j, (rows, cs) in _taps(kh, kw, stride, dilation, oh, ow):
        dst[:, :, rows, cs] += cols[:, i, j]
    return dst


def col2im_wide(dst, cols, kh, kw, dilation, oh, ow):
    """``col2im_cm`` for stride 1, from patches in the "wide" layout: ``cols`` is
    (C, kh, kw, m*Hp*Wp), each image's patch gradients laid out as a whole (Hp, Wp) plane
    of ``dst`` (C, m, Hp, Wp; each channel's m planes contiguous), and zero outside its
    top-left (OH, OW). Tap (i, j) then adds one run of ``(m-1)*Hp*Wp + (OH-1)*Wp + OW``
    elements per channel, starting at ``i*dh*Wp + j*dw``: the zeros land on the border or
    the next row or plane, which they leave as they are, and the run ends inside ``dst``."""
    c, m, hp, wp = dst.shape
    planes = dst.reshape(c, m * hp * wp)  # a view: each channel's planes are contiguous
    run = (m - 1) * hp * wp + (oh - 1) * wp + ow
    (dh, dw) = dilation
    for i in range(kh):
        for j in range(kw):
            start = i * dh * wp + j * dw
            planes[:, start:start + run] += cols[:, i, j, :run]
    return dst


def im2col(xp_, x, kh, kw, stride, dilation, oh, ow, out=None):
    """Patches of the (already padded) ``x`` (N, C, H, W) as (C, kh, kw, N, OH, OW)."""
    n, c = x.shape[:2]
    cols = out if out is not None else xp_.empty((c, kh, kw, n, oh, ow), x.dtype)
    return im2col_cm(cols, x.transpose(1, 0, 2, 3), kh, kw, stride, dilation)


def col2im(xp_, cols, shape, kh, kw, stride, dilation):
    """Adjoint of ``im2col``: scatter-add (C, kh, kw, N, OH, OW) patches into (N, C, H, W)."""
    n, c, h, w = shape
    out = xp_.zeros((c, n, h, w), cols.dtype)
    return col2im_cm(out, cols, kh, kw, stride, dilation).transpose(1, 0, 2, 3)


def pad(xp_, x, pads):
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    n, c, h, w = x.shape
    out = xp_.zeros((n, c, h + pt + pb, w + pl + pr), x.dtype)
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def unpad(x, pads):
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    return x[:, :, pt:x.shape[2] - pb, pl:x.shape[3] - pr]


# ---------------------------------------------------------------------- chunked im2col
def chunk_images(n, bytes_per_image):
    """How many images one chunk holds so that its patch matrix is about ``PATCH_CHUNK_BYTES``."""
    return max(1, min(n, PATCH_CHUNK_BYTES // max(bytes_per_image, 1)))


def patch_chunks(x, kh, kw, stride, pads, dilation, oh, ow, keep=False):
    """Yield ``(n0, n1, cols)`` over chunks of the batch of ``x`` (N, C, H, W, any strides).

    ``cols`` is the (C*kh*kw, (n1-n0)*OH*OW) patch matrix of images ``n0:n1``, valid until
    the next item is requested (it lives in a recycled scratch buffer). With ``keep``, a
    patch matrix of the whole batch (a single chunk) stays valid: the caller owns it and
    hands it back with ``give_root``.
    """
    xp = xp_of(x)
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    k, p = c * kh * kw, oh * ow
    nb = chunk_images(n, k * p * x.itemsize)
    xt = x.transpose(1, 0, 2, 3)  # a C-contiguous view when x is channel-major
    flat = take(xp, k * nb * p, x.dtype)
    padded = None
    if pt or pb or pl or pr:
        padded = take_padded(xp, (c, nb, h + pt + pb, w + pl + pr), x.dtype, pads)
    try:
        for n0 in range(0, n, nb):
            n1 = min(n, n0 + nb)
            src = xt[:, n0:n1]
            if padded is not None:
                dst = padded[:, :n1 - n0]
                dst[:, :, pt:pt + h, pl:pl + w] = src  # the zero border is never written
                src = dst
            cols = flat[:k * (n1 - n0) * p].reshape(c, kh, kw, n1 - n0, oh, ow)
            im2col_cm(cols, src, kh, kw, stride, dilation)
            yield n0, n1, cols.reshape(k, -1)
    finally:
        if not (keep and nb >= n):
            give(flat)
        if padded is not None:
            give_padded(padded, pads)

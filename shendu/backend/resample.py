"""Nearest-neighbour upsampling of (N, C, H, W) by whole factors, ``F.interpolate``'s
commonest case (FCN and U-Net decoders): one dispatch function for forward and one for
backward, each running the compiled kernel (``jit/resample.py``) or the NumPy reference
written here, and reporting which to ``runtime.trace_paths()`` as
``('upsample_nearest2d' | 'upsample_nearest2d_backward', 'numba' | 'numpy')``.

Arrays stored C-contiguously or channel-major ((N, C, H, W) held as (C, N, H, W), as
convolutions hand them over) are read as image planes in storage order, and results keep
that layout; any other strides are copied to C order first.

>>> import numpy as np
>>> from shendu.backend import resample
>>> resample.repeat_nearest(np.array([[[[1.0, 2.0]]]]), 2, 2)[0, 0]
array([[1., 1., 2., 2.],
       [1., 1., 2., 2.]])
"""
from __future__ import annotations

import numpy as np

from . import jit
from .cpu import _note, _xp
from .maxpool import _planes

__all__ = ["repeat_nearest", "repeat_nearest_backward"]


def _stored(xp, a):
    """``(planes, channel_major)``: ``a``'s (P, H, W) image planes in storage order."""
    planes = _planes(a)
    if planes is None:
        a = xp.ascontiguousarray(a)
        planes = a.reshape(-1, *a.shape[2:])
    return planes, not a.flags.c_contiguous


def _like(xp, planes_out, shape, channel_major):
    """(P, H', W') result planes as the (N, C, H', W') array, in the input's layout."""
    n, c = shape[:2]
    if channel_major:
        return planes_out.reshape(c, n, *planes_out.shape[1:]).transpose(1, 0, 2, 3)
    return planes_out.reshape(n, c, *planes_out.shape[1:])


def repeat_nearest(x, fh: int, fw: int):
    """``x`` (N, C, H, W) with every pixel repeated ``fh`` times down and ``fw`` across."""
    xp = _xp(x)
    planes, cm = _stored(xp, x)
    p, h, w = planes.shape
    out = xp.empty((p, h * fh, w * fw), x.dtype)
    if jit.on(x):
        _note("upsample_nearest2d", "numba")
        jit.repeat_nearest_forward(planes, fh, fw, jit.parts(), out)
    else:
        _note("upsample_nearest2d", "numpy")
        out.reshape(p, h, fh, w, fw)[...] = planes[:, :, None, :, None]
    return _like(xp, out, x.shape, cm)


def repeat_nearest_backward(g, fh: int, fw: int):
    """The gradient of :func:`repeat_nearest`: ``g`` summed over each ``fh x fw`` block."""
    xp = _xp(g)
    planes, cm = _stored(xp, g)
    p, h, w = planes.shape[0], planes.shape[1] // fh, planes.shape[2] // fw
    if jit.on(g):
        _note("upsample_nearest2d_backward", "numba")
        gx = np.empty((p, h, w), g.dtype)
        jit.repeat_nearest_backward(planes, fh, fw, jit.parts(), gx)
    else:
        _note("upsample_nearest2d_backward", "numpy")
        gx = planes.reshape(p, h, fh, w, fw).sum(axis=(2, 4))
    return _like(xp, gx, g.shape[:2] + (h, w), cm)

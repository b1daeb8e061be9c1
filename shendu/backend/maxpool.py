"""Max pooling with non-overlapping windows inside the input (the usual 2x2, stride 2):
one dispatch function for forward and one for backward, each running the compiled kernel
(``jit/pool.py``) or the NumPy reference written here, and reporting which to
``runtime.trace_paths()`` as ``('max_pool2d' | 'max_pool2d_backward', 'numba' | 'numpy')``.

Forward returns, beside the pooled output, a uint8 code per output of which window element
held the (first) maximum; backward writes each window of the gradient once from it, with
no comparisons of the input and no index arrays (``shendu/ops/pool.py``). The kernel takes
NumPy float arrays stored C-contiguously or channel-major ((N, C, H, W) held as
(C, N, H, W)) when the kernels are on; everything else takes the NumPy reference, which
combines the ``kh*kw`` strided views of the input elementwise. Outputs keep the input's
layout either way.

>>> import numpy as np
>>> from shendu.backend import maxpool, runtime
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> with runtime.trace_paths() as log:
...     out, code = maxpool.max_pool_tiled(x, (2, 2), (2, 2))
>>> out[0, 0], code[0, 0], log[0][0]
(array([[ 5.,  7.],
       [13., 15.]]), array([[3, 3],
       [3, 3]], dtype=uint8), 'max_pool2d')
"""
from __future__ import annotations

import numpy as np

from . import jit
from .cpu import _note, _xp

__all__ = ["max_pool_tiled", "max_pool_tiled_backward"]


def _views(a, k, out_hw):
    """The ``kh*kw`` strided views of ``a`` (N, C, H, W) whose elementwise combination is
    the output of pooling with non-overlapping ``k`` windows, in window order."""
    (kh, kw), (oh, ow) = k, out_hw
    return [a[:, :, i:i + kh * (oh - 1) + 1:kh, j:j + kw * (ow - 1) + 1:kw]
            for i in range(kh) for j in range(kw)]


def _planes(a):
    """(N, C, H, W) ``a`` as its (P, H, W) image planes in storage order, when it is
    C-contiguous or channel-major; else None."""
    n, c, h, w = a.shape
    if a.flags.c_contiguous:
        return a.reshape(n * c, h, w)
    if a.transpose(1, 0, 2, 3).flags.c_contiguous:
        return a.transpose(1, 0, 2, 3).reshape(c * n, h, w)
    return None


def max_pool_tiled(x, k, out_hw, relu=False):
    """``(out, code)`` of max pooling with non-overlapping ``k`` windows inside ``x``
    (``code``: which window element held the first maximum; a NaN wins, as in PyTorch).
    With ``relu``, a ReLU of the result: where it is not positive, 0 (a NaN stays) and the
    code ``kh*kw``, an element no window has, so that backward passes no gradient."""
    planes = _planes(x) if jit.on(x) else None
    if planes is None:
        _note("max_pool2d", "numpy")
        out, code = _max_pool_tiled_numpy(x, k, out_hw)
        return _relu_after(_xp(x), out, code, k) if relu else (out, code)
    _note("max_pool2d", "numba")
    n, c = x.shape[:2]
    cm = not x.flags.c_contiguous  # outputs in the input's layout: channel-major stays so
    shape = (c, n) + tuple(out_hw) if cm else (n, c) + tuple(out_hw)
    out, code = np.empty(shape, x.dtype), np.empty(shape, np.uint8)
    if tuple(k) == (2, 2):
        jit.max_pool2x2_forward(planes, _planes(out), _planes(code), jit.parts(), relu)
    else:
        jit.max_pool_tiled_forward(planes, k[0], k[1], _planes(out), _planes(code))
        if relu:
            _relu_after(np, out, code, k)
    if cm:
        out, code = out.transpose(1, 0, 2, 3), code.transpose(1, 0, 2, 3)
    return out, code


def max_pool_tiled_backward(g, code, k, out_hw, gx) -> None:
    """Fill ``gx`` (the input's shape, ``code``'s layout) with the gradient of tiled max
    pooling: ``g`` where the code points, 0 elsewhere (and below and right of the windows)."""
    if not jit.on(g):
        _note("max_pool2d_backward", "numpy")
        _max_pool_tiled_backward_numpy(g, code, k, out_hw, gx)
        return
    cm = not code.flags.c_contiguous
    if g.flags.c_contiguous != code.flags.c_contiguous:
        # e.g. a flatten's C-contiguous gradient for a channel-major pooling: give it the
        # code's plane order (it is the small, pooled array)
        g = (np.ascontiguousarray(g.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
             if cm else np.ascontiguousarray(g))
    gp, cp = _planes(g), _planes(code)
    if gp is None or cp is None:
        _note("max_pool2d_backward", "numpy")
        _max_pool_tiled_backward_numpy(g, code, k, out_hw, gx)
        return
    _note("max_pool2d_backward", "numba")
    h, w = gx.shape[2:]
    if tuple(k) == (2, 2) and (h, w) == (2 * out_hw[0], 2 * out_hw[1]):
        jit.max_pool2x2_backward(gp, cp, _planes(gx), jit.parts())
    else:
        jit.max_pool_tiled_backward(gp, cp, k[0], k[1], _planes(gx))


# ---------------------------------------------------------------------- NumPy reference
def _relu_after(xp, out, code, k):
    """The ReLU of ``max_pool_tiled(..., relu=True)`` applied to a pooling's result, in
    place: the same values and codes as the 2x2 kernel gives."""
    xp.copyto(code, k[0] * k[1], where=~(out > 0))  # off, or NaN: no gradient
    xp.copyto(out, 0, where=out <= 0)  # (a NaN stays, as with the ReLU op)
    return out, code


def _max_pool_tiled_numpy(x, k, out_hw):
    """The max of the ``kh*kw`` strided views, and per output the uint8 code of the view
    that held it."""
    xp = _xp(x)
    views = _views(x, k, out_hw)
    out = xp.empty_like(views[0])  # order "K": a channel-major input stays channel-major
    code = xp.empty_like(out, dtype=np.uint8)
    _tiled_max(xp, views, out, code)
    return out, code


def _max_pool_tiled_backward_numpy(g, code, k, out_hw, gx):
    # Every covered input element belongs to exactly one window: write each view once.
    xp = _xp(g)
    h, w = gx.shape[2:]
    ch, cw = out_hw[0] * k[0], out_hw[1] * k[1]
    if ch < h:
        gx[:, :, ch:] = 0
    if cw < w:
        gx[:, :, :ch, cw:] = 0
    for t, v in enumerate(_views(gx, k, out_hw)):
        xp.multiply(g, code == t, out=v)


def _tiled_max(xp, views, out, code):
    """``out`` = the elementwise max of ``views``, ``code`` = the index of the view that
    held it (the first, if tied; a NaN wins, as in PyTorch)."""
    maybe_nan = (_max4 if len(views) == 4 else _max_any)(xp, views, out, code)
    if out.dtype.kind in "fc" and len(views) > 1 and maybe_nan:
        # Like PyTorch, a NaN wins, and a later NaN replaces an earlier one.
        code[...] = 0
        xp.copyto(out, views[0])
        for t, v in enumerate(views[1:], 1):
            wins = (v > out) | xp.isnan(v)
            xp.copyto(code, t, where=wins)
            xp.copyto(out, v, where=wins)


def _sum_is_nan(xp, arrays) -> bool:
    """Whether the arrays may hold a NaN: one summing pass (a sum of +inf and -inf is a
    false alarm, which only costs the exact recomputation)."""
    if arrays[0].dtype.kind not in "fc":
        return False
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is the false alarm
        return bool(xp.isnan(sum(a.sum() for a in arrays)))


def _max4(xp, views, out, code):
    """Four views (2x2 windows). Ufuncs over two stride-2 views are much slower per element
    than over contiguous arrays, a strided copy much less so: copy each view once,
    then take max(max(v0, v1), max(v2, v3)) on the copies. Strict comparisons keep the
    first maximum: code = 2 + (v3 > v2) if the second pair beats the first, else v1 > v0."""
    v0, v1, v2, v3 = (xp.empty_like(out) for _ in range(4))
    for dst, v in zip((v0, v1, v2, v3), views):
        xp.copyto(dst, v)
    maybe_nan = _sum_is_nan(xp, (v0, v1, v2, v3))
    # (copyto where the comparison holds, not maximum: a tie of -0.0 and 0.0 keeps the
    # first, as PyTorch does; NaNs are redone by the caller)
    first = xp.greater(v1, v0)
    xp.copyto(v0, v1, where=first)
    second = xp.greater(v3, v2)
    xp.copyto(v2, v3, where=second)
    take2 = xp.greater(v2, v0)
    xp.copyto(out, v0)
    xp.copyto(out, v2, where=take2)
    first, second, take2 = (a.view(np.uint8) for a in (first, second, take2))
    # code = take2 ? 2 + second : first, in uint8 arithmetic (0 or 1 operands)
    xp.subtract(second, first, out=second)  # wraps modulo 256; undone by the add below
    xp.multiply(second, take2, out=second)
    xp.add(first, second, out=code)
    xp.add(code, take2 + take2, out=code)
    return maybe_nan


def _max_any(xp, views, out, code):
    xp.copyto(out, views[0])
    code[...] = 0
    for t, v in enumerate(views[1:], 1):
        # Strictly greater, so the first maximum wins; the running max only grows, so
        # the last view that beat it is the argmax: code = max over t of t*(v_t > max).
        beat = xp.greater(v, out)
        xp.copyto(out, v, where=beat)  # not maximum: keeps the first of -0.0 and 0.0
        beat = beat.view(np.uint8)
        xp.maximum(code, xp.multiply(beat, t, out=beat), out=code)
    return _sum_is_nan(xp, views)

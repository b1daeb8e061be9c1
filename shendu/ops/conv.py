"""Convolution as im2col + one GEMM, and its transpose.

Layout: the patch matrix ``cols`` has shape (C, kh, kw, N, OH, OW), so that
``W.reshape(O, C*kh*kw) @ cols.reshape(C*kh*kw, N*OH*OW)`` is a single large GEMM (two
BLAS threads stay busy) and im2col is ``kh*kw`` strided block copies rather than a
gather (see PERFORMANCE.md). col2im is the same loop with block adds. The big patch
buffers are recycled through a small pool: allocating 10-100 MB per step costs page faults.
"""
from __future__ import annotations

from ..autograd.function import Function
from ._util import xp_of

# ---------------------------------------------------------------------- buffer pool
_POOL: dict = {}
_POOL_MAX_PER_KEY = 4


def _take(xp, shape, dtype):
    stack = _POOL.get((xp.__name__, shape, dtype.str))
    if stack:
        return stack.pop()
    return xp.empty(shape, dtype)


def _give(arr):
    if arr is None:
        return
    key = (xp_of(arr).__name__, arr.shape, arr.dtype.str)
    stack = _POOL.setdefault(key, [])
    if len(stack) < _POOL_MAX_PER_KEY:
        stack.append(arr)


def clear_buffer_pool():
    """Free the recycled im2col buffers (they are kept between steps for speed)."""
    _POOL.clear()


# ---------------------------------------------------------------------- im2col / col2im
def out_size(size, k, stride, pad_lo, pad_hi, dilation):
    return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


def im2col(xp_, x, kh, kw, stride, dilation, oh, ow, out=None):
    """Patches of the (already padded) ``x`` (N, C, H, W) as (C, kh, kw, N, OH, OW)."""
    n, c = x.shape[:2]
    sh, sw = stride
    dh, dw = dilation
    cols = out if out is not None else _take(xp_, (c, kh, kw, n, oh, ow), x.dtype)
    xt = x.transpose(1, 0, 2, 3)  # (C, N, H, W) view: each copy below is a plain block copy
    for i in range(kh):
        hi = i * dh
        for j in range(kw):
            wj = j * dw
            cols[:, i, j] = xt[:, :, hi:hi + sh * (oh - 1) + 1:sh, wj:wj + sw * (ow - 1) + 1:sw]
    return cols


def col2im(xp_, cols, shape, kh, kw, stride, dilation):
    """Adjoint of ``im2col``: scatter-add (C, kh, kw, N, OH, OW) patches into (N, C, H, W)."""
    n, c, h, w = shape
    oh, ow = cols.shape[-2:]
    sh, sw = stride
    dh, dw = dilation
    out = xp_.zeros((c, n, h, w), cols.dtype)
    for i in range(kh):
        hi = i * dh
        for j in range(kw):
            wj = j * dw
            out[:, :, hi:hi + sh * (oh - 1) + 1:sh, wj:wj + sw * (ow - 1) + 1:sw] += cols[:, i, j]
    return out.transpose(1, 0, 2, 3)


def _pad(xp_, x, pads):
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    n, c, h, w = x.shape
    out = xp_.zeros((n, c, h + pt + pb, w + pl + pr), x.dtype)
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def _unpad(x, pads):
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    return x[:, :, pt:x.shape[2] - pb, pl:x.shape[3] - pr]


def _to_nchw(out2d, o, n, oh, ow):
    """(O, N*OH*OW) GEMM output -> contiguous (N, O, OH, OW)."""
    return out2d.reshape(o, n, oh, ow).transpose(1, 0, 2, 3).copy()


def _from_nchw(g):
    """(N, O, OH, OW) gradient -> (O, N*OH*OW), the GEMM layout."""
    n, o, oh, ow = g.shape
    return g.transpose(1, 0, 2, 3).reshape(o, n * oh * ow)


def _grouped_mm(w2, cols2, groups):
    """(O, K) @ (groups*K, M) with block-diagonal groups, as (O, M)."""
    if groups == 1:
        return w2 @ cols2
    o, k = w2.shape
    return (w2.reshape(groups, o // groups, k) @ cols2.reshape(groups, k, -1)).reshape(o, -1)


# ---------------------------------------------------------------------- conv2d
class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, *bias, stride, pads, dilation, groups):
        xp = xp_of(x)
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        oh = out_size(h, kh, stride[0], *pads[0], dilation[0])
        ow = out_size(wd, kw, stride[1], *pads[1], dilation[1])
        cols = im2col(xp, _pad(xp, x, pads), kh, kw, stride, dilation, oh, ow)
        out = _grouped_mm(w.reshape(o, cg * kh * kw), cols.reshape(-1, n * oh * ow), groups)
        if bias:
            out += bias[0].reshape(o, 1)
        ctx.geom = (x.shape, stride, pads, dilation, groups, oh, ow)
        ctx.save_for_backward(w)
        if getattr(ctx, "needs_input_grad", None) is None:
            _give(cols)  # not recording: nothing will read the patches again
        else:
            ctx.cols = cols
        return _to_nchw(out, o, n, oh, ow)

    def release(self):
        _give(self.__dict__.get("cols"))  # recycle the patch buffer for the next step
        super().release()

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        cols = ctx.cols
        x_shape, stride, pads, dilation, groups, oh, ow = ctx.geom
        xp = xp_of(g)
        n = x_shape[0]
        o, cg, kh, kw = w.shape
        k = cg * kh * kw
        needs = ctx.needs_input_grad
        g2 = _from_nchw(g)
        gx = gw = gb = None
        if groups == 1:
            if needs[1]:
                gw = (g2 @ cols.reshape(k, -1).T).reshape(w.shape)
            if needs[0]:
                gcols = (w.reshape(o, k).T @ g2).reshape(cols.shape)
        else:
            g3 = g2.reshape(groups, o // groups, -1)
            c3 = cols.reshape(groups, k, -1)
            if needs[1]:
                gw = (g3 @ c3.transpose(0, 2, 1)).reshape(w.shape)
            if needs[0]:
                gcols = (w.reshape(groups, o // groups, k).transpose(0, 2, 1) @ g3
                         ).reshape(cols.shape)
        if needs[0]:
            padded = (n, x_shape[1], x_shape[2] + sum(pads[0]), x_shape[3] + sum(pads[1]))
            gx = _unpad(col2im(xp, gcols, padded, kh, kw, stride, dilation), pads)
        if len(needs) > 2 and needs[2]:
            gb = g2.sum(axis=1)
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)

    @staticmethod
    def jvp(ctx, dx, dw, *db):
        """d(conv(x, w) + b) = conv(dx, w) + conv(x, dw) + db, by linearity."""
        (w,) = ctx.saved
        x_shape, stride, pads, dilation, groups, oh, ow = ctx.geom
        xp = xp_of(w)
        o, cg, kh, kw = w.shape
        n = x_shape[0]
        k = cg * kh * kw
        out = None
        if dx is not None:
            cols = im2col(xp, _pad(xp, dx, pads), kh, kw, stride, dilation, oh, ow,
                          out=xp.empty((x_shape[1], kh, kw, n, oh, ow), dx.dtype))
            out = _grouped_mm(w.reshape(o, k), cols.reshape(-1, n * oh * ow), groups)
        if dw is not None:
            t = _grouped_mm(dw.reshape(o, k), ctx.cols.reshape(-1, n * oh * ow), groups)
            out = t if out is None else out + t
        if db and db[0] is not None:
            t = xp.broadcast_to(db[0].reshape(o, 1), (o, n * oh * ow))
            out = t if out is None else out + t
        return _to_nchw(out, o, n, oh, ow)


# ---------------------------------------------------------------------- conv_transpose2d
class ConvTranspose2d(Function):
    """The adjoint of ``Conv2d`` with respect to its input (a 'fractionally strided' conv)."""

    @staticmethod
    def forward(ctx, x, w, *bias, stride, pads, dilation, groups, out_hw):
        xp = xp_of(x)
        n, cin, h, wd = x.shape
        _, cog, kh, kw = w.shape
        cout = cog * groups
        x2 = x.transpose(1, 0, 2, 3).reshape(cin, n * h * wd)
        wg = w.reshape(groups, cin // groups, cog * kh * kw)
        cols = (wg.transpose(0, 2, 1) @ x2.reshape(groups, cin // groups, -1))
        cols = cols.reshape(cout, kh, kw, n, h, wd)
        full = (n, cout, out_hw[0] + sum(pads[0]), out_hw[1] + sum(pads[1]))
        out = _unpad(col2im(xp, cols, full, kh, kw, stride, dilation), pads)
        out = xp.ascontiguousarray(out)
        if bias:
            out += bias[0].reshape(1, cout, 1, 1)
        ctx.save_for_backward(x, w)
        ctx.geom = (stride, pads, dilation, groups)
        ctx.out_hw = out_hw
        return out

    @staticmethod
    def jvp(ctx, dx, dw, *db):
        """Linear in each argument: convT(dx, w) + convT(x, dw) + db."""
        x, w = ctx.saved
        stride, pads, dilation, groups = ctx.geom
        params = dict(stride=stride, pads=pads, dilation=dilation, groups=groups,
                      out_hw=ctx.out_hw)
        scratch = object.__new__(ConvTranspose2d)
        out = None
        if dx is not None:
            out = ConvTranspose2d.forward(scratch, dx, w, **params)
        if dw is not None:
            t = ConvTranspose2d.forward(scratch, x, dw, **params)
            out = t if out is None else out + t
        if db and db[0] is not None:
            t = db[0].reshape(1, -1, 1, 1)
            out = t if out is None else out + t
        return out

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.geom
        xp = xp_of(g)
        n, cin, h, wd = x.shape
        _, cog, kh, kw = w.shape
        cout = cog * groups
        needs = ctx.needs_input_grad
        gcols = im2col(xp, _pad(xp, g, pads), kh, kw, stride, dilation, h, wd,
                       out=xp.empty((cout, kh, kw, n, h, wd), g.dtype))
        gc = gcols.reshape(groups, cog * kh * kw, n * h * wd)
        wg = w.reshape(groups, cin // groups, cog * kh * kw)
        gx = gw = gb = None
        if needs[0]:
            gx = (wg @ gc).reshape(cin, n, h, wd).transpose(1, 0, 2, 3)
        if needs[1]:
            x2 = x.transpose(1, 0, 2, 3).reshape(groups, cin // groups, n * h * wd)
            gw = (x2 @ gc.transpose(0, 2, 1)).reshape(w.shape)
        if len(needs) > 2 and needs[2]:
            gb = g.sum(axis=(0, 2, 3))
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)

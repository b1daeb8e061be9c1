"""Convolution as a batch-chunked im2col + GEMM over channel-major arrays, and its transpose.

``Conv2d`` returns its (N, O, OH, OW) result as a view of an (O, N, OH, OW) array — the
GEMM ``W (O, K) @ cols (K, N*OH*OW)`` writes exactly that — instead of copying it to NCHW.
NumPy's elementwise ops keep that layout, so the ReLU and pooling that follow stay
channel-major and the next convolution reads whole image planes (``_conv_patches``).
Gradients come back in the same layout and are returned in it.

Backward needs the input, and keeps the forward's patch matrix only when it is small
(``KEEP_BYTES``): the whole batch's would be the biggest array of the step. dX is either
the correlation of the padded output gradient with the flipped kernel (stride 1, when its
patch matrix is not bigger: the same chunked im2col + GEMM, and those patches give dW
too) or ``W.T @ dOut`` scattered back by col2im; in the latter case dW re-patches the
input chunk by chunk unless the forward's patches were kept.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..backend import convolution, cpu
from ..tensor import Tensor
from ._conv_patches import (
    chunk_images,
    clear_buffer_pool,
    col2im,
    col2im_cm,
    col2im_wide,
    give,
    give_padded,
    give_root,
    im2col,
    out_size,
    pad,
    patch_chunks,
    take,
    take_padded,
    unpad,
)
from ._util import xp_of
from .elementwise import relu_grad

__all__ = ["Conv2d", "Conv2dPool", "ConvTranspose2d", "clear_buffer_pool", "out_size",
           "conv2d_cm"]


# ---------------------------------------------------------------------- GEMM helpers
def _gemm(a, cols, groups, out):
    """``out (R, M) = a (R, Kg) @ cols (groups*Kg, M)``, block-diagonal over the groups."""
    if groups == 1:
        cpu.matmul(a, cols, out)
        return
    r, kg = a.shape
    out[...] = (a.reshape(groups, r // groups, kg) @ cols.reshape(groups, kg, -1)).reshape(r, -1)


def _gemm_nt(g, cols, groups):
    """``g (O, M) @ cols.T`` per group: the weight gradient of one chunk, (O, Kg).

    Computed as ``(cols @ g.T).T``: with the long M axis contiguous in both operands
    that orientation was faster in OpenBLAS on conv shapes (measured: benchmarks/README.md)."""
    if groups == 1:
        return cpu.matmul(cols, g.T).T
    o, m = g.shape
    return (g.reshape(groups, o // groups, m)
            @ cols.reshape(groups, -1, m).transpose(0, 2, 1)).reshape(o, -1)


# The forward patch matrix is kept for dW when the whole batch's is at most this big (it
# saves re-patching the input in backward; LeNet's are 4-5 MB).
KEEP_BYTES = 8 << 20


def conv2d_cm(x, w, bias, stride, pads, dilation, groups, keep=False):
    """conv2d of (N, C, H, W) ``x`` (any strides) as a C-contiguous (O, N, OH, OW) array,
    and, with ``keep`` and a small enough batch, its patch matrix (else None; see
    ``patch_chunks``)."""
    xp = xp_of(x)
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh, ow = _out_hw(x.shape, w.shape, stride, pads, dilation)
    p = oh * ow
    out = xp.empty((o, n, oh, ow), x.dtype)
    out2 = out.reshape(o, n * p)
    w2 = w.reshape(o, cg * kh * kw)
    b = None if bias is None else bias.reshape(o, 1)
    keep = keep and n * p * w2.shape[1] * groups * x.itemsize <= KEEP_BYTES
    for n0, n1, cols in patch_chunks(x, kh, kw, stride, pads, dilation, oh, ow, keep):
        dst = out2[:, n0 * p:n1 * p]
        _gemm(w2, cols, groups, dst)
        if b is not None:
            dst += b  # while the chunk is still in the cache
    return out, (cols if keep and n1 - n0 == n else None)  # kept only if one chunk


def _out_hw(x_shape, w_shape, stride, pads, dilation):
    return tuple(out_size(x_shape[2 + i], w_shape[2 + i], stride[i], *pads[i], dilation[i])
                 for i in range(2))


def _weight_grad(x, gt, w_shape, stride, pads, dilation, groups):
    """dL/dW from the input and the channel-major output gradient ``gt`` (O, N, OH, OW)."""
    xp = xp_of(gt)
    o, cg, kh, kw = w_shape
    oh, ow = gt.shape[2:]
    p = oh * ow
    g2 = gt.reshape(o, -1)
    gw = xp.zeros((o, cg * kh * kw), gt.dtype)
    for n0, n1, cols in patch_chunks(x, kh, kw, stride, pads, dilation, oh, ow):
        gw += _gemm_nt(g2[:, n0 * p:n1 * p], cols, groups)
    return gw.reshape(w_shape)


def _back_pads(w_shape, pads, dilation):
    """Padding of the output gradient that turns dX into a correlation (stride 1)."""
    ext_h, ext_w = dilation[0] * (w_shape[2] - 1), dilation[1] * (w_shape[3] - 1)
    (pt, pb), (pl, pr) = pads
    return ((ext_h - pt, ext_h - pb), (ext_w - pl, ext_w - pr))


def backward_method(x_shape, w_shape, stride, pads, dilation, out_hw):
    """"correlate" or "col2im": how ``Conv2d.backward`` computes dX (tests force each).

    The correlation's patch matrix is O*k*k x N*H*W, col2im's C*k*k x N*OH*OW: correlate
    when it is not bigger (e.g. 3x3 'same' layers with as many outputs as inputs)."""
    if stride != (1, 1) or min(min(bp) for bp in _back_pads(w_shape, pads, dilation)) < 0:
        return "col2im"
    o, c = w_shape[0], x_shape[1]
    small = o * x_shape[2] * x_shape[3] <= c * out_hw[0] * out_hw[1]
    return "correlate" if small else "col2im"


def _grads_by_correlation(x, gt, w, pads, dilation, groups, want_w):
    """dX (channel-major) and, if ``want_w``, dW for a stride-1 convolution.

    dx[c, y] = sum_{o, i} dOut[o, y + pt - i*d] w[o, c, i]: a correlation of dOut padded by
    d*(k-1)-pad with the kernel flipped and its channel axes swapped. The same patches of
    dOut also give dW = x @ patches.T (taps flipped), so the input is never re-patched.
    """
    xp = xp_of(gt)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og, q = o // groups, h * wd
    wt = w.reshape(groups, og, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    wt = wt.reshape(c, og * kh * kw)
    gx = xp.empty((c, n, h, wd), gt.dtype)
    gx2 = gx.reshape(c, n * q)
    xt = x.transpose(1, 0, 2, 3)
    gwt = xp.zeros((groups, cg, og * kh * kw), gt.dtype) if want_w else None
    for n0, n1, cols in patch_chunks(gt.transpose(1, 0, 2, 3), kh, kw, (1, 1),
                                     _back_pads(w.shape, pads, dilation), dilation, h, wd):
        _gemm(wt, cols, groups, gx2[:, n0 * q:n1 * q])
        if want_w:
            xc = xt[:, n0:n1].reshape(c, -1)  # a view when x is channel-major
            gwt += _gemm_nt(xc, cols, groups).reshape(gwt.shape)
    gw = None
    if want_w:
        gw = gwt.reshape(groups, cg, og, kh, kw)[..., ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        gw = gw.reshape(w.shape)
    return gx, gw


WIDE_COL2IM = True  # the "wide" col2im below (False: the row-by-row one, for comparison)


def _input_grad_col2im(gt, w, x_shape, stride, pads, dilation, groups):
    """dX as a channel-major (C, N, H, W) view of a padded array: the patch gradients
    W.T @ dOut, scattered back by col2im, chunk by chunk.

    Stride 1 (finite weights) takes the "wide" layout: dOut is padded with zeros to the
    padded input's (Hp, Wp), so each tap's patch gradients for a chunk are one contiguous
    run per channel that is added to dX in one stretch (``col2im_wide``), instead of OH
    rows of OW elements per image (LeNet's 10: NumPy's per-row cost dominates). The GEMM
    grows by Hp*Wp / (OH*OW), the zero padding adds nothing, and the adds run faster.
    """
    xp = xp_of(gt)
    n, c, h, wd = x_shape
    o, cg, kh, kw = w.shape
    og = o // groups
    (pt, pb), (pl, pr) = pads
    oh, ow = gt.shape[2:]
    hp, wp = h + pt + pb, wd + pl + pr
    wide = WIDE_COL2IM and stride == (1, 1) and bool(xp.isfinite(w).all())  # inf*0 is NaN
    gpad = None
    if wide:
        wpads = ((0, hp - oh), (0, wp - ow))
        gpad = take_padded(xp, (o, n, hp, wp), gt.dtype, wpads)
        gpad[:, :, :oh, :ow] = gt  # the zero border (bottom, right) is never written
        gt = gpad
    p, k = gt.shape[2] * gt.shape[3], cg * kh * kw
    g2 = gt.reshape(o, -1)
    wt = w.reshape(groups, og, k).transpose(0, 2, 1)  # (groups, Kg, og)
    gx = xp.zeros((c, n, hp, wp), gt.dtype)
    nb = chunk_images(n, k * groups * p * gt.itemsize)
    flat = take(xp, groups * k * nb * p, gt.dtype)
    for n0 in range(0, n, nb):
        n1 = min(n, n0 + nb)
        cols = flat[:groups * k * (n1 - n0) * p].reshape(groups, k, (n1 - n0) * p)
        gc = g2[:, n0 * p:n1 * p]
        if groups == 1:
            cpu.matmul(wt[0], gc, cols[0])
        else:
            xp.matmul(wt, gc.reshape(groups, og, -1), out=cols)
        if wide:
            col2im_wide(gx[:, n0:n1], cols.reshape(c, kh, kw, -1), kh, kw, dilation, oh, ow)
        else:
            col2im_cm(gx[:, n0:n1], cols.reshape(c, kh, kw, n1 - n0, oh, ow), kh, kw, stride,
                      dilation)
    give(flat)
    if gpad is not None:
        give_padded(gpad, wpads)
    return unpad(gx, pads)


# ---------------------------------------------------------------------- conv2d
def _conv2d_numpy(x, w, bias, stride, pads, dilation, groups, out_hw, relu, ctx):
    """``Conv2d.forward``'s NumPy reference (``convolution.conv2d`` runs it where the fused
    kernel does not apply): the (O, N, OH, OW) output, then the ReLU if ``relu``. The patch matrix
    is kept in ``ctx.cols`` for dW when backward will re-patch the input and it is small."""
    needs = getattr(ctx, "needs_input_grad", None)  # None: not recording
    keep = needs is not None and needs[1] and not (needs[0] and backward_method(
        x.shape, w.shape, stride, pads, dilation, out_hw) == "correlate")
    out, ctx.cols = conv2d_cm(x, w, bias, stride, pads, dilation, groups, keep)
    if relu:
        xp_of(out).maximum(out, 0, out=out)
    return out


def _conv2d_backward_numpy(x, w, gt, stride, pads, dilation, groups, needs, y, ctx):
    """``Conv2d.backward``'s NumPy reference (``convolution.conv2d_backward``): ``(gx, gw,
    gb)`` from the channel-major output gradient ``gt``, gx channel-major, each None unless
    needed; dX by correlation or col2im (``backward_method``)."""
    if y is not None:  # through the fused ReLU
        gt = relu_grad(gt, y)
    gx = gw = gb = None
    how = backward_method(x.shape, w.shape, stride, pads, dilation, gt.shape[2:])
    if needs[0] and how == "correlate":
        gx, gw = _grads_by_correlation(x, gt, w, pads, dilation, groups, needs[1])
    else:
        cols, ctx.cols = ctx.cols, None  # a second backward (retain_graph) re-patches
        if needs[1] and cols is not None:
            gw = _gemm_nt(gt.reshape(gt.shape[0], -1), cols, groups).reshape(w.shape)
        elif needs[1]:
            gw = _weight_grad(x, gt, w.shape, stride, pads, dilation, groups)
        if cols is not None:
            give_root(cols)
        if needs[0]:
            gx = _input_grad_col2im(gt, w, x.shape, stride, pads, dilation, groups)
    if len(needs) > 2 and needs[2]:
        gb = gt.reshape(gt.shape[0], -1).sum(axis=1)
    return gx, gw, gb


class Conv2d(Function):
    """conv2d, and with ``relu=True`` relu(conv2d) in one node (``nn.FusedConv2dReLU``, made
    by ``nn.utils.fuse``): the fused kernel applies the ReLU as it writes
    the output and masks the gradient as it reads it, so neither makes a pass of its own."""

    @staticmethod
    def forward(ctx, x, w, *bias, stride, pads, dilation, groups, relu=False):
        ctx.geom = (stride, pads, dilation, groups)
        ctx.cols = None  # the NumPy path may keep its patch matrix here for dW
        out_hw = _out_hw(x.shape, w.shape, stride, pads, dilation)
        out, ctx.kernel = convolution.conv2d(x, w, bias[0] if bias else None, stride, pads,
                                             dilation, groups, out_hw, relu, _conv2d_numpy, ctx)
        ctx.y = out if relu else None  # the fused ReLU's output masks the gradient
        ctx.save_for_backward(x, w)  # the input is kept alive by its producer anyway
        return out.transpose(1, 0, 2, 3)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.geom
        needs = ctx.needs_input_grad
        gt = xp_of(g).ascontiguousarray(g.transpose(1, 0, 2, 3))  # free if g is channel-major
        gx, gw, gb = convolution.conv2d_backward(x, w, gt, stride, pads, dilation, groups,
                                                 needs, ctx.y, ctx.kernel,
                                                 _conv2d_backward_numpy, ctx)
        if gx is not None:
            gx = gx.transpose(1, 0, 2, 3)
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)

    @staticmethod
    def jvp(ctx, dx, dw, *db):
        """d(conv(x, w) + b) = conv(dx, w) + conv(x, dw) + db, by linearity (masked where a
        fused ReLU is off)."""
        x, w = ctx.saved
        stride, pads, dilation, groups = ctx.geom
        geom = (stride, pads, dilation, groups)
        out = None
        if dx is not None:
            out = conv2d_cm(dx, w, None, *geom)[0]
        if dw is not None:
            t = conv2d_cm(x, dw, None, *geom)[0]
            out = t if out is None else out + t
        if db and db[0] is not None:
            t = db[0].reshape(-1, 1, 1, 1)
            if out is None:
                oh, ow = _out_hw(x.shape, w.shape, stride, pads, dilation)
                out = xp_of(t).zeros((w.shape[0], x.shape[0], oh, ow), t.dtype)
            out = out + t
        if ctx.y is not None:  # through the fused ReLU
            out = out * (ctx.y > 0)
        return out.transpose(1, 0, 2, 3)

    @staticmethod
    def backward_graph(ctx, g):
        from .elementwise import where

        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if ctx.y is not None:  # through the fused ReLU
            g = where(Tensor._wrap(ctx.y.transpose(1, 0, 2, 3) > 0), g, 0.0)
        gx = Conv2dInputGrad.apply(g, ctx.input_tensor(1, w), x_shape=x.shape,
                                   geom=ctx.geom) if needs[0] else None
        gw = Conv2dWeightGrad.apply(ctx.input_tensor(0, x), g, w_shape=w.shape,
                                    geom=ctx.geom) if needs[1] else None
        if len(needs) > 2:
            return gx, gw, (g.sum(dim=(0, 2, 3)) if needs[2] else None)
        return gx, gw


class Conv2dPool(Function):
    """conv2d, then 2x2 max pooling (then a ReLU if ``relu``) in one node: graph mode's
    ``conv2d_pool`` (``shendu.jit.passes.fuse_conv_pool``). The fused kernel pools each
    chunk of the convolution's result while it is in the thread's cache, so the
    full-size output is never written, read back or kept; backward expands the pooled
    gradient with the pooling's codes and runs ``Conv2d``'s backward on it."""

    @staticmethod
    def forward(ctx, x, w, *bias, stride, pads, dilation, groups, pool_hw, relu=False):
        ctx.geom = (stride, pads, dilation, groups)
        ctx.cols, ctx.y = None, None
        out_hw = _out_hw(x.shape, w.shape, stride, pads, dilation)
        b = bias[0] if bias else None
        out, code, ctx.kernel = convolution.conv2d_pool(x, w, b, stride, pads, dilation,
                                                        groups, out_hw, pool_hw, relu,
                                                        _conv2d_numpy, ctx)
        ctx.code, ctx.pool_hw, ctx.relu, ctx.bias = code, pool_hw, relu, b
        ctx.full_shape = (x.shape[0], w.shape[0]) + tuple(out_hw)
        ctx.save_for_backward(x, w)
        return out

    @staticmethod
    def backward(ctx, g):
        from .pool import MaxPool2d

        g = MaxPool2d._tiled_backward(xp_of(g), g, ctx.code, (2, 2), ctx.pool_hw,
                                      ctx.full_shape)
        return Conv2d.backward(ctx, g)

    @staticmethod
    def forward_graph(ctx):
        """For create_graph=True: the convolution, the pooling and the ReLU as recorded
        ops."""
        from .pool import MaxPool2d

        x, w = ctx.saved_tensors
        inputs = [ctx.input_tensor(0, x), ctx.input_tensor(1, w)]
        if ctx.bias is not None:
            inputs.append(ctx.input_tensor(2, ctx.bias))
        stride, pads, dilation, groups = ctx.geom

        def fn(x, w, *b):
            y = Conv2d.apply(x, w, *b, stride=stride, pads=pads, dilation=dilation,
                             groups=groups)
            y = MaxPool2d.apply(y, k=(2, 2), stride=(2, 2), pad=(0, 0), dilation=(1, 1),
                                out_hw=ctx.pool_hw)
            return y.relu() if ctx.relu else y
        return inputs, fn


# ---------------------------------------------------------------------- conv2d, second order
# conv2d's two gradients are bilinear: dX in (dOut, W), dW in (X, dOut). Each is a node of
# its own when the backward is recorded (create_graph=True); the derivatives of each are
# conv2d and the other one, so derivatives of any order stay within these three ops.
def _cm(g):
    """An (N, O, OH, OW) gradient as a C-contiguous (O, N, OH, OW) array."""
    return xp_of(g).ascontiguousarray(g.transpose(1, 0, 2, 3))


def _conv_graph(x, w, geom):
    """conv2d of two tensors (recorded), for the second-order rules."""
    stride, pads, dilation, groups = geom
    return Conv2d.apply(x, w, stride=stride, pads=pads, dilation=dilation, groups=groups)


class Conv2dInputGrad(Function):
    """dX = conv2d's input gradient, as a function of (dOut, W)."""

    @staticmethod
    def forward(ctx, g, w, x_shape, geom):
        ctx.save_for_backward(g, w)
        ctx.x_shape, ctx.geom = x_shape, geom
        return _input_grad_col2im(_cm(g), w, x_shape, *geom).transpose(1, 0, 2, 3)

    @staticmethod
    def backward(ctx, c):
        g, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gg = conv2d_cm(c, w, None, *ctx.geom)[0].transpose(1, 0, 2, 3) if needs[0] else None
        gw = _weight_grad(c, _cm(g), w.shape, *ctx.geom) if needs[1] else None
        return gg, gw

    @staticmethod
    def backward_graph(ctx, c):
        g, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gg = _conv_graph(c, ctx.input_tensor(1, w), ctx.geom) if needs[0] else None
        gw = Conv2dWeightGrad.apply(c, ctx.input_tensor(0, g), w_shape=w.shape,
                                    geom=ctx.geom) if needs[1] else None
        return gg, gw


class Conv2dWeightGrad(Function):
    """dW = conv2d's weight gradient, as a function of (X, dOut)."""

    @staticmethod
    def forward(ctx, x, g, w_shape, geom):
        ctx.save_for_backward(x, g)
        ctx.w_shape, ctx.geom = w_shape, geom
        return _weight_grad(x, _cm(g), w_shape, *geom)

    @staticmethod
    def backward(ctx, c):
        x, g = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx = _input_grad_col2im(_cm(g), c, x.shape, *ctx.geom).transpose(1, 0, 2, 3) \
            if needs[0] else None
        gg = conv2d_cm(x, c, None, *ctx.geom)[0].transpose(1, 0, 2, 3) if needs[1] else None
        return gx, gg

    @staticmethod
    def backward_graph(ctx, c):
        x, g = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx = Conv2dInputGrad.apply(ctx.input_tensor(1, g), c, x_shape=x.shape,
                                   geom=ctx.geom) if needs[0] else None
        gg = _conv_graph(ctx.input_tensor(0, x), c, ctx.geom) if needs[1] else None
        return gx, gg


# ---------------------------------------------------------------------- conv_transpose2d
def _taps_tile(x_shape, w_shape, stride, pads, dilation, out_hw) -> bool:
    """Whether each input pixel's taps fill a block of the output of their own (stride =
    kernel size, no dilation, padding or extra rows): a U-Net's 2x2 stride-2 upsampling."""
    kh, kw = w_shape[2:]
    return (tuple(stride) == (kh, kw) and tuple(dilation) == (1, 1) and not any(
        sum(pads, ())) and tuple(out_hw) == (x_shape[2] * kh, x_shape[3] * kw))


def _tiles_to_image(xp, cols, bias):
    """The output of a transposed convolution whose taps tile it, from the per-tap products
    ``cols`` (C, kh, kw, N, H, W): tap (a, b) of pixel (i, j) is output pixel
    (i*kh + a, j*kw + b), so each tap is one strided copy (plus the bias) and nothing is
    added up. Channel-major (N, C, OH, OW), as convolutions hand over their outputs."""
    c, kh, kw, n, h, w = cols.shape
    out = xp.empty((c, n, h, kh, w, kw), cols.dtype)
    for a in range(kh):
        for b in range(kw):
            if bias is None:
                out[:, :, :, a, :, b] = cols[:, a, b]
            else:
                xp.add(cols[:, a, b], bias.reshape(c, 1, 1, 1), out=out[:, :, :, a, :, b])
    return out.reshape(c, n, h * kh, w * kw).transpose(1, 0, 2, 3)


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
        ctx.save_for_backward(x, w)
        ctx.geom = (stride, pads, dilation, groups)
        ctx.out_hw = out_hw
        if _taps_tile(x.shape, w.shape, stride, pads, dilation, out_hw):
            return _tiles_to_image(xp, cols, bias[0] if bias else None)
        full = (n, cout, out_hw[0] + sum(pads[0]), out_hw[1] + sum(pads[1]))
        out = unpad(col2im(xp, cols, full, kh, kw, stride, dilation), pads)
        out = xp.ascontiguousarray(out)
        if bias:
            out += bias[0].reshape(1, cout, 1, 1)
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
    def backward_graph(ctx, g):
        """For create_graph=True. conv_transpose2d(x, w) is the input gradient of conv2d
        with the same weight, so its gradients are conv2d (for x) and conv2d's weight
        gradient with input g and output gradient x (for w)."""
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx = _conv_graph(g, ctx.input_tensor(1, w), ctx.geom) if needs[0] else None
        gw = Conv2dWeightGrad.apply(g, ctx.input_tensor(0, x), w_shape=w.shape,
                                    geom=ctx.geom) if needs[1] else None
        if len(needs) > 2:
            return gx, gw, (g.sum(dim=(0, 2, 3)) if needs[2] else None)
        return gx, gw

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.geom
        xp = xp_of(g)
        n, cin, h, wd = x.shape
        _, cog, kh, kw = w.shape
        cout = cog * groups
        needs = ctx.needs_input_grad
        gcols = im2col(xp, pad(xp, g, pads), kh, kw, stride, dilation, h, wd,
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

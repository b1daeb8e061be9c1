"""Fused neural-network primitives: linear, softmax family, cross-entropy, normalisation,
dropout and embedding.

Each is one graph node with a hand-written backward: fewer temporaries than composing
primitives, and numerically stable where a composition would overflow.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..backend import cpu
from ..tensor import Tensor
from ._util import xp_of
from .elementwise import relu_grad
from .linalg import rows


# ---------------------------------------------------------------------- linear
class Linear(Function):
    """``x @ W.T + b`` for x of shape (..., in); one GEMM over all leading dims."""

    @staticmethod
    def forward(ctx, x, w, *bias):
        out = cpu.addmm(rows(x), w.T, bias[0] if bias else None)
        ctx.save_for_backward(x, w)
        return out.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return _linear_grads(ctx.needs_input_grad, g, x, w)

    @staticmethod
    def backward_graph(ctx, g):
        x, w = ctx.saved_tensors
        return _linear_grads_graph(ctx, g, x, w)

    @staticmethod
    def jvp(ctx, dx, dw, *db):
        x, w = ctx.saved[:2]
        out = None
        if dx is not None:
            out = dx @ w.T
        if dw is not None:
            t = x @ dw.T
            out = t if out is None else out + t
        if db and db[0] is not None:
            out = db[0] if out is None else out + db[0]
        return xp_of(x).broadcast_to(out, x.shape[:-1] + (w.shape[0],))


def _linear_grads_graph(ctx, g, x, w):
    """``_linear_grads`` with Tensor ops (recorded, for create_graph=True)."""
    needs = ctx.needs_input_grad
    g2 = g.reshape(-1, w.shape[0])
    gx = (g2 @ ctx.input_tensor(1, w)).reshape(x.shape) if needs[0] else None
    gw = g2.T @ ctx.input_tensor(0, x).reshape(-1, w.shape[1]) if needs[1] else None
    if len(needs) == 2:
        return gx, gw
    return gx, gw, (g2.sum(dim=0) if needs[2] else None)


def _linear_grads(needs, g, x, w):
    g2 = rows(g)
    gx = cpu.matmul(g2, w).reshape(x.shape) if needs[0] else None
    gw = cpu.matmul(g2.T, rows(x)) if needs[1] else None
    if len(needs) == 2:
        return gx, gw
    return gx, gw, (cpu.column_sums(g2) if needs[2] else None)


class LinearReLU(Function):
    """``relu(x @ W.T + b)`` as one node (``nn.FusedLinearReLU``, made by
    ``nn.utils.fuse``). The bias and the ReLU are one pass over the product (instead of a
    bias pass and a ReLU op with its own output), and backward masks the incoming
    gradient with the saved output before the Linear's products."""

    @staticmethod
    def forward(ctx, x, w, *bias):
        out = cpu.matmul(rows(x), w.T)
        cpu.bias_relu(out, bias[0] if bias else None)
        ctx.save_for_backward(x, w, out)
        return out.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved_tensors
        return _linear_grads(ctx.needs_input_grad, relu_grad(rows(g), y), x, w)

    @staticmethod
    def backward_graph(ctx, g):
        from .elementwise import where

        x, w, y = ctx.saved_tensors
        on = Tensor._wrap((y > 0).reshape(g.shape))
        return _linear_grads_graph(ctx, where(on, g, 0.0), x, w)

    @staticmethod
    def jvp(ctx, dx, dw, *db):
        y = ctx.saved[2]
        t = Linear.jvp(ctx, dx, dw, *db)
        return t * (y > 0).reshape(t.shape)


# ---------------------------------------------------------------------- softmax family
def _log_softmax(xp, x, axis):
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    shifted = x - m
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))  # a fresh array: in place
    return shifted


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        xp = xp_of(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(e)
        ctx.axis = axis
        return e

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        gy = g * y
        return gy - y * gy.sum(axis=ctx.axis, keepdims=True)

    jvp = backward  # the softmax Jacobian is symmetric

    @staticmethod
    def backward_graph(ctx, g):
        (y,) = ctx.saved_tensors
        y = ctx.output_tensor(y)
        gy = g * y
        return gy - y * gy.sum(dim=ctx.axis, keepdim=True)


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = _log_softmax(xp_of(x), x, axis)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g - xp_of(g).exp(out) * g.sum(axis=ctx.axis, keepdims=True)

    @staticmethod
    def backward_graph(ctx, g):
        (out,) = ctx.saved_tensors
        return g - ctx.output_tensor(out).exp() * g.sum(dim=ctx.axis, keepdim=True)

    @staticmethod
    def jvp(ctx, dx):
        out = ctx.saved[0]
        return dx - (xp_of(dx).exp(out) * dx).sum(axis=ctx.axis, keepdims=True)


# ---------------------------------------------------------------------- cross-entropy / nll
def class_coefficients(xp, target, n_classes, dtype, weight, ignore_index, reduction,
                       label_smoothing, probs):
    """The matrix A with loss = sum_ic A_ic * (-log p_ic), for (M, C) log-probabilities.

    It encodes class weights, ignored targets, label smoothing and the reduction's
    normaliser exactly as PyTorch defines them; the loss and both backward rules read it.
    Returned as ``(rows, cols, values)`` for plain index targets (one entry per row), or
    dense (M, C) otherwise; with it whether any target weight was counted (a 'mean' over
    none is 0/0, which the caller reports as nan).
    """
    m = target.shape[0]
    w = None if weight is None else weight.astype(dtype, copy=False)
    if probs:
        a = target.astype(dtype, copy=False)
        if label_smoothing:
            a = a * (1 - label_smoothing) + label_smoothing / n_classes
        if w is not None:
            a = a * w
        return (a / m if reduction == "mean" and m else a), m > 0
    valid = target != ignore_index
    all_valid = bool(valid.all())
    t = target if all_valid else xp.where(valid, target, 0)
    if m:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n_classes:
            raise IndexError(f"cross_entropy: target {hi if hi >= n_classes else lo} is out of "
                             f"bounds for {n_classes} classes (expected 0 <= target < "
                             f"{n_classes}, or ignore_index={ignore_index})")
    if w is None and all_valid and not label_smoothing:
        # the common case, without a pass over the rows: every row counts once
        scale = dtype.type(1) / dtype.type(m) if reduction == "mean" and m else dtype.type(1)
        return (xp.arange(m), t, xp.full(m, scale, dtype)), m > 0
    wt = valid.astype(dtype) if w is None else w[t] * valid
    denom = wt.sum() if reduction == "mean" else dtype.type(1)
    counted = bool(denom != 0)
    if not counted:  # every target ignored: all coefficients 0 (the caller makes the mean nan)
        denom = dtype.type(1)
    coef = (1 - label_smoothing) * wt / denom
    if not label_smoothing:
        return (xp.arange(m), t, coef), counted
    # PyTorch's smoothing term: -sum_c w_c log p_ic / C over the rows not ignored, normalised
    # (for 'mean') by the same sum of target weights as the NLL term.
    sden = denom
    cls_w = xp.ones(n_classes, dtype) if w is None else w
    a = (label_smoothing / n_classes) * (valid.astype(dtype) / sden)[:, None] * cls_w[None, :]
    a[xp.arange(m), t] += coef
    return a, counted


class NLL(Function):
    """``-sum(A * logp)`` for log-probabilities; A from ``class_coefficients``."""

    linear_backward = True

    @staticmethod
    def forward(ctx, logp, coef, reduction):
        ctx.coef, ctx.reduction, ctx.shape = coef, reduction, logp.shape
        if isinstance(coef, tuple):
            rows, cols, vals = coef
            per_row = logp[rows, cols] * -vals
        else:
            per_row = -(coef * logp).sum(axis=1)
        return per_row if reduction == "none" else per_row.sum()

    @staticmethod
    def _dense(ctx, g, dtype):
        xp = xp_of(g)
        gr = g[:, None] if ctx.reduction == "none" else g
        if isinstance(ctx.coef, tuple):
            rows, cols, vals = ctx.coef
            a = xp.zeros(ctx.shape, dtype)
            a[rows, cols] = vals
            return a * gr
        return ctx.coef * gr

    @staticmethod
    def backward(ctx, g):
        return -NLL._dense(ctx, g, g.dtype)

    @staticmethod
    def jvp(ctx, dlogp):
        if isinstance(ctx.coef, tuple):
            rows, cols, vals = ctx.coef
            per_row = dlogp[rows, cols] * -vals
        else:
            per_row = -(ctx.coef * dlogp).sum(axis=1)
        return per_row if ctx.reduction == "none" else per_row.sum()


class CrossEntropy(Function):
    """log_softmax + NLL in one node: the gradient is ``softmax * sum_c A - A``.

    For a language model the (M, C) scores over the vocabulary are the biggest array of the
    step, so this node makes as few passes over them as it can: forward forms
    ``e = exp(x - shift)`` once (``backend.cpu.exp_rows``) and keeps it; the row sums give
    logsumexp, so the loss of index targets reads only the M target scores. Backward
    rescales ``e`` row by row, in place, into the gradient: one (M, C) array per step, and
    backward never reads ``x``. A second backward through a retained graph finds ``e`` consumed and
    recomputes it from ``x`` (checked for in-place changes since forward).
    """

    @staticmethod
    def forward(ctx, x, coef, reduction):
        xp = xp_of(x)
        e, m, s = cpu.exp_rows(x)
        ctx.save_for_backward(x)  # read only to recompute e (saved_tensors checks versions)
        ctx.e, ctx.s = e, s
        ctx.coef, ctx.reduction = coef, reduction
        log_s = xp.log(s)
        if isinstance(coef, tuple):
            rows, cols, vals = coef
            # -log p = log(s) - (x - m), the difference taken first for accuracy
            nlp = log_s - (x[rows, cols] - m)
            return nlp * vals if reduction == "none" else xp.dot(vals, nlp)
        else:
            logp = xp.subtract(x, (m + log_s)[:, None])
            per_row = -(coef * logp).sum(axis=1)
        return per_row if reduction == "none" else per_row.sum()

    @staticmethod
    def _exp(ctx, consume):
        """``(e, s)`` from forward; a fresh copy when ``e`` was consumed (or must not be)."""
        e = ctx.__dict__.pop("e", None) if consume else ctx.__dict__.get("e")
        if e is None:
            (x,) = ctx.saved_tensors
            e, _, s = cpu.exp_rows(x)
            return e, s
        return e, ctx.s

    @staticmethod
    def backward(ctx, g):
        e, s = CrossEntropy._exp(ctx, consume=True)
        coef = ctx.coef
        gr = g if ctx.reduction != "none" else g[:, None]
        if isinstance(coef, tuple):
            rows, cols, vals = coef
            w = vals * g  # per-row weight of the target term
            cpu.scale_rows(e, w / s)
            e[rows, cols] -= w
        else:
            a = coef * gr
            cpu.scale_rows(e, a.sum(axis=1) / s)
            e -= a
        return e

    @staticmethod
    def backward_graph(ctx, g):
        """``softmax(x) * sum_c A - A`` with ``A = coef * g``, in Tensor ops."""
        (x,) = ctx.saved_tensors
        p = Softmax.apply(ctx.input_tensor(0, x), axis=1)
        coef = ctx.coef
        if isinstance(coef, tuple):
            rows_, cols, vals = coef
            dense = xp_of(x).zeros(x.shape, x.dtype)
            dense[rows_, cols] = vals
        else:
            dense = coef
        gr = g.reshape(-1, 1) if ctx.reduction == "none" else g
        a = Tensor._wrap(dense) * gr
        return p * a.sum(dim=1, keepdim=True) - a

    @staticmethod
    def jvp(ctx, dx):
        e, s = CrossEntropy._exp(ctx, consume=False)
        dlogp = dx - ((e * dx).sum(axis=1) / s)[:, None]
        return NLL.jvp(ctx, dlogp)


# ---------------------------------------------------------------------- binary cross-entropy
class BinaryCrossEntropy(Function):
    """On probabilities; logs are clamped at -100 as in PyTorch."""

    @staticmethod
    def forward(ctx, p, t):
        xp = xp_of(p)
        with np.errstate(divide="ignore"):
            logp = xp.maximum(xp.log(p), -100)
            log1mp = xp.maximum(xp.log1p(-p), -100)
        ctx.save_for_backward(p, t)
        ctx.logs = (logp, log1mp)
        return -(t * logp + (1 - t) * log1mp)

    @staticmethod
    def backward(ctx, g):
        p, t = ctx.saved_tensors
        xp = xp_of(g)
        gp = g * (p - t) / xp.maximum((1 - p) * p, 1e-12)
        gt = g * (ctx.logs[1] - ctx.logs[0]) if ctx.needs_input_grad[1] else None
        return gp.astype(p.dtype, copy=False), gt

    @staticmethod
    def forward_graph(ctx):
        """For create_graph=True: the loss in Tensor ops (log clamped at -100, as forward)."""
        p, t = ctx.saved_tensors

        def fn(p, t):
            from .elementwise import maximum

            return -(t * maximum(p.log(), -100.0) + (1 - t) * maximum((-p).log1p(), -100.0))
        return [ctx.input_tensor(0, p), ctx.input_tensor(1, t)], fn

    @staticmethod
    def jvp(ctx, dp, dt):
        p, t = ctx.saved
        xp = xp_of(p)
        out = None
        if dp is not None:
            out = dp * (p - t) / xp.maximum((1 - p) * p, 1e-12)
        if dt is not None:
            u = dt * (ctx.logs[1] - ctx.logs[0])
            out = u if out is None else out + u
        return out


class BCEWithLogits(Function):
    """``(1 - t) x + (1 + (pw - 1) t) softplus(-x)``, stable for any |x|."""

    @staticmethod
    def forward(ctx, x, t, *pos_weight):
        xp = xp_of(x)
        sp_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # softplus(-x)
        lw = 1 + (pos_weight[0] - 1) * t if pos_weight else 1
        ctx.save_for_backward(x, t)
        ctx.lw, ctx.sp_neg = lw, sp_neg
        ctx.pw = pos_weight[0] if pos_weight else None
        return (1 - t) * x + lw * sp_neg

    @staticmethod
    def _partials(ctx):
        x, t = ctx.saved
        xp = xp_of(x)
        e = xp.exp(-xp.abs(x))
        sig_neg = xp.where(x >= 0, e / (1 + e), 1 / (1 + e))  # sigmoid(-x)
        dx = (1 - t) - ctx.lw * sig_neg
        dt = -x + (0 if ctx.pw is None else (ctx.pw - 1) * ctx.sp_neg)
        return dx, dt

    @staticmethod
    def backward(ctx, g):
        _ = ctx.saved_tensors  # raises if an input was modified in place since forward
        dx, dt = BCEWithLogits._partials(ctx)
        needs = ctx.needs_input_grad
        gx = g * dx if needs[0] else None
        gt = g * dt if needs[1] else None
        if len(needs) == 3:
            gpw = None
            if needs[2]:
                from ._util import unbroadcast

                gpw = unbroadcast(g * ctx.saved[1] * ctx.sp_neg, ctx.pw.shape)
            return gx, gt, gpw
        return gx, gt

    @staticmethod
    def forward_graph(ctx):
        """For create_graph=True: ``(1 - t) x + lw softplus(-x)`` in Tensor ops."""
        x, t = ctx.saved_tensors
        inputs = [ctx.input_tensor(0, x), ctx.input_tensor(1, t)]
        if ctx.pw is not None:
            inputs.append(ctx.input_tensor(2, ctx.pw))

        def fn(x, t, *pw):
            from .elementwise import softplus

            lw = 1 + (pw[0] - 1) * t if pw else 1
            return (1 - t) * x + lw * softplus(-x)
        return inputs, fn

    @staticmethod
    def jvp(ctx, dx, dt, *dpw):
        px, pt = BCEWithLogits._partials(ctx)
        out = None
        if dx is not None:
            out = dx * px
        if dt is not None:
            out = dt * pt if out is None else out + dt * pt
        if dpw and dpw[0] is not None:
            u = dpw[0] * ctx.saved[1] * ctx.sp_neg
            out = u if out is None else out + u
        return out


# ---------------------------------------------------------------------- normalisation
class BatchNorm(Function):
    """Batch normalisation over every axis but 1 (channels), training or eval statistics.

    Saves the input (not the normalised ``xhat``, which backward recomputes as it reads
    the input: one array less written in forward); ``cpu.batch_norm_*`` run each pass."""

    @staticmethod
    def forward(ctx, x, *wb, mean, invstd, axes, training):
        # mean/invstd are the batch statistics (training) or the running ones (eval)
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        out = cpu.batch_norm_forward(x, mean, invstd, *(wb or (None, None)))
        ctx.save_for_backward(x, *wb[:1])
        ctx.invstd, ctx.axes, ctx.training, ctx.shape = invstd, axes, training, shape
        ctx.mean = mean
        return out

    @staticmethod
    def _xhat(ctx, x):
        return (x - ctx.mean.reshape(ctx.shape)) * ctx.invstd.reshape(ctx.shape)

    @staticmethod
    def forward_graph(ctx):
        """For create_graph=True: the forward in Tensor ops."""
        saved = ctx.saved_tensors
        invstd, axes, shape = ctx.invstd, ctx.axes, ctx.shape
        istd = invstd.reshape(shape)
        xhat = BatchNorm._xhat(ctx, saved[0])
        x = ctx.input_tensor(0, saved[0])
        inputs = [x]
        if len(saved) > 1:
            c = shape[1]
            inputs += [ctx.input_tensor(1, saved[1]),
                       ctx.input_tensor(2, xp_of(xhat).zeros(c, xhat.dtype))]  # (bias: linear)
        # eps from the saved statistics: invstd = 1 / sqrt(var + eps), var = mean(xc^2)
        eps = ((1 - (xhat * xhat).mean(axis=axes, keepdims=True)) / (istd * istd)) \
            if ctx.training else None
        mean_c, istd_c = Tensor._wrap(ctx.mean.reshape(shape)), Tensor._wrap(istd)

        def fn(x, *wb):
            if ctx.training:
                xc = x - x.mean(dim=axes, keepdim=True)
                h = xc / ((xc * xc).mean(dim=axes, keepdim=True) + Tensor._wrap(eps)).sqrt()
            else:
                h = (x - mean_c) * istd_c
            return h * wb[0].reshape(shape) + wb[1].reshape(shape) if wb else h
        return inputs, fn

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_tensors
        needs = ctx.needs_input_grad
        w = saved[1] if len(saved) > 1 else None
        gx, gsum, gxhat_sum = cpu.batch_norm_backward(g, saved[0], ctx.mean, ctx.invstd, w,
                                                      ctx.training, needs[0])
        if len(needs) == 1:
            return gx
        return gx, (gxhat_sum if needs[1] else None), (gsum if needs[2] else None)

    @staticmethod
    def jvp(ctx, dx, *dwb):
        invstd, axes, shape = ctx.invstd, ctx.axes, ctx.shape
        xhat = BatchNorm._xhat(ctx, ctx.saved[0])
        w = ctx.saved[1] if len(ctx.saved) > 1 else None
        out = None
        if dx is not None:
            if ctx.training:
                dxhat = (dx - dx.mean(axis=axes, keepdims=True)) * invstd.reshape(shape)
                dxhat = dxhat - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
            else:
                dxhat = dx * invstd.reshape(shape)
            out = dxhat if w is None else dxhat * w.reshape(shape)
        if dwb:
            dw, db = dwb
            if dw is not None:
                t = xhat * dw.reshape(shape)
                out = t if out is None else out + t
            if db is not None:
                t = xp_of(xhat).broadcast_to(db.reshape(shape), xhat.shape)
                out = t if out is None else out + t
        return out


class LayerNorm(Function):
    """Normalise over the trailing ``len(normalized_shape)`` axes, then scale and shift."""

    @staticmethod
    def forward(ctx, x, *wb, n_axes, eps):
        out, xhat, invstd = cpu.layer_norm(x, *(wb or (None, None)), n_axes, eps)
        axes = tuple(range(x.ndim - n_axes, x.ndim))
        ctx.save_for_backward(*wb[:1])
        ctx.xhat, ctx.invstd, ctx.axes, ctx.eps = xhat, invstd, axes, eps
        return out

    @staticmethod
    def forward_graph(ctx):
        """For create_graph=True: the forward in Tensor ops. x is rebuilt as xhat / invstd,
        which differs from x by a per-row shift that normalisation removes."""
        saved = ctx.saved_tensors
        xhat, axes = ctx.xhat, ctx.axes
        inputs = [ctx.input_tensor(0, xhat / ctx.invstd)]
        if saved:
            inputs += [ctx.input_tensor(1, saved[0]),
                       ctx.input_tensor(2, xp_of(xhat).zeros_like(saved[0]))]  # (bias: linear)

        def fn(x, *wb):
            xc = x - x.mean(dim=axes, keepdim=True)
            h = xc / ((xc * xc).mean(dim=axes, keepdim=True) + ctx.eps).sqrt()
            return h * wb[0] + wb[1] if wb else h
        return inputs, fn

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_tensors
        grads = cpu.layer_norm_backward(g, ctx.xhat, ctx.invstd, saved[0] if saved else None,
                                        len(ctx.axes), ctx.needs_input_grad)
        return grads[0] if len(ctx.needs_input_grad) == 1 else grads

    @staticmethod
    def jvp(ctx, dx, *dwb):
        xhat, invstd, axes = ctx.xhat, ctx.invstd, ctx.axes
        w = ctx.saved[0] if ctx.saved else None
        out = None
        if dx is not None:
            dh = (dx - dx.mean(axis=axes, keepdims=True)) * invstd
            dh = dh - xhat * (dh * xhat).mean(axis=axes, keepdims=True)
            out = dh if w is None else dh * w
        if dwb:
            dw, db = dwb
            if dw is not None:
                out = xhat * dw if out is None else out + xhat * dw
            if db is not None:
                t = xp_of(xhat).broadcast_to(db, xhat.shape)
                out = t if out is None else out + t
        return out


# ---------------------------------------------------------------------- dropout / embedding
class MaskMul(Function):
    """Multiply by a fixed mask (dropout's scaled keep-mask); the mask is not differentiated."""

    linear_backward = True

    @staticmethod
    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask

    jvp = backward


class Embedding(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, w, idx, padding_idx):
        ctx.idx, ctx.padding_idx, ctx.w_shape = idx, padding_idx, w.shape
        return w[idx]

    @staticmethod
    def backward(ctx, g):
        gw = row_scatter_add(xp_of(g), ctx.w_shape, ctx.idx.ravel(),
                             g.reshape(-1, ctx.w_shape[1]))
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return gw

    @staticmethod
    def jvp(ctx, dw):
        return dw[ctx.idx]


_MAX_ROUNDS = 8  # more repeats of one id than this: np.add.at's cost is the lesser one


def row_scatter_add(xp, shape, idx, rows):
    """A zero array of ``shape`` with ``rows[j]`` added into row ``idx[j]`` for every j.

    ``np.add.at`` does this one element at a time. Here the ids are sorted (stably, so each
    row's additions keep their order and the sums are bit-identical to ``add.at``) and
    ranked within their run of equal ids; round r then adds every r-th occurrence with one
    fancy-indexed assignment, whose ids are unique within the round. A batch of tokens
    drawn from a large vocabulary needs a few rounds, far fewer passes than ``add.at``.
    """
    out = xp.zeros(shape, rows.dtype)
    n = idx.shape[0]
    if xp is not np or n == 0:
        if n:
            xp.add.at(out, idx, rows)
        return out
    order = np.argsort(idx, kind="stable")
    ids = idx[order]
    first = np.empty(n, bool)  # True where a run of equal ids begins
    first[0] = True
    np.not_equal(ids[1:], ids[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    rank = np.arange(n) - starts[np.cumsum(first) - 1]
    top = int(rank.max())
    if top >= _MAX_ROUNDS:
        np.add.at(out, idx, rows)
        return out
    rows = rows[order]
    if top == 0:
        out[ids] = rows
        return out
    for r in range(top + 1):
        sel = rank == r
        if r == 0:
            out[ids[sel]] = rows[sel]
        else:
            out[ids[sel]] += rows[sel]
    return out

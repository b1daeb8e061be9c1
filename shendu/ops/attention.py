"""Scaled dot-product attention as one fused primitive.

``softmax(scale * q k^T + mask) v`` composed from primitives records five or six nodes
and keeps the (..., L, S) scores two or three times over. This node keeps the softmax
probabilities once, and its backward is the closed form (``backend.cpu.attention_backward``).
"""
from __future__ import annotations

from ..autograd.function import Function
from ..backend import cpu
from ._util import xp_of


def _as_4d(a):
    """``a`` (..., L, D) with at most two leading dims seen as (B, H, L, D) (a view)."""
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def _is_causal_mask(mask) -> bool:
    """Whether a (B, H, L, S) additive mask is one (L, S) matrix broadcast, 0 on and below
    the diagonal and -inf above it (``nn.Transformer.generate_square_subsequent_mask``)."""
    if mask.strides[0] or mask.strides[1]:
        return False
    xp = xp_of(mask)
    m = mask[0, 0]
    hidden = xp.triu(xp.ones(m.shape, bool), 1)
    return bool(xp.all(m[hidden] == -xp.inf)) and not bool(xp.any(m[~hidden]))


class ScaledDotProductAttention(Function):
    """``softmax(scale * q k^T + mask) v`` over the last two dims of q (..., L, D), k
    (..., S, D), v (..., S, Dv) with the same leading dims (at most two); ``mask`` an
    additive array broadcastable to (..., L, S) or None; ``causal`` hides the positions
    after the diagonal (top-left aligned, as ``torch.tril``)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale):
        q4, k4, v4 = _as_4d(q), _as_4d(k), _as_4d(v)
        m4 = None if mask is None else _as_4d(xp_of(q).broadcast_to(
            mask, q.shape[:-2] + (q.shape[-2], k.shape[-2])))
        if m4 is not None and not causal and _is_causal_mask(m4):
            m4, mask, causal = None, None, True  # the same result; the kernel skips the
            # hidden positions
        o, p = cpu.attention(q4, k4, v4, m4, causal, scale)
        ctx.save_for_backward(q4, k4, v4, p)
        ctx.mask, ctx.causal, ctx.scale, ctx.shapes = mask, causal, scale, (q.shape, k.shape,
                                                                           v.shape)
        return o.reshape(q.shape[:-1] + (v.shape[-1],))

    @staticmethod
    def backward(ctx, g):
        q4, k4, v4, p = ctx.saved_tensors
        grads = cpu.attention_backward(_as_4d(g), q4, k4, v4, p, ctx.causal, ctx.scale,
                                       ctx.needs_input_grad)
        return tuple(None if d is None else d.reshape(s) for d, s in zip(grads, ctx.shapes))

    @staticmethod
    def jvp(ctx, dq, dk, dv):
        q, k, v, p = ctx.saved
        qs, ks, vs = ctx.shapes
        dq, dk, dv = (None if d is None else _as_4d(d) for d in (dq, dk, dv))
        ds = 0
        if dq is not None:
            ds = ds + dq @ k.swapaxes(-1, -2)
        if dk is not None:
            ds = ds + q @ dk.swapaxes(-1, -2)
        out = 0
        if dq is not None or dk is not None:
            ds = ds * q.dtype.type(ctx.scale)
            dp = p * (ds - (p * ds).sum(axis=-1, keepdims=True))
            out = dp @ v
        if dv is not None:
            out = out + p @ dv
        if isinstance(out, int):
            return None
        return out.reshape(qs[:-1] + (vs[-1],))

    @staticmethod
    def forward_graph(ctx):
        """For create_graph=True: the same attention written with Tensor ops."""
        from ..nn.functional.layers import _sdpa_composite
        from ..tensor import Tensor

        q4, k4, v4, _ = ctx.saved_tensors
        qs, ks, vs = ctx.shapes
        inputs = [ctx.input_tensor(i, a.reshape(s))
                  for i, (a, s) in enumerate(zip((q4, k4, v4), (qs, ks, vs)))]
        mask = None if ctx.mask is None else Tensor._wrap(ctx.mask)

        def fn(q, k, v):
            return _sdpa_composite(q, k, v, mask, ctx.causal, ctx.scale)
        return inputs, fn

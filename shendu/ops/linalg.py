"""Matrix products: ``matmul`` (batched, broadcast, 1-D cases as NumPy) and friends."""
from __future__ import annotations

import math

from ..autograd.function import Function
from ._util import add_tangents, unbroadcast

__all__ = ["bmm", "dot", "ger", "matmul", "mm", "mv", "outer"]


def rows(a):
    """View (..., k) as a matrix (prod(...), k); unlike reshape(-1, k) it allows k == 0."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _mm(a, b):
    """``a @ b``, folding a batch of rows into one GEMM when ``b`` is a plain matrix."""
    if b.ndim == 2 and a.ndim > 2:
        return (rows(a) @ b).reshape(a.shape[:-1] + (b.shape[-1],))
    return a @ b


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes "
                             f"{a.shape} and {b.shape}")
        k = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if a.shape[-1] != k:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: the last dimension "
                f"of the first ({a.shape[-1]}) must equal the "
                f"{'second-to-last' if b.ndim > 1 else 'only'} dimension of the second ({k})")
        ctx.save_for_backward(a, b)
        return _mm(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        a2 = a[None, :] if a.ndim == 1 else a   # (k,) acts as a (1, k) row
        b2 = b[:, None] if b.ndim == 1 else b   # (k,) acts as a (k, 1) column
        g2 = g
        if a.ndim == 1:
            g2 = g2[..., None, :] if b.ndim > 1 else g2[..., None]
        if b.ndim == 1:
            g2 = g2[..., None]
        ga = gb = None
        if na:
            ga = unbroadcast(_mm(g2, b2.swapaxes(-1, -2)), a2.shape).reshape(a.shape)
        if nb:
            if b2.ndim == 2 and a2.ndim > 2:
                # sum over the batch inside one GEMM: (k, B*m) @ (B*m, n)
                gb = rows(a2).T @ rows(g2)
            else:
                gb = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb

    @staticmethod
    def jvp(ctx, da, db):
        a, b = ctx.saved
        return add_tangents(None if da is None else da @ b, None if db is None else a @ db)


def matmul(input, other):
    """Matrix product with NumPy's rules: batched, broadcast, 1-D operands promoted."""
    from ._util import as_tensor_like

    a = as_tensor_like(input, other if hasattr(other, "_data") else None)
    b = as_tensor_like(other, a)
    if a._data.dtype != b._data.dtype:
        raise TypeError(f"matmul: both operands must have the same dtype, got {a.dtype} and "
                        f"{b.dtype}")
    return MatMul.apply(a, b)


def mm(input, mat2):
    if input.ndim != 2 or mat2.ndim != 2:
        raise ValueError(f"mm: expected 2-D tensors, got {input.shape} and {mat2.shape}")
    return matmul(input, mat2)


def bmm(input, mat2):
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: expected 3-D tensors with the same batch size, got "
                         f"{input.shape} and {mat2.shape}")
    return matmul(input, mat2)


def mv(input, vec):
    return matmul(input, vec)


def dot(input, other):
    if input.ndim != 1 or other.ndim != 1:
        raise ValueError(f"dot: expected 1-D tensors, got {input.shape} and {other.shape}")
    return matmul(input, other)


def outer(input, vec2):
    return input.reshape(-1, 1) * vec2.reshape(1, -1)


ger = outer

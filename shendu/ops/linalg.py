"""Matrix products: ``matmul`` (batched, broadcast, 1-D cases as NumPy) and friends."""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ._util import add_tangents, unbroadcast


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


# ---------------------------------------------------------------------- composites (issue 10)
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)``."""
    return _scaled_sum(input, mm(mat1, mat2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)``."""
    if mat.ndim != 2 or vec.ndim != 1:
        raise ValueError(f"addmv: expected a 2-D matrix and a 1-D vector, got {mat.shape} and "
                         f"{vec.shape}")
    return _scaled_sum(input, matmul(mat, vec), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * bmm(batch1, batch2)``."""
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * sum_b batch1[b] @ batch2[b]``."""
    return _scaled_sum(input, bmm(batch1, batch2).sum(0), beta, alpha)


def _scaled_sum(input, prod, beta, alpha):
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:  # as PyTorch: input is ignored (NaN in it does not propagate)
        return prod
    return (input if beta == 1 else input * beta) + prod


def trace(input):
    """The sum of the main diagonal of a 2-D tensor."""
    from .indexing import diagonal

    if input.ndim != 2:
        raise ValueError(f"trace: expected a 2-D tensor, got shape {tuple(input.shape)}")
    return diagonal(input).sum()


def inner(input, other):
    """Sum of products over the last dimension of both (a product when one is 0-d)."""
    from .einsum import einsum

    if input.ndim == 0 or other.ndim == 0:
        return input * other
    if input.shape[-1] != other.shape[-1]:
        raise ValueError(f"inner: the last dimensions must match, got shapes "
                         f"{tuple(input.shape)} and {tuple(other.shape)}")
    la = "abcdefghijklm"[:input.ndim - 1]
    lb = "nopqrstuvwxy"[:other.ndim - 1]
    return einsum(f"{la}z,{lb}z->{la}{lb}", input, other)


def tensordot(a, b, dims=2):
    """Contract the last ``dims`` dimensions of ``a`` with the first ``dims`` of ``b``, or
    the dimension lists ``dims = ([a dims], [b dims])``.

    >>> import shendu as sd
    >>> sd.tensordot(sd.ones(2, 3, 4), sd.ones(3, 4, 5), dims=2).shape
    (2, 5)
    """
    from .einsum import einsum

    if isinstance(dims, int):
        if dims < 0:
            raise ValueError(f"tensordot: dims must be non-negative, got {dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(da) != len(db):
        raise ValueError(f"tensordot: contracting {len(da)} dimensions of the first tensor "
                         f"with {len(db)} of the second")
    da = [d % max(a.ndim, 1) for d in da]
    db = [d % max(b.ndim, 1) for d in db]
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot: dimension {i} of the first tensor (size "
                             f"{a.shape[i]}) does not match dimension {j} of the second "
                             f"(size {b.shape[j]}); shapes {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        sb[j] = sa[i]
    out = [c for k, c in enumerate(sa) if k not in da] + \
          [c for k, c in enumerate(sb) if k not in db]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


def kron(input, other):
    """The Kronecker product: blocks ``input[i, j] * other`` (for any number of dims)."""
    n = max(input.ndim, other.ndim)
    a = input.reshape((1,) * (n - input.ndim) + tuple(input.shape))
    b = other.reshape((1,) * (n - other.ndim) + tuple(other.shape))
    # interleave: a as (a0, 1, a1, 1, ...), b as (1, b0, 1, b1, ...), then merge pairs
    a2 = a.reshape(tuple(x for s in a.shape for x in (s, 1)))
    b2 = b.reshape(tuple(x for s in b.shape for x in (1, s)))
    return (a2 * b2).reshape(tuple(p * q for p, q in zip(a.shape, b.shape)))


def cross(input, other, dim=None):
    """The cross product of 3-vectors along ``dim`` (the first dimension of size 3 when
    None, as ``torch.cross``; ``torch.linalg.cross`` uses -1)."""
    from ._util import norm_dim
    from .movement import broadcast_tensors, index_select

    a, b = broadcast_tensors(input, other)
    if dim is None:
        dim = next((i for i, n in enumerate(a.shape) if n == 3), None)
        if dim is None:
            raise ValueError(f"cross: no dimension of size 3 in shape {tuple(a.shape)}")
    d = norm_dim(dim, a.ndim, "cross")
    if a.shape[d] != 3:
        raise ValueError(f"cross: dimension {d} must have size 3, got shape {tuple(a.shape)}")
    i1, i2 = np.array([1, 2, 0]), np.array([2, 0, 1])
    return (index_select(a, d, i1) * index_select(b, d, i2)
            - index_select(a, d, i2) * index_select(b, d, i1))


def cdist(x1, x2, p=2.0):
    """Pairwise p-norm distances between the rows of ``x1`` (..., P, M) and ``x2``
    (..., R, M): a (..., P, R) tensor. The gradient at a zero distance is zero."""
    from .reduce import norm

    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ValueError(f"cdist: expected (..., P, M) and (..., R, M) tensors with the same M, "
                         f"got shapes {tuple(x1.shape)} and {tuple(x2.shape)}")
    if p < 0:
        raise ValueError(f"cdist: p must be non-negative, got {p}")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    return norm(diff, p=p, dim=-1)

"""Matrix composites built on the products in ``linalg``: ``addmm``/``addmv``/``addbmm``/
``baddbmm``, ``trace``, ``inner``, ``tensordot``, ``kron``, ``cross`` and ``cdist``. Each is
written from differentiable ops, so its gradient comes from theirs.

>>> import shendu as sd
>>> sd.kron(sd.eye(2), sd.ones(1, 2))
tensor([[1., 1., 0., 0.],
        [0., 0., 1., 1.]])
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, ShapeError
from .linalg import bmm, matmul, mm

__all__ = ["addbmm", "addmm", "addmv", "baddbmm", "cdist", "cross", "inner", "kron",
           "tensordot", "trace"]

def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)``."""
    return _scaled_sum(input, mm(mat1, mat2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)``."""
    if mat.ndim != 2 or vec.ndim != 1:
        raise ShapeError(f"addmv: expected a 2-D matrix and a 1-D vector, got {mat.shape} and "
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
        raise ShapeError(f"trace: expected a 2-D tensor, got shape {tuple(input.shape)}")
    return diagonal(input).sum()


def inner(input, other):
    """Sum of products over the last dimension of both (a product when one is 0-d)."""
    from .einsum import einsum

    if input.ndim == 0 or other.ndim == 0:
        return input * other
    if input.shape[-1] != other.shape[-1]:
        raise ShapeError(f"inner: the last dimensions must match, got shapes "
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
            raise ArgumentError(f"tensordot: dims must be non-negative, got {dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(da) != len(db):
        raise ArgumentError(f"tensordot: contracting {len(da)} dimensions of the first tensor "
                            f"with {len(db)} of the second")
    da = [d % max(a.ndim, 1) for d in da]
    db = [d % max(b.ndim, 1) for d in db]
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"tensordot: dimension {i} of the first tensor (size "
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
    from .movement import broadcast_tensors
    from .selection import index_select

    a, b = broadcast_tensors(input, other)
    if dim is None:
        dim = next((i for i, n in enumerate(a.shape) if n == 3), None)
        if dim is None:
            raise ShapeError(f"cross: no dimension of size 3 in shape {tuple(a.shape)}")
    d = norm_dim(dim, a.ndim, "cross")
    if a.shape[d] != 3:
        raise ShapeError(f"cross: dimension {d} must have size 3, got shape {tuple(a.shape)}")
    i1, i2 = np.array([1, 2, 0]), np.array([2, 0, 1])
    return (index_select(a, d, i1) * index_select(b, d, i2)
            - index_select(a, d, i2) * index_select(b, d, i1))


def cdist(x1, x2, p=2.0):
    """Pairwise p-norm distances between the rows of ``x1`` (..., P, M) and ``x2``
    (..., R, M): a (..., P, R) tensor. The gradient at a zero distance is zero."""
    from .reduce import norm

    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ShapeError(f"cdist: expected (..., P, M) and (..., R, M) tensors with the same M, "
                         f"got shapes {tuple(x1.shape)} and {tuple(x2.shape)}")
    if p < 0:
        raise ArgumentError(f"cdist: p must be non-negative, got {p}")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    return norm(diff, p=p, dim=-1)

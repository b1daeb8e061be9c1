"""MatMul, Gemm, Einsum."""
from __future__ import annotations

import numpy as np

from ... import ops as O
from ._registry import arr, const, is_float, register


@register("MatMul")
def matmul(node, a, b):
    if is_float(a, b):
        return O.matmul(a, b)
    return const(np.matmul(arr(a), arr(b)))


@register("Gemm")
def gemm(node, a, b, c=None):
    """``alpha * A' @ B' + beta * C`` with A' and B' optionally transposed."""
    if node.get("transA", 0):
        a = O.transpose(a, 0, 1)
    if node.get("transB", 0):
        b = O.transpose(b, 0, 1)
    y = O.matmul(a, b)
    alpha, beta = node.get("alpha", 1.0), node.get("beta", 1.0)
    if alpha != 1.0:
        y = O.mul(y, alpha)
    if c is not None:
        y = O.add(y, c if beta == 1.0 else O.mul(c, beta))
    return y


@register("Einsum")
def einsum(node, *xs):
    eq = node.get("equation").replace(" ", "")
    if is_float(*xs):
        return O.einsum(eq, *xs)
    return const(np.einsum(eq, *[arr(x) for x in xs]))

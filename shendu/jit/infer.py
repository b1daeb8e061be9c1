"""Inference forms of ops that can write into a given buffer (the memory plan's arena).

``INTO[function](out, *arrays, **attrs)`` computes what ``function.forward`` computes, into
``out`` (a 2-D buffer of the product's rows), with the same backend calls the op makes:
used only when nothing is recorded, so no backward state is needed.
"""
from __future__ import annotations

from ..backend import cpu
from ..ops import nn_ops
from ..ops.linalg import rows


def _linear(out, x, w, *bias):
    xr = rows(x)
    if bias and cpu.blas.takes(xr, w.T):
        cpu.fill_rows(out, bias[0])
        cpu.matmul(xr, w.T, out, accumulate=True)
    else:
        cpu.matmul(xr, w.T, out)
        if bias:
            cpu.add_rows(out, bias[0])
    return out.reshape(x.shape[:-1] + (w.shape[0],))


def _linear_relu(out, x, w, *bias):
    cpu.matmul(rows(x), w.T, out)
    cpu.bias_relu(out, bias[0] if bias else None)
    return out.reshape(x.shape[:-1] + (w.shape[0],))


INTO = {nn_ops.Linear: _linear, nn_ops.LinearReLU: _linear_relu}


def buffer_shape(node):
    """Shape of the buffer ``INTO`` writes for ``node`` (rows of the product)."""
    x, w = node.inputs[0], node.inputs[1]
    n = 1
    for d in x.shape[:-1]:
        n *= d
    return (n, w.shape[0])

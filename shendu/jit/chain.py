"""``linear_chain``: Linear layers (bias, optional ReLU) that feed one another, run as one
graph node in inference graphs (``passes.fuse_linear_chain`` makes it).

When nothing is recorded, MKL is loaded and the kernels are on, the chain runs as
``backend.jit.linear_chain_forward``: the rows of the batch split between the threads,
each block taken through every layer by one thread, on weights kept in MKL's packed layout.
Anything else (autograd recording, no MKL, CuPy arrays, another dtype, a batch too small to
split) runs the layers one by one as the eager ``Linear``/``LinearReLU`` ops, so results and
gradients are the eager ones.

The packed copies are made on first use and reused while every weight keeps both its array
(``tensor._data``, replaced by ``.to()`` or ``p.data = ...``) and its version counter (bumped
by optimizer steps, ``load_state_dict``, ``nn.init`` and every in-place tensor op). A write
that bypasses both, through an alias with its own counter (``p.data.mul_(2)``, a NumPy view
from ``p.numpy()``, DLPack), is not seen: as with ``torch.jit.freeze``, such a write needs a
new ``sd.compile``.
"""
from __future__ import annotations

import threading

import numpy as np

from ..autograd.grad_mode import _State
from ..backend import blas, runtime
from ..ops import nn_ops
from ..tensor import Tensor

# rows each thread must get before the batch is split; smaller batches run the layers one by
# one, each product threaded by MKL (MLP 784-512-512-10 on 2 threads, Xeon: the chain was
# ~1.2x faster at batch 8, ~0.6x at batch 2)
MIN_ROWS_PER_THREAD = 4
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_NO_BIAS = {d: np.empty(0, d) for d in _FLOATS}  # the kernel's bias for a layer without one


class ChainPlan:
    """What a ``linear_chain`` node keeps between calls: ``layers`` (per layer: whether it
    has a bias, whether a ReLU follows), the packed weights with the array and version
    each was packed from, and per-thread buffers for the activations between layers."""

    def __init__(self, layers):
        self.layers = tuple((bool(b), bool(r)) for b, r in layers)
        self.relus = tuple(r for _, r in self.layers)
        self._packed = None  # ((array, version) per weight, packed buffers)
        self._local = threading.local()

    def __repr__(self):
        return "ChainPlan(" + ", ".join(
            ("linear_relu" if r else "linear") + ("" if b else "(no bias)")
            for b, r in self.layers) + ")"

    def split(self, params):
        """``params`` (weight, [bias], weight, [bias], ...) as (weights, biases)."""
        weights, biases, i = [], [], 0
        for has_bias, _ in self.layers:
            weights.append(params[i])
            biases.append(params[i + 1] if has_bias else None)
            i += 1 + has_bias
        return weights, biases

    def packs(self, weights):
        """The packed ``W.T`` of every weight: the cached ones while every weight has the
        array and version it was packed from, else packed again (None: MKL cannot)."""
        cached = self._packed
        if cached is not None and all(w._data is a and w._version[0] == v
                                      for w, (a, v) in zip(weights, cached[0])):
            return cached[1]
        stamp = tuple((w._data, w._version[0]) for w in weights)  # before reading the data
        lib = runtime.mkl()
        before = lib.MKL_Set_Num_Threads_Local(1)  # as the products run: one thread each
        try:
            packed = [blas.pack(w._data.T) for w in weights]
        finally:
            lib.MKL_Set_Num_Threads_Local(before)
        if any(p is None for p in packed):
            return None
        buffers = tuple(p.buffer for p in packed)
        self._packed = (stamp, buffers)
        return buffers

    def buffers(self, m, dtype, widths):
        """This thread's activation buffers for ``m`` rows (one per inner layer)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = {}
        key = (m, dtype.str)
        bufs = store.get(key)
        if bufs is None:
            bufs = store[key] = [np.empty((m, n), dtype) for n in widths]
        return bufs


def linear_chain(x, *params, plan):
    """``x`` through the chain of Linear layers ``plan`` describes (see the module doc)."""
    weights, biases = plan.split(params)
    if not (_State.enabled and (x.requires_grad or any(p.requires_grad for p in params))):
        out = _run_fused(x._data, weights, biases, plan)
        if out is not None:
            return Tensor._wrap(out)
    h = x
    for (_, relu), w, b in zip(plan.layers, weights, biases):
        op = nn_ops.LinearReLU if relu else nn_ops.Linear
        h = op.apply(h, w) if b is None else op.apply(h, w, b)
    return h


def _run_fused(xa, weights, biases, plan):
    """The chain on the kernel, or None when it cannot take these arrays."""
    if (xa.__class__ is not np.ndarray or xa.dtype not in _FLOATS or xa.ndim < 2
            or not runtime.kernels_on() or not runtime.mkl_loaded()):
        return None
    dtype = xa.dtype
    if any(w._data.__class__ is not np.ndarray or w._data.dtype != dtype for w in weights):
        return None
    m = xa.size // xa.shape[-1] if xa.shape[-1] else 0
    from ..backend import jit

    threads = jit.parts()
    if threads > 1:
        threads = min(threads, m // MIN_ROWS_PER_THREAD)
        if threads < 2:
            return None
    x2 = xa.reshape(m, xa.shape[-1])
    if x2.strides[1] != x2.itemsize or x2.strides[0] % x2.itemsize:
        x2 = np.ascontiguousarray(x2)
    packs = plan.packs(weights)
    if packs is None:
        return None
    none = _NO_BIAS[dtype]
    bs = tuple(none if b is None else np.ascontiguousarray(b._data) for b in biases)
    if any(b.dtype != dtype for b in bs):
        return None
    widths = [w._data.shape[0] for w in weights]
    out = np.empty((m, widths[-1]), dtype)
    outs = (*plan.buffers(m, dtype, widths[:-1]), out)
    runtime.tick()
    lda = x2.strides[0] // x2.itemsize if m > 1 else x2.shape[1]
    jit.linear_chain_forward(x2, lda, packs, bs, plan.relus, outs, threads)
    return out.reshape(xa.shape[:-1] + (widths[-1],))

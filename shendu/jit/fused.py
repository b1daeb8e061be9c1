"""``FusedElementwise``: a group of elementwise primitives run as one graph node.

Forward and backward reuse each member's own ``Function`` rules on raw arrays (one ``ctx``
per member, kept inside the fused node's ``ctx``), so gradients are the eager ones, bit for
bit; what goes is the per-op Tensor, graph-node and engine bookkeeping. When nothing is
recorded (inference, ``no_grad``) the group runs on a fixed buffer plan instead: each
member writes into a buffer whose earlier value is dead (``out=`` NumPy calls), or a
compiled numba kernel runs the whole group in one pass (``shendu.jit.kernels``).

A member is ``(cls, refs, attrs)``; ``refs`` name its arguments: ``("in", i)`` the fused
node's input ``i``, ``("t", j)`` member ``j``'s result. ``outs`` lists the members whose
results leave the group.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.grad_mode import _State
from ..tensor import Tensor

_new = object.__new__


def _unary(f):
    return lambda out, a: f(a, out=out)


def _binary(f):
    return lambda out, a, b: f(a, b, out=out)


# op -> writer(out, *args, **attrs) giving exactly what the op's forward gives
INPLACE = {
    "add": _binary(np.add), "sub": _binary(np.subtract), "mul": _binary(np.multiply),
    "div": _binary(np.true_divide), "maximum": _binary(np.maximum),
    "add_scalar": lambda out, a, c: np.add(a, c, out=out),
    "mul_scalar": lambda out, a, c: np.multiply(a, c, out=out),
    "rsub_scalar": lambda out, a, c: np.subtract(c, a, out=out),
    "rdiv_scalar": lambda out, a, c: np.true_divide(c, a, out=out),
    "neg": _unary(np.negative), "exp": _unary(np.exp), "log": _unary(np.log),
    "sqrt": _unary(np.sqrt), "tanh": _unary(np.tanh), "sin": _unary(np.sin),
    "cos": _unary(np.cos), "log1p": _unary(np.log1p), "abs": _unary(np.abs),
}


class FusedElementwise(Function):
    """Members of an elementwise group, forward and backward, as one node."""

    @staticmethod
    def forward(ctx, *arrays, members, outs, plan=None, kernel=None, ops=None, donate=None):
        needs = getattr(ctx, "needs_input_grad", None)
        if needs is None and plan is not None and arrays[0].__class__ is np.ndarray:
            return _run_plan(arrays, members, outs, plan, kernel, donate)
        if needs is not None and kernel is not None and kernel.ready_backward(arrays):
            out = kernel(arrays)
            if out is not None:  # one compiled loop each way; backward recomputes the group
                ctx.save_for_backward(*arrays)
                ctx.kernel = kernel
                return out
        vals, subs, grads_needed = [], [], []
        for cls, refs, attrs in members:
            args = [arrays[i] if k == "in" else vals[i] for k, i in refs]
            sub = _new(cls)
            if needs is not None:
                sub.needs_input_grad = tuple(
                    needs[i] if k == "in" else grads_needed[i] for k, i in refs)
                grads_needed.append(any(sub.needs_input_grad))
            vals.append(cls.forward(sub, *args, **attrs))
            subs.append(sub)
        if needs is not None:
            ctx.subs, ctx.members, ctx.outs, ctx.n_in = subs, members, outs, len(arrays)
        if len(outs) == 1:
            return vals[outs[0]]
        return tuple(vals[j] for j in outs)

    @classmethod
    def graph_call(cls, *tensors, members, outs, plan=None, kernel=None, ops=None,
                   donate=None):
        """What a graph run calls: ``apply`` when autograd records, else the group's
        buffer plan or kernel straight on the arrays (no node to build)."""
        if _State.enabled and any(t.requires_grad for t in tensors):
            return cls.apply(*tensors, members=members, outs=outs, plan=plan, kernel=kernel)
        arrays = [t._data for t in tensors]
        if plan is None or arrays[0].__class__ is not np.ndarray:
            r = cls.forward(_new(cls), *arrays, members=members, outs=outs)
        else:
            r = _run_plan(arrays, members, outs, plan, kernel, donate)
        if r.__class__ is tuple:
            return tuple([Tensor._wrap(a) for a in r])
        return Tensor._wrap(r)

    @staticmethod
    def backward(ctx, *grads):
        kernel = ctx.__dict__.get("kernel")
        if kernel is not None:
            g_in = kernel.backward(ctx.saved_tensors, grads)
            g_in = [g if need else None for g, need in zip(g_in, ctx.needs_input_grad)]
            return g_in[0] if len(g_in) == 1 else tuple(g_in)
        members, subs = ctx.members, ctx.subs
        g_t: list = [None] * len(members)
        for j, g in zip(ctx.outs, grads):
            g_t[j] = g
        g_in: list = [None] * ctx.n_in
        for j in range(len(members) - 1, -1, -1):
            g = g_t[j]
            if g is None:
                continue
            cls, refs, _ = members[j]
            r = cls.backward(subs[j], g)
            r = r if isinstance(r, tuple) else (r,)
            for (k, i), gr in zip(refs, r):
                if gr is None:
                    continue
                acc = g_in if k == "in" else g_t
                acc[i] = gr if acc[i] is None else acc[i] + gr
        return g_in[0] if ctx.n_in == 1 else tuple(g_in)


def _run_plan(arrays, members, outs, plan, kernel, donate):
    """No autograd: the group on its buffer plan (or its compiled kernel). ``donate`` is
    an input that dies here (see ``plan_memory``): the first member may write over it."""
    if kernel is not None:
        r = kernel(arrays)
        if r is not None:
            return r
    bufs = [None] * plan.n_buffers
    if donate is not None:
        a = arrays[donate]
        if (a.flags.writeable and a.flags.c_contiguous and a.shape == tuple(plan.shapes[0])
                and a.dtype == plan.dtypes[0]):
            bufs[plan.buffer[0]] = a
    vals = [None] * len(members)
    for j, (cls, refs, attrs) in enumerate(members):
        args = [arrays[i] if k == "in" else vals[i] for k, i in refs]
        b = plan.buffer[j]
        write = INPLACE.get(plan.ops[j]) if b is not None else None
        if write is None:
            vals[j] = cls.forward(_new(cls), *args, **attrs)
            continue
        out = bufs[b]
        if out is None:
            out = bufs[b] = np.empty(plan.shapes[j], plan.dtypes[j])
        vals[j] = write(out, *args, **attrs)
    if len(outs) == 1:
        return vals[outs[0]]
    return tuple(vals[j] for j in outs)


class BufferPlan:
    """Which buffer each member writes into: a member's result takes the buffer of a value
    that died earlier in the group (same shape and dtype), else a new one. Members whose
    results leave the group get a buffer of their own (never reused inside the group)."""

    def __init__(self, ops, shapes, dtypes, refs, outs):
        self.ops, self.shapes, self.dtypes = ops, shapes, dtypes
        last = {}
        for j, rs in enumerate(refs):
            for k, i in rs:
                if k == "t":
                    last[i] = j
        free: dict = {}
        self.buffer: list = []
        owner: dict = {}
        n = 0
        for j in range(len(ops)):
            # inputs read for the last time here hand their buffer back first: an
            # elementwise ufunc may write over the very array it reads
            for k, i in refs[j]:
                if k == "t" and last.get(i) == j and i not in outs and i in owner:
                    b, key = owner.pop(i)
                    free.setdefault(key, []).append(b)
            if ops[j] not in INPLACE:
                self.buffer.append(None)
                continue
            key = (tuple(shapes[j]), np.dtype(dtypes[j]).str)
            pool = free.get(key)
            if pool:
                b = pool.pop()
            else:
                b, n = n, n + 1
            self.buffer.append(b)
            owner[j] = (b, key)
        self.n_buffers = n

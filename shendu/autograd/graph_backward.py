"""The reverse sweep with ``create_graph=True``: a backward pass that is itself recorded.

``run_backward`` (engine.py) moves raw arrays and records nothing, which is what ordinary
training needs. Here gradients are Tensors and grad mode is on, so each node's backward is
recorded as new graph nodes and the gradients it returns can be differentiated again
(gradient penalties, meta-learning, Hessian-vector products).

Each node runs one of two rules (see ``Function``):

* an op with ``linear_backward = True`` becomes one ``LinearBackward`` node that calls the
  op's raw array rule; its own backward is the op's ``jvp``, because the transpose of the
  linear map ``g -> J^T g`` is ``u -> J u``;
* an op with ``backward_graph`` runs it (the same formula as ``backward``, in Tensor ops);
* an op with ``forward_graph`` (a fused op such as layer norm) has its forward recomputed
  from recorded Tensor ops, and that small graph is differentiated with a nested sweep.

An op with neither raises, naming the op, rather than return a gradient that would be
silently treated as a constant.
"""
from __future__ import annotations

from .engine import count_edges
from .function import Function, _freed_backward
from .grad_mode import _State


def _tensor_cls():
    from ..tensor import Tensor

    return Tensor


def _snapshot(node):
    """A copy of ``node`` that the graph never frees: a ``LinearBackward`` calls its rules
    later, possibly after a backward with ``retain_graph=False`` has released ``node``."""
    c = object.__new__(type(node))
    d = dict(node.__dict__)
    d.pop("backward", None)  # hooks already ran in the sweep
    d.pop("hooks", None)
    c.__dict__.update(d)
    c.next, c.needs_input_grad, c.n_out = node.next, node.needs_input_grad, node.n_out
    return c


def _as_tuple(x):
    return x if x.__class__ is tuple else (x,)


class LinearBackward(Function):
    """The recorded backward of an op whose backward is linear in its gradient.

    Forward is the op's raw ``backward`` (``g -> J^T g``); backward is the op's ``jvp``
    (``u -> J u``); the node is linear again, so any order of derivative works.
    """

    linear_backward = True

    @staticmethod
    def forward(ctx, *grads, inner, slots):
        ctx.inner = inner
        res = _as_tuple(type(inner).backward(inner, *grads))
        slots.extend(i for i, r in enumerate(res) if r is not None)
        ctx.slots = tuple(slots)
        ctx.n_in = len(res)
        return tuple(res[i] for i in slots)

    @staticmethod
    def backward(ctx, *cotangents):
        tangents = [None] * ctx.n_in
        for i, c in zip(ctx.slots, cotangents):
            tangents[i] = c
        inner = ctx.inner
        return type(inner).jvp(inner, *tangents)

    @staticmethod
    def jvp(ctx, *tangents):
        inner = ctx.inner
        if any(t is None for t in tangents):
            tangents = _zeros_like_meta(inner, tangents)
        res = _as_tuple(type(inner).backward(inner, *tangents))
        return tuple(res[i] for i in ctx.slots)


def _zeros_like_meta(node, grads):
    meta = node.__dict__.get("out_meta")
    if meta is None:
        raise RuntimeError(f"{node.name}: a multi-output node has no out_meta, so zeros "
                           "cannot stand in for an output that received no gradient")
    return [g if g is not None else xp.zeros(shape, dtype)
            for g, (shape, dtype, xp) in zip(grads, meta)]


class _Alias(Function):
    """Identity; its node marks where the nested sweep of ``_recompute`` stops."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a):
        return a

    @staticmethod
    def backward(ctx, g):
        return g

    @staticmethod
    def jvp(ctx, da):
        return da


def _recompute(node, grads):
    """Input gradients of a fused op from its forward rebuilt with recorded Tensor ops."""
    inputs, fn = type(node).forward_graph(node)
    proxies = [t if t is None or not t.requires_grad else _Alias.apply(t) for t in inputs]
    outs = _as_tuple(fn(*proxies))
    roots = [((o.grad_fn, o._out_idx), g) for o, g in zip(outs, grads)
             if o.grad_fn is not None and g is not None]
    keys = [None if p is None or p.grad_fn is None else (p.grad_fn, 0) for p in proxies]
    capture = {k: None for k in keys if k is not None}
    if roots:
        run_backward_graph(roots, capture=capture, stop={k[0] for k in capture})
    return tuple(None if k is None else capture[k] for k in keys)


def _rule(node, grads):
    """Input gradients (Tensors or None) of ``node`` for output gradients ``grads``."""
    cls = type(node)
    if cls.linear_backward:
        slots: list = []
        outs = _as_tuple(LinearBackward.apply(*grads, inner=_snapshot(node), slots=slots))
        res = [None] * len(node.next)
        for i, o in zip(slots, outs):
            res[i] = o
        return tuple(res)
    if cls.backward_graph is not None:
        return _as_tuple(cls.backward_graph(node, *grads))
    if cls.forward_graph is not None:
        return _recompute(node, grads)
    raise no_rule_error(node)


def no_rule_error(node):
    """The error for an op that cannot be differentiated twice (it names the op)."""
    return RuntimeError(
        f"{node.name}: this op has no differentiable backward rule, so backward with "
        "create_graph=True (double backward, autograd.grad(..., create_graph=True)) cannot "
        "go through it; use create_graph=False, or express the op with differentiable ops")


def run_backward_graph(roots, retain_graph=True, capture=None, stop=()):
    """``run_backward`` with Tensor gradients and grad mode on (see the module docstring).

    ``roots`` pairs an edge with a Tensor gradient; ``capture`` works as in ``run_backward``
    and receives Tensors. The sweep does not go past the nodes in ``stop``.
    """
    Tensor = _tensor_cls()
    state = count_edges(roots, stop)

    leaf_grad: dict = {}
    leaf_obj: dict = {}
    for edge, g in roots:
        _send(edge, g, state, leaf_grad, leaf_obj)
    ready = [n for n, st in state.items() if st[0] == 0]

    prev_mode = _State.enabled
    _State.enabled = True  # the backward pass is itself recorded
    try:
        while ready:
            node = ready.pop()
            st = state[node]
            g = st[1]
            st[1] = None
            nxt = node.next
            if node in stop:
                if g is not None and (node, 0) in capture:
                    capture[(node, 0)] = g
                continue
            if g is None:
                in_grads = (None,) * len(nxt)
            else:
                grads = [g] if node.n_out == 1 else list(g)
                if capture is not None:
                    for i, gi in enumerate(grads):
                        if (node, i) in capture and gi is not None:
                            capture[(node, i)] = gi
                d = node.__dict__
                if d.get("backward") is _freed_backward:
                    node._raise_freed()
                if any(x is None for x in grads):
                    grads = [Tensor._wrap(z) if x is None else x
                             for x, z in zip(grads, _zeros_like_meta(node, [
                                 None if x is None else x._data for x in grads]))]
                for idx, fns in d.get("hooks", {}).items():
                    for fn in fns:
                        res = fn(grads[idx])
                        if res is not None:
                            grads[idx] = res
                in_grads = _rule(node, grads)
                if len(in_grads) != len(nxt):
                    raise RuntimeError(f"{node.name} returned {len(in_grads)} gradients for "
                                       f"{len(nxt)} inputs")
            for e, gi in zip(nxt, in_grads):
                if e is None:
                    continue
                if gi is not None:
                    _send(e, gi, state, leaf_grad, leaf_obj)
                if e.__class__ is tuple:
                    st = state[e[0]]
                    st[0] -= 1
                    if st[0] == 0:
                        ready.append(e[0])
            if not retain_graph:
                d = node.__dict__
                if d:
                    d.clear()
                    d["backward"] = _freed_backward

        for key, g in leaf_grad.items():
            leaf = leaf_obj[key]
            for fn in leaf._hooks or ():
                res = fn(g)
                if res is not None:
                    g = res
            if g.shape != leaf.shape:
                raise RuntimeError(f"backward: gradient of shape {g.shape} does not match "
                                   f"leaf of shape {leaf.shape}")
            if g.dtype != leaf.dtype:
                g = g.type(leaf.dtype)
            if capture is not None:
                if key in capture:
                    capture[key] = g
                continue
            # .grad owns its memory (a linear rule may pass the root's array through)
            g = g.clone() if g.requires_grad else Tensor._wrap(g._data.copy())
            leaf.grad = g if leaf.grad is None else leaf.grad + g
    finally:
        _State.enabled = prev_mode


def _send(edge, g, state, leaf_grad, leaf_obj):
    if edge.__class__ is tuple:
        node, idx = edge
        st = state[node]
        if node.n_out == 1:
            st[1] = g if st[1] is None else st[1] + g
            return
        if st[1] is None:
            st[1] = [None] * node.n_out
        prev = st[1][idx]
        st[1][idx] = g if prev is None else prev + g
    else:
        key = id(edge)
        prev = leaf_grad.get(key)
        leaf_obj[key] = edge
        leaf_grad[key] = g if prev is None else prev + g

"""The reverse sweep: each node of the graph is visited once, in reverse topological order.

The sweep is iterative (an explicit stack and a ready list), so a chain of 100,000 ops
backpropagates without touching Python's recursion limit. Gradients meant for leaves are
summed over the whole sweep and written to ``.grad`` at the end, after the leaf's hooks.
"""
from __future__ import annotations

from .function import _freed_backward
from .grad_mode import _State


def _tensor_cls():
    from ..tensor import Tensor

    return Tensor


def run_backward(roots, retain_graph=False, capture=None):
    """Propagate gradients from ``roots`` back to the leaves.

    ``roots`` is a list of ``(edge, grad_array)`` where an edge is a leaf tensor or a
    ``(node, output_index)`` pair. Without ``capture`` the leaves' ``.grad`` accumulate.
    With ``capture`` (a dict keyed by ``id(leaf)`` or ``(node, index)``), only the
    gradients reaching those keys are collected into it and no ``.grad`` changes.
    """
    # 1. Count, for every node, how many edges of the graph point at it.
    deps: dict = {}
    stack = []
    for edge, _ in roots:
        if edge.__class__ is tuple and edge[0] not in deps:
            deps[edge[0]] = 0
            stack.append(edge[0])
    while stack:
        for e in stack.pop().next:
            if e.__class__ is tuple:
                m = e[0]
                d = deps.get(m)
                if d is None:
                    deps[m] = 1
                    stack.append(m)
                else:
                    deps[m] = d + 1

    # 2. Kahn's algorithm: a node runs once every consumer has sent its gradient.
    # pending holds the summed output gradient of a node (a list for multi-output nodes).
    pending: dict = {}
    leaves: dict = {}
    for edge, g in roots:
        _send(edge, g, pending, leaves)
    ready = [n for n, d in deps.items() if d == 0]

    prev_mode = _State.enabled
    _State.enabled = False  # backward formulas are not themselves recorded
    try:
        while ready:
            node = ready.pop()
            nxt = node.next
            g = pending.pop(node, None)
            if g is None:  # no gradient reached this node: its inputs get none either
                in_grads = (None,) * len(nxt)
            else:
                if capture is not None:
                    _capture(node, g, capture)
                # (a freed node's or a hooked node's ``backward`` is an instance attribute
                # that raises or runs the hooks first: no per-node checks here)
                if node.n_out == 1:
                    in_grads = node.backward(node, g)
                else:
                    in_grads = _multi_output_backward(node, g)
                if in_grads.__class__ is not tuple:
                    in_grads = (in_grads,)
                if len(in_grads) != len(nxt):
                    raise RuntimeError(f"{node.name} returned {len(in_grads)} gradients for "
                                       f"{len(nxt)} inputs")
            for e, g in zip(nxt, in_grads):
                if e is None:
                    continue
                if e.__class__ is tuple:
                    m = e[0]
                    if g is not None:
                        if m.n_out == 1:
                            prev = pending.get(m)
                            pending[m] = g if prev is None else prev + g
                        else:
                            _send(e, g, pending, leaves)
                    left = deps[m] - 1
                    deps[m] = left
                    if left == 0:
                        ready.append(m)
                elif g is not None:
                    prev = leaves.get(id(e))
                    leaves[id(e)] = [e, g] if prev is None else [e, prev[1] + g]
            if not retain_graph:
                node.release()
    finally:
        _State.enabled = prev_mode
    _finish_leaves(leaves, capture, {id(g) for _, g in roots})


def _capture(node, g, capture):
    grads = [g] if node.n_out == 1 else g
    for i, gi in enumerate(grads):
        if (node, i) in capture and gi is not None:
            capture[(node, i)] = gi


def _multi_output_backward(node, grads):
    if any(g is None for g in grads):
        grads = _zeros_for_missing(node, grads)
    return node.backward(node, *grads)


def _send(edge, g, pending, leaves):
    if edge.__class__ is tuple:
        node, idx = edge
        if node.n_out == 1:
            prev = pending.get(node)
            pending[node] = g if prev is None else prev + g
            return
        slot = pending.get(node)
        if slot is None:
            pending[node] = slot = [None] * node.n_out
        prev = slot[idx]
        slot[idx] = g if prev is None else prev + g
    else:
        key = id(edge)
        prev = leaves.get(key)
        leaves[key] = [edge, g] if prev is None else [edge, prev[1] + g]


def _zeros_for_missing(node, grads):
    # Function.apply records (shape, dtype, xp) per output of a multi-output node; a node
    # freed by an earlier backward has lost it, and must say so rather than fail on a lookup.
    shapes = node.__dict__.get("out_meta")
    if shapes is None:
        if node.__dict__.get("backward") is _freed_backward:
            node._raise_freed()
        raise RuntimeError(f"{node.name}: a multi-output node has no out_meta (shape, dtype, "
                           "array module per output), so zeros cannot stand in for an output "
                           "that received no gradient")
    return [
        g if g is not None else xp.zeros(shape, dtype)
        for g, (shape, dtype, xp) in zip(grads, shapes)
    ]


def hooked_backward(ctx, *grads):
    """Installed as a node's ``backward`` once a hook is registered on one of its outputs:
    runs the hooks (which may replace the gradient), then the op's own backward rule."""
    Tensor = _tensor_cls()
    grads = list(grads)
    for idx, fns in ctx.__dict__["hooks"].items():
        if grads[idx] is None:
            continue
        for fn in fns:
            res = fn(Tensor._wrap(grads[idx]))
            if res is not None:
                grads[idx] = res._data if isinstance(res, Tensor) else res
    return type(ctx).backward(ctx, *grads)


def _finish_leaves(leaves, capture, seen):
    Tensor = _tensor_cls()
    for key, (leaf, g) in leaves.items():
        if leaf._hooks:
            for fn in leaf._hooks:
                res = fn(Tensor._wrap(g))
                if res is not None:
                    g = res._data if isinstance(res, Tensor) else res
        if g.shape != leaf._data.shape:
            raise RuntimeError(
                f"backward: gradient of shape {g.shape} does not match leaf of shape "
                f"{leaf._data.shape}"
            )
        if g.dtype != leaf._data.dtype:
            g = g.astype(leaf._data.dtype)
        if capture is not None:
            if key in capture:
                capture[key] = g
            continue
        # A gradient array may be shared (an add passes the same array to both inputs, a
        # root's gradient is the caller's array) or a read-only broadcast view; .grad must
        # own writable memory of its own.
        if id(g) in seen or not getattr(g.flags, "writeable", True):
            g = g.copy()
        seen.add(id(g))
        if leaf.grad is None:
            leaf.grad = Tensor._wrap(g)
        else:
            leaf.grad._data = leaf.grad._data + g

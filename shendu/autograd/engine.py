"""The reverse sweep: each node of the graph is visited once, in reverse topological order.

The sweep is iterative (an explicit stack and a ready list), so a chain of 100,000 ops
backpropagates without touching Python's recursion limit. Gradients meant for leaves are
summed over the whole sweep and written to ``.grad`` at the end, after the leaf's hooks.
"""
from __future__ import annotations

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
    deps: dict = {}
    stack = []
    for edge, _ in roots:
        if type(edge) is tuple and edge[0] not in deps:
            deps[edge[0]] = 0
            stack.append(edge[0])
    while stack:
        node = stack.pop()
        for e in node.next:
            if type(e) is tuple:
                m = e[0]
                if m in deps:
                    deps[m] += 1
                else:
                    deps[m] = 1
                    stack.append(m)

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
            grads = pending.pop(node, None)
            if grads is not None:
                hooks = node.__dict__.get("hooks")
                if hooks:
                    grads = _run_node_hooks(hooks, grads)
                if capture is not None:
                    for i, g in enumerate(grads):
                        if (node, i) in capture and g is not None:
                            capture[(node, i)] = g
                in_grads = _call_backward(node, grads)
            else:
                in_grads = None
            for i, e in enumerate(node.next):
                if e is None:
                    continue
                g = None if in_grads is None else in_grads[i]
                if type(e) is tuple:
                    m = e[0]
                    if g is not None:
                        _send(e, g, pending, leaves)
                    deps[m] -= 1
                    if deps[m] == 0:
                        ready.append(m)
                elif g is not None:
                    _send(e, g, pending, leaves)
            if not retain_graph:
                node.release()
    finally:
        _State.enabled = prev_mode
    _finish_leaves(leaves, capture, {id(g) for _, g in roots})


def _send(edge, g, pending, leaves):
    if type(edge) is tuple:
        node, idx = edge
        slot = pending.get(node)
        if slot is None:
            pending[node] = slot = [None] * node.n_out
        prev = slot[idx]
        slot[idx] = g if prev is None else prev + g
    else:
        key = id(edge)
        prev = leaves.get(key)
        leaves[key] = [edge, g] if prev is None else [edge, prev[1] + g]


def _call_backward(node, grads):
    if node.__dict__.get("freed"):
        node._raise_freed()
    if node.n_out == 1:
        out = node.backward(node, grads[0])
    else:
        if any(g is None for g in grads):
            grads = _zeros_for_missing(node, grads)
        out = node.backward(node, *grads)
    if type(out) is not tuple:
        out = (out,)
    if len(out) != len(node.next):
        raise RuntimeError(
            f"{node.name} returned {len(out)} gradients for {len(node.next)} inputs"
        )
    return out


def _zeros_for_missing(node, grads):
    shapes = node.out_meta  # multi-output functions record (shape, dtype, xp) per output
    return [
        g if g is not None else xp.zeros(shape, dtype)
        for g, (shape, dtype, xp) in zip(grads, shapes)
    ]


def _run_node_hooks(hooks, grads):
    grads = list(grads)
    Tensor = _tensor_cls()
    for idx, fns in hooks.items():
        if grads[idx] is None:
            continue
        for fn in fns:
            res = fn(Tensor._wrap(grads[idx]))
            if res is not None:
                grads[idx] = res._data if isinstance(res, Tensor) else res
    return grads


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

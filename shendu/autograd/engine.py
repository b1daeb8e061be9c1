"""The reverse sweep: each node of the graph is visited once, in reverse topological order.

The sweep is iterative (an explicit stack and a ready list), so a chain of 100,000 ops
backpropagates without touching Python's recursion limit. Gradients meant for leaves are
summed over the sweep. A leaf with hooks is finished (its hooks run, then ``.grad`` is
written) as soon as the last node that sends it a gradient has run, as in PyTorch, so that
a hook can start work on a final gradient while the rest of backward goes on
(``DistributedDataParallel`` starts its all-reduce there); other leaves are written at
the end.
"""
from __future__ import annotations

from .function import _freed_backward
from .grad_mode import _State


def _tensor_cls():
    from ..tensor import Tensor

    return Tensor


def count_edges(roots, stop=(), hooked_leaves=None) -> dict:
    """For every node reachable from ``roots``, a state [edges still to arrive, gradient
    summed so far]: one dict lookup per edge, then cheap list updates. The gradient slot
    of a multi-output node holds one entry per output. The walk does not go past the nodes
    in ``stop`` (they are counted, their inputs are not). ``hooked_leaves``, a dict, gets
    the number of edges into each leaf that has hooks, by ``id``."""
    state: dict = {}
    stack = []
    for edge, _ in roots:
        if edge.__class__ is tuple and edge[0] not in state:
            state[edge[0]] = [0, None]
            stack.append(edge[0])
    while stack:
        node = stack.pop()
        if stop and node in stop:
            continue
        for e in node.next:
            if e.__class__ is tuple:
                m = e[0]
                st = state.get(m)
                if st is None:
                    state[m] = [1, None]
                    stack.append(m)
                else:
                    st[0] += 1
            elif hooked_leaves is not None and e is not None and e._hooks:
                hooked_leaves[id(e)] = hooked_leaves.get(id(e), 0) + 1
    return state


def run_backward(roots, retain_graph=False, capture=None):
    """Propagate gradients from ``roots`` back to the leaves.

    ``roots`` is a list of ``(edge, grad_array)`` where an edge is a leaf tensor or a
    ``(node, output_index)`` pair. Without ``capture`` the leaves' ``.grad`` accumulate.
    With ``capture`` (a dict keyed by ``id(leaf)`` or ``(node, index)``), only the
    gradients reaching those keys are collected into it and no ``.grad`` changes.
    """
    # 1. For every node reachable from the roots, edges still to arrive (see count_edges),
    # and for each leaf with hooks, edges still to arrive.
    leaf_left: dict = {}
    state = count_edges(roots, hooked_leaves=leaf_left)
    root_grads = {id(g) for _, g in roots}

    # 2. Kahn's algorithm: a node runs once every consumer has sent its gradient.
    # leaf_grad holds the summed gradient of each leaf, by id (leaf_obj keeps the tensor);
    # the ids in ``owned`` name sums that this sweep allocated and may add into in place.
    leaf_grad: dict = {}
    leaf_obj: dict = {}
    owned: set = set()
    for edge, g in roots:
        _send(edge, g, state, leaf_grad, leaf_obj, owned)
    ready = [n for n, st in state.items() if st[0] == 0]
    freed = _freed_backward

    prev_mode = _State.enabled
    _State.enabled = False  # backward formulas are not themselves recorded
    try:
        while ready:
            node = ready.pop()
            nxt = node.next
            st = state[node]
            g = st[1]
            st[1] = None  # the summed gradient is not kept past its use
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
                    st = state[m]
                    if g is not None:
                        if m.n_out == 1:
                            prev = st[1]
                            st[1] = g if prev is None else prev + g
                        else:
                            _send(e, g, state, leaf_grad, leaf_obj, owned)
                    left = st[0] - 1
                    st[0] = left
                    if left == 0:
                        ready.append(m)
                else:
                    key = id(e)
                    if g is not None:
                        prev = leaf_grad.get(key)
                        if prev is None:
                            leaf_grad[key] = g
                            leaf_obj[key] = e
                        elif key in owned:
                            prev += g  # our own buffer: no allocation per contribution
                            leaf_grad[key] = prev  # (a NumPy scalar's += is a new object)
                        else:
                            leaf_grad[key] = prev + g
                            owned.add(key)
                    if leaf_left and key in leaf_left:
                        leaf_left[key] -= 1
                        if leaf_left[key] == 0 and key in leaf_grad:  # its gradient is final
                            _finish_leaf(leaf_obj.pop(key), leaf_grad.pop(key), key, owned,
                                         capture, root_grads)
            if not retain_graph:
                # release() inlined: drop what forward saved; a later backward through
                # this node then raises instead of reading freed arrays
                d = node.__dict__
                if d:
                    d.clear()
                    d["backward"] = freed
    finally:
        _State.enabled = prev_mode
    for key, g in leaf_grad.items():
        _finish_leaf(leaf_obj[key], g, key, owned, capture, root_grads)


def _capture(node, g, capture):
    grads = [g] if node.n_out == 1 else g
    for i, gi in enumerate(grads):
        if (node, i) in capture and gi is not None:
            capture[(node, i)] = gi


def _multi_output_backward(node, grads):
    if any(g is None for g in grads):
        grads = _zeros_for_missing(node, grads)
    return node.backward(node, *grads)


def _send(edge, g, state, leaf_grad, leaf_obj, owned):
    """Add gradient ``g`` to what ``edge`` (a ``(node, index)`` pair or a leaf) has so far."""
    if edge.__class__ is tuple:
        node, idx = edge
        st = state[node]
        if node.n_out == 1:
            prev = st[1]
            st[1] = g if prev is None else prev + g
            return
        slot = st[1]
        if slot is None:
            st[1] = slot = [None] * node.n_out
        prev = slot[idx]
        slot[idx] = g if prev is None else prev + g
    else:
        key = id(edge)
        prev = leaf_grad.get(key)
        if prev is None:
            leaf_grad[key] = g
            leaf_obj[key] = edge
        else:
            leaf_grad[key] = prev + g
            owned.add(key)


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


def _finish_leaf(leaf, g, key, owned, capture, seen):
    """Run ``leaf``'s hooks on its summed gradient ``g``, then write ``.grad`` (or, with
    ``capture``, the captured gradient). ``owned``: keys whose sums this sweep allocated;
    ``seen``: ids of arrays already handed out (the roots' gradients, other leaves')."""
    Tensor = _tensor_cls()
    summed = g
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
        return
    # A gradient array may be shared (an add passes the same array to both inputs, a
    # root's gradient is the caller's array) or a read-only broadcast view; .grad must
    # own writable memory of its own. Sums this sweep allocated are already private.
    if key not in owned or g is not summed:
        if id(g) in seen or not getattr(g.flags, "writeable", True):
            g = g.copy()
    seen.add(id(g))
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(g)
    else:
        leaf.grad._data = leaf.grad._data + g

"""Forward mode: Jacobian-vector products pushed through the recorded graph.

``jvp`` runs the function once to record the graph, then sweeps it in *forward* order,
calling each node's ``jvp`` rule on the tangents of its inputs. One sweep gives the
derivative along one input direction, so a full gradient over n parameters costs n sweeps,
where reverse mode needs one (the contrast ``benchmarks/bench_autodiff.py`` measures).
"""
from __future__ import annotations

from .grad_mode import _State, enable_grad


def _as_list(x):
    from ..tensor import Tensor

    return ([x], True) if isinstance(x, Tensor) else (list(x), False)


def _forward_order(outputs):
    """Nodes reachable from ``outputs``, each after all the nodes that feed it."""
    order, visited = [], set()
    for out in outputs:
        if out.grad_fn is None:
            continue
        stack = [(out.grad_fn, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if node in visited:
                continue
            visited.add(node)
            stack.append((node, True))
            for e in node.next:
                if type(e) is tuple and e[0] not in visited:
                    stack.append((e[0], False))
    return order


def jvp(fn, primals, tangents=None):
    """Evaluate ``fn(*primals)`` and its directional derivative along ``tangents``.

    Returns ``(outputs, jvp_outputs)``, shaped like ``fn``'s result.

    >>> import shendu as sd
    >>> x = sd.tensor([1.0, 2.0])
    >>> out, tangent = sd.autograd.jvp(lambda x: x ** 2, x, sd.tensor([1.0, 0.0]))
    >>> tangent
    tensor([2., 0.])
    """
    from ..backend import get_array_module
    from ..tensor import Tensor

    primals, single_in = _as_list(primals)
    if tangents is None:
        tangents = [None] * len(primals)
    tangents, _ = _as_list(tangents)
    if len(tangents) != len(primals):
        raise ValueError(f"jvp: got {len(tangents)} tangents for {len(primals)} primals")
    inputs, leaf_tangent = [], {}
    for p, t in zip(primals, tangents):
        x = p.detach()
        if x.is_floating_point():
            x.requires_grad_(True)
            tan = get_array_module(x._data).ones_like(x._data) if t is None else \
                (t._data if isinstance(t, Tensor) else get_array_module(x._data).asarray(t))
            if tan.shape != x.shape:
                raise ValueError(f"jvp: tangent of shape {tan.shape} for a primal of shape "
                                 f"{x.shape}")
            leaf_tangent[id(x)] = tan.astype(x.dtype, copy=False)
        inputs.append(x)
    with enable_grad():
        result = fn(*inputs)
    outputs, single_out = _as_list(result)

    tan = {}
    prev = _State.enabled
    _State.enabled = False
    try:
        for node in _forward_order(outputs):
            ins = []
            for e in node.next:
                if e is None:
                    ins.append(None)
                elif type(e) is tuple:
                    ins.append(tan.get(e))
                else:
                    ins.append(leaf_tangent.get(id(e)))
            if all(t is None for t in ins):
                continue
            res = node.jvp(node, *ins)
            if node.n_out == 1:
                res = (res,)
            for i, r in enumerate(res):
                tan[(node, i)] = r
    finally:
        _State.enabled = prev

    out_vals, out_tans = [], []
    for o in outputs:
        if o.grad_fn is not None:
            t = tan.get((o.grad_fn, o._out_idx))
        else:
            t = leaf_tangent.get(id(o))
        if t is None:
            t = get_array_module(o._data).zeros_like(o._data)
        out_vals.append(o.detach())
        out_tans.append(Tensor._wrap(t))
    if single_out:
        return out_vals[0], out_tans[0]
    return tuple(out_vals), tuple(out_tans)


def vjp(fn, primals, v=None):
    """Evaluate ``fn(*primals)`` and the vector-Jacobian product ``v^T J`` (reverse mode).

    Returns ``(outputs, vjp)`` where ``vjp`` is shaped like ``primals``.
    """
    from . import grad

    primals, single_in = _as_list(primals)
    inputs = [p.detach().requires_grad_(True) for p in primals]
    with enable_grad():
        result = fn(*inputs)
    outputs, single_out = _as_list(result)
    vs = [None] * len(outputs) if v is None else _as_list(v)[0]
    grads = grad(outputs, inputs, grad_outputs=vs, allow_unused=True)
    grads = tuple(g if g is not None else p.detach() * 0 for g, p in zip(grads, inputs))
    outs = outputs[0].detach() if single_out else tuple(o.detach() for o in outputs)
    return outs, (grads[0] if single_in else grads)

"""Constant folding."""
from __future__ import annotations

from ...autograd.grad_mode import no_grad
from ..graph import Graph, Value
from ._util import pure


def fold_constants(graph: Graph) -> Graph:
    """Run, once, every node whose inputs are all constants that need no gradient, and use
    its results as new constants. Parameters are not constants (training changes them);
    random and effectful nodes are never folded.

    >>> import shendu as sd
    >>> scale = sd.tensor([1.0, 2.0])
    >>> g = sd.jit.trace(lambda x: x * (scale * 2).exp(), sd.ones(2)).graph
    >>> [n.op for n in fold_constants(g)]
    ['mul']
    """
    g = graph.clone()
    rename: dict = {}
    keep = []
    for n in g:
        n.inputs = ins = [rename.get(id(v), v) for v in n.inputs]
        if n.inputs and pure(n) and all(v.kind == "const" and not v.tensor.requires_grad
                                        for v in ins):
            from ..module import _call_of

            pos = [v.tensor for v, k in zip(ins, n.input_keys) if k is None]
            kw = dict(n.attrs)
            for v, k in zip(ins, n.input_keys):
                if k is not None:
                    kw[k] = v.tensor._data if k in n.array_keys else v.tensor
            with no_grad():
                r = _call_of(n)(*pos, **kw)
            for v, t in zip(n.outputs, r if n.multi else (r,)):
                rename[id(v)] = Value(f"{v.name}_folded", v.shape, v.dtype, "const", tensor=t)
            continue
        keep.append(n)
    g[:] = keep
    return g.replace_uses(rename)

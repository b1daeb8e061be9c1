"""Dead-code elimination."""
from __future__ import annotations

from ..graph import Graph
from ._util import has_effect


def eliminate_dead_code(graph: Graph) -> Graph:
    """Drop nodes none of whose results reach an output (nodes with effects stay).

    >>> import shendu as sd
    >>> def f(x):
    ...     unused = x.exp()
    ...     return x + 1
    >>> g = sd.jit.trace(f, sd.ones(2)).graph
    >>> [n.op for n in eliminate_dead_code(g)]
    ['add_scalar']
    """
    g = graph.clone()
    live = {id(v) for v in g.outputs}
    keep = []
    for n in reversed(g):
        if has_effect(n) or any(id(v) in live for v in n.outputs):
            keep.append(n)
            live.update(id(v) for v in n.inputs)
    g[:] = keep[::-1]
    return g

"""Common-subexpression elimination."""
from __future__ import annotations

import numpy as np

from ..graph import Graph
from ._util import pure


def _key(n):
    attrs = []
    for k, a in sorted(n.attrs.items()):
        if isinstance(a, np.ndarray):
            a = ("array", id(a))  # the same array object, not equal contents
        try:
            hash(a)
        except TypeError:
            return None
        attrs.append((k, a))
    return (n.function, tuple(id(v) for v in n.inputs), tuple(n.input_keys), tuple(attrs))


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Replace a node that repeats an earlier one (same function, same input values, equal
    attributes) by the earlier node's results. Random and effectful nodes are never merged.

    >>> import shendu as sd
    >>> g = sd.jit.trace(lambda x: x.exp() + x.exp(), sd.ones(2)).graph
    >>> [n.op for n in eliminate_common_subexpressions(g)]
    ['exp', 'add']
    """
    g = graph.clone()
    seen: dict = {}
    rename: dict = {}
    keep = []
    for n in g:
        n.inputs = [_follow(rename, v) for v in n.inputs]
        key = _key(n) if pure(n) else None
        if key is not None:
            first = seen.get(key)
            if first is not None:
                for a, b in zip(n.outputs, first.outputs):
                    rename[id(a)] = b
                continue
            seen[key] = n
        keep.append(n)
    g[:] = keep
    return g.replace_uses(rename)


def _follow(rename, v):
    while id(v) in rename:
        v = rename[id(v)]
    return v

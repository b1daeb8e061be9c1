"""Memory plan: value lifetimes, the peak they imply, and buffers that can be reused."""
from __future__ import annotations

from ..fused import INPLACE
from ..graph import Graph

# ops whose result may share memory with their (first) input
VIEW_OPS = {"reshape", "permute", "expand", "get_item", "detach", "diagonal", "to_device"}


def lifetimes(graph: Graph) -> dict:
    """``id(root value) -> (first node index, last node index)`` where a root is a value
    that owns its memory and its lifetime covers every view of it; -1 is "before the
    first node" (graph inputs), ``len(graph)`` "after the last" (returned values)."""
    root: dict = {}
    span: dict = {}
    for v in graph.inputs:
        root[id(v)] = v
        span[id(v)] = [-1, -1]
    for k, n in enumerate(graph):
        for v in n.inputs:
            r = root.setdefault(id(v), v)
            s = span.setdefault(id(r), [-1, k])
            s[1] = max(s[1], k)
        for v in n.outputs:
            if n.op in VIEW_OPS and n.inputs:
                root[id(v)] = root[id(n.inputs[0])]
            else:
                root[id(v)] = v
                span[id(v)] = [k, k]
    for v in graph.outputs:
        r = root.get(id(v), v)
        span.setdefault(id(r), [-1, -1])[1] = len(graph)
    graph_roots = {id(root[id(v)]) for v in graph.inputs}
    return {"root": root, "span": span, "external": graph_roots}


def peak_bytes(graph: Graph) -> int:
    """Largest total size of node results alive at once when each is freed after its last
    reader (views cost nothing; inputs, parameters and constants are not counted)."""
    info = lifetimes(graph)
    sizes = {}
    for n in graph:
        for v in n.outputs:
            if info["root"][id(v)] is v:
                sizes[id(v)] = v.nbytes
    events = [0] * (len(graph) + 2)
    for key, nbytes in sizes.items():
        a, b = info["span"][key]  # made by node a, last read by node b (len: returned)
        events[a] += nbytes
        events[b + 1] -= nbytes
    live = peak = 0
    for e in events:
        live += e
        peak = max(peak, live)
    return peak


def plan_memory(graph: Graph) -> Graph:
    """Mark where a fused elementwise node may write its first result over an input
    whose lifetime ends at that node (``attrs["donate"]``: a node result, read by nothing
    later, with no live view, of the same shape and dtype). Only used when nothing is
    being recorded for autograd (a recorded producer may have saved the array).

    >>> import shendu as sd
    >>> from shendu.jit.passes import fuse_elementwise
    >>> g = fuse_elementwise(sd.jit.trace(lambda x: (x @ x).exp() * 2, sd.ones(3, 3)).graph)
    >>> plan_memory(g)[1].attrs["donate"]
    0
    """
    g = graph.clone()
    info = lifetimes(g)
    root, span = info["root"], info["span"]
    for k, n in enumerate(g):
        if n.op != "fused_elementwise":
            continue
        members, plan = n.attrs["members"], n.attrs["plan"]
        first_refs = members[0][1]
        if plan.ops[0] not in INPLACE:
            continue
        for kind, i in first_refs:
            if kind != "in":
                continue
            v = n.inputs[i]
            r = root.get(id(v))
            if (r is None or v.kind != "node" or r is not v or span[id(r)][1] != k
                    or id(r) in info["external"] or tuple(v.shape) != tuple(plan.shapes[0])
                    or v.dtype != plan.dtypes[0]
                    or any(kk == "in" and ii == i for m in members[1:] for kk, ii in m[1])):
                continue
            n.attrs = dict(n.attrs, donate=i)
            break
    return g

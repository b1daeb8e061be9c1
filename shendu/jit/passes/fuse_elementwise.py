"""Elementwise fusion: groups of elementwise ops become one ``FusedElementwise`` node."""
from __future__ import annotations

import numpy as np

from ..fused import BufferPlan, FusedElementwise
from ..graph import Graph, Node
from ..kernels import GroupKernel

# ops whose forward takes only positional arrays (and scalar attributes) and maps elements
ELEMENTWISE = {"add", "sub", "mul", "div", "maximum", "add_scalar", "mul_scalar",
               "rsub_scalar", "rdiv_scalar", "pow_scalar", "neg", "relu", "leaky_relu", "exp",
               "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "abs", "elu",
               "softplus", "gelu", "clamp"}


def fusible(n: Node) -> bool:
    return (n.op in ELEMENTWISE and not n.leaf and not n.multi and len(n.outputs) == 1
            and all(k is None for k in n.input_keys) and n.outputs[0].dtype.kind == "f"
            and not any(isinstance(a, np.ndarray) for a in n.attrs.values()))


def fuse_elementwise(graph: Graph, min_size: int = 2) -> Graph:
    """Merge each run of elementwise nodes that feed one another into one node.

    A group grows with each elementwise node; a non-elementwise node that reads one of
    its results closes it. Results read after the group (or
    returned) become the fused node's outputs; the rest never leave it. The fused node
    sits where the group's last member was, so everything it reads exists by then.

    >>> import shendu as sd
    >>> g = sd.jit.trace(lambda x, y: (x * y + 1.0).tanh() * 2, (sd.ones(3), sd.ones(3))).graph
    >>> [n.op for n in fuse_elementwise(g)]
    ['fused_elementwise']
    >>> fuse_elementwise(g)[0].attrs["ops"]
    ('mul', 'add_scalar', 'tanh', 'mul_scalar')
    """
    g = graph.clone()
    out: list = []
    group: list = []
    produced: set = set()

    def close():
        if len(group) >= min_size:
            out.append(_fuse(group, g))
        else:
            out.extend(group)
        group.clear()
        produced.clear()

    for n in g:
        reads_group = any(id(v) in produced for v in n.inputs)
        if fusible(n):
            group.append(n)  # (a side branch that reads only earlier values joins too)
            produced.add(id(n.outputs[0]))
        else:
            if reads_group:
                close()
            out.append(n)  # (one that does not read the open group runs before it)
    close()
    g[:] = out
    return g


def _fuse(group: list, g: Graph) -> Node:
    members_ids = {id(n) for n in group}
    inner = {id(n.outputs[0]): j for j, n in enumerate(group)}
    ext: list = []
    ext_idx: dict = {}
    members = []
    for n in group:
        refs = []
        for v in n.inputs:
            if id(v) in inner:
                refs.append(("t", inner[id(v)]))
            else:
                if id(v) not in ext_idx:
                    ext_idx[id(v)] = len(ext)
                    ext.append(v)
                refs.append(("in", ext_idx[id(v)]))
        members.append((n.function, tuple(refs), dict(n.attrs)))
    used_outside = {id(v) for v in g.outputs}
    for n in g:
        if id(n) not in members_ids:
            used_outside.update(id(v) for v in n.inputs)
    outs = [j for j, n in enumerate(group) if id(n.outputs[0]) in used_outside]
    plan = BufferPlan([n.op for n in group], [n.outputs[0].shape for n in group],
                      [n.outputs[0].dtype for n in group], [m[1] for m in members], outs)
    last = group[-1]
    shapes = {(tuple(n.outputs[0].shape), n.outputs[0].dtype) for n in group}
    kernel = GroupKernel(members, outs, *shapes.pop()) if len(shapes) == 1 else None
    node = Node(f"fused_{group[0].name}", "fused_elementwise", FusedElementwise, ext,
                {"members": members, "outs": outs, "plan": plan, "kernel": kernel,
                 "ops": tuple(n.op for n in group)},
                multi=len(outs) > 1, module=last.module, module_type=last.module_type,
                source=last.source)
    node.meta["fused"] = [n.name for n in group]
    node.outputs = [group[j].outputs[0] for j in outs]
    for i, v in enumerate(node.outputs):
        v.node, v.index = node, i
    return node

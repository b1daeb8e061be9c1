"""Linear layers that feed one another, in inference graphs, as one ``linear_chain`` node."""
from __future__ import annotations

from ...ops import nn_ops
from ..chain import ChainPlan, linear_chain
from ..graph import Graph, Node
from ._util import needs_grad

_LINEAR = {nn_ops.Linear: False, nn_ops.LinearReLU: True}  # function -> ReLU after it
_FIXED = ("param", "buffer", "const")


def fuse_linear_chain(graph: Graph) -> Graph:
    """Replace each run of ``linear``/``linear_relu`` nodes in which every node reads the
    one before it (and nothing else reads that result) by one ``linear_chain`` node, when
    no gradient will flow through it and its weights and biases are parameters, buffers
    or constants (the same tensors every call). Runs after ``fuse_linear_activation``.

    The chain then runs as one kernel (``shendu.jit.chain``): the batch's rows split
    between the threads, each thread taking its rows through every layer with no barrier
    between layers, on weights packed once into MKL's layout (packed again when a weight
    changes: its array or its version counter). Graphs that will run a backward keep
    their layers: the packed weights are for weights that stay fixed between calls.

    >>> import shendu as sd
    >>> from shendu.jit.passes import fuse_linear_activation
    >>> net = sd.nn.Sequential(sd.nn.Linear(3, 4), sd.nn.ReLU(), sd.nn.Linear(4, 2))
    >>> with sd.no_grad():
    ...     g = fuse_linear_activation(sd.jit.trace(net, sd.ones(2, 3)).graph)
    >>> [n.op for n in fuse_linear_chain(g)]
    ['linear_chain']
    >>> fuse_linear_chain(g)[0].meta["fused"]
    ['linear_0', 'relu_0', 'linear_1']
    """
    g = graph.clone()
    grads = needs_grad(g)
    users = g.users()
    outputs = {id(v) for v in g.outputs}
    out: list = []
    run: list = []

    def close():
        if run:
            out.append(_chain(run))
        run.clear()

    for n in g:
        if not _fusible(n, grads):
            close()
            out.append(n)
            continue
        prev = run[-1].outputs[0] if run else None
        if prev is not None and not (n.inputs[0] is prev and len(users.get(id(prev), ())) == 1
                                     and id(prev) not in outputs):
            close()
        run.append(n)
    close()
    g[:] = out
    return g


def _fusible(n: Node, grads: set) -> bool:
    if n.function not in _LINEAR or n.multi or any(k is not None for k in n.input_keys):
        return False
    x, params = n.inputs[0], n.inputs[1:]
    return (x.dtype.kind == "f" and len(n.inputs[1].shape) == 2
            and all(v.kind in _FIXED and v.tensor is not None and v.dtype == x.dtype
                    for v in params)
            and not any(id(v) in grads for v in n.inputs + n.outputs))


def _chain(run: list) -> Node:
    """One node for the layers in ``run`` (a node of its own even for one layer: its
    weights are packed and its rows split all the same)."""
    last = run[-1]
    layers = [(len(n.inputs) > 2, _LINEAR[n.function]) for n in run]
    inputs = [run[0].inputs[0]] + [v for n in run for v in n.inputs[1:]]
    node = Node(f"linear_chain_{run[0].name}", "linear_chain", linear_chain, inputs,
                {"plan": ChainPlan(layers)}, leaf=True, module=last.module,
                module_type=last.module_type, source=last.source)
    node.meta["fused"] = [name for n in run for name in [n.name] + n.meta.get("fused", [])]
    node.outputs = last.outputs
    for v in node.outputs:
        v.node = node
    return node

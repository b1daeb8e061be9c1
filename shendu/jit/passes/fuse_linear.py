"""Linear/Conv2d (+ bias) or tiled max pooling, then ReLU, as one op (what ``nn.utils.fuse``
does for ``Sequential``'s Linear/Conv2d + ReLU pairs)."""
from __future__ import annotations

from ...ops import conv, nn_ops, pool
from ..graph import Graph, Node
from ._util import needs_grad


def fuse_linear_activation(graph: Graph) -> Graph:
    """Replace ``relu(linear(x, w, b))`` by ``linear_relu(x, w, b)``,
    ``relu(conv2d(x, w, b))`` by one ``conv2d_relu`` node (``Conv2d`` with ``relu=True``)
    and ``relu(max_pool2d(x))`` with non-overlapping windows by ``max_pool2d_relu``
    (``MaxPool2d`` with ``relu=True``: one pass, no saved ReLU output), when the first
    op's result has no other reader (the bias is already inside the fused ops).

    A convolution whose input gradient will be computed stays unfused when that gradient
    is at least as big as its output (``_fused_backward_costs_memory``).

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Linear(3, 4), sd.nn.ReLU(), sd.nn.Linear(4, 2))
    >>> g = sd.jit.trace(net, sd.ones(2, 3)).graph
    >>> [n.op for n in fuse_linear_activation(g)]
    ['linear_relu', 'linear']
    """
    g = graph.clone()
    grads = needs_grad(g)
    users = g.users()
    outputs = {id(v) for v in g.outputs}
    dropped = set()     # id(relu node)
    for n in g:
        if n.op != "relu" or n.inputs[0].kind != "node":
            continue
        p = n.inputs[0].node
        v = n.inputs[0]
        if len(users.get(id(v), ())) != 1 or id(v) in outputs:
            continue
        if p.op == "linear" and p.function is nn_ops.Linear:
            p.function, p.op = nn_ops.LinearReLU, "linear_relu"
        elif (p.op == "conv2d" and p.function is conv.Conv2d and not p.attrs.get("relu")
              and not _fused_backward_costs_memory(p, grads)):
            p.attrs = dict(p.attrs, relu=True)
            p.op = "conv2d_relu"
        elif (p.op == "max_pool2d" and p.function is pool.MaxPool2d
              and not p.attrs.get("relu") and _tiled(p)):
            p.attrs = dict(p.attrs, relu=True)
            p.op = "max_pool2d_relu"
        else:
            continue
        # the product node now gives the ReLU's result: readers of the ReLU read it
        p.outputs = n.outputs
        for o in p.outputs:
            o.node = p
        p.meta["fused"] = p.meta.get("fused", []) + [n.name]
        dropped.add(id(n))
    g[:] = [n for n in g if id(n) not in dropped]
    return g


def _fused_backward_costs_memory(p: Node, grads: set) -> bool:
    """True when the fused Conv2d+ReLU backward would hold more memory than the unfused pair.

    Unfused, the ReLU's backward masks the output gradient g into a new array; then the
    ReLU's output y and g are freed before the convolution's backward allocates dX. Fused,
    the convolution masks g as it reads it, so y and g stay alive while dX (and the
    per-thread dW shares) are allocated. That is more, not less, when dX is needed and is
    at least as big as y: 3x3 'same' layers with as many channels out as in, the peak of
    a CIFAR CNN's training step."""
    x, y = p.inputs[0], p.outputs[0]
    return id(x) in grads and x.nbytes >= y.nbytes


def _tiled(p: Node) -> bool:
    """Whether a max pooling's windows tile its input (what ``relu=True`` needs)."""
    a = p.attrs
    return pool._tiles(p.inputs[0].shape, a["k"], a["stride"], a["pad"], a["dilation"],
                       a["out_hw"])
